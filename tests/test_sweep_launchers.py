"""Real Hydra launchers end to end: a 4-job ``task=search`` sweep on ``submitit_local`` (SQLite store) and on a
local Ray instance (``hydra/launcher=ray``, PostgreSQL store). Every job shares one store, and the simulator
logs each measurement it really makes, across all worker processes: no subnet may be measured twice."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ofa_hw.store import open_store

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (3, 4, 5, 6)
SMALL = ["search.generations=40", "search.pareto_generations=20", "search.top_k=4", "search.refine_rounds=1"]


def _launcher_missing(module: str, extra: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install -e '.[{extra}]')"
    return None


def _sweep(
    tmp_path: Path, launcher: list[str], store: list[str], env_extra: dict[str, str] | None = None
) -> tuple[Path, list[str]]:
    ws = tmp_path / "ws"
    log = tmp_path / "measured.log"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        OFA_HW_WORKSPACE=str(ws),
        OFA_HW_TEST_MEASURE_LOG=str(log),
        RAY_DEDUP_LOGS="0",
        **(env_extra or {}),
    )
    argv = [
        sys.executable, "-m", "ofa_hw.cli", "-m", "task=search", f"search.budget_ms={','.join(map(str, BUDGETS))}",
        *SMALL, "backend._target_=sweep_backend.LoggingSim", *store, *launcher,
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return ws, log.read_text().splitlines()


def _check(tmp_path: Path, measured: list[str], store_cfg) -> None:
    results = sorted((tmp_path / "multirun").rglob("results.json"))
    assert len(results) == len(BUDGETS)
    budgets = sorted(json.loads(p.read_text())["search"]["budget_ms"] for p in results)
    assert budgets == list(map(float, BUDGETS))
    keys = Counter(line.split(" ", 1)[1] for line in measured)
    assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]  # nothing measured twice
    assert len({line.split()[0] for line in measured}) >= 2  # the work really was spread over processes
    with open_store(store_cfg) as store:
        assert store.count(status=None) == len(keys)  # every measurement stored exactly once


def test_submitit_local_sweep_shares_one_sqlite_store(tmp_path):
    reason = _launcher_missing("hydra_plugins.hydra_submitit_launcher", "test")
    if reason:
        pytest.skip(reason)
    ws, measured = _sweep(tmp_path, ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"], [])
    _check(tmp_path, measured, {"_target_": "ofa_hw.store.SQLiteStore", "path": str(ws / "store.sqlite")})


def test_ray_sweep_shares_one_postgres_store(tmp_path, pg_dsn, pg_store_cfg):
    reason = _launcher_missing("hydra_plugins.hydra_ray_launcher", "cluster")
    if reason:
        pytest.skip(reason)
    store = ["store=postgres", f"store.namespace={pg_store_cfg['namespace']}"]
    _, measured = _sweep(
        tmp_path,
        ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2"],
        store,
        {"OFA_HW_PG_DSN": pg_dsn},
    )
    _check(tmp_path, measured, pg_store_cfg)
    # The DSN's password reached the jobs through the environment, and no saved config or log holds it.
    import psycopg

    password = psycopg.conninfo.conninfo_to_dict(pg_dsn)["password"].encode()
    leaks = [p for p in (tmp_path / "multirun").rglob("*") if p.is_file() and password in p.read_bytes()]
    assert not leaks
