"""Find, reuse, regenerate: the LUT a (space, DPU configuration) should use.

A LUT is bound to the DPU fingerprint. :func:`ensure_lut` reuses a LUT whose fingerprint matches
(the workspace's ``lut/`` first, then the shipped ``lut/``); when only LUTs of the same preset with
another fingerprint exist, the DPU config changed since they were built: it regenerates (default) or
stops with :class:`LutStaleError` naming what changed (``lut.regenerate=false``). Building plans the
probes, profiles them through the store (so a killed build resumes), aggregates, validates and saves.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd

import ofa_hw
from ofa_hw.backends.base import Backend, ProfileJob
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut import granular_build
from ofa_hw.lut.active import active_settings, default_predictor, run_active
from ofa_hw.lut.build import build_lut, validate_lut
from ofa_hw.lut.cost import (
    CostEstimate,
    MeteredBackend,
    announce,
    budget_plan_cost,
    estimate,
    full_plan_cost,
)
from ofa_hw.lut.plan import (
    ProbePlan,
    coverage_frame,
    dpu_compile_check,
    plan_probes,
    plot_coverage,
    uncompilable_cells,
)
from ofa_hw.lut.table import LatencyTable, LutError, dpu_label
from ofa_hw.sim.version import stale_reason
from ofa_hw.space import SearchSpace
from ofa_hw.store import Store, profile_jobs

log = logging.getLogger(__name__)


def _shipped_dir() -> Path:
    """The shipped LUTs: ``lut/`` next to the package in a source checkout (editable install), else the
    copy a wheel installs under ``<prefix>/share/ofa_hw/lut`` (setup.cfg ``data_files``)."""
    checkout = Path(ofa_hw.__file__).resolve().parent.parent / "lut"
    installed = Path(sys.prefix) / "share" / "ofa_hw" / "lut"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


#: Where ``task=lut`` looks for a shipped LUT of the configured fingerprint before building one.
SHIPPED_DIR = _shipped_dir()


class LutStaleError(LutError):
    """The only LUTs of this space and DPU preset were built for another DPU configuration."""


@dataclass(frozen=True)
class LutResult:
    """The LUT a run uses and how it got it.

    Attributes:
        table: The table.
        path: Its CSV file.
        source: ``given`` (``lut.path``), ``reused`` (matching fingerprint found) or ``built``.
        coverage: :meth:`LatencyTable.coverage` at the requested resolutions (without ``missing``).
        validation: Figures of the LUT-sum vs measured check (``mape`` fraction, ``subnets`` …).
        plan: The probe plan (``None`` when the LUT was reused or given).
        stale: LUTs of the same preset whose fingerprint no longer matches.
        timings_s: Wall time per step.
        estimate: The cost announced before profiling (``None`` when nothing was to be built).
    """

    table: LatencyTable
    path: Path
    source: str
    coverage: dict[str, Any]
    validation: dict[str, Any]
    plan: ProbePlan | None = None
    stale: tuple[Path, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    estimate: CostEstimate | None = None

    @property
    def plan_kind(self) -> str:
        """``full`` or ``budget``: how the table's probes were chosen (kept in its metadata)."""
        return str(self.table.meta.validation.get("plan", "full"))

    @property
    def active(self) -> dict[str, Any] | None:
        """The budget plan's figures (``lut.active``), ``None`` for a full plan."""
        return self.table.meta.validation.get("active")

    def summary(self) -> dict[str, Any]:
        """The ``lut.*`` figures of ``results.json``."""
        return {
            "path": str(self.path),
            "keys": len(self.table),
            "coverage": self.coverage["fraction"],
            "compilable_keys": self.coverage["compilable"],
            "uncompilable_keys": self.coverage["uncompilable"],
            # One name per figure: the probes the table aggregates, and every subnet profiled for the LUT
            # (probes + validation subnets).
            "probe_subnets": self.table.meta.profiled_subnets,
            "validation_mape": self.validation.get("mape"),
            "validation_max_ape": self.validation.get("max_ape"),
            "validation_subnets": self.validation.get("subnets", 0),
            "source": self.source,
            "fingerprint": self.table.meta.dpu_fingerprint,
            "provenance": self.table.meta.provenance,
            "stale": [str(p) for p in self.stale],
            # Board budget (issue 14): how the probes were chosen, how many subnets were measured, what
            # profiling them was estimated to cost up front, and the error on subnets not trained on.
            "plan": self.plan_kind,
            "profiled_subnets": self.table.meta.profiled_subnets + int(self.validation.get("subnets") or 0),
            "granularity": self.table.meta.validation.get("granularity", "node"),
            "overhead_ms": self.table.meta.validation.get("overhead_ms"),
            "validation_mape_lut_sum": self.validation.get("mape_sum"),
            "estimate": self.estimate.to_dict() if self.estimate is not None else None,
            "active": self.active,
            "heldout_mape": (self.active or {}).get("heldout_mape"),
        }


