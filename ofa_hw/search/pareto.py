"""Multi-objective mode: the accuracy-vs-latency Pareto front in one run (NSGA-II style).

The population evolves with OFA's operators (mutants and crossovers, in OFA's proportions), but parents
are picked by binary tournament on (non-domination rank, crowding distance) and the next population is
the best ``population`` of parents ∪ children by the same order — NSGA-II's elitist selection. The two
objectives are the accuracy score (maximised) and the predicted mean latency (minimised); an optional
budget constrains ``mean + k·σ`` exactly as in the single-objective finder. The reported front is the
non-dominated set of *every* subnet scored during the run, duplicates removed.

So that the front spans the whole latency range, the first population holds the space's extremes (the
exact floor and ceiling of the predictor's compiled table, when it has one, and the compilable subnet
with the most MACs, the most accurate end for every accuracy model of the package): NSGA-II keeps
boundary points (infinite crowding distance), and evolution fills in between them. Subnets scored by
other searches (``run(include=...)``, e.g. the budget search's) are re-scored with this run's models and
merged before the front is taken, so no searched point dominates a point of the front.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ofa_hw.blocktable import BlockTable
from ofa_hw.search.evolution import Candidate, Evaluated, FinderBase, candidates
from ofa_hw.search.floor import linear_argmin, table_ceiling
from ofa_hw.search.latency import block_table_of
from ofa_hw.space import SearchSpace
from ofa_hw.termtable import TermTable


def front_mask(accuracy: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point dominates (higher-or-equal accuracy at lower-or-equal
    latency, strictly better in one). Equal points are all kept."""
    order = np.lexsort((-accuracy, latency))  # latency ascending, ties: best accuracy first
    acc, lat = accuracy[order], latency[order]
    faster_best = np.concatenate([[-np.inf], np.maximum.accumulate(acc)[:-1]])
    keep = acc > faster_best  # more accurate than every point sorted before it
    # an exact duplicate of a kept point (adjacent after the sort) is not dominated either
    for i in np.flatnonzero((lat[1:] == lat[:-1]) & (acc[1:] == acc[:-1])) + 1:
        keep[i] = keep[i - 1]
    mask = np.zeros(order.size, dtype=bool)
    mask[order] = keep
    return mask


