"""The search stage of a run: budget → search (+ Pareto front) → deploy and measure → files + figures.

:func:`run_search_stage` is what ``ofa-hw task=search`` and the main pipeline call. It takes built
objects (space, predictor, accuracy model, a measurer) and the checked ``search`` settings (:class:`~ofa_hw.search.settings.SearchSettings`), writes
``candidates.csv``, ``pareto.csv``, ``pareto.png`` and ``pred_vs_measured.png`` into ``outdir`` and
returns the ``search`` section of ``results.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ofa_hw.errors import UserError
from ofa_hw.search.evolution import Candidate, EvolutionParams
from ofa_hw.search.floor import Floor, table_ceiling
from ofa_hw.search.latency import LatencyConstraint, block_table_of
from ofa_hw.search.pareto import ParetoFinder, ParetoResult
from ofa_hw.search.plots import plot_pareto, plot_predicted_vs_measured
from ofa_hw.search.settings import SearchSettings
from ofa_hw.search.verify import Measurement, Verified, net_name_for, search_and_verify, top_networks
from ofa_hw.space import SearchSpace

log = logging.getLogger(__name__)


def evolution_params(node: Any, generations: int | None = None) -> EvolutionParams:
    """:class:`EvolutionParams` from a ``search`` config node (bad values: a :class:`UserError`, one line each)."""
    settings = node if isinstance(node, SearchSettings) else SearchSettings.from_config(node)
    return settings.evolution(generations)


@dataclass(frozen=True)
class LatencyRange:
    """Predicted latency range of the compilable space: fastest (with ``k·σ``) and slowest subnet."""

    floor: Floor
    ceiling_ms: float

    def budget_at(self, fraction: float) -> float:
        """The budget ``fraction`` of the way from the floor's mean to the slowest subnet, never below
        the floor's ``mean + k·σ`` (so it is always feasible)."""
        budget = self.floor.mean_ms + fraction * (self.ceiling_ms - self.floor.mean_ms)
        return float(max(budget, self.floor.bound_ms))


def latency_range(latency: Any, k_sigma: float) -> LatencyRange:
    """The exact range of the predictor's table (needs a compiled table)."""
    table = block_table_of(latency)
    if table is None:
        raise UserError("the latency predictor exposes no compiled table: set search.budget_ms explicitly")
    return LatencyRange(LatencyConstraint(latency, k_sigma).floor(), table_ceiling(table).mean_ms)


def resolve_budget(settings: SearchSettings, rng: LatencyRange) -> tuple[float, str]:
    """The budget and where it came from (``config`` or ``auto``)."""
    if settings.budget_ms is not None:
        return float(settings.budget_ms), "config"
    return rng.budget_at(settings.auto_budget_fraction), "auto"


def _slack(budget_ms: float, measured: float | None) -> float | None:
    return None if measured is None else (budget_ms - measured) / budget_ms


