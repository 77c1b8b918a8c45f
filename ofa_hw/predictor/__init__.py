"""Latency predictors: per-block models on netspec features, compiled into dense tables.

``features`` (block features and the analytic roofline) → ``models`` (scikit-learn-API block
estimators: ``lut``, ``roofline``, ``rf``, ``gbdt``, ``xgb``, ``mlp``) → ``predictor`` (network
latency = Σ blocks + overhead, calibrated std, compiled :class:`~ofa_hw.blocktable.BlockTable`) →
``persist`` (integrity-checked JSON files) and ``ofa_adapter`` (OFA's ``get_efficiency``).
"""

from __future__ import annotations

from typing import Any

from ofa_hw.predictor.data import KeyMeasurement, NetMeasurement, TrainingSet
from ofa_hw.predictor.features import FEATURES, HwParams, featurize
from ofa_hw.predictor.metrics import latency_metrics
from ofa_hw.predictor.models import (
    MODELS,
    BlockModel,
    GBDTModel,
    LUTModel,
    MLPModel,
    RFModel,
    RooflineModel,
    XGBModel,
)
from ofa_hw.predictor.ofa_adapter import OFAEfficiencyAdapter
from ofa_hw.predictor.persist import PredictorFileError, load_predictor, save_predictor
from ofa_hw.predictor.predictor import LatencyPredictor, PredictorError, make_model


def make_predictor(cfg: Any, space: Any, dpu: Any = None) -> LatencyPredictor:
    """The predictor a ``predictor`` config node describes: unfitted, or loaded from ``cfg.file``.

    The block estimator is built with ``hydra.utils.instantiate(cfg.model)`` (its ``_target_`` is a
    class of :mod:`ofa_hw.predictor.models`, the other keys its parameters), so a new model is a new
    class plus a YAML file. Space and DPU are passed as objects, not through Hydra.

    Args:
        cfg: The ``predictor`` node (or the root config holding one).
        space: The search space.
        dpu: The DPU configuration (``None``: B4096 defaults, no compile check).
    """
    from hydra.utils import instantiate

    if "model" not in cfg and "predictor" in cfg:
        cfg = cfg["predictor"]
    if cfg.get("file"):
        pred = load_predictor(str(cfg["file"]), space, dpu)
        if pred.name != cfg.get("name", pred.name):
            raise PredictorError(
                f"predictor file {cfg['file']} holds a '{pred.name}' model, config asks for '{cfg['name']}'"
            )
        return pred
    if not cfg.get("model") or "_target_" not in cfg["model"]:
        raise PredictorError(
            "predictor config: 'model' needs a _target_ (a class of ofa_hw.predictor.models)"
        )
    model = instantiate(cfg["model"])
    if not isinstance(model, BlockModel):
        raise PredictorError(f"predictor.model._target_ = {cfg['model']['_target_']} is not a block model")
    return LatencyPredictor(model, space, dpu, target=str(cfg.get("target", "profile")))


__all__ = [
    "FEATURES",
    "MODELS",
    "BlockModel",
    "GBDTModel",
    "HwParams",
    "KeyMeasurement",
    "LUTModel",
    "LatencyPredictor",
    "MLPModel",
    "NetMeasurement",
    "OFAEfficiencyAdapter",
    "PredictorError",
    "PredictorFileError",
    "RFModel",
    "RooflineModel",
    "TrainingSet",
    "XGBModel",
    "featurize",
    "latency_metrics",
    "load_predictor",
    "make_model",
    "make_predictor",
    "save_predictor",
]
