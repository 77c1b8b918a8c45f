"""``ofa-hw task=store task.verb=info|import|export``: inspect the store, or copy it to/from a SQLite file.

``import`` copies the SQLite file ``task.sqlite`` (default: the workspace's own ``store.sqlite``) into the
configured store, ``export`` the other way; with ``store=postgres`` that moves a workspace's measurements
into the shared server and back. After a copy every source run is checked in the target (status, node
rows, raw text byte for byte); a difference is an error (exit status 2). ``results.json`` holds
``store.*`` (verb, locations without secrets, counts, copied/kept, verified).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ofa_hw.store import STORE_FILENAME, SQLiteStore, StoreError
from ofa_hw.store.copy import copy_runs
from ofa_hw.store.migrations import schema_version
from ofa_hw.tasks import open_store, output_dir, workspace, write_results


def _sqlite(cfg: DictConfig, must_exist: bool) -> SQLiteStore:
    path = Path(str(cfg.task.sqlite or Path(workspace(cfg)) / STORE_FILENAME)).expanduser()
    if must_exist and not path.is_file():
        raise StoreError(f"task.sqlite: {path} does not exist (the SQLite store to import)")
    return SQLiteStore(path, timeout_s=float(cfg.store.get("timeout_s", 60.0)))


def _info(cfg: DictConfig) -> dict[str, Any]:
    with open_store(cfg) as store:
        counts = store.table_counts()
        print(
            f"store {store.location}: schema version {schema_version()}, {counts['runs']} runs "
            f"({counts['runs_ok']} ok, {counts['runs_failed']} failed), {counts['nodes']} node rows"
        )
        return {"verb": "info", "store": store.location, "kind": store.kind, "counts": counts}


def _copy(cfg: DictConfig, to_configured: bool) -> dict[str, Any]:
    other = _sqlite(cfg, must_exist=to_configured)
    with other, open_store(cfg) as configured:
        source, target = (other, configured) if to_configured else (configured, other)
        report = copy_runs(source, target, batch=int(cfg.task.batch))
    print(
        f"copied {report.copied} runs from {report.source} to {report.target} "
        f"({report.kept} already there); source {report.source_counts}, target {report.target_counts}"
    )
    results = {
        "verb": cfg.task.verb,
        "source": report.source,
        "target": report.target,
        "copied": report.copied,
        "kept": report.kept,
        "source_counts": report.source_counts,
        "target_counts": report.target_counts,
        "verified": report.verified,
        "mismatches": dict(list(report.mismatches.items())[:20]),
    }
    write_results({"store": results}, output_dir())
    if not report.verified:
        first = next(iter(report.mismatches.items()))
        raise StoreError(
            f"task=store {cfg.task.verb}: {len(report.mismatches)} runs did not arrive intact in {report.target} "
            f"(first: job key {first[0]} {first[1]}); rerun to retry"
        )
    print("verified: every source run is in the target with identical status, node rows and raw text")
    return results


VERBS: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    "info": _info,
    "import": lambda cfg: _copy(cfg, to_configured=True),
    "export": lambda cfg: _copy(cfg, to_configured=False),
}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the verb ``cfg.task.verb`` (see the module docstring)."""
    verb = str(cfg.task.verb)
    if verb not in VERBS:
        raise StoreError(f"task.verb={verb!r}: choose one of {', '.join(VERBS)} (e.g. task.verb=import)")
    results = VERBS[verb](cfg)
    if verb == "info":
        write_results({"store": results}, output_dir())
    return results


__all__ = ["VERBS", "run"]
