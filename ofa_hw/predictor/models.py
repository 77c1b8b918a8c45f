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
"""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin

from ofa_hw.predictor.features import FEATURES, feature_matrix

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
            "in_bag": _b64(self.in_bag_.astype(np.uint8)),
            "in_bag_shape": list(self.in_bag_.shape),
            "base_coef": None if self.base_coef_ is None else _array_state(self.base_coef_),
            "payload": self._state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BlockModel:
        """Rebuild a fitted model from :meth:`to_state` output (no code is executed from the data)."""
        model_cls = MODELS.get(state.get("model"))
        if model_cls is None:
            raise ValueError(f"unknown block model '{state.get('model')}'; known: {sorted(MODELS)}")
        model = model_cls(**state["params"])
        model.group_ids_ = np.asarray(state["group_ids"], dtype=object)
        model.in_bag_ = _unb64(state["in_bag"], np.uint8, state["in_bag_shape"]).astype(bool)
        model.base_coef_ = None if state["base_coef"] is None else _array_from_state(state["base_coef"])
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


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any, shape: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape).copy()


def _array_state(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": _b64(a)}


def _array_from_state(s: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(s["dtype"])
    if dtype.kind not in "fiub":  # only plain numbers, never objects
        raise ValueError(f"refusing array of dtype {dtype}")
    return _unb64(s["data"], dtype, s["shape"])


# ======================================================================= lut
@register
class LUTModel(BlockModel):
    """Exact lookup of measured keys; keys the LUT lacks fall back on the roofline.

    A measured key returns its mean (exactly, up to the bootstrap's resampling of its measurements).
    Fallback (documented in the README): the nearest measured key with the same block signature
    (kind, channels, expand, kernel, stride, shortcut) at another input size, its measured/base
    ratio applied to the new key's base (the fitted roofline); without such a key, the median ratio of
    the same kind and kernel; without that, the median ratio of all keys.
    """

    name = "lut"
    _SIGNATURE = ("kind", "in_c", "out_c", "expand", "kernel", "stride", "idskip")

    def __init__(self, base: str = "fitted", n_members: int = 8, random_state: int = 0) -> None:
        self.base = base
        self.n_members = n_members
        self.random_state = random_state

    def _fit_members(self, X, Z, y, W, rng):
        keys = X["key"].to_numpy(dtype=object)
        self.keys_, inverse = np.unique(keys, return_inverse=True)
        first = np.array([np.flatnonzero(inverse == i)[0] for i in range(len(self.keys_))])
        self.sig_ = feature_matrix(X.iloc[first], self._SIGNATURE)
        self.in_hw_ = X["in_hw"].to_numpy(dtype=np.float64)[first]
        # Per member: weighted mean log-ratio of each key (NaN where the member saw no row of the key).
        sums = np.stack(
            [np.bincount(inverse, weights=w * z, minlength=len(self.keys_)) for w, z in zip(W, Z)]
        )
        cnts = np.stack([np.bincount(inverse, weights=w, minlength=len(self.keys_)) for w in W])
        with np.errstate(invalid="ignore", divide="ignore"):
            self.log_ratio_ = np.where(cnts > 0, sums / np.where(cnts > 0, cnts, 1), np.nan)

    def _predict_log_ratio(self, X):
        index = {k: i for i, k in enumerate(self.keys_)}
        rows = np.array([index.get(k, -1) for k in X["key"]], dtype=np.int64)
        sig = feature_matrix(X, self._SIGNATURE)
        in_hw = X["in_hw"].to_numpy(dtype=np.float64)
        out = np.empty((self.log_ratio_.shape[0], len(X)))
        for m, table in enumerate(self.log_ratio_):
            known = np.isfinite(table)
            hit = (rows >= 0) & known[np.maximum(rows, 0)]
            out[m, hit] = table[rows[hit]]
            for i in np.flatnonzero(~hit):
                out[m, i] = self._fallback(table, known, sig[i], in_hw[i])
        return out

    def _fallback(self, table: np.ndarray, known: np.ndarray, sig: np.ndarray, in_hw: float) -> float:
        same = known & np.all(self.sig_ == sig, axis=1)
        if same.any():
            cand = np.flatnonzero(same)
            return float(table[cand[np.argmin(np.abs(self.in_hw_[cand] - in_hw))]])
        kind_k = known & (self.sig_[:, 0] == sig[0]) & (self.sig_[:, 4] == sig[4])
        pool = kind_k if kind_k.any() else known
        return float(np.median(table[pool])) if pool.any() else 0.0

    def _state(self):
        return {
            "keys": [str(k) for k in self.keys_],
            "sig": _array_state(self.sig_),
            "in_hw": _array_state(self.in_hw_),
            "log_ratio": _array_state(self.log_ratio_),
        }

    def _set_state(self, s):
        self.keys_ = np.asarray(s["keys"], dtype=object)
        self.sig_ = _array_from_state(s["sig"])
        self.in_hw_ = _array_from_state(s["in_hw"])
        self.log_ratio_ = _array_from_state(s["log_ratio"])


# ================================================================== roofline
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


# ===================================================================== trees
class _TreeArrays:
    """Decision trees as flat arrays, evaluated vectorised; the portable form of sklearn trees.

    ``value`` holds each node's output already scaled (learning rate folded in for boosting), and
    each member's prediction is ``base[m] + Σ_{trees of m} value[leaf]`` divided by ``divisor[m]``.
    """

    def __init__(self, left, right, feature, threshold, value, roots, member, base, divisor):
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.value = np.asarray(value, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.member = np.asarray(member, dtype=np.int64)
        self.base = np.asarray(base, dtype=np.float64)
        self.divisor = np.asarray(divisor, dtype=np.float64)

    @classmethod
    def from_sklearn(cls, members: list[tuple[list[Any], float, float, float]]) -> _TreeArrays:
        """``members``: per member ``(sklearn trees, base, scale of each tree's value, divisor)``."""
        parts = {k: [] for k in ("left", "right", "feature", "threshold", "value")}
        roots, owner, base, divisor, offset = [], [], [], [], 0
        for m, (trees, b, scale, div) in enumerate(members):
            base.append(b)
            divisor.append(div)
            for est in trees:
                t = est.tree_
                leaf = t.children_left < 0
                parts["left"].append(np.where(leaf, -1, t.children_left + offset))
                parts["right"].append(np.where(leaf, -1, t.children_right + offset))
                parts["feature"].append(np.where(leaf, 0, t.feature))
                parts["threshold"].append(t.threshold)
                parts["value"].append(t.value[:, 0, 0] * scale)
                roots.append(offset)
                owner.append(m)
                offset += t.node_count
        return cls(*(np.concatenate(parts[k]) for k in parts), roots, owner, base, divisor)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``(M, N)`` member predictions."""
        X32 = np.asarray(X, dtype=np.float32)  # sklearn compares float32 inputs with float64 thresholds
        n = X32.shape[0]
        node = np.repeat(self.roots[:, None], n, axis=1)
        cols = np.arange(n)[None, :]
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                break
            go_left = X32[cols, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        out = np.zeros((len(self.base), n))
        np.add.at(out, self.member, self.value[node])
        return (out + self.base[:, None]) / self.divisor[:, None]

    def state(self) -> dict[str, Any]:
        return {
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "value": self.value.tolist(),
            "roots": self.roots.tolist(),
            "member": self.member.tolist(),
            "base": self.base.tolist(),
            "divisor": self.divisor.tolist(),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> _TreeArrays:
        trees = cls(**s)
        n = len(trees.left)
        for name in ("left", "right"):
            arr = getattr(trees, name)
            if ((arr < -1) | (arr >= n)).any():
                raise ValueError(f"tree arrays: '{name}' points outside the node table")
        return trees


class _SklearnTrees(BlockModel):
    """scikit-learn tree ensembles, kept as plain node arrays (:class:`_TreeArrays`) after fitting so that
    prediction and persistence never touch pickles or scikit-learn's private tree classes.

    Subclasses say how to build one ensemble (:meth:`_estimator`) and how to read it back as
    ``(trees, base value, scale per tree, divisor)`` (:meth:`_member`)."""

    def _estimator(self, seed: int):
        raise NotImplementedError

    def _member(self, fitted) -> tuple:
        raise NotImplementedError

    def _fit_members(self, X, Z, y, W, rng):
        Xn = feature_matrix(X)
        members = []
        for w, z in zip(W, Z):
            est = self._estimator(int(rng.integers(2**31)))
            est.fit(Xn, z, sample_weight=w)
            members.append(self._member(est))
        self.trees_ = _TreeArrays.from_sklearn(members)

    def _predict_log_ratio(self, X):
        return self.trees_.predict(feature_matrix(X))

    def _state(self):
        return self.trees_.state()

    def _set_state(self, s):
        self.trees_ = _TreeArrays.from_state(s)


@register
class RFModel(_SklearnTrees):
    """Random forest (scikit-learn) on the log ratio to the base (fitted roofline)."""

    name = "rf"

    def __init__(
        self,
        n_estimators: int = 24,
        min_samples_leaf: int = 2,
        max_features: float = 0.5,
        base: str = "fitted",
        n_members: int = 6,
        random_state: int = 0,
    ) -> None:
        self.base = base
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_members = n_members
        self.random_state = random_state

    def _estimator(self, seed: int):
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=seed,
            n_jobs=1,
        )

    def _member(self, fitted) -> tuple:
        return fitted.estimators_, 0.0, 1.0, float(len(fitted.estimators_))  # the mean of the trees


@register
class GBDTModel(_SklearnTrees):
    """Gradient-boosted trees (scikit-learn) on the log ratio to the base (fitted roofline)."""

    name = "gbdt"

    def __init__(
        self,
        n_estimators: int = 150,
        learning_rate: float = 0.1,
        max_depth: int = 3,
        subsample: float = 0.8,
        base: str = "fitted",
        n_members: int = 6,
        random_state: int = 0,
    ) -> None:
        self.base = base
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.n_members = n_members
        self.random_state = random_state

    def _estimator(self, seed: int):
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            random_state=seed,
        )

    def _member(self, fitted) -> tuple:
        # init constant + learning_rate · Σ trees
        base = float(np.asarray(fitted.init_.constant_).ravel()[0])
        return list(fitted.estimators_[:, 0]), base, fitted.learning_rate, 1.0


# ======================================================================= xgb
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


# ======================================================================= mlp
@register
class MLPModel(BlockModel):
    """A small ReLU MLP (torch) on the log ratio to the base; all members trained as one batched network.

    Inputs are ``sign(x)·log1p(|x|)``-squashed (MACs and bytes span orders of magnitude) and
    standardised. Persisted as the ``state_dict`` tensors (float32, base64) inside the JSON file.
    """

    name = "mlp"

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        epochs: int = 500,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        base: str = "fitted",
        n_members: int = 6,
        random_state: int = 0,
    ) -> None:
        self.base = base
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_members = n_members
        self.random_state = random_state

    def _net(self, n_members: int):
        import torch

        return _BatchedMLP(n_members, len(FEATURES), self.hidden, self.layers).to(torch.float32)

    def _fit_members(self, X, Z, y, W, rng):
        import torch

        with _torch_single_thread():
            self._train(torch, X, Z, W, int(rng.integers(2**31)))

    def _train(self, torch, X, Z, W, seed):
        torch.manual_seed(seed)
        Xs = _squash(feature_matrix(X))
        mu, sd = Xs.mean(axis=0), Xs.std(axis=0)
        sd[sd < 1e-9] = 1.0
        self.net_ = self._net(W.shape[0])
        self.net_.mu.copy_(torch.as_tensor(mu, dtype=torch.float32))
        self.net_.sd.copy_(torch.as_tensor(sd, dtype=torch.float32))
        xt = torch.as_tensor(Xs, dtype=torch.float32)
        zt = torch.as_tensor(Z, dtype=torch.float32)
        wt = torch.as_tensor(W / W.sum(axis=1, keepdims=True), dtype=torch.float32)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = (wt * (self.net_(xt) - zt) ** 2).sum()
            loss.backward()
            opt.step()
            sched.step()

    def _predict_log_ratio(self, X):
        import torch

        with torch.no_grad(), _torch_single_thread():
            xt = torch.as_tensor(_squash(feature_matrix(X)), dtype=torch.float32)
            return self.net_(xt).numpy().astype(np.float64)

    def _state(self):
        return {
            "n_members": int(self.net_.W[0].shape[0]),
            "tensors": {k: _array_state(v.numpy()) for k, v in self.net_.state_dict().items()},
        }

    def _set_state(self, s):
        import torch

        self.net_ = self._net(int(s["n_members"]))
        state = {k: torch.as_tensor(_array_from_state(v)) for k, v in s["tensors"].items()}
        self.net_.load_state_dict(state, strict=True)


@contextmanager
def _torch_single_thread():
    """Run torch on one thread: these tensors are tiny, and torch's and XGBoost's OpenMP pools
    spinning side by side on a shared 2-core machine slow both down by an order of magnitude."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _squash(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _batched_mlp_class():
    import torch
    from torch import nn

    class BatchedMLP(nn.Module):
        """``M`` independent MLPs evaluated together with batched matmuls: ``(N, F) -> (M, N)``."""

        def __init__(self, n_members: int, n_in: int, hidden: int, layers: int) -> None:
            super().__init__()
            dims = [n_in] + [hidden] * layers + [1]
            self.W = nn.ParameterList()
            self.b = nn.ParameterList()
            for d_in, d_out in pairwise(dims):
                w = torch.empty(n_members, d_in, d_out)
                for m in range(n_members):
                    nn.init.kaiming_uniform_(w[m].T, a=5**0.5)
                self.W.append(nn.Parameter(w))
                self.b.append(nn.Parameter(torch.zeros(n_members, 1, d_out)))
            self.register_buffer("mu", torch.zeros(n_in))
            self.register_buffer("sd", torch.ones(n_in))

        def forward(self, x):
            h = ((x - self.mu) / self.sd).unsqueeze(0).expand(self.W[0].shape[0], -1, -1)
            for i, (w, b) in enumerate(zip(self.W, self.b, strict=True)):
                h = torch.baddbmm(b, h, w)
                if i < len(self.W) - 1:
                    h = torch.relu(h)
            return h.squeeze(-1)

    return BatchedMLP


class _LazyBatchedMLP:
    # torch is imported only when an MLP is used: trees and LUT predictors load without it.
    _cls = None

    def __call__(self, *args, **kwargs):
        if self._cls is None:
            type(self)._cls = _batched_mlp_class()
        return self._cls(*args, **kwargs)


_BatchedMLP = _LazyBatchedMLP()
