"""OFA's one-hot architecture encoding, vectorised over gene matrices.

Feature layout (the order of OFA's ``MobileNetArchEncoder``, so dimensions line up with its
predictor): one-hot(resolution) over the space's resolutions, then for every block one-hot(kernel),
then for every block one-hot(expand); blocks beyond a stage's depth are all zeros.

One deliberate extension: OFA's encoder gives a resolution never seen in training a one-hot slot
whose first-layer weights were never trained, so predictions there are arbitrary. With
``resolution_encoding="interp"`` such a resolution is encoded as the linear interpolation of the
one-hots of its two nearest trained neighbours (clamped at the ends). For a resolution present in
the training data both encodings are identical, so ``interp`` equals OFA's encoder on OFA's data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ofa_hw.space import SearchSpace

RESOLUTION_ENCODINGS = ("onehot", "interp")


def resolution_basis(resolutions: Sequence[int], trained: Sequence[int], mode: str) -> np.ndarray:
    """Feature rows ``(len(resolutions), len(resolutions))`` of every resolution of the space.

    Args:
        resolutions: The space's resolutions (one feature slot each, OFA's layout).
        trained: Resolutions present in the training data (a subset of ``resolutions``).
        mode: ``onehot`` (OFA: identity) or ``interp`` (untrained resolutions interpolate neighbours).
    """
    if mode not in RESOLUTION_ENCODINGS:
        raise ValueError(f"resolution_encoding must be one of {RESOLUTION_ENCODINGS}, got {mode!r}")
    n = len(resolutions)
    basis = np.eye(n, dtype=np.float32)
    if mode == "onehot":
        return basis
    slot = {r: i for i, r in enumerate(resolutions)}
    known = sorted(r for r in set(trained) if r in slot)
    if not known:
        raise ValueError(
            f"no trained resolution {sorted(trained)} belongs to the space's {list(resolutions)}"
        )
    for i, r in enumerate(resolutions):
        if r in known:
            continue
        basis[i] = 0.0
        hi = int(np.searchsorted(known, r))
        if hi == 0 or hi == len(known):
            basis[i, slot[known[min(hi, len(known) - 1)]]] = 1.0
            continue
        lo_r, hi_r = known[hi - 1], known[hi]
        w = (r - lo_r) / (hi_r - lo_r)
        basis[i, slot[lo_r]] = 1.0 - w
        basis[i, slot[hi_r]] = w
    return basis


class ArchEncoder:
    """Maps encoded genes ``(N, n_genes)`` to OFA feature vectors ``(N, n_dim)`` (float32).

    Args:
        space: The search space (its resolutions define the resolution slots).
        r_basis: Optional ``(n_res, n_res)`` rows from :func:`resolution_basis`; identity by default.
    """

    def __init__(self, space: SearchSpace, r_basis: np.ndarray | None = None) -> None:
        self.space = space
        self.n_res = len(space.resolutions)
        self.n_k = len(space.ks_list)
        self.n_e = len(space.expand_list)
        nb = space.n_blocks
        self.k_offset = self.n_res
        self.e_offset = self.n_res + nb * self.n_k
        self.n_dim = self.e_offset + nb * self.n_e
        self.r_basis = (
            np.eye(self.n_res, dtype=np.float32) if r_basis is None else np.asarray(r_basis, np.float32)
        )
        if self.r_basis.shape != (self.n_res, self.n_res):
            raise ValueError(f"r_basis must have shape {(self.n_res, self.n_res)}, got {self.r_basis.shape}")

    def features(self, genes: np.ndarray) -> np.ndarray:
        """OFA features of an encoded population (vectorised; no Python loop over archs)."""
        genes = np.atleast_2d(np.asarray(genes))
        if genes.shape[1] != self.space.n_genes:
            raise ValueError(f"gene matrix must have {self.space.n_genes} columns, got {genes.shape[1]}")
        nb = self.space.n_blocks
        out = np.zeros((genes.shape[0], self.n_dim), dtype=np.float32)
        out[:, : self.n_res] = self.r_basis[genes[:, -1].astype(np.intp)]
        rows, blocks = np.nonzero(self.space.active_mask(genes))
        k_idx = genes[rows, blocks].astype(np.intp)
        e_idx = genes[rows, nb + blocks].astype(np.intp)
        out[rows, self.k_offset + blocks * self.n_k + k_idx] = 1.0
        out[rows, self.e_offset + blocks * self.n_e + e_idx] = 1.0
        return out
