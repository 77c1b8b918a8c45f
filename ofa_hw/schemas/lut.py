"""Schema of the ``lut`` config group (probe planning, building, reusing latency lookup tables)."""

from __future__ import annotations

from dataclasses import dataclass


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
        plan: Which subnets to profile: ``full`` (every compilable key ``coverage`` times at every
            resolution, plus ``validation_subnets``), ``budget`` (at most ``max_subnets`` subnets chosen
            actively for the predictor: :mod:`ofa_hw.lut.active`) or ``auto`` (``full`` on the
            simulator, ``budget`` on the Vitis backends, where every probe costs container and board minutes).
        max_subnets: Budget plan: most subnets profiled.
        batch: Budget plan: subnets per batch (the first batch is a coverage seed; each later one is
            chosen where the refitted predictor's σ is largest).
        target_mape: Budget plan: stop once the predictor fitted before the newest batch predicts that
            batch with at most this MAPE (a fraction).
        pool: Budget plan: random compilable max-depth subnets the next batch is chosen from.
        dry_run: Print the plan's cost (and write it to results.json), profile nothing.
        granularity: What is measured: ``node`` (per-node / fine-grained per-layer profiles), ``block``
            (each key's own network), ``network`` (whole subnets; LUT from the calibrated simulator) or
            ``auto`` (per backend and toolchain: :mod:`ofa_hw.lut.granularity`).
        overhead_subnets: ``block`` with the budget plan: whole subnets timed for the overhead.
    """

    dir: str = "${workspace}/lut"
    shipped_dir: str | None = None
    path: str | None = None
    resolutions: list[int] | None = None
    coverage: int = 1
    validation_subnets: int = 20
    seed: int = 0
    regenerate: bool = True
    reuse: bool = True
    retry_failed: bool = True
    plan: str = "auto"
    max_subnets: int = 20
    batch: int = 5
    target_mape: float = 0.01
    pool: int = 500
    dry_run: bool = False
    granularity: str = "auto"
    overhead_subnets: int = 3