def nondominated_ranks(accuracy: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """NSGA-II ranks (0 = first front) by peeling fronts."""
    ranks = np.full(accuracy.shape[0], -1, dtype=np.int64)
    left = np.arange(accuracy.shape[0])
    rank = 0
    while left.size:
        on_front = front_mask(accuracy[left], latency[left])
        ranks[left[on_front]] = rank
        left = left[~on_front]
        rank += 1
    return ranks


def crowding_distances(accuracy: np.ndarray, latency: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within each front (boundary points get ``inf``)."""
    dist = np.zeros(accuracy.shape[0])
    for objective in (accuracy, latency):
        span = objective.max() - objective.min()
        span = span if span > 0 else 1.0
        order = np.lexsort((objective, ranks))  # grouped by front, sorted by the objective
        r, v = ranks[order], objective[order]
        first = np.concatenate([[True], r[1:] != r[:-1]])
        last = np.concatenate([r[1:] != r[:-1], [True]])
        gap = np.zeros(order.size)
        inner = ~(first | last)
        idx = np.flatnonzero(inner)
        gap[idx] = (v[idx + 1] - v[idx - 1]) / span
        gap[first | last] = np.inf
        dist[order] += gap
    return dist


@dataclass(frozen=True)
class ParetoResult:
    """Outcome of a multi-objective run.

    Attributes:
        front: Non-dominated evaluated subnets, sorted by latency.
        budget_ms: Constraint on ``mean + k·σ`` (``inf`` = none).
        k_sigma: Safety factor on σ.
        evaluations: Latency-predictor evaluations.
        accuracy_evaluations: Accuracy-model evaluations.
        elapsed_s: Wall time.
    """

    front: Evaluated
    budget_ms: float
    k_sigma: float
    evaluations: int
    accuracy_evaluations: int
    elapsed_s: float
    space: SearchSpace = field(repr=False)

    def candidates(self) -> list[Candidate]:
        return candidates(self.space, self.front)


class ParetoFinder(FinderBase):
    """NSGA-II over OFA's operators: accuracy (max) vs predicted latency (min)."""

    def _order(self, pop: Evaluated) -> tuple[np.ndarray, np.ndarray]:
        ranks = nondominated_ranks(pop.accuracy, pop.mean_ms)
        return ranks, crowding_distances(pop.accuracy, pop.mean_ms, ranks)

    def _tournament(
        self, ranks: np.ndarray, crowd: np.ndarray, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        a, b = rng.integers(ranks.size, size=n), rng.integers(ranks.size, size=n)
        a_wins = (ranks[a] < ranks[b]) | ((ranks[a] == ranks[b]) & (crowd[a] >= crowd[b]))
        return np.where(a_wins, a, b)

    def _feasible(self, genes: np.ndarray, limit: float) -> Evaluated:
        """``genes`` scored with this run's models, the rows that compile and meet ``limit`` only."""
        genes = np.asarray(genes, dtype=np.int8).reshape(-1, self.space.n_genes)
        ok = np.empty(0, dtype=np.intp)
        if len(genes):
            mean, std, bound = self._latency(genes)
            ok = np.flatnonzero((bound <= limit) & np.isfinite(bound))
        if ok.size == 0:
            none = np.empty(0)
            return Evaluated(genes[:0], none, none, none, none)
        return self._score(genes[ok], mean[ok], std[ok], bound[ok])

    def extremes(self) -> np.ndarray:
        """Gene rows of the fastest (``mean + k·σ``) subnet, the slowest (mean) one and the compilable one
        with the most MACs (the most accurate end), from the latency model's compiled table; empty when
        it has none."""
        table = block_table_of(self.constraint.model)
        if table is None:
            return np.empty((0, self.space.n_genes), dtype=np.int8)
        macs = getattr(self.accuracy, "macs_table", None)
        if not isinstance(macs, (BlockTable, TermTable)):
            from ofa_hw.accuracy.flops import FlopsProxy

            macs = FlopsProxy(self.space).macs_table
        # the MACs of the cells that compile (inf = unusable for linear_argmin), maximised
        usable: BlockTable | TermTable
        if isinstance(table, TermTable) and isinstance(macs, TermTable):
            cells = zip(table.means, macs.means, strict=True)
            usable = TermTable(
                table.space, table.terms, tuple(np.where(np.isfinite(t), m, np.inf) for t, m in cells)
            )
        else:
            assert isinstance(table, BlockTable) and isinstance(macs, BlockTable)
            usable = BlockTable(
                self.space, macs.fixed, np.where(np.isfinite(table.blocks), macs.blocks, np.inf)
            )
        rows = [self.constraint.floor().genes, table_ceiling(table).genes, linear_argmin(usable, -1.0, 0.0)]
        return np.stack(rows).astype(np.int8)

    def run(
        self, budget_ms: float | None = None, progress: bool = False, include: np.ndarray | None = None
    ) -> ParetoResult:
        """Evolve the front; with ``budget_ms`` every member satisfies ``mean + k·σ ≤ budget_ms``.

        Args:
            budget_ms: Constraint on ``mean + k·σ`` (``None`` = none).
            progress: Show a progress bar.
            include: Gene rows scored elsewhere (e.g. by the budget search); re-scored with this run's
                models and merged into the front.

        Raises:
            InfeasibleBudgetError: at once, when a budget is given and nothing can meet it.
        """
        limit = np.inf if budget_ms is None else float(budget_ms)
        seed_genes = self.constraint.check_budget(limit).genes if budget_ms is not None else None
        start = time.perf_counter()
        self._reset_counters()
        rng = np.random.default_rng(self.seed)
        p = self.params
        n, n_mut = p.population, p.n_mutants
        pop = self._initial(rng, limit, seed_genes)
        ends = self._feasible(self.extremes(), limit)
        if len(ends):  # the extremes replace random members: the front then reaches both ends
            pop = Evaluated.concat([ends, pop.take(np.arange(len(pop) - len(ends)))])
        seen = [pop]
        gens = range(p.generations)
        if progress:
            from tqdm import tqdm

            gens = tqdm(gens, desc="pareto search", leave=False)
        for _ in gens:
            ranks, crowd = self._order(pop)
            pa = self._tournament(ranks, crowd, n, rng)
            pb = self._tournament(ranks, crowd, n, rng)
            children = self._score(
                *self._redraw(
                    partial(self._children, pop.genes, pa, pb, n_mut=n_mut, rng=rng),
                    pop.take(pa),
                    limit,
                    groups=(n_mut,),
                )
            )
            seen.append(children)
            both = Evaluated.concat([pop, children])
            unique = self.ops.unique_first(both.genes)  # duplicates would crowd the front out
            both = both.take(unique)
            ranks, crowd = self._order(both)
            keep = np.lexsort((-crowd, ranks))[:n]
            pop = both.take(keep)
        if include is not None:
            seen.append(self._feasible(include, limit))
        everything = Evaluated.concat(seen)
        everything = everything.take(self.ops.unique_first(everything.genes))
        front = everything.take(np.flatnonzero(front_mask(everything.accuracy, everything.mean_ms)))
        front = front.take(np.argsort(front.mean_ms, kind="stable"))
        return ParetoResult(
            front=front,
            budget_ms=limit,
            k_sigma=self.constraint.k_sigma,
            evaluations=self._n_lat,
            accuracy_evaluations=self._n_acc,
            elapsed_s=time.perf_counter() - start,
            space=self.space,
        )
