"""Schema of the ``search`` group: the latency-constrained evolutionary search and its verification."""

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class SearchConfig:
    """Attributes:
    name: The option's name.
    budget_ms: Latency budget; ``None`` = ``auto_budget_fraction`` of the way from the space's fastest
        to its slowest compilable subnet (as predicted), so the default works on any DPU.
    auto_budget_fraction: See ``budget_ms`` (0 = the floor, 1 = the slowest subnet).
    k_sigma: The constraint is ``predicted mean + k_sigma · σ ≤ budget`` (σ = predictor uncertainty).
    population, parent_ratio, mutation_ratio, mutate_prob, resolution_mutate_prob, generations:
        OFA's evolution hyper-parameters (defaults = OFA's).
    max_rounds: Bound on the redraws of every rejection-sampling loop (never loops forever).
    sample_batch: Random archs drawn per round when seeding the population.
    pareto: Also run the multi-objective (NSGA-II) search and write the accuracy-latency front.
    pareto_generations: Generations of the multi-objective run.
    top_k: Distinct best candidates deployed and measured.
    measure: Deploy and measure the top-K on the configured backend.
    runs: Profile-mode runs per measured candidate (``None`` = ``backend.runs``).
    refine_rounds: Extra search rounds after the first measurement: the measurements correct the
        predictor and the search runs again, until the measured best meets the budget within
        ``target_slack`` with a round hit rate of at least ``target_hit_rate``, or the rounds run out
        (0 = measure once).
    refit: Refit the predictor between rounds (``task=train`` on the store, which now holds the measured
        candidates as calibration subnets) before the measured correction; slower, off by default.
    target_slack: Largest accepted ``(budget − best measured) / budget``.
    target_hit_rate: Smallest accepted share of a round's top-K whose measured latency meets the budget.
    seed: Seed of the search (``None`` = the run's ``seed``).
    """

    name: str = MISSING
    budget_ms: float | None = None
    auto_budget_fraction: float = 0.5
    k_sigma: float = 2.0
    population: int = 100
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    resolution_mutate_prob: float = 0.5
    generations: int = 500
    max_rounds: int = 100
    sample_batch: int = 1000
    pareto: bool = True
    pareto_generations: int = 300
    top_k: int = 10
    measure: bool = True
    runs: int | None = None
    refine_rounds: int = 2
    refit: bool = False
    target_slack: float = 0.03
    target_hit_rate: float = 0.95
    seed: int | None = None
