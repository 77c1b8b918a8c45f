"""``xgb``: XGBoost on the log ratio to the base; boosters persisted as XGBoost's own JSON."""

from __future__ import annotations

import json

import numpy as np

from ofa_hw.predictor.features import feature_matrix
from ofa_hw.predictor.models.base import BlockModel, register


@register
class XGBModel(BlockModel):
    """XGBoost on the log ratio to the base (fitted roofline); boosters persisted as XGBoost's own JSON."""

    name = "xgb"

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.1,
        max_depth: int = 4,
        subsample: float = 0.8,
        min_child_weight: float = 1.0,
        base: str = "fitted",
        n_members: int = 6,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.base = base
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.min_child_weight = min_child_weight
        self.n_members = n_members
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_members(self, X, Z, y, W, rng):
        import xgboost as xgb

        Xn = feature_matrix(X)
        self.boosters_ = []
        for w, z in zip(W, Z):
            model = xgb.XGBRegressor(
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                max_depth=self.max_depth,
                subsample=self.subsample,
                min_child_weight=self.min_child_weight,
                tree_method="hist",
                random_state=int(rng.integers(2**31)),
                n_jobs=self.n_jobs,
            )
            model.fit(Xn, z, sample_weight=w)
            self.boosters_.append(model.get_booster())

    def _predict_log_ratio(self, X):
        Xn = feature_matrix(X).astype(np.float32)
        return np.stack([b.inplace_predict(Xn) for b in self.boosters_]).astype(np.float64)

    def _state(self):
        return {"boosters": [json.loads(bytes(b.save_raw(raw_format="json"))) for b in self.boosters_]}

    def _set_state(self, s):
        import xgboost as xgb

        self.boosters_ = []
        for doc in s["boosters"]:
            booster = xgb.Booster(params={"nthread": self.n_jobs})
            booster.load_model(bytearray(json.dumps(doc).encode()))
            self.boosters_.append(booster)
