"""The simulator backend: profiles subnets with the embedded DPU model (:func:`ofa_hw.sim.simulate`).

Its raw text is the DNNDK profile the simulator prints, so the store keeps the same kind of record as
for a board. A compile error (e.g. a depthwise layer too wide for the DPU) is a failed outcome, not an
exception, so a batch goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ofa_hw.backends.base import ProfileJob, ProfileOutcome
from ofa_hw.dpu import CompileError, DPUConfig
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import simulate
from ofa_hw.sim.version import toolchain_label


class SimBackend:
    """Profiles on the simulated DPU ``dpu``; sequential (one core's worth of work per job).

    Attributes:
        name: ``sim``.
        toolchain: ``sim-model-<hash>``: a hash of the timing model's source
            (:mod:`ofa_hw.sim.version`), so runs and LUTs of an older model are told apart.
        dpu: The simulated DPU configuration.
    """

    name = "sim"

    def __init__(self, dpu: DPUConfig) -> None:
        self.dpu = dpu
        self.toolchain = toolchain_label()

    @property
    def provenance(self) -> str:
        """Where the numbers come from, for LUT metadata (the DPU's calibration source when known)."""
        source = getattr(self.dpu, "calibrated_on", "")
        return "calibrated simulator" + (f" (constants fitted on {source})" if source else "")

    @classmethod
    def from_config(cls, cfg: Any, dpu: DPUConfig) -> SimBackend:
        """Build from a ``backend`` config node (the simulator needs nothing beyond the DPU)."""
        return cls(dpu)

    def preflight(self) -> None:
        """Nothing to check: the simulator needs no tools or boards."""

    def profile(self, job: ProfileJob) -> ProfileOutcome:
        start = time.perf_counter()
        own = getattr(job, "netspec", None)  # a LUT key's own network (ofa_hw.lut.blocks.BlockJob)
        netspec = (
            dataclasses.replace(own, name=job.net_name)
            if own is not None
            else build_netspec(job.get_space(), job.arch, name=job.net_name)
        )
        try:
            prof = simulate(netspec, dpu=self.dpu, runs=job.runs, seed=job.seed, name=job.net_name)
        except CompileError as exc:
            return ProfileOutcome(
                job, "failed", error=f"compile error: {exc}", timings={"total_s": time.perf_counter() - start}
            )
        return ProfileOutcome(
            job,
            "ok",
            profile=prof,
            raw_text=prof.to_dnndk_text(),
            timings={"total_s": time.perf_counter() - start},
        )

    def profile_many(self, jobs: Iterable[ProfileJob]) -> Iterator[ProfileOutcome]:
        for job in jobs:
            yield self.profile(job)

    def __repr__(self) -> str:
        return f"SimBackend(dpu={getattr(self.dpu, 'name', '?')}, toolchain={self.toolchain})"