def find_luts(
    space: SearchSpace, dpu: DPUConfig, dirs: Sequence[Path], backend: str = "sim"
) -> tuple[list[Path], list[Path]]:
    """LUT CSVs in ``dirs`` for ``space`` and ``backend``: ``(matching fingerprint, same preset but other fingerprint)``.

    A matching LUT may carry another preset name (a renamed copy of the same configuration).
    """
    fp = dpu.fingerprint()

    def same_backend(path: Path) -> bool:
        label = path.stem[len(space.name) + 1 : path.stem.rindex("-")]
        return label.endswith(f".{backend}") if backend != "sim" else "." not in label

    matching: list[Path] = []
    stale: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            continue
        matching.extend(p for p in sorted(d.glob(f"{space.name}-*-{fp}.csv")) if same_backend(p))
        label = dpu_label(dpu.name, backend)
        stale.extend(p for p in sorted(d.glob(f"{space.name}-{label}-*.csv")) if not p.stem.endswith(fp))
    return matching, stale


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A recorded DPU configuration with the fields it predates at their defaults (what they meant then)."""
    defaults = {
        f.name: f.default for f in dataclasses.fields(DPUConfig) if f.default is not dataclasses.MISSING
    }
    return {**defaults, **{k: v for k, v in config.items() if v is not None or k not in defaults}}


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    skip = {"name", "calibrated_on"}
    old, new = _with_defaults(old), _with_defaults(new)
    return [k for k in sorted(set(old) | set(new)) if k not in skip and old.get(k) != new.get(k)]


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``freq_mhz 300.0 -> 200.0, arch B4096 -> B1024`` for the latency fields that really differ (a field
    an older record lacks counts as its default, so ``fm_keep_fraction None -> 0.5`` is no change)."""
    full_old, full_new = _with_defaults(old), _with_defaults(new)
    diffs = [f"{k} {full_old.get(k)!r} -> {full_new.get(k)!r}" for k in _changed_fields(old, new)]
    return ", ".join(diffs) if diffs else "model constants or toolchain"


#: ``lut.plan`` values; ``auto`` resolves per backend through :data:`AUTO_PLAN`.
PLANS = ("full", "budget")
#: ``lut.plan=auto``: the full coverage plan where probes cost milliseconds (the simulator, whose
#: shipped LUT is a full one), the budget plan wherever a probe costs container and board minutes.
AUTO_PLAN = {"sim": "full"}


def resolve_plan(lut_cfg: Any, backend_name: str) -> str:
    """``full`` or ``budget`` for ``lut.plan`` (``auto`` = :data:`AUTO_PLAN`, else ``budget``)."""
    plan = str(getattr(lut_cfg, "plan", None) or "auto")
    if plan == "auto":
        return AUTO_PLAN.get(backend_name, "budget")
    if plan not in PLANS:
        raise LutError(f"lut.plan must be one of auto, {', '.join(PLANS)}; got {plan!r}")
    return plan


