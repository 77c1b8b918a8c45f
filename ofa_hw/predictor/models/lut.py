"""``lut``: exact lookup of measured keys, with a roofline-ratio fallback for keys never measured."""

from __future__ import annotations

import numpy as np

from ofa_hw.predictor.features import feature_matrix
from ofa_hw.predictor.models.base import BlockModel, register
from ofa_hw.predictor.models.codec import array_from_state, array_state


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
            "sig": array_state(self.sig_),
            "in_hw": array_state(self.in_hw_),
            "log_ratio": array_state(self.log_ratio_),
        }

    def _set_state(self, s):
        self.keys_ = np.asarray(s["keys"], dtype=object)
        self.sig_ = array_from_state(s["sig"])
        self.in_hw_ = array_from_state(s["in_hw"])
        self.log_ratio_ = array_from_state(s["log_ratio"])
