"""``ofa-hw task=train``: fit the configured latency predictor on the store/LUT and score it on held-out nets.

Data, all for the configured space on the configured DPU (fingerprint) and backend:

* training rows: the LUT's per-key statistics (``predictor.source=lut``, default) or the LUT's probe
  profiles from the store (``predictor.source=store``, and always after a ``lut.plan=budget`` LUT, whose
  few probes measured only part of the keys);
* held-out subnets: ``predictor.eval_subnets`` random compilable subnets over all resolutions (seeded),
  profiled on the backend unless the store has them; used for scoring only;
* every other measured non-probe subnet (the LUT's validation subnets, deployed search candidates,
  topped up to ``predictor.calib_subnets``): fits the per-network overhead and calibrates the std.

Writes into Hydra's run directory ``predictor.json`` (the fitted predictor), ``predictor_eval.csv``,
``predictor_scatter.png`` and ``results.json`` with ``predictor.*`` (RMSE, MAPE, ±1/5/10 % accuracy,
Kendall τ, Spearman ρ, 2σ coverage; ``predictor.e2e.*`` too when end-to-end times exist).
A predictor fitted on exactly the same data and config is reused from ``<workspace>/predictors/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ofa_hw.errors import UserError
from ofa_hw.tasks import (
    make_dpu,
    make_space,
    measured_on,
    open_store,
    output_dir,
    outputs_line,
    workspace,
    write_results,
)

log = logging.getLogger(__name__)

#: Net-name prefix of the LUT's probe subnets (their blocks are the LUT; they are never held out).
PROBE_PREFIX = "probe_"


@dataclass
class TrainResult:
    """A fitted predictor and how it scores.

    Attributes:
        predictor: The fitted :class:`~ofa_hw.predictor.LatencyPredictor`.
        path: Its file (in the workspace cache, or ``None`` when caching is off).
        section: The ``predictor.*`` figures for ``results.json``.
        eval_frame: One row per held-out subnet (``name, r, measured_ms, predicted_ms, std_ms`` per target).
        timings_s: Wall time per step.
    """

    predictor: Any
    path: Path | None
    section: dict[str, Any]
    eval_frame: pd.DataFrame
    timings_s: dict[str, float] = field(default_factory=dict)


def _sample(space: Any, dpu: Any, n: int, seed: int) -> list[Any]:
    from ofa_hw.lut import dpu_compile_check
    from ofa_hw.predictor.data import sample_compilable

    return sample_compilable(space, np.random.default_rng(seed), n, dpu_compile_check(dpu))


#: Seed offsets of the held-out and the calibration samples (distinct draws from the run's seed).
HELDOUT_SEED, CALIB_SEED = 7919, 104729


def _pick(runs: list[Any], n_runs: int, seed: int) -> Any:
    """One measurement of a network: the one made as this run would make it (same ``runs`` and ``seed``),
    else the oldest; never "the most recent", which depends on what else ran in the workspace."""
    return min(runs, key=lambda r: (r.runs != n_runs or r.seed != seed, r.id))


def _measured_nets(
    cfg: DictConfig,
    space: Any,
    dpu: Any,
    budget: bool = False,
    extra: list[Any] | None = None,
    backend: Any = None,
) -> tuple[list[Any], list[Any], list[Any]]:
    """``(probe runs, calibration runs, held-out runs)`` of this space/DPU/backend, one per network.

    Both sets are fixed by the run's seed, never by what else the store holds (a rerun into a workspace
    with more measurements gives the same figures): held-out subnets are ``predictor.eval_subnets``
    random compilable subnets, calibration subnets ``predictor.calib_subnets`` others, plus ``extra``
    (archs measured earlier in this run, e.g. deployed candidates when the search refits). Missing ones
    are profiled first, except after a budget-plan LUT (``budget``): its ``lut.max_subnets`` is the whole
    board budget, so only what the store already holds is used and the held-out error is the budget plan's.
    ``backend``: a factory of the run's backend (called only when something must be profiled).
    """
    from ofa_hw.backends.base import ProfileJob
    from ofa_hw.store import profile_jobs
    from ofa_hw.tasks import make_backend

    pcfg, seed, runs = cfg.predictor, int(cfg.seed), int(cfg.backend.runs)
    n_eval, n_calib = int(pcfg.eval_subnets), int(pcfg.calib_subnets)
    if n_eval < 0 or n_calib < 0:
        raise UserError("predictor.eval_subnets and predictor.calib_subnets must be >= 0")
    heldout = _sample(space, dpu, n_eval, seed + HELDOUT_SEED) if n_eval else []
    heldout_ids = {space.arch_id(a) for a in heldout}
    sampled = _sample(space, dpu, n_calib, seed + CALIB_SEED) if n_calib else []
    calib_archs = [a for a in sampled if space.arch_id(a) not in heldout_ids]
    calib_ids = {space.arch_id(a) for a in calib_archs}
    calib_ids |= {space.arch_id(a) for a in extra or []} - heldout_ids
    with open_store(cfg) as store:
        stored = store.runs(
            backend=str(cfg.backend.name), dpu_fingerprint=dpu.fingerprint(), space=space.name
        )
        seen = {r.arch_id for r in stored if r.total_ms is not None}
        jobs = [
            ProfileJob.create(space, a, f"heldout_{i}", runs, seed)
            for i, a in enumerate(heldout)
            if space.arch_id(a) not in seen
        ] + [
            ProfileJob.create(space, a, f"calib_{i}", runs, seed)
            for i, a in enumerate(calib_archs)
            if space.arch_id(a) not in seen
        ]
        if jobs and budget:
            log.info(
                "lut.plan=budget: %d held-out/calibration subnet(s) not profiled (board budget); "
                "the held-out error is the budget plan's",
                len(jobs),
            )
        elif jobs:
            from ofa_hw.lut.cost import MeteredBackend, estimate

            desc = "predictor held-out/calibration subnets"
            backend = make_backend(cfg, dpu) if backend is None else backend()
            cost = estimate(backend, store, len(jobs))
            print(f"{desc}: {cost.line()}", flush=True)  # the cost, before any work
            with MeteredBackend(backend, cost, desc=desc) as metered:
                profile_jobs(cast(Any, metered), store, jobs, progress=False)  # a delegating proxy
            stored = store.runs(
                backend=str(cfg.backend.name), dpu_fingerprint=dpu.fingerprint(), space=space.name
            )
    by_arch: dict[str, list[Any]] = {}
    for run in stored:
        if run.total_ms is not None:
            by_arch.setdefault(run.arch_id, []).append(run)
    probes = sorted(
        (r for r in stored if r.total_ms is not None and r.net_name.startswith(PROBE_PREFIX)),
        key=lambda r: r.id,
    )
    latest_probe: dict[str, Any] = {}
    for run in probes:  # the LUT's probes: one per network (as before: the most recent probe run)
        latest_probe[run.arch_id] = run
    evaluation = [_pick(by_arch[i], runs, seed) for i in sorted(heldout_ids) if i in by_arch]
    calibration = [_pick(by_arch[i], runs, seed) for i in sorted(calib_ids) if i in by_arch]
    return sorted(latest_probe.values(), key=lambda r: r.arch_id), calibration, evaluation


def _net(run: Any, space: Any) -> Any:
    from ofa_hw.predictor import NetMeasurement

    return NetMeasurement(
        name=f"{run.net_name}#{run.id}",
        arch=space.validate(run.arch),
        total_ms=float(run.total_ms),
        e2e_ms=float(run.e2e_ms) if run.e2e_ms is not None else None,
    )


def _cache_key(
    cfg: DictConfig,
    lut_stem: str,
    calib: list[Any],
    probes: list[Any],
    space: Any,
    dpu: Any,
    from_store: bool = False,
) -> str:
    import ofa_hw
    from ofa_hw.predictor.persist import space_fingerprint

    ident = {
        "predictor": OmegaConf.to_container(cfg.predictor, resolve=True),
        "lut": lut_stem,
        "calibration": sorted(r.job_key for r in calib),
        "probes": sorted(r.job_key for r in probes) if from_store else [],
        "space": space_fingerprint(space),
        "dpu": dpu.fingerprint(),
        "version": ofa_hw.__version__,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_for_config(
    cfg: DictConfig,
    lut: Any = None,
    extra_calibration: list[Any] | None = None,
    run: Any = None,
) -> TrainResult:
    """Fit (or reuse) ``cfg.predictor`` for ``cfg``'s space and DPU and score it on held-out subnets.

    Args:
        cfg: The root config.
        lut: A :class:`~ofa_hw.lut.manage.LutResult` already at hand (else found/built per ``cfg.lut``).
        extra_calibration: Archs measured earlier in this run to add to the calibration subnets (the
            search's refit between refinement rounds).
        run: The run's :class:`~ofa_hw.tasks.run.RunObjects` when the caller built them (else built here).
    """
    from ofa_hw.predictor import LatencyPredictor, make_predictor
    from ofa_hw.tasks.run import RunObjects

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    run = RunObjects.build(cfg) if run is None else run
    space, dpu = run.space, run.dpu
    pcfg = cfg.predictor
    if pcfg.source not in ("lut", "store"):
        raise UserError(f"predictor.source must be 'lut' or 'store', got {pcfg.source!r}")
    if lut is None:
        from ofa_hw.tasks.lut import lut_for_config

        lut = lut_for_config(cfg, run=run)
    timings["lut_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    # A budget-plan LUT holds only the keys its few probes measured: train on those probes' profiles
    # (one bootstrap group per subnet, so the uncertainty is calibrated out of bag), as source=store does.
    budget = lut.plan_kind == "budget"
    from_store = pcfg.source == "store" or budget
    probes, calib, evaluation = _measured_nets(
        cfg, space, dpu, budget=budget, extra=extra_calibration, backend=lambda: run.backend
    )
    calib_nets = [_net(r, space) for r in calib]
    timings["data_s"] = time.perf_counter() - t

    t = time.perf_counter()
    cached = False
    if pcfg.file:
        predictor, path = make_predictor(pcfg, space, dpu), Path(str(pcfg.file))
        cached = True
    else:
        key = _cache_key(cfg, lut.table.stem, calib, probes, space, dpu, from_store)
        path = workspace(cfg) / "predictors" / f"{space.name}-{dpu.name}-{pcfg.name}-{key}.json"
        if pcfg.cache and path.is_file():
            predictor, cached = LatencyPredictor.load(path, space, dpu), True
        else:
            data = _training_set(cfg, lut, probes, calib_nets, space, dpu, from_store)
            predictor = make_predictor(pcfg, space, dpu).fit(data)
            if pcfg.cache:
                predictor.save(path, extra={"config": OmegaConf.to_container(pcfg, resolve=True)})
            else:
                path = None
    timings["fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    predictor.compile()
    timings["compile_s"] = time.perf_counter() - t
    frame, section = _evaluate(predictor, [_net(r, space) for r in evaluation])
    section.update(
        {
            "name": predictor.name,
            "target": predictor.target,
            "source": str(pcfg.source),
            "lut_id": predictor.lut_id,
            "cached": cached,
            "calibration_subnets": len(calib),
            "eval_subnets": len(evaluation),
            # Which subnets each figure used: the overhead/σ calibration and the held-out scores.
            "calibration_arch_ids": [r.arch_id for r in calib],
            "eval_arch_ids": [r.arch_id for r in evaluation],
            "train_rows": predictor.info.get("train_rows"),
            "train_s": predictor.info.get("fit_s"),
            "uncertainty_scale": predictor.scale,
            "noise_rel": predictor.noise_rel,
            "min_latency_ms": predictor.min_latency_ms(),
        }
    )
    if budget:
        section["source"] = "store"
    section.update(_heldout(section, lut))
    timings["total_s"] = time.perf_counter() - t0
    return TrainResult(predictor, path, section, frame, timings)


def _heldout(section: dict[str, Any], lut: Any) -> dict[str, Any]:
    """``predictor.heldout_*``: the error on subnets the predictor did not train on, and what they were.

    The measured held-out subnets when there are any; after a budget plan without them, the plan's
    newest batch, predicted by the predictor fitted before that batch was used for training.
    """
    if section.get("mape") is not None:
        return {
            "heldout_mape": section["mape"],
            "heldout_subnets": section["eval_subnets"],
            "heldout_source": "random held-out subnets",
        }
    active = lut.active or {}
    if active.get("heldout_mape") is not None:
        return {
            "heldout_mape": active["heldout_mape"],
            "heldout_subnets": active["heldout_subnets"],
            "heldout_source": "budget plan: newest batch, predicted before it was trained on",
        }
    return {"heldout_mape": None, "heldout_subnets": 0, "heldout_source": None}


def _training_set(
    cfg: DictConfig,
    lut: Any,
    probes: list[Any],
    calib_nets: list[Any],
    space: Any,
    dpu: Any,
    from_store: bool = False,
) -> Any:
    from ofa_hw.predictor import TrainingSet

    if not from_store:
        return TrainingSet.from_lut(lut.table, space, nets=calib_nets)
    if not probes:
        raise UserError(
            f"predictor.source=store: the store holds no probe profiles for DPU {dpu.name} "
            f"({dpu.fingerprint()}); run ofa-hw task=lut first or use predictor.source=lut"
        )
    with open_store(cfg) as store:
        outcomes = store.outcomes(probes)
    data = TrainingSet.from_outcomes(space, dpu, outcomes)
    return TrainingSet(space, data.nets + tuple(calib_nets), lut_id=lut.table.stem)


def _evaluate(predictor: Any, nets: list[Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predicted vs measured on held-out nets, per latency kind the predictor and the data have."""
    from ofa_hw.predictor import latency_metrics

    frame = pd.DataFrame({"name": [n.name for n in nets], "r": [n.arch["r"] for n in nets]})
    section: dict[str, Any] = {}
    targets = [predictor.target] + [t for t in ("profile", "e2e") if t != predictor.target]
    for target in targets:
        measured = np.array(
            [n.latency(target) if n.latency(target) is not None else np.nan for n in nets], dtype=float
        )
        if target not in predictor.overheads or len(nets) < 2 or not np.isfinite(measured).all():
            continue
        mean, std = predictor.predict([n.arch for n in nets], target=target)
        frame[f"{target}_measured_ms"], frame[f"{target}_predicted_ms"], frame[f"{target}_std_ms"] = (
            measured,
            mean,
            std,
        )
        metrics = latency_metrics(measured, mean, std)
        if target == predictor.target:
            section.update(metrics)
        else:
            section[target] = metrics
    if not section:
        log.warning(
            "no measured held-out subnets in the store: predictor metrics on random subnets are not available"
        )
        section.update(
            dict.fromkeys(("mape", "rmse_ms", "acc1", "acc5", "acc10", "kendall_tau", "spearman_rho"))
        )
    return frame, section


def predictor_for_config(cfg: DictConfig, lut: Any = None) -> Any:
    """The fitted predictor of ``cfg`` (cached in the workspace; used by the search and the pipeline)."""
    return train_for_config(cfg, lut=lut).predictor


def write_artefacts(result: TrainResult, outdir: Path, measured_on: str = "measured") -> dict[str, Any]:
    """Copy the predictor file, write the evaluation CSV and scatter plot into ``outdir`` (``measured_on``:
    what measured the held-out subnets, e.g. the simulator, said on the plot)."""
    from ofa_hw.predictor.metrics import scatter_plot

    outdir.mkdir(parents=True, exist_ok=True)
    target = result.predictor.target
    dest = outdir / "predictor.json"
    if result.path is not None and Path(result.path).is_file():
        shutil.copyfile(result.path, dest)
    else:
        result.predictor.save(dest)
    files = {"path": str(dest), "file_kib": dest.stat().st_size / 1024.0}
    result.eval_frame.to_csv(outdir / "predictor_eval.csv", index=False)
    if f"{target}_measured_ms" in result.eval_frame:
        f = result.eval_frame
        m = result.section
        title = (
            f"{result.predictor.name} on {len(f)} held-out subnets: MAPE {m['mape']:.2%}, "
            f"τ {m.get('kendall_tau', float('nan')):.3f}"
        )
        scatter_plot(
            f[f"{target}_measured_ms"],
            f[f"{target}_predicted_ms"],
            outdir / "predictor_scatter.png",
            title=title,
            std=f[f"{target}_std_ms"],
            measured_on=measured_on,
        )
        files["scatter"] = str(outdir / "predictor_scatter.png")
    return files


def run(cfg: DictConfig) -> dict:
    """``ofa-hw task=train``."""
    outdir = output_dir()
    result = train_for_config(cfg)
    result.section.update(write_artefacts(result, outdir, measured_on(str(cfg.backend.name))))
    dpu = make_dpu(cfg)
    results = {
        "predictor": result.section,
        "dpu": {"preset": dpu.name, "fingerprint": dpu.fingerprint()},
        "timings_s": result.timings_s,
    }
    write_results(results, outdir)
    print(summary(result.section))
    print(
        outputs_line(
            outdir, ["predictor.json", "predictor_eval.csv", "predictor_scatter.png", "results.json"]
        )
    )
    return results


def summary(section: dict[str, Any]) -> str:
    """One or two lines for the terminal."""
    head = (
        f"predictor {section['name']} ({section['target']}, trained on {section['train_rows']} "
        f"{section['source']} rows{', cached' if section['cached'] else ''})"
    )
    if section.get("mape") is None:
        return head + ": no held-out subnets to score"
    return (
        head + f"\n  {section['eval_subnets']} held-out subnets: MAPE {section['mape']:.2%}, "
        f"±5 % {section['acc5']:.0%}, Kendall τ {section['kendall_tau']:.3f}, "
        f"RMSE {section['rmse_ms']:.4f} ms"
    )


def bench(cfg: DictConfig) -> dict:
    """``ofa-hw task=bench bench=predictor``: the predictor benchmark (:mod:`ofa_hw.bench.predictor`).

    ``bench.params.export=<dir>`` also copies the small result files there (the repository's
    ``experiments/predictor_benchmark``).
    """
    from ofa_hw.backends.base import ProfileJob
    from ofa_hw.bench.predictor import bench_params, export, run_benchmark, table_text
    from ofa_hw.store import profile_jobs
    from ofa_hw.tasks import make_backend

    raw = OmegaConf.to_container(cfg.bench.params, resolve=True)
    params = bench_params({str(k): v for k, v in raw.items()} if isinstance(raw, dict) else None)
    outdir = output_dir()
    space, dpu = make_space(cfg), make_dpu(cfg)
    runs, seed = int(cfg.backend.runs), int(cfg.seed)

    def measure(archs: list[Any], prefix: str, desc: str) -> list[Any]:
        jobs = [ProfileJob.create(space, a, f"{prefix}_{i}", runs, seed) for i, a in enumerate(archs)]
        with open_store(cfg) as store:
            outcomes = profile_jobs(make_backend(cfg, dpu), store, jobs, desc=desc)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise UserError(
                f"{len(failed)} benchmark subnet(s) failed to profile, e.g. "
                f"{failed[0].job.net_name}: {failed[0].error}"
            )
        return outcomes

    results = run_benchmark(
        space, dpu, measure, params, outdir, seed=seed, runs=runs, backend=str(cfg.backend.name)
    )
    write_results(results, outdir)
    if params["export"]:
        export(outdir, Path(str(params["export"])))
    print(table_text(results))
    return results