def _reusable(
    space: SearchSpace,
    dpu: DPUConfig,
    lut_cfg: Any,
    resolutions: Sequence[int],
    backend_name: str,
    plan_kind: str,
    granularity: str = "node",
) -> tuple[tuple[Path, LatencyTable] | None, list[Path]]:
    """``((path, table) of a LUT to reuse, or None; stale LUTs)`` in the workspace's and the shipped ``lut/``."""
    fp = dpu.fingerprint()
    out_dir = Path(str(lut_cfg.dir)).expanduser()
    shipped = Path(str(lut_cfg.shipped_dir)).expanduser() if lut_cfg.shipped_dir else SHIPPED_DIR
    matching, stale = find_luts(space, dpu, [out_dir, shipped], backend_name)
    if lut_cfg.reuse:
        for path in list(matching):
            table = LatencyTable.load(path, space=space, dpu_fingerprint=fp)
            why = stale_reason(table.meta.toolchain)
            if why:  # same DPU, older simulator model: not reusable (issue 21)
                log.warning("LUT %s is stale: %s", path, why)
                stale.append(path)
                continue
            # A budget plan's partial table does not stand in for the full coverage a full plan asks for.
            partial = table.meta.validation.get("plan") == "budget"
            same = table.meta.validation.get("granularity", "node") == granularity
            if (
                same
                and set(resolutions) <= set(table.meta.resolutions)
                and not (plan_kind == "full" and partial)
            ):
                return (path, table), stale
    return None, stale


def planned_cost(
    space: SearchSpace,
    dpu: DPUConfig,
    lut_cfg: Any,
    backend: Callable[[], Backend],
    store: Callable[[], Store],
    runs: int,
    backend_name: str = "sim",
    granularity: str = "node",
) -> tuple[str, CostEstimate, Path | None]:
    """What :func:`ensure_lut` would profile, without profiling: ``(plan, cost, LUT it would reuse)``.

    A reusable LUT costs nothing (``cost.subnets == 0``); ``lut.path`` is never profiled either.
    """
    resolutions = tuple(sorted(int(r) for r in (lut_cfg.resolutions or space.resolutions)))
    plan_kind = resolve_plan(lut_cfg, backend_name)
    be = backend()
    if lut_cfg.path:
        return plan_kind, estimate(be, None, 0), Path(str(lut_cfg.path)).expanduser()
    found, _ = _reusable(space, dpu, lut_cfg, resolutions, backend_name, plan_kind, granularity)
    if found is not None:
        return plan_kind, estimate(be, None, 0, granularity=granularity), found[0]
    with store() as st:
        if granularity != "node":
            cost = granular_build.planned_cost(
                space, be, st, lut_cfg, resolutions, runs, granularity, plan_kind
            )
            return plan_kind, cost, None
        if plan_kind == "budget":
            return plan_kind, budget_plan_cost(be, st, space, active_settings(lut_cfg), runs), None
        plan = plan_probes(
            space,
            dpu_compile_check(dpu),
            resolutions=resolutions,
            coverage=int(lut_cfg.coverage),
            validation_subnets=int(lut_cfg.validation_subnets),
            seed=int(lut_cfg.seed),
        )
        seed = int(lut_cfg.seed)
        jobs = [ProfileJob.create(space, a, n, runs, seed) for a, n in zip(plan.probes, plan.probe_names())]
        jobs += [
            ProfileJob.create(space, a, n, runs, seed)
            for a, n in zip(plan.validation, plan.validation_names())
        ]
        return plan_kind, full_plan_cost(be, st, jobs, bool(lut_cfg.retry_failed)), None


