"""``ofa-hw task=bench bench=<name>``: run one benchmark; each lives next to the stage it measures."""

from __future__ import annotations

from hydra.utils import get_method
from omegaconf import DictConfig

from ofa_hw.errors import UserError


def run(cfg: DictConfig) -> dict:
    return get_method(cfg.bench._target_)(cfg)


def no_bench(cfg: DictConfig) -> dict:
    raise UserError("task=bench needs a benchmark: bench=predictor, bench=search or bench=pipeline")
