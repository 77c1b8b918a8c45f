"""``rf`` and ``gbdt``: scikit-learn tree ensembles, kept after fitting as flat node arrays evaluated by a
small numpy engine (:class:`TreeArrays`), so prediction and persistence never touch pickles or
scikit-learn's private tree classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ofa_hw.predictor.features import feature_matrix
from ofa_hw.predictor.models.base import BlockModel, register


class TreeArrays:
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
    def from_sklearn(cls, members: list[tuple[list[Any], float, float, float]]) -> TreeArrays:
        """``members``: per member ``(sklearn trees, base, scale of each tree's value, divisor)``."""
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("left", "right", "feature", "threshold", "value")
        }
        roots: list[int] = []
        owner: list[int] = []
        base: list[float] = []
        divisor: list[float] = []
        offset = 0
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
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        return cls(**arrays, roots=roots, member=owner, base=base, divisor=divisor)

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
    def from_state(cls, s: dict[str, Any]) -> TreeArrays:
        trees = cls(**s)
        n = len(trees.left)
        for name in ("left", "right"):
            arr = getattr(trees, name)
            if ((arr < -1) | (arr >= n)).any():
                raise ValueError(f"tree arrays: '{name}' points outside the node table")
        return trees


class _SklearnTrees(BlockModel):
    """scikit-learn tree ensembles, kept as plain node arrays (:class:`TreeArrays`) after fitting so that
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
        self.trees_ = TreeArrays.from_sklearn(members)

    def _predict_log_ratio(self, X):
        return self.trees_.predict(feature_matrix(X))

    def _state(self):
        return self.trees_.state()

    def _set_state(self, s):
        self.trees_ = TreeArrays.from_state(s)


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
