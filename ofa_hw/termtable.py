"""Dense tables of additive quantities whose cells depend on a few genes each (ResNet-50).

:class:`~ofa_hw.blocktable.BlockTable` covers the MBConv spaces, where a block's cell is fixed by its own
kernel and expand genes, its stage's depth gene and the resolution. In OFA's ResNet-50 a bottleneck's
LUT key also depends on its stage's width gene and, for the first block of a stage, on the previous
stage's (or the stem's) width gene; the stem convs and the classifier depend on width genes too. Here
every *term* (a block position, stem layer or head) declares the gene columns its cell depends on
(:class:`Term`); its cells are a dense array over those genes' values, so a cell's flat index is still
a linear combination of genes and a population is evaluated with the same single gather as
``BlockTable`` (:class:`ofa_hw.blocktable._Cells`). A depth gene among a term's columns switches the
term off (value 0) for the depths that leave it out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from ofa_hw.blocktable import BlockTable, _Cells, _mean_var
from ofa_hw.netspec import Block, NetSpec, build_netspec
from ofa_hw.space_resnet import BASE_DEPTHS, ResNetSpace


@dataclass(frozen=True, eq=False)
class Term:
    """One additive term: a block position (or stem layer, or head) and the genes its value depends on.

    Attributes:
        name: ``Conv``, ``ResConv``, ``Conv_1``, ``MaxPool``, ``b<p>`` (bottleneck position) or ``Logits``.
        columns: Gene columns the cell depends on (the cell array has one axis per column, same order).
        active: Boolean array over the cells (broadcastable to their shape): ``False`` where a depth
            gene leaves the term out of the network (its value is then 0).
        space_block: The bottleneck position for block terms, -1 otherwise.
    """

    name: str
    columns: tuple[int, ...]
    active: np.ndarray
    space_block: int = -1


def _gene_columns(space: ResNetSpace) -> tuple[list[int], list[int], list[int], int]:
    nb = space.n_blocks
    return list(range(nb)), list(range(nb, nb + 5)), list(range(nb + 5, nb + 11)), nb + 11


@lru_cache(maxsize=8)
def resnet_terms(space: ResNetSpace) -> tuple[Term, ...]:
    """The terms of OFA's ResNet-50: stem convs, max-pool, 18 bottlenecks, classifier.

    A bottleneck depends on its expand gene, its stage's width gene, the previous stage's (stem's) width
    gene when it opens a stage, its stage's depth gene when that depth can leave it out, and ``r``.
    """
    e, d, w, r = _gene_columns(space)
    nd = len(space.depth_list)
    full = np.ones(1, dtype=bool)
    deepest = np.array([v == space.max_depth for v in space.depth_list])
    terms = [
        Term("Conv", (w[0], r), full),
        Term("ResConv", (w[0], d[0], r), deepest[None, :, None]),
        Term("Conv_1", (w[0], w[1], r), full),
        Term("MaxPool", (w[1], r), full),
    ]
    for stage in range(4):
        for i, p in enumerate(space.stage_blocks(stage)):
            cols = [e[p], w[2 + stage]] + ([w[1 + stage]] if i == 0 else [])
            active = full
            if i >= BASE_DEPTHS[stage]:
                on = np.array([BASE_DEPTHS[stage] + space.depth_list[v] > i for v in range(nd)])
                cols.append(d[1 + stage])
                active = on.reshape((1,) * len(cols[:-1]) + (nd, 1))
            terms.append(Term(f"b{p}", (*cols, r), active, space_block=p))
    terms.append(Term("Logits", (w[5], r), full))
    return tuple(terms)


def _cell_arch(space: ResNetSpace, genes: dict[int, int]) -> dict:
    """A max-depth arch holding the given gene values, from a small family of archs (so netspecs repeat).

    Widths follow ``w[j] = (a + j·b) mod 3``, which holds any pair of consecutive width genes with one of
    9 choices of ``(a, b)``; expands are uniform; depths are the largest.
    """
    e_cols, d_cols, w_cols, r_col = _gene_columns(space)
    nw = len(space.width_mult_list)
    set_w = sorted((w_cols.index(c), v) for c, v in genes.items() if c in w_cols)
    a, b = 0, 0
    if len(set_w) == 1:
        a = set_w[0][1]
    elif len(set_w) == 2:
        (j0, v0), (j1, v1) = set_w
        b = (v1 - v0) % nw  # consecutive genes: j1 = j0 + 1
        a = (v0 - j0 * b) % nw
    ev = next((v for c, v in genes.items() if c in e_cols), 0)
    return {
        "d": [space.max_depth] * 5,
        "e": [space.expand_list[ev]] * space.n_blocks,
        "w": [(a + j * b) % nw for j in range(6)],
        "r": space.resolutions[genes[r_col]],
    }


def resnet_cell(space: ResNetSpace, term: Term, values: tuple[int, ...]) -> tuple[Block, NetSpec]:
    """The block (and its netspec) of ``term`` when its gene columns take ``values`` (depth ignored)."""
    genes = dict(zip(term.columns, values, strict=True))
    ns = build_netspec(space, _cell_arch(space, genes))
    if term.space_block >= 0:
        return next(b for b in ns.blocks if b.space_block == term.space_block), ns
    return next(b for b in ns.blocks if b.kind == term.name), ns


@lru_cache(maxsize=8)
def term_cells(space: ResNetSpace) -> tuple[tuple[tuple[tuple[Any, ...], Block, NetSpec], ...], ...]:
    """Per term of :func:`resnet_terms`, its distinct cells: ``(index into the term's cell array, block,
    netspec)`` — depth axes are a full slice (the block is the same at every depth). Cached: tables of
    several quantities (latency, MACs, compilability) reuse the netspecs."""
    card = space.gene_cardinality
    d_cols = set(_gene_columns(space)[1])
    out = []
    for term in resnet_terms(space):
        shape = tuple(int(card[c]) for c in term.columns)
        free = [i for i, c in enumerate(term.columns) if c not in d_cols]
        cells = []
        for values in itertools.product(*(range(shape[i]) for i in free)):
            full = [0] * len(shape)
            for i, val in zip(free, values, strict=True):
                full[i] = val
            block, ns = resnet_cell(space, term, tuple(full))
            cells.append((tuple(val if i in free else slice(None) for i, val in enumerate(full)), block, ns))
        out.append(tuple(cells))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class TermTable:
    """``value(arch) = Σ_terms cells_t[genes[t.columns]]`` over encoded archs (ResNet-50).

    Attributes:
        space: The space whose gene layout the table follows.
        terms: The terms (:func:`resnet_terms`).
        means: One array per term, shape ``cardinality[term.columns]``; ``inf`` = cannot exist (e.g. the
            DPU compiler rejects the block), ``nan`` = no value (e.g. a key missing from a LUT).
        variances: Same shapes, or ``None``.
    """

    space: ResNetSpace
    terms: tuple[Term, ...]
    means: tuple[np.ndarray, ...]
    variances: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        card = self.space.gene_cardinality
        for term, m in zip(self.terms, self.means, strict=True):
            if m.shape != tuple(int(card[c]) for c in term.columns):
                raise ValueError(f"term '{term.name}': cells of shape {m.shape} do not fit its gene columns")

    @classmethod
    def from_block_fn(
        cls, space: ResNetSpace, fn: Callable[[Block, NetSpec], float | tuple[float, float]]
    ) -> TermTable:
        """Fill a table by calling ``fn(block, netspec)`` once per distinct cell (a value or ``(mean, var)``)."""
        terms = resnet_terms(space)
        card = space.gene_cardinality
        means, variances = [], []
        for term, cells in zip(terms, term_cells(space), strict=True):
            shape = tuple(int(card[c]) for c in term.columns)
            m, v = np.zeros(shape), np.zeros(shape)
            for index, block, ns in cells:
                m[index], v[index] = _mean_var(fn(block, ns))
            on = np.broadcast_to(term.active, shape)
            means.append(np.where(on, m, 0.0))
            variances.append(np.where(on, v, 0.0))
        has_var = any(v.any() for v in variances)
        return cls(space, terms, tuple(means), tuple(variances) if has_var else None)

    @cached_property
    def _cells(self) -> _Cells:
        card = self.space.gene_cardinality.astype(np.int64)
        weights = np.zeros((len(self.terms), self.space.n_genes), dtype=np.float32)
        base = np.zeros((len(self.terms), 1), dtype=np.float32)
        parts, offset = [], 0
        for t, (term, m) in enumerate(zip(self.terms, self.means, strict=True)):
            strides = np.cumprod([1] + [int(card[c]) for c in term.columns[::-1]])[:-1][::-1]
            weights[t, list(term.columns)] = strides
            base[t] = offset
            cell = np.zeros(m.size, dtype=np.complex128)
            cell.real = m.ravel()  # not m + 1j·var: inf·1j would make nan real parts
            if self.variances is not None:
                cell.imag = self.variances[t].ravel()
            parts.append(cell)
            offset += m.size
        if offset >= 1 << 24:
            raise ValueError(f"space '{self.space.name}': {offset} table cells exceed the float32 index")
        return _Cells(cells=np.concatenate(parts), weights=weights, base=base, fixed=None)

    def evaluate(self, genes: np.ndarray) -> np.ndarray:
        """Values of encoded archs ``(N, n_genes)`` → ``(N,)``."""
        return self._cells.total(genes).real

    def evaluate_with_std(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and standard deviations (zero when the table carries no variance)."""
        both = self._cells.total(genes)
        return both.real, np.sqrt(np.maximum(both.imag, 0.0))

    def linear_argmin(self, w_mean: float, w_var: float) -> np.ndarray:
        """Gene row minimising ``w_mean·mean + w_var·variance`` over the space (exact).

        Genes only one term reads (expands) are minimised inside their term; the genes several terms
        share (widths, depths) are enumerated, one resolution at a time. Cells without a finite value
        cannot be chosen, whatever the sign of the weights.
        """
        card = self.space.gene_cardinality.astype(np.int64)
        r_col = self.space.n_genes - 1
        readers = np.zeros(self.space.n_genes, dtype=int)
        for term in self.terms:
            readers[list(term.columns)] += 1
        shared = [int(c) for c in np.flatnonzero(readers > 1) if c != r_col]
        grid = np.array(list(itertools.product(*(range(card[c]) for c in shared))), dtype=np.int64)
        reduced = []  # per term: (cost minimised over its local gene, argmin, axis of that gene or -1)
        for t, term in enumerate(self.terms):
            m = self.means[t]
            cost = np.where(np.isfinite(m), w_mean * np.nan_to_num(m, posinf=0.0, neginf=0.0), np.inf)
            if w_var and self.variances is not None:
                cost = cost + w_var * np.nan_to_num(self.variances[t], nan=0.0, posinf=0.0)
            local = [i for i, c in enumerate(term.columns) if readers[c] == 1]
            if local:
                moved = np.moveaxis(cost, local[0], -1)
                reduced.append((moved.min(axis=-1), moved.argmin(axis=-1), local[0]))
            else:
                reduced.append((cost, None, -1))
        best, genes = np.inf, np.zeros(self.space.n_genes, dtype=np.int8)
        for ri in range(card[r_col]):
            total = np.zeros(len(grid))
            for term, (cost, _, li) in zip(self.terms, reduced, strict=True):
                cols = [c for i, c in enumerate(term.columns) if i != li]
                total += cost[tuple(grid[:, shared.index(c)] if c != r_col else ri for c in cols)]
            j = int(np.argmin(total))
            if total[j] < best or ri == 0:
                best = float(total[j])
                genes[shared] = grid[j]
                genes[r_col] = ri
        for term, (_, arg, li) in zip(self.terms, reduced, strict=True):
            if arg is not None:
                cols = [c for i, c in enumerate(term.columns) if i != li]
                genes[term.columns[li]] = arg[tuple(int(genes[c]) for c in cols)]
        return genes

    def argmin(self, k_sigma: float = 0.0) -> tuple[np.ndarray, float]:
        """An encoded arch minimising the mean (``k_sigma = 0``) and its ``mean + k_sigma·std``."""
        genes = self.linear_argmin(1.0, 1e-9)
        mean, std = self.evaluate_with_std(genes[None, :])
        return genes, float(mean[0] + k_sigma * std[0])

    def min_total(self, k_sigma: float = 0.0) -> float:
        """The minimum of ``value + k_sigma·std`` over the space (exact: :func:`ofa_hw.search.floor.table_floor`)."""
        from ofa_hw.search.floor import table_floor

        return table_floor(self, k_sigma).bound_ms


def table_for(
    space: Any, fn: Callable[[Block, NetSpec], float | tuple[float, float]]
) -> BlockTable | TermTable:
    """The compiled table of a per-block quantity over any space: a :class:`TermTable` for ResNet-50,
    a :class:`~ofa_hw.blocktable.BlockTable` for the MBConv spaces (same ``evaluate`` interface)."""
    if isinstance(space, ResNetSpace):
        return TermTable.from_block_fn(space, fn)
    return BlockTable.from_block_fn(space, fn)
