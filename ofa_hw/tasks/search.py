"""``ofa-hw task=search`` (its benchmark, ``task=bench bench=search``, is :mod:`ofa_hw.bench.search`).

``task=search``: the latency-constrained search on the configured DPU — predictor (from the store's
LUT), accuracy model, search under ``search.budget_ms`` (+ the Pareto front), deployment and measurement
of the top-K on the configured backend, refinement rounds. Writes ``results.json`` (``search.*``,
``dpu.*``, ``timings_s``), ``candidates.csv``, ``pareto.csv``, ``pareto.png``, ``pred_vs_measured.png``.

``bench=search``: the speed of the default 100 × 500 run (and of OFA's own ``EvolutionFinder`` with the
same predictor and accuracy model, through OFA's interfaces) and a budget sweep over the space's
latency range with deployed verification (``rows``: ``budget_ms``, ``best_predicted_ms``,
``best_measured_ms``, ``hit_rate``, ...). See ``experiments/search_benchmark`` and
``experiments/budget_sweep``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ofa_hw.errors import FailedWorkError
from ofa_hw.search.floor import Floor
from ofa_hw.search.latency import InfeasibleBudgetError
from ofa_hw.search.settings import SearchSettings
from ofa_hw.search.stage import run_search_stage
from ofa_hw.search.verify import BackendMeasurer
from ofa_hw.tasks import (
    job_label,
    make_backend,
    make_dpu,
    make_space,
    measured_on,
    open_store,
    output_dir,
    outputs_line,
    write_results,
)

log = logging.getLogger(__name__)


@dataclass
class SearchContext:
    """Everything the search needs, built from the config."""

    space: Any
    dpu: Any
    predictor: Any
    accuracy: Any
    timings_s: dict[str, float]

    @property
    def where(self) -> str:
        return f"{self.dpu.name} (predictor {getattr(self.predictor, 'name', '?')})"


def fitted_predictor(cfg: DictConfig) -> Any:
    """The fitted latency predictor of ``cfg``'s space and DPU (the train task's, cached in the workspace)."""
    from ofa_hw.tasks.train import predictor_for_config

    return predictor_for_config(cfg)


def build_context(cfg: DictConfig, predictor: Any = None) -> SearchContext:
    """Space, DPU, latency predictor (``predictor``, else the train task's fitted one) and accuracy model."""
    from ofa_hw.accuracy import make_accuracy_model

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    space, dpu = make_space(cfg), make_dpu(cfg)
    if predictor is None:
        predictor = fitted_predictor(cfg)
    timings["predictor_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    accuracy = make_accuracy_model(cfg, space)
    timings["accuracy_s"] = time.perf_counter() - t0
    return SearchContext(space, dpu, predictor, accuracy, timings)


def make_measurer(
    cfg: DictConfig, space: Any, dpu: Any, predictor: Any, store: Any, progress: bool = True
) -> BackendMeasurer:
    """Deploys candidates on ``cfg``'s backend through ``store``, measuring what ``predictor`` predicts."""
    runs = cfg.search.runs if cfg.search.runs is not None else cfg.backend.runs
    return BackendMeasurer(
        space,
        make_backend(cfg, dpu),
        store,
        runs=int(runs),
        seed=int(cfg.seed),
        target=getattr(predictor, "target", "profile"),
        progress=progress,
    )


#: A configured budget below this share of the current LUT's fastest subnet is rejected before any stage
#: runs; between it and the predictor's exact floor the search itself rejects it (the floor depends on
#: the predictor, which is trained later, so the early check leaves it this margin).
EARLY_FLOOR_SHARE = 0.95


def check_budget_against_lut(cfg: DictConfig) -> None:
    """Reject a ``search.budget_ms`` clearly below the fastest subnet, before the LUT and training stages.

    "Clearly" is below :data:`EARLY_FLOOR_SHARE` of the fastest compilable subnet by the current LUT of
    the configured space and DPU (``lut.path``, the workspace's or the shipped one); without a current
    LUT the search checks the exact floor. Called by :func:`ofa_hw.tasks.settings.check_settings`.

    Raises:
        InfeasibleBudgetError: with the LUT's floor.
    """
    budget = cfg.search.budget_ms
    if budget is None:
        return  # the automatic budget lies inside the space's range by construction
    found = current_lut_floor(cfg)
    if found is not None and float(budget) < EARLY_FLOOR_SHARE * found[0].mean_ms:
        floor, path = found
        raise InfeasibleBudgetError(float(budget), floor, 0.0, f"{cfg.dpu.name} (by the LUT {path.name})")


def current_lut_floor(cfg: DictConfig) -> tuple[Floor, Path] | None:
    """``(the fastest subnet by the LUT, LUT path)`` of a LUT the LUT stage would reuse, else ``None``."""
    from ofa_hw.lut.manage import SHIPPED_DIR, find_luts
    from ofa_hw.lut.table import LatencyTable, LutError
    from ofa_hw.search.floor import table_floor

    space, dpu = make_space(cfg), make_dpu(cfg)
    if cfg.lut.path:
        paths = [Path(str(cfg.lut.path)).expanduser()]
    elif cfg.lut.reuse:
        shipped = Path(str(cfg.lut.shipped_dir)).expanduser() if cfg.lut.shipped_dir else SHIPPED_DIR
        paths, _ = find_luts(
            space, dpu, [Path(str(cfg.lut.dir)).expanduser(), shipped], str(cfg.backend.name)
        )
    else:
        return None
    for path in paths:
        try:
            table = LatencyTable.load(path, space=space, dpu_fingerprint=dpu.fingerprint())
        except (LutError, OSError):
            continue  # the LUT stage reports what is wrong with it
        floor = table_floor(table.to_block_table(space), 0.0)
        if np.isfinite(floor.mean_ms):
            return floor, path
    return None


def dpu_section(dpu: Any) -> dict[str, Any]:
    return {"preset": dpu.name, "fingerprint": dpu.fingerprint()}


def run(cfg: DictConfig) -> dict:
    """``ofa-hw task=search``."""
    from ofa_hw.provenance import measurement_basis
    from ofa_hw.tasks.train import train_for_config, write_artefacts

    settings = SearchSettings.from_config(cfg.search)  # checked before any work by the CLI
    outdir = output_dir()
    t0 = time.perf_counter()
    trained = train_for_config(cfg)
    ctx = build_context(cfg, trained.predictor)
    ctx.timings_s["predictor_s"] = time.perf_counter() - t0
    predictor_section = {
        **trained.section,
        **write_artefacts(trained, outdir, measured_on(str(cfg.backend.name))),
    }
    t0 = time.perf_counter()
    with open_store(cfg) as store:
        measure = make_measurer(cfg, ctx.space, ctx.dpu, ctx.predictor, store)
        section = run_search_stage(
            settings,
            ctx.space,
            ctx.predictor,
            ctx.accuracy,
            measure,
            outdir,
            seed=int(cfg.seed),
            where=ctx.where,
            measured_on=measured_on(str(cfg.backend.name)),
            refit=lambda meas: (
                train_for_config(cfg, extra_calibration=[m.candidate.arch for m in meas]).predictor
            ),
        )
    timings = {**ctx.timings_s, "search_stage_s": time.perf_counter() - t0}
    results = {
        "search": section,
        "predictor": predictor_section,
        "dpu": dpu_section(ctx.dpu),
        "basis": measurement_basis(make_backend(cfg, ctx.dpu), ctx.dpu),
        "timings_s": timings,
    }
    write_results(results, outdir)
    print(summary(section, job=job_label()))
    print(
        outputs_line(
            outdir,
            [
                "results.json",
                "candidates.csv",
                "pareto.csv",
                "pareto.png",
                "pred_vs_measured.png",
                "predictor.json",
            ],
        )
    )
    if section.get("best", {}).get("measured_ms") is None and section.get("hit_rate") is not None:
        raise FailedWorkError(
            f"no candidate could be measured on {cfg.backend.name} ({section['failed']} "
            f"deployment(s) failed; candidates.csv in {outdir} has the errors)"
        )
    return results


def summary(section: dict[str, Any], job: str = "") -> str:
    """A few lines for the terminal (``job``: the multirun job they belong to)."""
    best = section["best"]
    acc = section["accuracy_model"]
    lines = [f"{job}:"] if job else []
    lines += [
        f"search: budget {section['budget_ms']:.3f} ms ({section['budget_source']}), k_sigma {section['k_sigma']:g}, "
        f"space range {section['floor_ms']:.3f}..{section['ceiling_ms']:.3f} ms; "
        f"{section['evaluations']} evaluations in {section['search_s']:.2f} s",
        f"  best: {acc['label']} {best['accuracy']:.2f}, predicted {best['predicted_ms']:.3f} ± {best['std_ms']:.3f} ms"
        + (
            f", measured {best['measured_ms']:.3f} ms (slack {best['slack']:.1%})"
            if best.get("measured_ms") is not None
            else ""
        ),
    ]
    if section.get("hit_rate") is not None:
        lines.append(
            f"  hit rate {section['hit_rate']:.0%} of top-{section['top_k']} "
            f"({len(section['rounds'])} round(s): {section['stop_reason'][:80]})"
        )
    return "\n".join(lines)
