"""Schema of the ``predictor`` group: which latency model, what it predicts, how the train task fits it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PredictorConfig:
    """Attributes:
    name: The option's name (``lut``, ``roofline``, ``rf``, ``gbdt``, ``xgb``, ``mlp``).
    model: The per-block estimator: ``_target_`` (class in :mod:`ofa_hw.predictor.models`) and its
        keyword arguments; built by :func:`ofa_hw.predictor.make_predictor` with ``hydra.utils.instantiate``.
    target: Latency predicted by default: ``profile`` (sum of DPU nodes, DNNDK's "All") or ``e2e``.
    file: Load this saved predictor instead of training (checked against space and DPU fingerprint).
    source: Training rows: ``lut`` (the LUT's per-key statistics) or ``store`` (the LUT's probe
        profiles from the store, one bootstrap group per profiled subnet).
    eval_subnets: Held-out subnets the train task scores on: random compilable subnets over all the
        space's resolutions, drawn with the run's seed and profiled on the backend (through the store,
        so only once) unless already measured. Never used for fitting.
    calib_subnets: Random compilable subnets (drawn with the run's seed, distinct from the held-out
        ones, profiled unless already measured) that fit the per-network overhead and calibrate the
        uncertainty. Fixed by the seed: other measurements in the store (earlier search candidates, the
        LUT's validation subnets) are never used, so a rerun gives the same predictor. 0 = none.
    cache: Reuse a predictor fitted earlier on exactly the same data and config (workspace cache).
    """

    name: str = MISSING
    model: dict[str, Any] = field(default_factory=dict)
    target: str = "profile"
    file: str | None = None
    source: str = "lut"
    eval_subnets: int = 20
    calib_subnets: int = 10
    cache: bool = True