def ensure_lut(
    space: SearchSpace,
    dpu: DPUConfig,
    lut_cfg: Any,
    backend: Callable[[], Backend],
    store: Callable[[], Store],
    runs: int,
    rundir: Path | None = None,
    backend_name: str = "sim",
    new_predictor: Callable[[], Any] | None = None,
    granularity: str = "node",
) -> LutResult:
    """The LUT of ``space`` on ``dpu``: given, reused or (re)built, per the ``lut`` config.

    Args:
        space: The search space.
        dpu: The configured DPU.
        lut_cfg: The ``lut`` settings (:class:`~ofa_hw.lut.settings.LutSettings`, built once by the task).
        backend: Factory of the profiling backend (called only when a build is needed).
        store: Factory of the measurement store (called only when a build is needed).
        runs: Profile-mode runs per probe.
        rundir: When given, the coverage CSV/PNG, validation CSV, OFA YAML and a copy of the LUT go here.
        backend_name: Name of the backend (``backend.name``): only LUTs measured on it are reused.
        new_predictor: Builds the unfitted predictor the budget plan refits after each batch
            (``lut.plan=budget``; default: :func:`default_predictor`).
        granularity: ``lut.granularity`` resolved (:mod:`ofa_hw.lut.granularity`): ``node`` builds from
            per-node profiles; ``block`` and ``network`` through :mod:`ofa_hw.lut.granular_build`.

    Raises:
        LutError: a given LUT does not fit the space or DPU.
        LutStaleError: only stale LUTs exist (or none) and ``lut.regenerate`` is false.
    """
    t0 = time.perf_counter()
    resolutions = tuple(sorted(int(r) for r in (lut_cfg.resolutions or space.resolutions)))
    fp = dpu.fingerprint()
    plan_kind = resolve_plan(lut_cfg, backend_name)
    if lut_cfg.path:
        path = Path(str(lut_cfg.path)).expanduser()
        table = LatencyTable.load(path, space=space, dpu_fingerprint=fp)
        if table.meta.backend != backend_name:
            log.warning(
                "LUT %s was measured on backend %s, the configured backend is %s",
                path,
                table.meta.backend,
                backend_name,
            )
        result = _reused(table, path, "given", space, resolutions)
        return _finish(result, rundir, t0, space, resolutions)

    out_dir = Path(str(lut_cfg.dir)).expanduser()
    shipped = Path(str(lut_cfg.shipped_dir)).expanduser() if lut_cfg.shipped_dir else SHIPPED_DIR
    found, stale = _reusable(space, dpu, lut_cfg, resolutions, backend_name, plan_kind, granularity)
    if found is not None:
        path, table = found
        log.info("reusing LUT %s (fingerprint %s matches)", path, fp)
        result = _reused(table, path, "reused", space, resolutions, tuple(stale))
        return _finish(result, rundir, t0, space, resolutions)
    if not lut_cfg.regenerate:
        if stale:
            # Name the stale LUT closest to the configured DPU, so the message shows the change the
            # user made rather than the difference to some other stale table in the workspace.
            new_cfg = dpu.to_dict()
            tables = {path: LatencyTable.load(path) for path in stale}
            path, old = min(
                tables.items(), key=lambda item: len(_changed_fields(item[1].meta.dpu_config, new_cfg))
            )
            raise LutStaleError(
                f"LUT {path} is stale: it was built for DPU fingerprint {old.meta.dpu_fingerprint}, the "
                f"configured {dpu.name} has {fp} ({describe_change(old.meta.dpu_config, new_cfg)}). "
                f"Rerun with lut.regenerate=true to rebuild it."
            )
        raise LutStaleError(
            f"no LUT of space '{space.name}' for DPU {dpu.name} (fingerprint {fp}) in {out_dir} or {shipped}, "
            f"and lut.regenerate=false; rerun with lut.regenerate=true to build one"
        )
    for path in stale:
        log.warning("LUT %s is stale (DPU fingerprint changed to %s); regenerating", path, fp)
    if granularity != "node":
        be, st = backend(), store()
        table, figures, cost, timings = granular_build.build(
            space, be, st, lut_cfg, resolutions, runs, granularity, plan_kind, new_predictor
        )
        path = table.save(out_dir)
        coverage = table.coverage(space, resolutions)
        result = LutResult(
            table, path, "built", _public(coverage), figures, None, timings_s=timings, estimate=cost
        )
    elif plan_kind == "budget":
        result = build_budget(space, backend(), store(), lut_cfg, resolutions, runs, out_dir, new_predictor)
    else:
        result = build(space, backend(), store(), lut_cfg, resolutions, runs, out_dir)
    return _finish(replace(result, stale=tuple(stale)), rundir, t0, space, resolutions)


