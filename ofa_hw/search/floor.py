"""The exact smallest constrained latency a compiled table can reach: the budget's feasibility floor.

The search constraint is ``mean + k·σ ≤ budget`` with ``mean = Σ cells`` and ``σ² = Σ cell variances``
over the active blocks of a :class:`~ofa_hw.blocktable.BlockTable`. For ``k = 0`` the minimum is a
per-stage dynamic programme (each block independently at its cheapest cell, each stage at its best
depth, the best resolution). For ``k > 0`` the objective ``f(M, V) = M + k·√V`` is concave and
increasing in both sums, so its minimum over the (finite) set of reachable ``(M, V)`` pairs lies on a
vertex of the lower-left convex hull of that set. Each hull vertex minimises the *linear* cost
``M + λ·V`` for some ``λ ≥ 0`` — again a separable dynamic programme — and the vertices are enumerated
exactly by bisection on ``λ`` (Eisner–Severance). No sampling: the result is the true minimum together
with an arch that attains it (which also seeds the search when random sampling finds nothing feasible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ofa_hw.blocktable import BlockTable
from ofa_hw.termtable import TermTable


@dataclass(frozen=True)
class Floor:
    """The smallest ``mean + k·σ`` over the space and an arch (gene row) reaching it.

    Attributes:
        bound_ms: ``min(mean + k·σ)`` over every compilable subnet (``inf`` if none compiles).
        mean_ms: Predicted mean of the minimising arch.
        std_ms: Predicted σ of the minimising arch.
        genes: Its gene row ``(n_genes,)`` (``int8``).
    """

    bound_ms: float
    mean_ms: float
    std_ms: float
    genes: np.ndarray


def linear_argmin(table: BlockTable | TermTable, w_mean: float, w_var: float) -> np.ndarray:
    """Gene row minimising ``w_mean·mean + w_var·variance`` over the space (separable per block)."""
    if isinstance(table, TermTable):  # ResNet-50: neighbouring widths couple the blocks
        return table.linear_argmin(w_mean, w_var)
    space = table.space
    nr, nb, nk, ne = table.blocks.shape
    # cells without a finite value cannot be chosen, whatever the sign of the weights
    cost = np.where(
        np.isfinite(table.blocks), w_mean * np.nan_to_num(table.blocks, posinf=0.0, neginf=0.0), np.inf
    )
    fixed = w_mean * table.fixed
    if w_var and table.var_blocks is not None and table.var_fixed is not None:
        # inf/nan variances only occur on cells that are already unusable; keep them from making nan
        cost = cost + w_var * np.nan_to_num(table.var_blocks, nan=0.0, posinf=0.0)  # inf cost stays inf
        fixed = fixed + w_var * table.var_fixed
    flat = cost.reshape(nr, nb, nk * ne)
    cell = np.argmin(flat, axis=2)  # (R, nb): best (k, e) of every block position
    best = np.take_along_axis(flat, cell[..., None], axis=2)[..., 0]
    totals = fixed.astype(np.float64).copy()
    depth_idx = np.zeros((nr, space.n_elastic_stages), dtype=np.int64)
    for stage in range(space.n_stages):
        prefix = np.cumsum(best[:, list(space.stage_blocks(stage))], axis=1)
        if stage >= space.n_elastic_stages:
            totals += prefix[:, 0]
            continue
        options = np.stack([prefix[:, d - 1] for d in space.depth_list], axis=1)  # (R, n_depths)
        depth_idx[:, stage] = np.argmin(options, axis=1)
        totals += options[np.arange(nr), depth_idx[:, stage]]
    r = int(np.argmin(totals))
    genes = np.empty(space.n_genes, dtype=np.int8)
    genes[:nb] = cell[r] // ne
    genes[nb : 2 * nb] = cell[r] % ne
    genes[2 * nb : -1] = depth_idx[r]
    genes[-1] = r
    return genes


def table_floor(table: BlockTable | TermTable, k_sigma: float = 0.0) -> Floor:
    """Exact minimum of ``mean + k_sigma·σ`` over ``table``'s space (see the module docstring)."""

    def point(genes: np.ndarray) -> tuple[float, float]:
        mean, std = table.evaluate_with_std(genes[None, :])
        return float(mean[0]), float(std[0]) ** 2

    def result(genes: np.ndarray) -> Floor:
        mean, var = point(genes)
        return Floor(mean + k_sigma * np.sqrt(var), mean, float(np.sqrt(var)), genes)

    # The two ends of the hull: smallest mean (ties → smallest variance) and smallest variance.
    tiny = 1e-9
    lo = linear_argmin(table, 1.0, tiny)
    if (
        k_sigma == 0
        or getattr(table, "var_blocks", getattr(table, "variances", None)) is None
        or not np.isfinite(point(lo)[0])
    ):
        return result(lo)
    hi = linear_argmin(table, tiny, 1.0)
    vertices = {lo.tobytes(): lo, hi.tobytes(): hi}
    stack = [(lo, hi)]
    while stack:  # each split finds a new hull vertex, so this ends after (#vertices) splits
        a, b = stack.pop()
        (ma, va), (mb, vb) = point(a), point(b)
        if vb >= va or mb <= ma:  # one end dominates the other: no vertex strictly between them
            continue
        lam = (mb - ma) / (va - vb)
        c = linear_argmin(table, 1.0, lam)
        mc, vc = point(c)
        if mc + lam * vc >= ma + lam * va - 1e-9 * max(1.0, abs(ma + lam * va)):
            continue  # c lies on the segment a–b: a and b are adjacent vertices
        vertices[c.tobytes()] = c
        stack.extend([(a, c), (c, b)])
    return min((result(g) for g in vertices.values()), key=lambda f: f.bound_ms)


def table_ceiling(table: BlockTable | TermTable) -> Floor:
    """The slowest compilable subnet by predicted mean (the top of the space's latency range)."""
    genes = linear_argmin(table, -1.0, 0.0)
    mean, std = table.evaluate_with_std(genes[None, :])
    return Floor(float(mean[0]), float(mean[0]), float(std[0]), genes)
