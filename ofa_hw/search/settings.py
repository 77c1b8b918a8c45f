"""The ``search`` settings as one typed, checked object, built once at the task boundary.

:class:`SearchSettings` has no defaults of its own: its values come from the ``search`` config group,
whose schema (:class:`ofa_hw.schemas.search.SearchConfig`) is the single source of the defaults. The
search stage (:mod:`ofa_hw.search.stage`) takes this object, never a raw Hydra node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ofa_hw.errors import UserError
from ofa_hw.search.evolution import EvolutionParams


@dataclass(frozen=True)
class SearchSettings:
    """Checked ``search`` settings (see :class:`ofa_hw.schemas.search.SearchConfig` for each field)."""

    name: str
    budget_ms: float | None
    auto_budget_fraction: float
    k_sigma: float
    population: int
    parent_ratio: float
    mutation_ratio: float
    mutate_prob: float
    resolution_mutate_prob: float
    generations: int
    max_rounds: int
    sample_batch: int
    pareto: bool
    pareto_generations: int
    top_k: int
    measure: bool
    runs: int | None
    refine_rounds: int
    refit: bool
    target_slack: float
    target_hit_rate: float
    seed: int | None

    @classmethod
    def from_config(cls, node: DictConfig | dict[str, Any]) -> SearchSettings:
        """The settings of a ``search`` node (or a plain dict with every field).

        Raises:
            UserError: one line per bad value, each naming its ``search.<field>``.
        """
        data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        assert isinstance(data, dict)
        values = {f.name: data[f.name] for f in fields(cls)}
        problems = _problems(values)
        if problems:
            raise UserError("\n".join(problems))
        return cls(**values)

    def evolution(self, generations: int | None = None) -> EvolutionParams:
        """OFA's evolution hyper-parameters (``generations`` overrides, e.g. for the Pareto run)."""
        return EvolutionParams(
            population=self.population,
            parent_ratio=self.parent_ratio,
            mutation_ratio=self.mutation_ratio,
            mutate_prob=self.mutate_prob,
            resolution_mutate_prob=self.resolution_mutate_prob,
            generations=self.generations if generations is None else generations,
            max_rounds=self.max_rounds,
            sample_batch=self.sample_batch,
        )

    def search_seed(self, run_seed: int) -> int:
        """The search's seed: ``search.seed``, else the run's."""
        return int(run_seed if self.seed is None else self.seed)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problems(v: dict[str, Any]) -> list[str]:
    """Every bad value of ``v`` (a dict of :class:`SearchSettings` fields), one line each."""
    out: list[str] = []
    budget = v["budget_ms"]
    if budget is not None and not (_number(budget) and budget > 0):
        out.append(f"search.budget_ms must be a positive number of ms, got {budget}")
    if not (_number(v["k_sigma"]) and v["k_sigma"] >= 0):
        out.append(f"search.k_sigma must be >= 0, got {v['k_sigma']}")
    if not 0.0 <= v["auto_budget_fraction"] <= 1.0:
        out.append(f"search.auto_budget_fraction must be between 0 and 1, got {v['auto_budget_fraction']}")
    try:
        EvolutionParams(**{k: v[k] for k in EvolutionParams.__dataclass_fields__})
    except ValueError as exc:
        out.append(str(exc))
    population = v["population"] if v["population"] >= 2 else max(v["top_k"], 1)  # reported above
    if not 1 <= v["top_k"] <= population:
        out.append(f"search.top_k must be between 1 and search.population ({population}), got {v['top_k']}")
    if v["pareto"] and v["pareto_generations"] < 1:
        out.append(f"search.pareto_generations must be >= 1, got {v['pareto_generations']}")
    if v["refine_rounds"] < 0:
        out.append(f"search.refine_rounds must be >= 0, got {v['refine_rounds']}")
    if not 0.0 <= v["target_slack"] < 1.0:
        out.append(f"search.target_slack must be in [0, 1), got {v['target_slack']}")
    if not 0.0 <= v["target_hit_rate"] <= 1.0:
        out.append(f"search.target_hit_rate must be between 0 and 1, got {v['target_hit_rate']}")
    if v["runs"] is not None and v["runs"] < 1:
        out.append(f"search.runs must be >= 1 (or null = backend.runs), got {v['runs']}")
    if v["seed"] is not None and v["seed"] < 0:
        out.append(f"search.seed must be >= 0 (or null = the run's seed), got {v['seed']}")
    return out
