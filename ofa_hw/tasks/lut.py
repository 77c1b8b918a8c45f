"""``ofa-hw task=lut``: the LUT of the configured space on the configured DPU, reused or (re)built.

Writes into Hydra's run directory: a copy of the LUT CSV + JSON, its OFA YAML export, the coverage
(``lut_coverage.csv``, ``lut_coverage.png``), the validation rows (``lut_validation.csv``) and
``results.json`` with ``lut.path``, ``lut.keys``, ``lut.coverage``, ``lut.probe_subnets`` (the table
aggregates them), ``lut.profiled_subnets`` (probes + validation subnets),
``lut.validation_mape`` (fractions), ``lut.plan``, ``lut.estimate.*`` (the cost
announced before profiling: ``host_s``, ``board_s``, ``wall_s``), ``lut.heldout_mape`` (budget plan),
``dpu.*`` and ``timings_s``. ``lut.dry_run=true`` prints the plan's cost and writes only ``lut.plan`` and
``lut.estimate``.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from ofa_hw.lut.manage import LutResult, ensure_lut, planned_cost
from ofa_hw.tasks import open_store, output_dir, write_results
from ofa_hw.tasks.run import RunObjects

log = logging.getLogger(__name__)


def granularity_of(cfg: DictConfig) -> str:
    """``lut.granularity`` resolved for the configured backend and toolchain; ``node`` on VART makes the
    backend compile a debug-mode xmodel and trace it with ``--fine_grained`` (``backend.vitis.fine_grained``)."""
    from ofa_hw.lut.granularity import resolve

    vitis = cfg.backend.get("vitis") or {}
    toolchain = str(vitis.get("toolchain") or cfg.backend.get("name"))
    granularity = resolve(cfg.lut.get("granularity"), str(cfg.backend.name), toolchain)
    if granularity == "node" and cfg.backend.name == "vitis_vart":
        cfg.backend.vitis.fine_grained = True
    return granularity


def lut_for_config(cfg: DictConfig, rundir=None, run: RunObjects | None = None) -> LutResult:
    """The LUT of ``cfg``'s space and DPU (for other tasks, e.g. the pipeline), per ``cfg.lut``.

    ``run``: the run's objects when the caller built them (else built here from ``cfg``). The granularity
    is resolved before the run's backend is first built (it may switch the backend's tracing mode).
    """
    from ofa_hw.lut.build import check_dpu_only

    run = RunObjects.build(cfg) if run is None else run
    space, dpu = run.space, run.dpu
    check_dpu_only(space, dpu)
    granularity = granularity_of(cfg)
    return ensure_lut(
        space,
        dpu,
        run.lut,
        backend=lambda: run.backend,
        store=lambda: open_store(cfg),
        runs=int(cfg.backend.runs),
        rundir=rundir,
        backend_name=str(cfg.backend.name),
        new_predictor=_new_predictor(cfg, space, dpu),
        granularity=granularity,
    )


def _new_predictor(cfg: DictConfig, space, dpu):
    """Unfitted predictors of the configured model (``predictor.file`` ignored): the budget plan refits it."""
    from hydra.utils import instantiate

    from ofa_hw.predictor import LatencyPredictor

    return lambda: LatencyPredictor(instantiate(cfg.predictor.model), space, dpu)


def dry_run(cfg: DictConfig) -> dict:
    """``lut.dry_run=true``: say what building the LUT would profile and cost; profile nothing."""
    from hydra.utils import get_class

    run = RunObjects.build(cfg)
    space, dpu = run.space, run.dpu
    granularity = granularity_of(cfg)
    # The backend object only for its identity and parallelism (name, toolchain, build jobs, boards):
    # built without make_backend's checks, since a dry run touches no container and no board.
    backend_class: Any = get_class(cfg.backend._target_)
    identity = lambda: backend_class.from_config(cfg.backend, dpu)  # noqa: E731
    plan, cost, reused = planned_cost(
        space,
        dpu,
        run.lut,
        backend=identity,
        store=lambda: open_store(cfg),
        runs=int(cfg.backend.runs),
        backend_name=str(cfg.backend.name),
        granularity=granularity,
    )
    if reused is not None:
        print(f"LUT plan {plan}: nothing to profile, {reused} would be used")
    else:
        print(f"LUT plan {plan}: {cost.line()}")
    return {
        "lut": {
            "plan": plan,
            "granularity": granularity,
            "estimate": cost.to_dict(),
            "reuse": str(reused) if reused else None,
        },
        "dpu": {"preset": dpu.name, "fingerprint": dpu.fingerprint()},
    }


def _pct(value) -> str:
    return f"{value:.2%}" if value is not None else "n/a"


def run(cfg: DictConfig) -> dict:
    outdir = output_dir()
    if cfg.lut.get("dry_run"):
        results = dry_run(cfg)
        write_results(results, outdir)
        return results
    run_objects = RunObjects.build(cfg)
    result = lut_for_config(cfg, rundir=outdir, run=run_objects)
    summary = result.summary()
    cov = result.coverage
    mape = summary["validation_mape"]
    print(
        f"LUT {result.source}: {result.path} (granularity {summary['granularity']})\n"
        f"  keys {summary['keys']}, coverage {cov['fraction']:.1%} of {cov['compilable']} compilable keys "
        f"({cov['uncompilable']} uncompilable), {summary['probe_subnets']} probe subnets\n"
        f"  validation: LUT sum vs measured on {summary['validation_subnets']} subnets, MAPE "
        + (f"{mape:.2%}" if mape is not None else "n/a")
        + (
            f"\n  budget plan: held-out MAPE {_pct(summary['heldout_mape'])} (newest batch, predicted before it was trained on)"
            if summary["plan"] == "budget"
            else ""
        )
        + (
            f"\n  overhead {summary['overhead_ms']:.3f} ms fitted on whole subnets timed in normal mode "
            "(network latency = LUT sum + overhead)"
            if summary.get("overhead_ms") is not None
            else ""
        )
        + f"\n  wall time {result.timings_s['total_s']:.1f} s"
    )
    dpu = run_objects.dpu
    results = {
        "lut": summary,
        "dpu": {"preset": dpu.name, "fingerprint": dpu.fingerprint()},
        "timings_s": result.timings_s,
    }
    write_results(results, outdir)
    return results
