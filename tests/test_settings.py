"""Issue 20, point 1: every setting checked before any work, in one place; every problem of a run reported at
once, one line each, exit status 2, no traceback; a read-only store can still be read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose

from ofa_hw.tasks.settings import SettingsError, check_settings

ROOT = Path(__file__).resolve().parents[1]


def problems(overrides: list[str], workspace: Path) -> list[str]:
    """The problems :func:`check_settings` reports for ``overrides`` (``[]`` when all is well)."""
    try:
        check_settings(compose(overrides, workspace=workspace))
    except SettingsError as err:
        return err.problems
    return []


def cli(args: list[str], workspace: Path | str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OFA_HW_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ofa_hw.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("ofa-hw: ")]


def test_the_defaults_pass(workspace):
    for task in ("pipeline", "search", "lut", "train", "deploy", "store", "calibrate"):
        assert problems([f"task={task}"], workspace) == [], task


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["search.top_k=-5"], "search.top_k must be between 1 and search.population (100), got -5"),
        (["search.top_k=0"], "search.top_k must be between 1 and search.population (100), got 0"),
        (["backend.runs=0"], "backend.runs must be >= 1, got 0"),
        (["seed=-1"], "seed must be >= 0, got -1"),
        (["search.runs=0"], "search.runs must be >= 1 (or null = backend.runs), got 0"),
        (["search.budget_ms=-1"], "search.budget_ms must be a positive number of ms, got -1.0"),
        (["search.budget_ms=1"], "latency budget 1 ms is infeasible on zcu102_b4096 (by the LUT"),
        (["search.k_sigma=-1"], "search.k_sigma must be >= 0, got -1.0"),
        (["search.population=1"], "search.population must be >= 2, got 1"),
        (["predictor.calib_subnets=-2"], "predictor.calib_subnets must be >= 0, got -2"),
        (["lut.plan=fancy"], "lut.plan must be one of auto, full, budget; got 'fancy'"),
        (["lut.path=/no/such.csv"], "lut.path: /no/such.csv does not exist"),
        (["lut.resolutions=[100]"], "lut.resolutions: [100] are not resolutions of space ofa_proxyless_w13"),
        (["dpu.freq_mhz=-5"], "dpu: DPUConfig.freq_mhz: must be > 0"),
        (["calibrate.free=[bogus]"], "calibrate.free: no such constant bogus; choose from ddr_bw_gbps"),
        (["calibrate.name=../../evil"], "calibrate.name must be a plain identifier"),
        (["accuracy=table"], "accuracy.table.dataset_dir: accuracy=table needs an OFA accuracy dataset"),
        (["accuracy=table", "accuracy.table.dataset_dir=/no/such"], "accuracy.table.dataset_dir: /no/such is not a directory"),
        (["task=search", "accuracy=supernet"], "accuracy=supernet: task=search refuses it"),
        (["task=train", "predictor.file=/no/such.json"], "predictor.file: predictor file /no/such.json does not exist"),
        (["task=store", "task.verb=drop"], "task.verb='drop': choose one of info, import, export"),
    ],
)  # fmt: skip
def test_each_bad_setting_is_one_problem_naming_it(overrides, expected, workspace):
    found = problems(overrides, workspace)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_tampered_predictor_file_is_refused(workspace, tmp_path):
    path = tmp_path / "predictor.json"
    path.write_text(json.dumps({"sha256": "0" * 64, "meta": {"format": "x"}, "payload": {}}))
    (found,) = problems(["task=search", f"predictor.file={path}"], workspace)
    assert (
        found
        == f"predictor.file: predictor file {path} failed its sha256 check: it was modified or corrupted"
    )


def test_workspace_that_is_a_file(tmp_path):
    ws = tmp_path / "ws"
    ws.write_text("not a directory")
    (found,) = problems([], ws)
    assert found == f"workspace (OFA_HW_WORKSPACE or workspace=): {ws} is a file, not a directory"
    (found,) = problems([], ws / "sub")
    assert found.endswith(f"{ws} is a file, so {ws / 'sub'} cannot be created")


def test_every_problem_of_a_run_at_once_before_any_work(tmp_path):
    """One command, seven bad settings: seven lines, exit 2, no traceback, nothing profiled or stored."""
    ws = tmp_path / "ws"
    bad = [
        "search.top_k=-5", "backend.runs=0", "seed=-1", "calibrate.free=[bogus]", "accuracy=table",
        f"predictor.file={tmp_path / 'missing.json'}", "calibrate.name=../evil",
    ]  # fmt: skip
    proc = cli([f"hydra.run.dir={tmp_path / 'run'}", "task=search", *bad], ws, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = error_lines(proc)
    assert len(lines) == len(bad), lines
    assert all(line.startswith("ofa-hw: error: ") for line in lines)
    for field in (
        "search.top_k",
        "backend.runs",
        "seed",
        "calibrate.free",
        "accuracy.table",
        "predictor file",
    ):
        assert sum(field in line for line in lines) >= 1, (field, lines)
    assert proc.stdout.strip() == ""  # no stage started
    assert not (ws / "store.sqlite").exists()
    failed = json.loads((tmp_path / "run" / "results.json").read_text())["failed"]
    assert failed["kind"] == "user error" and failed["exit_status"] == 2 and "search.top_k" in failed["error"]


def _read_only(ws: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``ws`` is read-only: by its permission bits, or for root (whom they do not bind)
    inside a private mount namespace where ``ws`` is bind-mounted read-only."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("running as root without user namespaces: no way to make a directory read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, str(ws), *argv]


def test_read_only_workspace_is_refused_and_its_store_still_read(tmp_path):
    """A read-only workspace: a task that writes is refused up front (one line); ``task=store
    task.verb=info`` reads its store and writes nothing next to it."""
    from ofa_hw.store import SQLiteStore

    ws = tmp_path / "ws"
    ws.mkdir()
    store = SQLiteStore(ws / "store.sqlite")
    store.close()
    (ws / "store.sqlite").chmod(0o444)
    ws.chmod(0o555)
    env = {**os.environ, "OFA_HW_WORKSPACE": str(ws), "PYTHONPATH": str(ROOT)}

    def run(args: list[str]) -> subprocess.CompletedProcess:
        argv = _read_only(ws, [sys.executable, "-m", "ofa_hw.cli", *args])
        return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    try:
        proc = run([f"hydra.run.dir={tmp_path / 'a'}", "task=lut"])
        assert proc.returncode == 2, proc.stderr[-3000:]
        (line,) = error_lines(proc)
        assert line.startswith(
            f"ofa-hw: error: workspace (OFA_HW_WORKSPACE or workspace=): {ws} is read-only;"
        )
        proc = run([f"hydra.run.dir={tmp_path / 'b'}", "task=store"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"store {ws / 'store.sqlite'}: schema version" in proc.stdout and "0 runs" in proc.stdout
        assert sorted(p.name for p in ws.iterdir()) == ["store.sqlite"]  # nothing written next to it
    finally:
        ws.chmod(0o755)
