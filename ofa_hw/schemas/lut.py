"""Schema of the ``lut`` config group (probe planning, building, reusing latency lookup tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class LutConfig:
    """How the latency LUT of a (space, DPU) is found or built.

    Attributes:
        dir: Where built LUTs are written (``<space>-<dpu>-<fingerprint>.csv`` + ``.json``).
        shipped_dir: Directory of shipped LUTs searched for a matching fingerprint before building;
            ``None`` = the repository's ``lut/``.
        path: Use exactly this LUT CSV (checked against the space and the DPU fingerprint).
        resolutions: Resolutions to cover; ``None`` = every resolution of the space.
        coverage: Every key is measured in at least this many profiled subnets.
        validation_subnets: Random subnets profiled to check LUT sums against whole-network times.
        seed: Seed of the probe plan's assignment, the validation subnets and the backend's jitter.
        regenerate: Rebuild a LUT whose DPU fingerprint no longer matches the config; ``false`` stops
            with an error instead.
        reuse: Reuse an existing LUT with a matching fingerprint (``false`` always rebuilds from the store).
        retry_failed: Re-profile jobs the store holds as failed (default: a rerun retries them).
    """

    dir: str = "${workspace}/lut"
    shipped_dir: Optional[str] = None
    path: Optional[str] = None
    resolutions: Optional[list[int]] = None
    coverage: int = 1
    validation_subnets: int = 20
    seed: int = 0
    regenerate: bool = True
    reuse: bool = True
    retry_failed: bool = True
