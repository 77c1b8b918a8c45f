"""The console script and the structured configs: help, job config, every group option composes,
typos and wrong types fail before any work, multirun sweeps over a shared store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from ofa_hw.schemas import GROUPS

CONF = Path(__file__).resolve().parents[1] / "ofa_hw" / "conf"


def run_cli(args: list[str], workspace: Path, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OFA_HW_WORKSPACE": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "ofa_hw.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_and_job_config(tmp_path):
    help_ = run_cli(["--help"], tmp_path / "ws", tmp_path)
    assert help_.returncode == 0 and "task: bench, calibrate" in help_.stdout.replace("\n", " ")
    job = run_cli(["--cfg", "job"], tmp_path / "ws", tmp_path)
    assert job.returncode == 0
    assert "name: pipeline" in job.stdout and "preset" not in job.stderr


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", [g for g in GROUPS if (CONF / g).is_dir()])
def test_every_option_of_every_group_composes(group, workspace):
    opts = options(group)
    assert opts, f"config group {group} has no options"
    for opt in opts:
        cfg = compose([f"{group}={opt}"], workspace=workspace)
        assert cfg[group] is not None and len(cfg[group]) > 0, (group, opt)
        # `name` of dpu and calibrate is the preset a calibration writes, not the file name.
        if "name" in cfg[group] and group not in ("dpu", "calibrate"):
            assert cfg[group].name == opt, (group, opt)


@pytest.mark.parametrize(
    "override, error",
    [
        ("search.budget_msx=3", ConfigCompositionException),  # typo in a key
        ("search.budget_ms=fast", ConfigCompositionException),  # wrong type
        ("dpu.freq_mhz=abc", ConfigCompositionException),
        ("predictor=xgboost", ConfigCompositionException),  # no such option
        ("seed=one", ConfigCompositionException),
    ],
)
def test_typos_and_wrong_types_fail_at_compose_time(override, error, workspace):
    with pytest.raises((error, ValidationError)):
        compose([override], workspace=workspace)


def test_cli_rejects_a_typo_before_any_work(tmp_path):
    proc = run_cli(["search.budget_msx=3"], tmp_path / "ws", tmp_path)
    assert proc.returncode != 0 and "budget_msx" in proc.stderr
    assert not (tmp_path / "ws" / "store.sqlite").exists()


def test_multirun_sweep_with_joblib_shares_one_store(tmp_path):
    """`ofa-hw -m search.budget_ms=… dpu=…,… hydra/launcher=joblib`: every job lands, no measurement twice."""
    args = [
        "-m",
        "task=search",
        "search.budget_ms=4,5",
        "dpu=zcu102_b4096,zcu104_b4096",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "search.generations=40",
        "search.pareto=false",
        "search.top_k=4",
        "predictor.eval_subnets=6",
    ]
    proc = run_cli(args, tmp_path / "ws", tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # issue 12: every job's summary says which job it belongs to
    for num in range(4):
        assert f"job {num} (" in proc.stdout, proc.stdout[-2000:]
    labels = [line for line in proc.stdout.splitlines() if line.startswith("job ")]
    assert len(labels) == 4 and all("search.budget_ms=" in line and "dpu=" in line for line in labels), labels
    results = sorted((tmp_path / "sweep").glob("*/results.json"))
    assert len(results) == 4
    seen = {
        (r["dpu"]["preset"], r["search"]["budget_ms"]) for r in (json.loads(p.read_text()) for p in results)
    }
    assert seen == {(d, b) for d in ("zcu102_b4096", "zcu104_b4096") for b in (4.0, 5.0)}
    with sqlite3.connect(tmp_path / "ws" / "store.sqlite") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        runs_table = "runs" if "runs" in tables else sorted(tables)[0]
        cols = [row[1] for row in db.execute(f"pragma table_info({runs_table})")]
        key = "job_key" if "job_key" in cols else cols[1]
        dupes = db.execute(f"select count(*) - count(distinct {key}) from {runs_table}").fetchone()[0]
    assert dupes == 0
