"""Find, reuse, regenerate: the LUT a (space, DPU configuration) should use.

A LUT is bound to the DPU fingerprint. :func:`ensure_lut` reuses a LUT whose fingerprint matches
(the workspace's ``lut/`` first, then the shipped ``lut/``); when only LUTs of the same preset with
another fingerprint exist, the DPU config changed since they were built: it regenerates (default) or
stops with :class:`LutStaleError` naming what changed (``lut.regenerate=false``). Building plans the
probes, profiles them through the store (so a killed build resumes), aggregates, validates and saves.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

import ofa_hw
from ofa_hw.backends.base import Backend, ProfileJob
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut.build import build_lut, validate_lut
from ofa_hw.lut.plan import ProbePlan, coverage_frame, dpu_compile_check, plan_probes, plot_coverage
from ofa_hw.lut.table import LatencyTable, LutError, dpu_label
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
    """

    table: LatencyTable
    path: Path
    source: str
    coverage: dict[str, Any]
    validation: dict[str, Any]
    plan: ProbePlan | None = None
    stale: tuple[Path, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``lut.*`` figures of ``results.json``."""
        return {
            "path": str(self.path),
            "keys": len(self.table),
            "coverage": self.coverage["fraction"],
            "compilable_keys": self.coverage["compilable"],
            "uncompilable_keys": self.coverage["uncompilable"],
            "profiled_subnets": self.table.meta.profiled_subnets,
            "validation_mape": self.validation.get("mape"),
            "validation_max_ape": self.validation.get("max_ape"),
            "validation_subnets": self.validation.get("subnets", 0),
            "source": self.source,
            "fingerprint": self.table.meta.dpu_fingerprint,
            "provenance": self.table.meta.provenance,
            "stale": [str(p) for p in self.stale],
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

    matching, stale = [], []
    for d in dirs:
        if not d.is_dir():
            continue
        matching.extend(p for p in sorted(d.glob(f"{space.name}-*-{fp}.csv")) if same_backend(p))
        label = dpu_label(dpu.name, backend)
        stale.extend(p for p in sorted(d.glob(f"{space.name}-{label}-*.csv")) if not p.stem.endswith(fp))
    return matching, stale


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    skip = {"name", "calibrated_on"}
    return [k for k in sorted(set(old) | set(new)) if k not in skip and old.get(k) != new.get(k)]


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``freq_mhz 300.0 -> 200.0, arch B4096 -> B1024`` for the latency fields that differ."""
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in _changed_fields(old, new)]
    return ", ".join(diffs) if diffs else "model constants or toolchain"


def ensure_lut(
    space: SearchSpace,
    dpu: DPUConfig,
    lut_cfg: Any,
    backend: Callable[[], Backend],
    store: Callable[[], Store],
    runs: int,
    rundir: Path | None = None,
    backend_name: str = "sim",
) -> LutResult:
    """The LUT of ``space`` on ``dpu``: given, reused or (re)built, per the ``lut`` config.

    Args:
        space: The search space.
        dpu: The configured DPU.
        lut_cfg: The ``lut`` config node (:class:`~ofa_hw.schemas.lut.LutConfig`).
        backend: Factory of the profiling backend (called only when a build is needed).
        store: Factory of the measurement store (called only when a build is needed).
        runs: Profile-mode runs per probe.
        rundir: When given, the coverage CSV/PNG, validation CSV, OFA YAML and a copy of the LUT go here.
        backend_name: Name of the backend (``backend.name``): only LUTs measured on it are reused.

    Raises:
        LutError: a given LUT does not fit the space or DPU.
        LutStaleError: only stale LUTs exist (or none) and ``lut.regenerate`` is false.
    """
    t0 = time.perf_counter()
    resolutions = tuple(sorted(int(r) for r in (lut_cfg.resolutions or space.resolutions)))
    fp = dpu.fingerprint()
    if lut_cfg.path:
        path = Path(str(lut_cfg.path)).expanduser()
        table = LatencyTable.load(path, space=space, dpu_fingerprint=fp)
        if table.meta.backend != backend_name:
            log.warning("LUT %s was measured on backend %s, the configured backend is %s", path, table.meta.backend, backend_name)
        result = _reused(table, path, "given", space, resolutions)
        return _finish(result, rundir, t0, space, resolutions)

    out_dir = Path(str(lut_cfg.dir)).expanduser()
    shipped = Path(str(lut_cfg.shipped_dir)).expanduser() if lut_cfg.shipped_dir else SHIPPED_DIR
    matching, stale = find_luts(space, dpu, [out_dir, shipped], backend_name)
    if lut_cfg.reuse:
        for path in matching:
            table = LatencyTable.load(path, space=space, dpu_fingerprint=fp)
            if set(resolutions) <= set(table.meta.resolutions):
                log.info("reusing LUT %s (fingerprint %s matches)", path, fp)
                result = _reused(table, path, "reused", space, resolutions, tuple(stale))
                return _finish(result, rundir, t0, space, resolutions)
    if not lut_cfg.regenerate:
        if stale:
            # Name the stale LUT closest to the configured DPU, so the message shows the change the
            # user made rather than the difference to some other stale table in the workspace.
            new_cfg = dpu.to_dict()
            tables = {path: LatencyTable.load(path) for path in stale}
            path, old = min(tables.items(), key=lambda item: len(_changed_fields(item[1].meta.dpu_config, new_cfg)))
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
        len(plan.probes), len(plan.keys), len(plan.uncompilable), len(plan.resolutions), len(plan.validation),
    )
    seed, retry = int(lut_cfg.seed), bool(lut_cfg.retry_failed)
    t = time.perf_counter()
    probe_jobs = [ProfileJob.create(space, a, n, runs, seed) for a, n in zip(plan.probes, plan.probe_names())]
    probes = profile_jobs(backend, store, probe_jobs, desc=f"LUT probes {backend.dpu.name}", retry_failed=retry)
    val_jobs = [ProfileJob.create(space, a, n, runs, seed) for a, n in zip(plan.validation, plan.validation_names())]
    validation = profile_jobs(backend, store, val_jobs, desc="LUT validation", retry_failed=retry)
    timings["profile_s"] = time.perf_counter() - t
    failed = [o for o in probes if not o.ok]
    if probes and len(failed) == len(probes):  # nothing to build from: say why, in one line
        raise LutError(f"none of the {len(probes)} probe subnets could be profiled on {backend.name} "
                       f"({backend.dpu.name}), so no LUT can be built; the first failure, "
                       f"{failed[0].job.net_name}: {failed[0].error}")
    if failed:
        log.warning("%d probe subnet(s) failed, e.g. %s: %s", len(failed), failed[0].job.net_name, failed[0].error)
    t = time.perf_counter()
    provenance = getattr(backend, "provenance", f"{backend.name} measurements")
    table = build_lut(space, backend, probes, plan.resolutions, plan.uncompilable, provenance)
    report = validate_lut(table, space, validation)
    table = LatencyTable(table.frame, replace(table.meta, validation={k: v for k, v in report.items() if k != "rows"}))
    path = table.save(out_dir)
    timings["build_s"] = time.perf_counter() - t
    coverage = table.coverage(space, plan.resolutions)
    if coverage["missing"]:
        log.warning("LUT misses %d compilable key(s), e.g. %s", len(coverage["missing"]), coverage["missing"][0])
    return LutResult(table, path, "built", _public(coverage), report, plan, timings_s=timings)


def _reused(
    table: LatencyTable, path: Path, source: str, space: SearchSpace, resolutions: Sequence[int], stale: tuple = ()
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
