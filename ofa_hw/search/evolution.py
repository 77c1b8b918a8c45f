"""OFA's evolutionary finder over integer-encoded populations, under a latency budget.

Semantics and defaults follow OFA's ``EvolutionFinder`` (population 100, the best 25 % are parents and
survive, 50 % of the children are mutants of one parent, the rest crossovers of two, per-block mutation
probability 0.1, resolution mutation probability 0.5, 500 generations, every child must satisfy the
constraint). Differences, all deliberate:

* Whole generations are produced, checked and scored at once on gene matrices (one table gather per
  check instead of one predictor call per child), so the default run takes a fraction of a second.
* OFA rejection-samples forever; here every rejection loop is bounded. A child that stays infeasible
  after ``max_rounds`` tries is replaced by its (feasible) parent; an initial population that random
  sampling cannot fill is completed from mutants of the space's fastest arch, which is feasible whenever
  the budget is (:meth:`LatencyConstraint.check_budget` raises otherwise, before any search).
* One ``numpy.random.Generator`` drives everything: a seed reproduces a run exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ofa_hw.schemas.search import SearchConfig
from ofa_hw.search.floor import Floor
from ofa_hw.search.genes import GeneOps
from ofa_hw.search.latency import LatencyConstraint

# The result types live in ofa_hw.search.result; re-exported here, where callers have long found them.
from ofa_hw.search.result import Candidate as Candidate
from ofa_hw.search.result import Evaluated as Evaluated
from ofa_hw.search.result import SearchResult as SearchResult
from ofa_hw.search.result import candidates as candidates
from ofa_hw.space import SearchSpace

#: Share of slots a rejection round may leave unfilled (each costs another, small round).
_FIRST_ROUND_MISS = 0.003
_LOG_MISS = math.log(_FIRST_ROUND_MISS)


@dataclass(frozen=True)
class EvolutionParams:
    """Hyper-parameters (OFA's defaults).

    Attributes:
        population: Population size.
        parent_ratio: Share of the population kept as parents (and survivors) each generation.
        mutation_ratio: Share of the children made by mutation (the rest by crossover).
        mutate_prob: Per-block (kernel + expand) and per-stage (depth) mutation probability.
        resolution_mutate_prob: Resolution mutation probability.
        generations: Number of generations.
        max_rounds: Bound on the tries per child (and on the sampling rounds of the first population).
        sample_batch: Random archs drawn per round when seeding the population.
    """

    # Defaults: the ``search`` schema's (OFA's), their one source.
    population: int = SearchConfig.population
    parent_ratio: float = SearchConfig.parent_ratio
    mutation_ratio: float = SearchConfig.mutation_ratio
    mutate_prob: float = SearchConfig.mutate_prob
    resolution_mutate_prob: float = SearchConfig.resolution_mutate_prob
    generations: int = SearchConfig.generations
    max_rounds: int = SearchConfig.max_rounds
    sample_batch: int = SearchConfig.sample_batch

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"search.population must be >= 2, got {self.population}")
        for name in ("parent_ratio", "mutation_ratio", "mutate_prob", "resolution_mutate_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"search.{name} must be in [0, 1], got {value}")
        if self.n_parents < 1:
            raise ValueError(
                f"search.parent_ratio {self.parent_ratio} leaves no parent in a population of {self.population}"
            )
        if self.generations < 0 or self.max_rounds < 1 or self.sample_batch < 1:
            raise ValueError("search.generations must be >= 0, search.max_rounds and sample_batch >= 1")

    @property
    def n_parents(self) -> int:
        return int(round(self.parent_ratio * self.population))

    @property
    def n_mutants(self) -> int:
        return int(round(self.mutation_ratio * self.population))


@dataclass
class _Group:
    """Slots of one acceptance group still waiting for a feasible child in :meth:`FinderBase._redraw_rows`."""

    group: int  # key of the group's acceptance rate
    rows: np.ndarray  # rows (of the fallback arrays) still without a feasible child
    reps: int  # tries per slot in the next round
    tried: int  # tries per slot so far


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread: the table lookups multiply small matrices (tens of microseconds), where
    OpenBLAS's threads only add wake-up latency — and, on a loaded machine, wait for a free core."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class FinderBase:
    """What the single- and multi-objective finders share: operators, bounded rejection, counters.

    Args:
        space: Search space.
        latency: Latency predictor (``predict_encoded(genes) -> (mean, std)``).
        accuracy: Accuracy model (``predict_encoded(genes) -> scores``, higher is better).
        params: Evolution hyper-parameters.
        k_sigma: Safety factor on the predictor's σ.
        seed: Seed of the run's random generator.
        where: Names the DPU in error messages.
    """

    def __init__(
        self,
        space: SearchSpace,
        latency: Any,
        accuracy: Any,
        params: EvolutionParams | None = None,
        k_sigma: float = 0.0,
        seed: int = 0,
        where: str = "this DPU",
    ) -> None:
        self.space = space
        self.ops = GeneOps(space)
        self.constraint = (
            latency if isinstance(latency, LatencyConstraint) else LatencyConstraint(latency, k_sigma, where)
        )
        self.accuracy = accuracy
        self.params = params or EvolutionParams()
        self.seed = int(seed)
        self._n_lat = 0
        self._n_acc = 0
        self._accept: dict[int, float] = {}

    # ------------------------------------------------------------------ scoring
    def _latency(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._n_lat += genes.shape[0]
        return self.constraint.evaluate(genes)

    def _accuracy(self, genes: np.ndarray) -> np.ndarray:
        self._n_acc += genes.shape[0]
        return np.asarray(self.accuracy.predict_encoded(genes), dtype=np.float64).reshape(-1)

    def _score(self, genes: np.ndarray, mean: np.ndarray, std: np.ndarray, bound: np.ndarray) -> Evaluated:
        return Evaluated(genes, self._accuracy(genes), mean, std, bound)

    # ------------------------------------------------------- bounded rejection
    def _first_reps(self, group: int) -> int:
        """Tries per slot in a group's first round: enough for all but ``_FIRST_ROUND_MISS`` of the slots
        to succeed at the acceptance rate seen so far (one round per generation, mostly)."""
        accept = min(max(self._accept.get(group, 1.0), 1e-3), 1.0 - 1e-9)
        # plain floats: numpy scalar maths costs microseconds, twice per generation
        return min(max(math.ceil(_LOG_MISS / math.log1p(-accept)), 1), 16)

    def _redraw(
        self,
        make: Callable[[np.ndarray, int], np.ndarray],
        fallback: Evaluated,
        limit: float,
        groups: tuple[int, ...] = (),
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_redraw_rows` with the fallback as :class:`Evaluated`; returns genes, mean, std, bound."""
        stats = np.stack([fallback.mean_ms, fallback.std_ms, fallback.bound_ms], axis=1)
        genes, stats = self._redraw_rows(make, fallback.genes, stats, limit, groups)
        return genes, stats[:, 0], stats[:, 1], stats[:, 2]

    def _redraw_rows(
        self,
        make: Callable[[np.ndarray, int], np.ndarray],
        genes: np.ndarray,
        stats: np.ndarray,
        limit: float,
        groups: tuple[int, ...] = (),
        ids: np.ndarray | None = None,
        tried: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Children ``make(slots, reps)`` for every slot, redrawn until ``bound <= limit`` (bounded).

        ``make`` gets sorted indices of slots still to fill (from one group) and a number of tries, and
        returns ``reps`` fresh children per slot, shape ``(len(slots), reps, n_genes)``. Each round keeps
        every slot's first feasible try — the same distribution as OFA's one-at-a-time rejection loop —
        and checks all groups' tries in one call. ``groups`` splits the slots at these indices into
        groups with acceptance rates of their own (mutants are rejected more often than crossovers); a
        group's first round draws enough tries for nearly every slot to succeed at its rate so far, each
        further round doubles. After ``max_rounds`` tries a slot keeps its fallback row (``genes``,
        ``stats`` = mean, std, bound: a feasible parent). ``ids`` names the slots of the rows when they
        are not ``0..n-1`` (sorted; group boundaries apply to them), ``tried`` counts tries already made.
        Returns the children's genes and stats.
        """
        n = genes.shape[0]
        genes, stats = genes.copy(), stats.copy()
        ids = np.arange(n) if ids is None else ids
        cuts = [0, *np.searchsorted(ids, groups).tolist(), n]
        todo = [
            _Group(i, np.arange(lo, hi), self._first_reps(i) * (2 if tried else 1), tried)
            for i, (lo, hi) in enumerate(zip(cuts, cuts[1:]))
            if hi > lo
        ]
        first = True
        max_rounds = self.params.max_rounds
        width = genes.shape[1]
        while todo:
            for g in todo:
                g.reps = min(g.reps, max_rounds - g.tried)
            parts = [make(ids[g.rows], g.reps).reshape(-1, width) for g in todo]
            cand = np.concatenate(parts) if len(parts) > 1 else parts[0]
            m, s, b = self._latency(cand)
            ok = (b <= limit) & (b < np.inf)  # inf = does not compile, even without a budget
            start = 0
            for g in todo:
                k, r = g.rows.size, g.reps
                ok_g = ok[start : start + k * r].reshape(k, r)
                if first:  # running acceptance rate per group, for the next call's first round
                    self._accept[g.group] = (
                        0.7 * self._accept.get(g.group, 1.0) + 0.3 * np.count_nonzero(ok_g) / ok_g.size
                    )
                pick = ok_g.argmax(axis=1)
                hit = ok_g[np.arange(k), pick]
                rows = start + (np.arange(k) * r + pick)[hit]
                done = g.rows[hit]
                genes[done] = cand[rows]
                stats[done, 0], stats[done, 1], stats[done, 2] = m[rows], s[rows], b[rows]
                start += k * r
                g.rows, g.reps, g.tried = g.rows[~hit], 2 * r, g.tried + r
            todo = [g for g in todo if g.rows.size and g.tried < max_rounds]
            first = False
        return genes, stats

    def _children(
        self,
        parents: np.ndarray,
        pa: np.ndarray,
        pb: np.ndarray,
        slots: np.ndarray,
        reps: int,
        n_mut: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``reps`` children per entry of the sorted ``slots``: mutants of ``pa[slot]`` for slots below
        ``n_mut``, else crossovers of ``pa[slot]`` and ``pb[slot]``; shape ``(len(slots), reps, n_genes)``."""
        p = self.params
        m = int(np.searchsorted(slots, n_mut))  # slots are sorted: mutants first
        a = parents[pa[slots]]
        mutants = self.ops.mutants(a[:m], reps, rng, p.mutate_prob, p.resolution_mutate_prob)
        if m == slots.size:
            return mutants
        crossed = self.ops.crossovers(a[m:], parents[pb[slots[m:]]], reps, rng)
        return crossed if m == 0 else np.concatenate([mutants, crossed])

    def _initial(self, rng: np.random.Generator, limit: float, seed_genes: np.ndarray | None) -> Evaluated:
        """A feasible random population (OFA: rejection sampling), bounded; see the module docstring."""
        n = self.params.population
        found: list[tuple[np.ndarray, ...]] = []
        have = 0
        for _ in range(self.params.max_rounds):
            cand = self.ops.sample(rng, max(n, self.params.sample_batch))
            m, s, b = self._latency(cand)
            ok = np.flatnonzero((b <= limit) & np.isfinite(b))[: n - have]
            found.append((cand[ok], m[ok], s[ok], b[ok]))
            have += ok.size
            if have == n:
                break
        if have < n:
            if seed_genes is None or seed_genes.size == 0:
                raise RuntimeError(
                    f"random sampling found only {have} of {n} feasible archs in "
                    f"{self.params.max_rounds * max(n, self.params.sample_batch)} draws, and the latency "
                    "model offers no compiled table to seed the population from its fastest arch"
                )
            base = np.repeat(seed_genes[None, :], n - have, axis=0)
            m, s, b = self._latency(base)
            fallback = Evaluated(base, np.zeros(n - have), m, s, b)
            p = self.params
            found.append(
                self._redraw(
                    lambda slots, reps: self.ops.mutants(
                        base[slots], reps, rng, p.mutate_prob, p.resolution_mutate_prob
                    ),
                    fallback,
                    limit,
                )
            )
        genes, mean, std, bound = (np.concatenate(x) for x in zip(*found))
        return self._score(genes, mean, std, bound)

    def _reset_counters(self) -> None:
        self._n_lat = 0
        self._n_acc = 0
        self._accept = {}


class EvolutionFinder(FinderBase):
    """Maximise accuracy subject to ``mean + k·σ ≤ budget`` and compilability (OFA's evolution)."""

    def _generation(
        self,
        par_g: np.ndarray,
        par_v: np.ndarray,
        pa: np.ndarray,
        pb: np.ndarray,
        n_mut: int,
        n_cross: int,
        limit: float,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One generation's children: :meth:`_redraw_rows` unrolled for its usual case (the hot path).

        Mutants and crossovers are drawn with the tries per slot of their own acceptance rates and
        checked in one call; the first feasible try of each slot is kept. The few slots left without
        one go through :meth:`_redraw_rows`, which continues the rejection loop for them alone.
        """
        p = self.params
        width = par_g.shape[1]
        rm, rc = self._first_reps(0), self._first_reps(1)
        a = par_g[pa]
        cand = np.concatenate(
            [
                self.ops.mutants(a[:n_mut], rm, rng, p.mutate_prob, p.resolution_mutate_prob).reshape(
                    -1, width
                ),
                self.ops.crossovers(a[n_mut:], par_g[pb[n_mut:]], rc, rng).reshape(-1, width),
            ]
        )
        m, s, b = self._latency(cand)
        ok = b <= limit  # inf (does not compile) and nan fail too
        ok_m, ok_c = ok[: n_mut * rm].reshape(n_mut, rm), ok[n_mut * rm :].reshape(n_cross, rc)
        rows = np.concatenate(
            [
                np.arange(0, n_mut * rm, rm) + ok_m.argmax(axis=1),
                np.arange(n_mut * rm, ok.size, rc) + ok_c.argmax(axis=1),
            ]
        )
        self._accept[0] = 0.7 * self._accept.get(0, 1.0) + 0.3 * np.count_nonzero(ok_m) / ok_m.size
        self._accept[1] = 0.7 * self._accept.get(1, 1.0) + 0.3 * np.count_nonzero(ok_c) / ok_c.size
        genes = cand[rows]
        stats = np.stack([m, s, b], axis=1)[rows]
        miss = np.flatnonzero(~ok[rows])
        if miss.size:  # rare: continue the rejection loop for these slots only
            genes[miss], stats[miss] = self._redraw_rows(
                lambda slots, reps: self._children(par_g, pa, pb, slots, reps, n_mut, rng),
                par_g[pa[miss]],
                par_v[pa[miss], 1:],
                limit,
                groups=(n_mut,),
                ids=miss,
                tried=min(rm, rc),
            )
        return genes, stats

    def run(self, budget_ms: float, progress: bool = False) -> SearchResult:
        """Search under ``budget_ms``.

        Raises:
            InfeasibleBudgetError: at once, when no compilable subnet can meet the budget.
        """
        floor = self.constraint.check_budget(float(budget_ms))
        with single_threaded_blas():
            return self._run(float(budget_ms), floor, progress)

    def _run(self, budget_ms: float, floor: Floor, progress: bool) -> SearchResult:
        start, cpu_start = time.perf_counter(), time.thread_time()
        self._reset_counters()
        rng = np.random.default_rng(self.seed)
        p = self.params
        n_par, n_mut = p.n_parents, p.n_mutants
        init = self._initial(rng, budget_ms, floor.genes)
        # the loop works on raw arrays: genes and (accuracy, mean, std, bound) rows
        pop_g = init.genes
        pop_v = np.stack([init.accuracy, init.mean_ms, init.std_ms, init.bound_ms], axis=1)
        seen_g, seen_v = [pop_g], [pop_v]
        history = np.empty(p.generations)
        gens = range(p.generations)
        if progress:
            from tqdm import tqdm

            gens = tqdm(gens, desc=f"search ≤ {budget_ms:g} ms", leave=False)
        n_cross = p.population - n_mut
        for gen in gens:
            order = np.argsort(-pop_v[:, 0], kind="stable")[:n_par]
            par_g, par_v = pop_g[order], pop_v[order]
            history[gen] = par_v[0, 0]
            # slots [0, n_mut) are mutants of parent pa, the rest crossovers of parents pa × pb (OFA)
            pa, pb = rng.integers(n_par, size=(2, p.population))
            genes, stats = self._generation(par_g, par_v, pa, pb, n_mut, n_cross, budget_ms, rng)
            values = np.empty((genes.shape[0], 4))
            values[:, 0] = self._accuracy(genes)
            values[:, 1:] = stats
            seen_g.append(genes)
            seen_v.append(values)
            pop_g, pop_v = np.concatenate([par_g, genes]), np.concatenate([par_v, values])
        pop = Evaluated(pop_g, *pop_v.T)
        every_v = np.concatenate(seen_v)
        evaluated = Evaluated(np.concatenate(seen_g), *every_v.T)
        return SearchResult(
            budget_ms=float(budget_ms),
            k_sigma=self.constraint.k_sigma,
            floor_ms=floor.bound_ms,
            best_history=history,
            population=pop,
            evaluated=evaluated,
            evaluations=self._n_lat,
            accuracy_evaluations=self._n_acc,
            elapsed_s=time.perf_counter() - start,
            space=self.space,
            cpu_s=time.thread_time() - cpu_start,
        )
