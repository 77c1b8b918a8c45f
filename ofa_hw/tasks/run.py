"""The run's objects, built once from the config at the task boundary and handed down to every stage.

A task builds :class:`RunObjects` once (after :func:`ofa_hw.tasks.settings.check_settings` accepted the
config) and passes it to the LUT, train, search and report stages, which no longer rebuild the space,
the DPU, the backend or their settings from the raw config.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from omegaconf import DictConfig

from ofa_hw.dpu import DPUConfig
from ofa_hw.lut.settings import LutSettings
from ofa_hw.search.settings import SearchSettings
from ofa_hw.space import SearchSpace


@dataclass(frozen=True)
class RunObjects:
    """Space, DPU and typed settings of one run.

    Attributes:
        cfg: The composed config (for the groups without a typed object yet, e.g. ``predictor``).
        space: The search space (``space`` group).
        dpu: The DPU (``dpu`` group).
        lut: The ``lut`` settings.
        search: The ``search`` settings.
    """

    cfg: DictConfig
    space: SearchSpace
    dpu: DPUConfig
    lut: LutSettings
    search: SearchSettings

    @classmethod
    def build(cls, cfg: DictConfig) -> RunObjects:
        """Build every object of the run from ``cfg`` (a bad value: a one-line ``UserError``)."""
        from ofa_hw.tasks import make_dpu, make_space

        return cls(
            cfg,
            make_space(cfg),
            make_dpu(cfg),
            LutSettings.from_config(cfg.lut),
            SearchSettings.from_config(cfg.search),
        )

    @cached_property
    def backend(self) -> Any:
        """The profiling backend, built on first use and then shared by every stage."""
        from ofa_hw.backends import make_backend

        return make_backend(self.cfg, self.dpu)

    @property
    def backend_name(self) -> str:
        """``backend.name`` (known without building the backend)."""
        return str(self.cfg.backend.name)
