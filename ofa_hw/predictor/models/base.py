"""The block-model base class (bootstrap-by-group ensemble over a log-ratio regressor) and the registry.

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
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin

from ofa_hw.predictor.features import FEATURES, feature_matrix
from ofa_hw.predictor.models.codec import array_from_state, array_state, b64, unb64

#: Registry of model classes by name (the ``predictor=<name>`` options), filled by ``@register``.
MODELS: dict[str, type[BlockModel]] = {}


def register(cls: type[BlockModel]) -> type[BlockModel]:
    MODELS[cls.name] = cls
    return cls


class BlockModel(BaseEstimator, RegressorMixin):
    """Base class: bootstrap-by-group ensemble over a log-ratio-to-roofline regressor.

    Subclasses implement :meth:`_fit_members` (fit ``M`` members given a weight matrix ``W[M, N]``,
    row 0 all ones) and :meth:`_predict_log_ratio` (``(M, N)`` predictions of ``log(y / roofline)``),
    plus :meth:`_state`/:meth:`_set_state` for persistence.
    """

    name: ClassVar[str] = ""

    # ------------------------------------------------------------------ API
    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None) -> BlockModel:
        """Fit on a feature frame ``X`` and block latencies ``y`` (ms).

        Args:
            X: Frame from :func:`~ofa_hw.predictor.features.featurize`.
            y: Measured block latency (ms), one per row; non-positive or NaN rows are dropped.
            groups: Bootstrap unit per row (e.g. the profiled subnet's id); ``None`` = every row alone.
        """
        X, y = _check_frame(X), np.asarray(y, dtype=np.float64)
        if len(y) != len(X):
            raise ValueError(f"{type(self).__name__}.fit: X has {len(X)} rows but y has {len(y)}")
        keep = np.isfinite(y) & (y > 0)
        if not keep.any():
            raise ValueError(f"{type(self).__name__}.fit: no positive finite latency in y")
        X, y = X.loc[keep].reset_index(drop=True), y[keep]
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)[keep]
        rng = np.random.default_rng(self.random_state)
        self.group_ids_, inverse = np.unique(groups, return_inverse=True)
        weights, drawn = _bootstrap_weights(inverse, len(self.group_ids_), int(self.n_members), rng)
        self.in_bag_ = drawn  # (M, n_groups) bool: member m saw group g
        self.feature_names_in_ = np.asarray(FEATURES, dtype=object)
        self.n_features_in_ = len(FEATURES)
        self.base_coef_ = _fit_roofline(X, y, weights) if self.base == "fitted" else None
        target = np.log(y[None, :] / self._base_ms(X))
        self._fit_members(X, target, y, weights, rng)
        return self

    def predict(
        self, X: pd.DataFrame, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Block latency (ms); with ``return_std`` also the bootstrap spread (ms, uncalibrated)."""
        members = self.predict_members(X)
        mean = members[0]
        if not return_std:
            return mean
        return mean, member_spread(members)

    def predict_members(self, X: pd.DataFrame) -> np.ndarray:
        """``(M, N)`` block latencies (ms): row 0 the point model, rows 1.. the bootstrap members."""
        if not hasattr(self, "in_bag_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load a saved predictor")
        X = _check_frame(X)
        z = np.clip(self._predict_log_ratio(X), -8.0, 8.0)
        return self._base_ms(X) * np.exp(z)

    def _base_ms(self, X: pd.DataFrame) -> np.ndarray:
        """``(M, N)`` base latency each member corrects: the analytic roofline, or the roofline
        refitted to the training blocks (``base='fitted'``, one fit per bootstrap member)."""
        roof = X["t_roof_ms"].to_numpy(dtype=np.float64)
        n_members = self.in_bag_.shape[0]
        if self.base_coef_ is None:
            return np.broadcast_to(roof, (n_members, len(roof)))
        fitted = self.base_coef_ @ feature_matrix(X, ROOFLINE_COMPONENTS).T
        # A component with a zero coefficient must not zero a block: keep a floor of the roofline.
        return np.maximum(fitted, 0.05 * roof[None, :])

    # ---------------------------------------------------------- persistence
    def to_state(self) -> dict[str, Any]:
        """JSON-able fitted state (params + bootstrap bookkeeping + model payload)."""
        return {
            "model": self.name,
            "params": self.get_params(),
            "group_ids": [str(g) for g in self.group_ids_],
            "in_bag": b64(self.in_bag_.astype(np.uint8)),
            "in_bag_shape": list(self.in_bag_.shape),
            "base_coef": None if self.base_coef_ is None else array_state(self.base_coef_),
            "payload": self._state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BlockModel:
        """Rebuild a fitted model from :meth:`to_state` output (no code is executed from the data)."""
        model_cls = MODELS.get(str(state.get("model")))
        if model_cls is None:
            raise ValueError(f"unknown block model '{state.get('model')}'; known: {sorted(MODELS)}")
        model = model_cls(**state["params"])
        model.group_ids_ = np.asarray(state["group_ids"], dtype=object)
        model.in_bag_ = unb64(state["in_bag"], np.uint8, state["in_bag_shape"]).astype(bool)
        model.base_coef_ = None if state["base_coef"] is None else array_from_state(state["base_coef"])
        model.feature_names_in_ = np.asarray(FEATURES, dtype=object)
        model.n_features_in_ = len(FEATURES)
        model._set_state(state["payload"])
        return model

    # ------------------------------------------------------------- subclass
    def _fit_members(
        self, X: pd.DataFrame, Z: np.ndarray, y: np.ndarray, W: np.ndarray, rng: np.random.Generator
    ) -> None:
        """Fit member ``m`` on targets ``Z[m]`` (log ratio to its base) with row weights ``W[m]``."""
        raise NotImplementedError

    def _predict_log_ratio(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


#: Components of the fitted roofline ``t = Σ c_i · component_i`` (see :class:`RooflineModel`).
ROOFLINE_COMPONENTS: tuple[str, ...] = (
    "t_conv_ms",
    "t_dw_ms",
    "t_misc_ms",
    "t_tile_ms",
    "t_row_ms",
    "t_mem_excess_ms",
    "n_nodes",
)


def _fit_roofline(X: pd.DataFrame, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Non-negative least squares of ``y`` on :data:`ROOFLINE_COMPONENTS` per weight row, on relative
    error (rows scaled by 1/y, so small blocks count as much as large ones); ``(M, C)`` coefficients."""
    A = feature_matrix(X, ROOFLINE_COMPONENTS)
    scale = np.maximum(A.max(axis=0), 1e-12)  # well-conditioned NNLS
    coefs = []
    for w in W:
        sw = np.sqrt(w) / y
        c, _ = nnls((A / scale) * sw[:, None], sw * y)
        coefs.append(c / scale)
    return np.asarray(coefs)


def member_spread(members: np.ndarray) -> np.ndarray:
    """RMS deviation of the bootstrap members (rows 1..) from the point model (row 0)."""
    if members.shape[0] < 2:
        return np.zeros(members.shape[1])
    return np.sqrt(np.mean((members[1:] - members[0]) ** 2, axis=0))


def _bootstrap_weights(
    inverse: np.ndarray, n_groups: int, n_members: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row weights ``(1 + n_members, N)`` (row 0 all ones) and in-bag flags ``(1 + n_members, n_groups)``."""
    counts = np.ones((1 + n_members, n_groups))
    for m in range(1, 1 + n_members):
        counts[m] = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
    return counts[:, inverse], counts > 0


def _check_frame(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError("block models take the feature frame of ofa_hw.predictor.features.featurize")
    missing = [c for c in FEATURES if c not in X.columns]
    if missing:
        raise ValueError(f"feature frame lacks column(s) {missing}")
    return X
