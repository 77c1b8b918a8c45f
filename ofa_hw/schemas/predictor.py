"""Schema of the ``predictor`` group: which latency model, what it predicts, how the train task fits it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

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
    holdout: Share of the measured non-probe subnets (LUT validation, deployed candidates) kept for
        evaluation; the rest fit the per-network overhead and calibrate the uncertainty.
    cache: Reuse a predictor fitted earlier on exactly the same data and config (workspace cache).
    """

    name: str = MISSING
    model: dict[str, Any] = field(default_factory=dict)
    target: str = "profile"
    file: Optional[str] = None
    source: str = "lut"
    holdout: float = 0.5
    cache: bool = True
