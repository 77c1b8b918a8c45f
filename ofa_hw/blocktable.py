"""Dense per-block tables over a search space: the compiled form of any additive per-block quantity.

At a fixed resolution the LUT key (and so the latency, MACs, ...) of an elastic block depends only on
its position, kernel and expand ratio; the stem, the first block and the head depend only on the
resolution. So anything that sums over blocks compiles into ``fixed[r]`` plus
``blocks[r, position, k, e]``, and evaluating a population of encoded archs is one gather and one
masked sum — no model in the loop. Latency predictors, the FLOPs proxy and the search all use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ofa_hw.netspec import Block, NetSpec, build_netspec
from ofa_hw.space import SearchSpace


@dataclass(frozen=True)
class SpaceBlocks:
    """The netspec blocks behind every cell of a :class:`BlockTable` of ``space``.

    ``nets[r_idx][k_idx][e_idx]`` is the max-depth arch with every block at kernel ``k`` and expand
    ``e``; each table cell's block lives in one of them, so callers get the block *and* its layers.
    """

    space: SearchSpace
    nets: tuple[tuple[tuple[NetSpec, ...], ...], ...]

    def fixed(self, r_idx: int) -> list[tuple[Block, NetSpec]]:
        """Blocks every arch has at resolution index ``r_idx`` (stem, first block, feature mix, logits)."""
        ns = self.nets[r_idx][0][0]
        return [(b, ns) for b in ns.blocks if b.space_block < 0]

    def cell(self, r_idx: int, position: int, k_idx: int, e_idx: int) -> tuple[Block, NetSpec]:
        ns = self.nets[r_idx][k_idx][e_idx]
        return next(b for b in ns.blocks if b.space_block == position), ns

    def keys(self) -> set[str]:
        return {b.key for by_k in self.nets for by_e in by_k for ns in by_e for b in ns.blocks}


@lru_cache(maxsize=16)
def space_blocks(space: SearchSpace) -> SpaceBlocks:
    """Build the max-depth uniform-(k, e) nets that together hold every cell of the space."""
    depth = space.max_depth_d
    nb = space.n_blocks
    nets = tuple(
        tuple(
            tuple(
                build_netspec(space, {"ks": [k] * nb, "e": [e] * nb, "d": depth, "r": r})
                for e in space.expand_list
            )
            for k in space.ks_list
        )
        for r in space.resolutions
    )
    return SpaceBlocks(space, nets)


@dataclass(frozen=True, eq=False)
class BlockTable:
    """``value(arch) = fixed[r] + Σ_active blocks[r, position, k, e]`` over encoded archs.

    Attributes:
        space: The space whose gene layout the table follows.
        fixed: Shape ``(R,)``.
        blocks: Shape ``(R, n_blocks, K, E)``; ``inf`` marks a cell that cannot exist (e.g. a block the
            DPU compiler rejects), ``nan`` a cell with no value (e.g. a key missing from a LUT).
        var_fixed: Optional variance of ``fixed`` (same shape), for predictors with uncertainty.
        var_blocks: Optional variance of ``blocks``; variances add over blocks (independent errors).
    """

    space: SearchSpace
    fixed: np.ndarray
    blocks: np.ndarray
    var_fixed: np.ndarray | None = None
    var_blocks: np.ndarray | None = None

    def __post_init__(self) -> None:
        nr, nb = len(self.space.resolutions), self.space.n_blocks
        want = (nr, nb, len(self.space.ks_list), len(self.space.expand_list))
        if self.fixed.shape != (nr,) or self.blocks.shape != want:
            raise ValueError(
                f"table shapes {self.fixed.shape}, {self.blocks.shape} do not fit space "
                f"'{self.space.name}' (expected {(nr,)}, {want})"
            )

    @classmethod
    def from_block_fn(
        cls, space: SearchSpace, fn: Callable[[Block, NetSpec], float | tuple[float, float]]
    ) -> BlockTable:
        """Fill a table by calling ``fn(block, netspec)`` once per cell (a value or ``(mean, var)``)."""
        sb = space_blocks(space)
        shape = (len(space.resolutions), space.n_blocks, len(space.ks_list), len(space.expand_list))
        fixed, var_fixed = np.zeros(shape[0]), np.zeros(shape[0])
        blocks, var_blocks = np.zeros(shape), np.zeros(shape)
        for ri in range(shape[0]):
            for block, ns in sb.fixed(ri):
                m, v = _mean_var(fn(block, ns))
                fixed[ri] += m
                var_fixed[ri] += v
            for pos in range(space.n_blocks):
                for ki in range(shape[2]):
                    for ei in range(shape[3]):
                        cell = _mean_var(fn(*sb.cell(ri, pos, ki, ei)))
                        blocks[ri, pos, ki, ei], var_blocks[ri, pos, ki, ei] = cell
        has_var = bool(var_fixed.any() or var_blocks.any())
        return cls(space, fixed, blocks, var_fixed if has_var else None, var_blocks if has_var else None)

    def _flat_index(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resolution index per arch and one flat cell index per block (shared by mean and variance)."""
        genes = np.atleast_2d(genes)
        nb = self.space.n_blocks
        _, _, nk, ne = self.blocks.shape
        r = genes[:, -1].astype(np.int32)
        idx = ((r[:, None] * nb + np.arange(nb, dtype=np.int32)) * nk + genes[:, :nb]) * ne + genes[
            :, nb : 2 * nb
        ]
        # Inactive blocks point one past the table, at an appended zero cell: one flat gather, no mask
        # multiply and no 4-D fancy indexing (this is the search's hot path).
        idx[~self.space.active_mask(genes)] = self.blocks.size
        return r, idx

    @staticmethod
    def _sum(table: np.ndarray, fixed: np.ndarray, r: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return fixed[r] + np.append(table.ravel(), 0.0)[idx].sum(axis=1)

    def evaluate(self, genes: np.ndarray) -> np.ndarray:
        """Values of encoded archs ``(N, n_genes)`` → ``(N,)``."""
        return self._sum(self.blocks, self.fixed, *self._flat_index(genes))

    def evaluate_with_std(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and standard deviations (zero when the table carries no variance)."""
        r, idx = self._flat_index(genes)
        mean = self._sum(self.blocks, self.fixed, r, idx)
        if self.var_blocks is None:
            return mean, np.zeros_like(mean)
        return mean, np.sqrt(np.maximum(self._sum(self.var_blocks, self.var_fixed, r, idx), 0.0))

    def min_total(self, k_sigma: float = 0.0) -> float:
        """The exact minimum of ``value + k_sigma * std`` bound over the space (``std`` bounded above by
        the sum of per-cell stds, so the bound is conservative when ``k_sigma > 0``)."""
        cost = self.blocks
        fixed = self.fixed
        if k_sigma and self.var_blocks is not None:
            cost = cost + k_sigma * np.sqrt(self.var_blocks)
            fixed = fixed + k_sigma * np.sqrt(self.var_fixed)
        best_per_cell = np.nanmin(cost.reshape(cost.shape[0], cost.shape[1], -1), axis=2)  # (R, nb)
        totals = fixed.copy()
        for stage in range(self.space.n_stages):
            positions = list(self.space.stage_blocks(stage))
            depths = self.space.stage_depth_choices(stage)
            prefix = np.cumsum(best_per_cell[:, positions], axis=1)  # (R, len)
            totals += np.min(np.stack([prefix[:, d - 1] for d in depths], axis=1), axis=1)
        return float(np.min(totals))


def _mean_var(value: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, tuple):
        return float(value[0]), float(value[1])
    return float(value), 0.0
