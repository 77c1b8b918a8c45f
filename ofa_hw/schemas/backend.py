"""Schema of the ``backend`` config group (which DPU backend profiles the subnets)."""

from __future__ import annotations

from dataclasses import dataclass

from ofa_hw.schemas.vitis import VitisConfig


@dataclass
class BackendConfig:
    """A profiling backend.

    Attributes:
        _target_: The backend class; :func:`ofa_hw.backends.make_backend` calls its ``from_config``.
        name: Backend name recorded with every measurement (``sim``, ``vitis_dnndk``, ``vitis_vart``).
        runs: Profile-mode runs per measurement (averaged; the per-run tables are kept too).
        timeout_s: Wall-time limit of one profiling job.
        vitis: Settings of the Vitis-AI backends (their own nested schema; ``None`` for the simulator).
    """

    _target_: str = "ofa_hw.backends.sim.SimBackend"
    name: str = "sim"
    runs: int = 10
    timeout_s: float = 600.0
    vitis: VitisConfig | None = None