def measurement_row(m: Measurement, rank: int, budget_ms: float) -> dict[str, Any]:
    c = m.candidate
    return {
        "round": m.round,
        "rank": rank,
        "arch_id": c.arch_id,
        "net_name": m.net_name,
        "accuracy": c.accuracy,
        "predicted_ms": c.predicted_ms,
        "std_ms": c.std_ms,
        "bound_ms": c.bound_ms,
        "measured_ms": m.measured_ms,
        "stands_for": m.stands_for,
        "meets_budget": m.meets(budget_ms),
        "slack": _slack(budget_ms, m.measured_ms),
        "error": m.error or "",
        "resolution": c.arch["r"],
        "arch": json.dumps(c.arch, separators=(",", ":")),
    }


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """A CSV of dict rows (columns from the first row)."""
    with open(path, "w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def best_section(m: Measurement | None, fallback: Candidate | None, budget_ms: float) -> dict[str, Any]:
    """``search.best`` of results.json."""
    cand = m.candidate if m is not None else fallback
    if cand is None:
        return {}
    measured = m.measured_ms if m is not None else None
    return {
        "arch": cand.arch,
        "arch_id": cand.arch_id,
        "net_name": m.net_name if m is not None else net_name_for(cand.arch_id),
        "accuracy": cand.accuracy,
        "predicted_ms": cand.predicted_ms,
        "std_ms": cand.std_ms,
        "bound_ms": cand.bound_ms,
        "measured_ms": measured,
        "slack": _slack(budget_ms, measured),
        "meets_budget": bool(m.meets(budget_ms)) if m is not None else None,
        "round": m.round if m is not None else 0,
        "stands_for": m.stands_for if m is not None else None,
    }


def run_search_stage(
    settings: SearchSettings,
    space: SearchSpace,
    latency: Any,
    accuracy: Any,
    measure: Callable[[Sequence[Candidate], int], list[Measurement]] | None,
    outdir: Path,
    seed: int = 0,
    where: str = "this DPU",
    progress: bool = True,
    refit: Callable[[Sequence[Measurement]], Any] | None = None,
    measured_on: str = "measured",
) -> dict[str, Any]:
    """Run the search stage configured by ``settings`` (the checked ``search`` settings) and write its files.

    Args:
        measure: Deploys and measures candidates (``None``, or ``settings.measure`` false, skips it).
        seed: Run seed, used when ``settings.seed`` is ``None``.
        where: Names the DPU in messages.
        refit: Refits the predictor on the measurements so far between refinement rounds (used when
            ``settings.refit``).
        measured_on: What measured the candidates, put on the plots (``measured on the simulator``).

    Returns:
        The ``search`` section of results.json.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    k = settings.k_sigma
    seed = settings.search_seed(seed)
    lat_range = latency_range(latency, k)
    budget, source = resolve_budget(settings, lat_range)
    params = settings.evolution()
    measure = measure if settings.measure else None
    refine_rounds = int(settings.refine_rounds)
    above_ceiling = budget >= lat_range.ceiling_ms
    if above_ceiling:
        # Every subnet fits: the most accurate one wins and cannot come closer to the budget, so
        # refinement rounds chasing the slack target would only repeat the search.
        log.warning(
            "search.budget_ms %.4g ms is above the slowest subnet of %s on %s (%.4g ms): every subnet "
            "fits, so the search returns the most accurate one and skips refinement rounds",
            budget,
            space.name,
            where,
            lat_range.ceiling_ms,
        )
        refine_rounds = 0

    start = time.perf_counter()
    verified: Verified = search_and_verify(
        space,
        latency,
        accuracy,
        budget,
        measure,
        params=params,
        k_sigma=k,
        seed=seed,
        top_k=int(settings.top_k),
        refine_rounds=refine_rounds,
        target_slack=float(settings.target_slack),
        target_hit_rate=float(settings.target_hit_rate),
        where=where,
        progress=progress,
        refit=refit if settings.refit else None,
    )
    verify_s = time.perf_counter() - start
    first = verified.rounds[0].result
    final = verified.final

    rows = []
    for r in verified.rounds:
        rows += [measurement_row(m, i, budget) for i, m in enumerate(r.measurements)]
    if not rows:  # not measured: list the predicted top-K
        rows = [
            measurement_row(Measurement(c, 0, net_name_for(c.arch_id), None, stands_for=n), i, budget)
            for i, (c, n) in enumerate(top_networks(space, first, settings.top_k))
        ]
    write_csv(outdir / "candidates.csv", rows)
    files = {"candidates_csv": "candidates.csv"}

    final_meas = [m for m in final.measurements if m.ok]
    section: dict[str, Any] = {
        "budget_ms": budget,
        "budget_source": source,
        "k_sigma": k,
        "floor_ms": lat_range.floor.bound_ms,
        "ceiling_ms": lat_range.ceiling_ms,
        "predictor": str(getattr(latency, "name", type(latency).__name__)),
        "accuracy_model": {
            "name": getattr(accuracy, "name", type(accuracy).__name__),
            "label": getattr(accuracy, "label", "accuracy"),
            "is_proxy": bool(getattr(accuracy, "is_proxy", False)),
        },
        "generations": params.generations,
        "population": params.population,
        "evaluations": first.evaluations,
        "search_s": first.elapsed_s,
        "seed": seed,
        "top_k": int(settings.top_k),
        # The top-K are distinct networks to the DPU; each deployed one stands for this many searched
        # subnets (the same blocks in another order within a stage: same ops, same latency).
        "stands_for": [m.stands_for for m in final.measurements],
        "best": best_section(verified.best, first.best, budget),
        "hit_rate": verified.hit_rate if measure is not None else None,
        "measured": len([m for m in verified.measurements if m.ok]),
        "failed": len([m for m in verified.measurements if not m.ok]),
        "slack": {
            "mean": float(np.mean([_slack(budget, m.measured_ms) for m in final_meas]))
            if final_meas
            else None,
            "min": float(np.min([_slack(budget, m.measured_ms) for m in final_meas])) if final_meas else None,
            "max": float(np.max([_slack(budget, m.measured_ms) for m in final_meas])) if final_meas else None,
        },
        "rounds": [
            {
                "round": r.round,
                "hit_rate": r.hit_rate(budget) if r.measurements else None,
                "best_predicted_ms": r.result.best.predicted_ms,
                "best_measured_ms": (lambda b: b.measured_ms if b else None)(
                    max(
                        (m for m in r.measurements if m.meets(budget)),
                        key=lambda m: m.candidate.accuracy,
                        default=None,
                    )
                ),
                "correction_scale": r.correction.scale if r.correction else None,
                "correction_rel_sigma": r.correction.rel_sigma if r.correction else None,
                "search_s": r.result.elapsed_s,
            }
            for r in verified.rounds
        ],
        "stop_reason": (
            "budget above the space's ceiling: no refinement"
            if above_ceiling and measure is not None
            else verified.stop_reason
        ),
        "above_ceiling": above_ceiling,
        "verify_s": verify_s,
    }

    if settings.pareto:
        pareto: ParetoResult = ParetoFinder(
            space,
            LatencyConstraint(latency, k, where),
            accuracy,
            params=settings.evolution(settings.pareto_generations),
            seed=seed,
        ).run(
            None,
            progress=progress,
            include=np.concatenate([r.result.evaluated.genes for r in verified.rounds]),
        )
        f = pareto.front
        write_csv(
            outdir / "pareto.csv",
            [
                {
                    "arch_id": c.arch_id,
                    "accuracy": c.accuracy,
                    "predicted_ms": c.predicted_ms,
                    "std_ms": c.std_ms,
                    "bound_ms": c.bound_ms,
                    "within_budget": c.bound_ms <= budget,
                    "arch": json.dumps(c.arch, separators=(",", ":")),
                }
                for c in pareto.candidates()
            ],
        )
        top = list(final.measurements) or [
            Measurement(c, 0, "", None) for c, _ in top_networks(space, first, settings.top_k)
        ]
        plot_pareto(
            outdir / "pareto.png",
            f.mean_ms,
            f.accuracy,
            budget,
            getattr(accuracy, "label", "accuracy"),
            [m.candidate.predicted_ms for m in top],
            [m.candidate.accuracy for m in top],
            [m.measured_ms for m in top],
            title=f"{space.name} on {where}; {measured_on}",
            measured_on=measured_on,
        )
        files.update(pareto_csv="pareto.csv", pareto_png="pareto.png")
        section["pareto"] = {
            "points": len(f),
            "search_s": pareto.elapsed_s,
            "evaluations": pareto.evaluations,
            "generations": int(settings.pareto_generations),
        }

    measured = [m for m in verified.measurements if m.ok]
    if measured:
        plot_predicted_vs_measured(
            outdir / "pred_vs_measured.png",
            [m.candidate.predicted_ms for m in measured],
            [m.measured_ms for m in measured],
            budget,
            [m.candidate.std_ms for m in measured],
            title=f"top-{settings.top_k} per round, {where}; {measured_on}",
            measured_on=measured_on,
        )
        files["pred_vs_measured_png"] = "pred_vs_measured.png"
    section["files"] = files
    return section
