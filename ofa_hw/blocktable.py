"""Dense per-block tables over a search space: the compiled form of any additive per-block quantity.

At a fixed resolution the LUT key (and so the latency, MACs, ...) of an elastic block depends only on
its position, kernel and expand ratio; the stem, the first block and the head depend only on the
resolution. So anything that sums over blocks compiles into ``fixed[r]`` plus
``blocks[r, position, k, e]``, and evaluating a population of encoded archs is one gather and one
masked sum — no model in the loop. Latency predictors, the FLOPs proxy and the search all use it.

OFA's ResNet-50, whose block cells also depend on neighbouring stage widths, uses the generalisation in
:mod:`ofa_hw.termtable` (each term declares the gene columns its cells depend on; the same gather, via
:class:`_Cells`); :func:`ofa_hw.termtable.table_for` picks the right one for a space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

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

    @cached_property
    def _cells(self) -> _Cells:
        return _Cells.build(self)

    def evaluate(self, genes: np.ndarray) -> np.ndarray:
        """Values of encoded archs ``(N, n_genes)`` → ``(N,)``."""
        return self._cells.total(genes).real

    def evaluate_with_std(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and standard deviations (zero when the table carries no variance)."""
        both = self._cells.total(genes)
        return both.real, np.sqrt(np.maximum(both.imag, 0.0))

    def min_total(self, k_sigma: float = 0.0) -> float:
        """The exact minimum of ``value + k_sigma * std`` bound over the space (``std`` bounded above by
        the sum of per-cell stds, so the bound is conservative when ``k_sigma > 0``)."""
        cost = self.blocks
        fixed = self.fixed
        if k_sigma and self.var_blocks is not None and self.var_fixed is not None:
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


@dataclass(frozen=True)
class DepthLayout:
    """Which depth gene switches each block position on, probed from :meth:`SearchSpace.active_mask`.

    Attributes:
        column: Gene column of the depth gene governing each block position (0 where none does).
        active: ``active[p, v]``: block ``p`` exists when its depth gene has index ``v`` (shape
            ``(n_blocks, n_values)``; every value ``True`` where no gene governs ``p``).
        governed: ``governed[p]``: some depth gene switches block ``p`` on and off.
        separable: Every block depends on at most one gene (else callers fall back to ``active_mask``).
    """

    column: np.ndarray
    active: np.ndarray
    governed: np.ndarray
    separable: bool


@lru_cache(maxsize=16)
def depth_layout(space: SearchSpace) -> DepthLayout:
    """Probe the space's ``active_mask`` one gene at a time (from the all-largest arch) to learn which
    gene switches which block: no assumption on the space's stage structure beyond "one gene per block"."""
    card = space.gene_cardinality.astype(np.int64)
    nb, ng, nv = space.n_blocks, space.n_genes, int(card.max())
    base = (card - 1).astype(np.int8)
    probes = np.repeat(base[None, :], ng * nv, axis=0)
    for col in range(ng):
        probes[col * nv : (col + 1) * nv, col] = np.minimum(np.arange(nv), card[col] - 1)
    act = space.active_mask(probes).reshape(ng, nv, nb)  # act[col, v, p]
    moves = (act != act[:, :1, :]).any(axis=1)  # (ng, nb): changing gene col changes block p
    governed = moves.any(axis=0)
    column = np.where(governed, np.argmax(moves, axis=0), 0)
    active = np.where(governed[:, None], act[column, :, np.arange(nb)], True)
    separable = bool((moves.sum(axis=0) <= 1).all() and act[:, :, ~governed].all())
    return DepthLayout(column, active, governed, separable)


@dataclass(frozen=True)
class _Cells:
    """A :class:`BlockTable` laid out for one flat gather per arch and block (the search's hot path).

    Cell ``(r, p, v, k, e)`` holds block ``p``'s value when its depth gene has index ``v`` (0 when that
    depth leaves ``p`` out), so the active mask is part of the index, not a separate pass; ``fixed[r]``
    is folded into a block that every arch has. Mean and variance share one gather as the real and
    imaginary parts of one complex cell (sums of complex numbers add both parts). Built once per table.
    """

    cells: np.ndarray  # (n_cells,) complex: mean + 1j·variance
    weights: np.ndarray  # (n_blocks, n_genes) float32: cell index = weights @ genes + base
    base: np.ndarray  # (n_blocks, 1) float32
    fixed: np.ndarray | None  # (R,) complex, still to add when no block is always present

    @staticmethod
    def build(table: BlockTable) -> _Cells:
        space = table.space
        layout = depth_layout(space)
        if not layout.separable:
            raise NotImplementedError(f"space '{space.name}': a block depends on several depth genes")
        nr, nb, nk, ne = table.blocks.shape
        nv = layout.active.shape[1]
        var = table.var_blocks if table.var_blocks is not None else np.zeros_like(table.blocks)
        var_fixed = table.var_fixed if table.var_fixed is not None else np.zeros_like(table.fixed)
        on = layout.active[None, :, :, None, None]
        # not blocks + 1j·var: inf·1j would make nan real parts
        cells = np.zeros((nr, nb, nv, nk, ne), dtype=np.complex128)
        cells.real = np.where(on, table.blocks[:, :, None, :, :], 0.0)
        cells.imag = np.where(on, var[:, :, None, :, :], 0.0)
        fixed = table.fixed.astype(np.complex128)
        fixed.imag = var_fixed
        host = np.flatnonzero(~layout.governed)  # a block every arch has: it carries fixed[r]
        if host.size:
            cells[:, host[0]] += fixed[:, None, None, None]
        # The flat index is linear in the genes (resolution, depth value, kernel, expand strides), so one
        # small matrix product computes it for a whole population; float32 is exact below 2**24 cells.
        if cells.size >= 1 << 24:
            raise ValueError(f"space '{space.name}': {cells.size} table cells exceed the float32 index")
        pos = np.arange(nb)
        weights = np.zeros((nb, space.n_genes), dtype=np.float32)
        weights[pos, pos] = ne  # kernel gene of block p
        weights[pos, nb + pos] = 1  # expand gene of block p
        weights[pos, layout.column] += np.where(layout.governed, nk * ne, 0)
        weights[:, -1] += nb * nv * nk * ne  # resolution
        return _Cells(
            cells=cells.ravel(),
            weights=weights,
            base=(pos * nv * nk * ne).astype(np.float32)[:, None],
            fixed=None if host.size else fixed,
        )

    def index(self, genes: np.ndarray) -> np.ndarray:
        """Flat cell index ``(n_blocks, N)`` of encoded archs ``(N, n_genes)`` (block-major: the sum over
        blocks then adds contiguous rows)."""
        return (self.weights @ genes.T.astype(np.float32) + self.base).astype(np.intp)

    def total(self, genes: np.ndarray) -> np.ndarray:
        """Per-arch sums (complex: mean + 1j·variance) of encoded archs ``(N, n_genes)``."""
        genes = np.atleast_2d(genes)
        sums = self.cells[self.index(genes)].sum(axis=0)
        if self.fixed is not None:
            sums += self.fixed[genes[:, -1].astype(np.intp)]
        return sums
