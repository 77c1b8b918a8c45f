"""What a search returns: evaluated subnets as parallel arrays, the run's result, decoded candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ofa_hw.search.genes import GeneOps
from ofa_hw.space import Arch, SearchSpace


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
        cpu_s: CPU time of the run's thread (what the search costs, whatever else the machine runs).
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
    cpu_s: float = 0.0

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