def build(
    space: SearchSpace,
    backend: Backend,
    store: Store,
    lut_cfg: Any,
    resolutions: Sequence[int],
    runs: int,
    out_dir: Path,
) -> LutResult:
    """Plan, profile (through the store: resumable), aggregate, validate and save a LUT."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    plan = plan_probes(
        space,
        dpu_compile_check(backend.dpu),
        resolutions=resolutions,
        coverage=int(lut_cfg.coverage),
        validation_subnets=int(lut_cfg.validation_subnets),
        seed=int(lut_cfg.seed),
    )
    timings["plan_s"] = time.perf_counter() - t
    log.info(
        "LUT plan: %d probe subnets cover %d keys (%d uncompilable skipped) at %d resolutions; %d validation subnets",
        len(plan.probes),
        len(plan.keys),
        len(plan.uncompilable),
        len(plan.resolutions),
        len(plan.validation),
    )
    seed, retry = int(lut_cfg.seed), bool(lut_cfg.retry_failed)
    t = time.perf_counter()
    probe_jobs = [ProfileJob.create(space, a, n, runs, seed) for a, n in zip(plan.probes, plan.probe_names())]
    val_jobs = [
        ProfileJob.create(space, a, n, runs, seed) for a, n in zip(plan.validation, plan.validation_names())
    ]
    cost = full_plan_cost(backend, store, probe_jobs + val_jobs, retry)
    announce("full", cost)
    with MeteredBackend(backend, cost, desc=f"LUT probes {backend.dpu.name}") as metered:
        proxy = cast(Backend, metered)  # delegates the backend's identity and profile_many
        probes = profile_jobs(proxy, store, probe_jobs, retry_failed=retry, progress=False)
        validation = profile_jobs(proxy, store, val_jobs, retry_failed=retry, progress=False)
    timings["profile_s"] = time.perf_counter() - t
    failed = [o for o in probes if not o.ok]
    if probes and len(failed) == len(probes):  # nothing to build from: say why, in one line
        raise LutError(
            f"none of the {len(probes)} probe subnets could be profiled on {backend.name} "
            f"({backend.dpu.name}), so no LUT can be built; the first failure, "
            f"{failed[0].job.net_name}: {failed[0].error}"
        )
    if failed:
        log.warning(
            "%d probe subnet(s) failed, e.g. %s: %s", len(failed), failed[0].job.net_name, failed[0].error
        )
    t = time.perf_counter()
    provenance = getattr(backend, "provenance", f"{backend.name} measurements")
    table = build_lut(space, backend, probes, plan.resolutions, plan.uncompilable, provenance)
    report = validate_lut(table, space, validation)
    figures = {k: v for k, v in report.items() if k != "rows"} | {"granularity": "node"}
    table = LatencyTable(table.frame, replace(table.meta, validation=figures))
    path = table.save(out_dir)
    timings["build_s"] = time.perf_counter() - t
    coverage = table.coverage(space, plan.resolutions)
    if coverage["missing"]:
        log.warning(
            "LUT misses %d compilable key(s), e.g. %s", len(coverage["missing"]), coverage["missing"][0]
        )
    return LutResult(table, path, "built", _public(coverage), report, plan, timings_s=timings, estimate=cost)


def build_budget(
    space: SearchSpace,
    backend: Backend,
    store: Store,
    lut_cfg: Any,
    resolutions: Sequence[int],
    runs: int,
    out_dir: Path,
    new_predictor: Callable[[], Any] | None = None,
) -> LutResult:
    """The budget plan (:mod:`ofa_hw.lut.active`): at most ``lut.max_subnets`` probes, then the LUT of them.

    The table holds the keys those probes measured (coverage below 1); its metadata records the plan
    and the held-out error, and the predictor trained from the same probes covers the rest.
    """
    timings: dict[str, float] = {}
    settings = active_settings(lut_cfg)
    seed, retry = int(lut_cfg.seed), bool(lut_cfg.retry_failed)
    check = dpu_compile_check(backend.dpu)
    cost = budget_plan_cost(backend, store, space, settings, runs)
    announce("budget", cost)
    new_predictor = new_predictor or (lambda: default_predictor(space, backend.dpu))
    t = time.perf_counter()
    with MeteredBackend(backend, cost, desc=f"LUT probes {backend.dpu.name} (budget)") as metered:

        def measure(archs: list, names: list[str]) -> list:
            jobs = [ProfileJob.create(space, a, n, runs, seed) for a, n in zip(archs, names)]
            return profile_jobs(cast(Backend, metered), store, jobs, retry_failed=retry, progress=False)

        try:
            active = run_active(space, backend.dpu, check, resolutions, measure, new_predictor, settings)
        except ValueError as exc:  # the space has no compilable probe on this DPU
            raise LutError(f"lut.plan=budget: {exc}") from exc
    timings["profile_s"] = time.perf_counter() - t
    failed = [o for o in active.outcomes if not o.ok]
    if failed:
        log.warning(
            "%d probe subnet(s) failed, e.g. %s: %s", len(failed), failed[0].job.net_name, failed[0].error
        )
    t = time.perf_counter()
    provenance = getattr(backend, "provenance", f"{backend.name} measurements")
    uncompilable = sorted(set(uncompilable_cells(space, resolutions, check)[0].values()))
    table = build_lut(
        space, backend, active.outcomes, resolutions, uncompilable, provenance + " (budget plan)"
    )
    summary = active.to_dict()
    validation = {
        "plan": "budget",
        "granularity": "node",
        "subnets": 0,
        "mape": None,
        "max_ape": None,
        "active": summary,
    }
    table = LatencyTable(table.frame, replace(table.meta, validation=validation))
    path = table.save(out_dir)
    timings["build_s"] = time.perf_counter() - t
    coverage = table.coverage(space, resolutions)
    mape = summary["heldout_mape"]
    print(
        f"LUT plan budget: {active.subnets} subnets profiled ({active.reason}); held-out MAPE "
        + (
            f"{mape:.2%} on the last {summary['heldout_subnets']} subnets before they were trained on"
            if mape is not None
            else "n/a"
        )
        + f"; {coverage['fraction']:.0%} of the compilable keys measured, the predictor covers the rest",
        flush=True,
    )
    return LutResult(
        table,
        path,
        "built",
        _public(coverage),
        {"subnets": 0, "mape": None},
        None,
        timings_s=timings,
        estimate=cost,
    )


def _reused(
    table: LatencyTable,
    path: Path,
    source: str,
    space: SearchSpace,
    resolutions: Sequence[int],
    stale: tuple = (),
) -> LutResult:
    coverage = table.coverage(space, resolutions)
    return LutResult(table, path, source, _public(coverage), dict(table.meta.validation), stale=stale)


def _public(coverage: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in coverage.items() if k != "missing"} | {"missing_keys": coverage["missing"][:20]}


def _finish(
    result: LutResult, rundir: Path | None, t0: float, space: SearchSpace, resolutions: Sequence[int]
) -> LutResult:
    """Write the run-dir artefacts and the total time."""
    if rundir is not None:
        rundir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.path, rundir / result.path.name)
        shutil.copyfile(result.path.with_suffix(".json"), rundir / result.path.with_suffix(".json").name)
        result.table.to_ofa_yaml(rundir / f"{result.path.stem}.ofa.yaml")
        # "measured" = samples per key in the table (occurrences x runs); "planned" = occurrences in the probes.
        measured = dict(zip(result.table.frame["key"], result.table.frame["count"]))
        if result.plan is not None:
            frame = result.plan.coverage_frame(measured)
        else:
            frame = coverage_frame(space, resolutions, result.table.meta.uncompilable, measured=measured)
        frame.to_csv(rundir / "lut_coverage.csv", index=False)
        plot_coverage(frame, rundir / "lut_coverage.png", title=f"LUT coverage: {result.path.stem}")
        rows = result.validation.get("rows")
        if rows:
            pd.DataFrame(rows).to_csv(rundir / "lut_validation.csv", index=False)
    timings = dict(result.timings_s)
    timings["total_s"] = time.perf_counter() - t0
    return replace(result, timings_s=timings)
