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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ofa_hw.schemas.search import SearchConfig
from ofa_hw.search.genes import GeneOps
from ofa_hw.search.latency import LatencyConstraint
from ofa_hw.space import Arch, SearchSpace


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


@dataclass(frozen=True)
class Candidate:
    """One subnet found by the search, with its predicted figures.

    Attributes:
        arch: Canonical arch dict.
        arch_id: :meth:`SearchSpace.arch_id` of the arch.
        accuracy: Accuracy-model score (a proxy when the model says so).
        predicted_ms: Predicted mean latency.
        std_ms: Predicted σ.
        bound_ms: ``predicted_ms + k·std_ms``, the constrained value.
        genes: Encoded arch.
    """

    arch: Arch
    arch_id: str
    accuracy: float
    predicted_ms: float
    std_ms: float
    bound_ms: float
    genes: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class Evaluated:
    """Every feasible subnet a run scored (duplicates included), as parallel arrays."""

    genes: np.ndarray
    accuracy: np.ndarray
    mean_ms: np.ndarray
    std_ms: np.ndarray
    bound_ms: np.ndarray

    @staticmethod
    def concat(parts: list[Evaluated]) -> Evaluated:
        return Evaluated(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Evaluated.__dataclass_fields__)
        )

    def take(self, idx: np.ndarray) -> Evaluated:
        return Evaluated(*(getattr(self, f)[idx] for f in Evaluated.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.accuracy)


@dataclass(frozen=True)
class SearchResult:
    """Outcome of one constrained search.

    Attributes:
        budget_ms: The latency budget.
        k_sigma: Safety factor on σ.
        floor_ms: Smallest ``mean + k·σ`` the space reaches (the feasibility floor).
        best_history: Best accuracy at each generation.
        population: Final population (feasible) with its scores.
        evaluated: Every feasible subnet scored during the run.
        evaluations: Latency-predictor evaluations (archs checked, rejected ones included).
        accuracy_evaluations: Accuracy-model evaluations.
        elapsed_s: Wall time of the run.
    """

    budget_ms: float
    k_sigma: float
    floor_ms: float
    best_history: np.ndarray
    population: Evaluated
    evaluated: Evaluated
    evaluations: int
    accuracy_evaluations: int
    elapsed_s: float
    space: SearchSpace = field(repr=False)

    def top(self, k: int) -> list[Candidate]:
        """The ``k`` most accurate *distinct* subnets seen (ties: first found first)."""
        ev = self.evaluated
        order = np.argsort(-ev.accuracy, kind="stable")
        ops = GeneOps(self.space)
        keep = order[ops.unique_first(ev.genes[order])][:k]
        return candidates(self.space, ev.take(keep))

    @property
    def best(self) -> Candidate:
        return self.top(1)[0]


def candidates(space: SearchSpace, ev: Evaluated) -> list[Candidate]:
    """Decode evaluated rows into :class:`Candidate` records."""
    archs = space.decode(ev.genes)
    return [
        Candidate(
            arch=space.validate(a),
            arch_id=space.arch_id(a),
            accuracy=float(ev.accuracy[i]),
            predicted_ms=float(ev.mean_ms[i]),
            std_ms=float(ev.std_ms[i]),
            bound_ms=float(ev.bound_ms[i]),
            genes=ev.genes[i].copy(),
        )
        for i, a in enumerate(archs)
    ]


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
        self._accept = 1.0

    # ------------------------------------------------------------------ scoring
    def _latency(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._n_lat += genes.shape[0]
        return self.constraint.evaluate(genes)

    def _score(self, genes: np.ndarray, mean: np.ndarray, std: np.ndarray, bound: np.ndarray) -> Evaluated:
        self._n_acc += genes.shape[0]
        acc = np.asarray(self.accuracy.predict_encoded(genes), dtype=np.float64).reshape(-1)
        return Evaluated(genes, acc, mean, std, bound)

    # ------------------------------------------------------- bounded rejection
    def _redraw(
        self, make: Callable[[np.ndarray], np.ndarray], fallback: Evaluated, limit: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Children ``make(slots)`` for every slot, redrawn until ``bound <= limit`` (bounded).

        ``make`` gets an array of slot indices (repeats allowed) and returns one fresh child per entry.
        Each round draws several tries per still-infeasible slot at once and keeps each slot's first
        feasible try — the same distribution as OFA's one-at-a-time rejection loop, in a few vectorised
        calls. The first round draws enough tries for ~90 % of the slots to succeed at the acceptance
        rate seen so far; each further round doubles. After ``max_rounds`` tries in total a slot keeps
        its fallback row (a feasible parent). Returns genes, mean, std, bound of the children.
        """
        genes = fallback.genes.copy()
        mean, std, bound = fallback.mean_ms.copy(), fallback.std_ms.copy(), fallback.bound_ms.copy()
        pending = np.arange(genes.shape[0])
        tries = 0
        accept = min(max(self._accept, 1e-3), 1.0 - 1e-9)
        reps = int(np.clip(np.ceil(np.log(0.1) / np.log1p(-accept)), 1, 16))
        first = True
        while pending.size and tries < self.params.max_rounds:
            reps = min(reps, self.params.max_rounds - tries)
            slots = np.repeat(pending, reps)
            cand = make(slots)
            m, s, b = self._latency(cand)
            ok = (b <= limit) & np.isfinite(b)  # inf = does not compile, even without a budget
            # first feasible try of each slot: rows are grouped by slot, reps rows per slot
            ok_by_slot = ok.reshape(pending.size, reps)
            hit = ok_by_slot.any(axis=1)
            if first:  # running estimate of the per-try acceptance rate, for the next call's first round
                self._accept = 0.7 * self._accept + 0.3 * float(ok.mean())
                first = False
            rows = np.flatnonzero(hit) * reps + np.argmax(ok_by_slot[hit], axis=1)
            done = pending[hit]
            genes[done], mean[done], std[done], bound[done] = cand[rows], m[rows], s[rows], b[rows]
            pending = pending[~hit]
            tries += reps
            reps *= 2
        return genes, mean, std, bound

    def _children(
        self,
        parents: np.ndarray,
        pa: np.ndarray,
        pb: np.ndarray,
        slots: np.ndarray,
        n_mut: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """One child per entry of ``slots``: a mutant of ``pa[slot]`` for slots below ``n_mut``,
        else a crossover of ``pa[slot]`` and ``pb[slot]``."""
        p = self.params
        out = np.empty((slots.size, parents.shape[1]), dtype=np.int8)
        is_mut = slots < n_mut
        out[is_mut] = self.ops.mutate(
            parents[pa[slots[is_mut]]], rng, p.mutate_prob, p.resolution_mutate_prob
        )
        cross = slots[~is_mut]
        out[~is_mut] = self.ops.crossover(parents[pa[cross]], parents[pb[cross]], rng)
        return out

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
                    lambda slots: self.ops.mutate(base[slots], rng, p.mutate_prob, p.resolution_mutate_prob),
                    fallback,
                    limit,
                )
            )
        genes, mean, std, bound = (np.concatenate(x) for x in zip(*found))
        return self._score(genes, mean, std, bound)

    def _reset_counters(self) -> None:
        self._n_lat = 0
        self._n_acc = 0
        self._accept = 1.0


class EvolutionFinder(FinderBase):
    """Maximise accuracy subject to ``mean + k·σ ≤ budget`` and compilability (OFA's evolution)."""

    def run(self, budget_ms: float, progress: bool = False) -> SearchResult:
        """Search under ``budget_ms``.

        Raises:
            InfeasibleBudgetError: at once, when no compilable subnet can meet the budget.
        """
        floor = self.constraint.check_budget(float(budget_ms))
        start = time.perf_counter()
        self._reset_counters()
        rng = np.random.default_rng(self.seed)
        p = self.params
        n_par, n_mut = p.n_parents, p.n_mutants
        pop = self._initial(rng, budget_ms, floor.genes)
        seen = [pop]
        history = np.empty(p.generations)
        gens = range(p.generations)
        if progress:
            from tqdm import tqdm

            gens = tqdm(gens, desc=f"search ≤ {budget_ms:g} ms", leave=False)
        for gen in gens:
            parents = pop.take(np.argsort(-pop.accuracy, kind="stable")[:n_par])
            history[gen] = parents.accuracy[0]
            # slots [0, n_mut) are mutants of parent pa, the rest crossovers of parents pa × pb (OFA)
            pa = rng.integers(n_par, size=p.population)
            pb = rng.integers(n_par, size=p.population)
            children = self._score(
                *self._redraw(
                    lambda slots: self._children(parents.genes, pa, pb, slots, n_mut, rng),
                    parents.take(pa),
                    budget_ms,
                )
            )
            seen.append(children)
            pop = Evaluated.concat([parents, children])
        return SearchResult(
            budget_ms=float(budget_ms),
            k_sigma=self.constraint.k_sigma,
            floor_ms=floor.bound_ms,
            best_history=history,
            population=pop,
            evaluated=Evaluated.concat(seen),
            evaluations=self._n_lat,
            accuracy_evaluations=self._n_acc,
            elapsed_s=time.perf_counter() - start,
            space=self.space,
        )
