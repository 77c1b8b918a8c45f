"""``roofline``: the analytic roofline with fitted constants, nothing learned on top."""

from __future__ import annotations

import numpy as np

from ofa_hw.predictor.models.base import BlockModel, register


@register
class RooflineModel(BlockModel):
    """Analytic model with fitted constants: ``t = Σ c_i · component_i`` (non-negative least squares).

    Components (:data:`ROOFLINE_COMPONENTS`): conv-engine, depthwise-engine and pooling/add cycles,
    output-channel tiles and depthwise rows (one cycle each: the constant is the cost per tile/row),
    the DDR time in excess of compute per node, and the node count. Fitted on relative error. The
    same fit is the base every learned model corrects (``base='fitted'``).
    """

    name = "roofline"

    def __init__(self, n_members: int = 8, random_state: int = 0) -> None:
        self.n_members = n_members
        self.random_state = random_state

    @property
    def base(self) -> str:
        return "fitted"  # the model *is* its fitted base; nothing is learned on top

    def _fit_members(self, X, Z, y, W, rng):
        pass

    def _predict_log_ratio(self, X):
        return np.zeros((self.in_bag_.shape[0], len(X)))

    def _state(self):
        return {}

    def _set_state(self, s):
        pass
