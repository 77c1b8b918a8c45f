"""Per-block latency models with the scikit-learn estimator API.

Every model predicts the latency (ms) of LUT blocks from a feature frame
(:func:`ofa_hw.predictor.features.featurize`). Learned models regress ``log(measured / roofline)``
on the block features and multiply back by the analytic roofline, so what they learn is the
hardware's *deviation* from arithmetic, which carries over to shapes (resolutions) never profiled.

Uncertainty is the same for every model: besides the point model (member 0, fitted on all data),
``n_members`` copies are fitted on bootstrap resamples of the training *groups* (profiled subnets, or
LUT keys). Resampling whole subnets rather than rows keeps a subnet's correlated blocks together, so
the spread reflects "what if we had profiled other subnets" — the question a search's safety margin
asks. The spread is the RMS deviation of the bootstrap members from the point model; the network
predictor calibrates its scale on out-of-bag subnets (:mod:`ofa_hw.predictor.predictor`).

Models store their fitted state as plain JSON (tree arrays, XGBoost's JSON model, base64 float32
tensors of a torch ``state_dict``): nothing executable is ever loaded.

One module per model family: :mod:`~ofa_hw.predictor.models.base` (the base class and the registry),
:mod:`~ofa_hw.predictor.models.codec` (JSON-safe arrays), ``lut``, ``roofline``, ``trees`` (``rf``,
``gbdt`` and the numpy tree engine), ``xgb``, ``mlp``. Importing this package registers every model
(Hydra's ``_target_: ofa_hw.predictor.models.<Class>`` names them here).
"""

from __future__ import annotations

from ofa_hw.predictor.models.base import MODELS, ROOFLINE_COMPONENTS, BlockModel, member_spread, register
from ofa_hw.predictor.models.lut import LUTModel
from ofa_hw.predictor.models.mlp import MLPModel
from ofa_hw.predictor.models.roofline import RooflineModel
from ofa_hw.predictor.models.trees import GBDTModel, RFModel, TreeArrays
from ofa_hw.predictor.models.xgb import XGBModel

__all__ = [
    "MODELS",
    "ROOFLINE_COMPONENTS",
    "BlockModel",
    "GBDTModel",
    "LUTModel",
    "MLPModel",
    "RFModel",
    "RooflineModel",
    "TreeArrays",
    "XGBModel",
    "member_spread",
    "register",
]
