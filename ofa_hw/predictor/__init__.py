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
from ofa_hw.predictor.models import MODELS, BlockModel, GBDTModel, LUTModel, MLPModel, RFModel, RooflineModel, XGBModel
from ofa_hw.predictor.ofa_adapter import OFAEfficiencyAdapter
from ofa_hw.predictor.persist import PredictorFileError, load_predictor, save_predictor
from ofa_hw.predictor.predictor import LatencyPredictor, PredictorError, make_model


def make_predictor(cfg: Any = None, space: Any = None, dpu: Any = None, **fields: Any) -> LatencyPredictor:
    """The predictor a ``predictor`` config node describes (unfitted, or loaded from ``file``).

    Call it as ``make_predictor(cfg.predictor, space, dpu)``, or let Hydra do it:
    ``hydra.utils.instantiate(cfg.predictor, space=space, dpu=dpu)`` (the node's ``_target_`` is this
    function and its ``model`` node's ``_target_`` the block estimator class, instantiated first).

    Args:
        cfg: The ``predictor`` node; ``None`` when Hydra passes its fields as keywords.
        space: The search space.
        dpu: The DPU configuration.
        **fields: The node's fields (``model``, ``target``, ``file``, train-task knobs, ...).
    """
    if cfg is not None:
        from hydra.utils import instantiate

        return instantiate(cfg, space=space, dpu=dpu)
    if space is None:
        raise PredictorError("make_predictor needs the search space")
    model, target, file = fields.get("model"), fields.get("target", "profile"), fields.get("file")
    if file:
        pred = load_predictor(file, space, dpu)
        if model is not None and pred.name != model.name:
            raise PredictorError(f"predictor file {file} holds a '{pred.name}' model, config asks for '{model.name}'")
        return pred
    if not isinstance(model, BlockModel):
        raise PredictorError(f"predictor config: 'model' must instantiate a block model, got {type(model).__name__}")
    return LatencyPredictor(model, space, dpu, target=target)


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
