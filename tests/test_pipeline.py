"""The main job end to end through the real console entry point, its outputs, and its reuse of the store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRED_KEYS = [
    "dpu.preset",
    "dpu.fingerprint",
    "lut.keys",
    "lut.coverage",
    "lut.profiled_subnets",
    "lut.probe_subnets",
    "predictor.name",
    "predictor.mape",
    "predictor.kendall_tau",
    "predictor.acc5",
    "search.budget_ms",
    "search.best.arch",
    "search.best.predicted_ms",
    "search.best.measured_ms",
    "search.best.accuracy",
    "search.hit_rate",
    "timings_s",
]
FAST = ["search.generations=60", "search.pareto_generations=40"]


def ofa_hw(args: list[str], workspace: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OFA_HW_WORKSPACE": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "ofa_hw.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def dotted(results: dict, key: str):
    for part in key.split("."):
        results = results[part]
    return results


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    proc = ofa_hw([f"hydra.run.dir={root / 'run1'}", *FAST], root / "ws", root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, proc


def test_pipeline_writes_every_result_and_artefact(first_run):
    root, proc = first_run
    run = root / "run1"
    results = json.loads((run / "results.json").read_text())
    for key in REQUIRED_KEYS:
        assert dotted(results, key) is not None, key
    assert results["dpu"]["preset"] == "zcu102_b4096"
    assert results["lut"]["coverage"] == 1.0
    best = results["search"]["best"]
    assert best["measured_ms"] <= results["search"]["budget_ms"]
    assert set(results["timings_s"]) >= {"lut", "train", "search", "report"}
    for name in (
        "report.md",
        "candidates.csv",
        "predictor.json",
        "predictor_scatter.png",
        "pareto.png",
        "pred_vs_measured.png",
        "lut_coverage.png",
    ):
        assert (run / name).is_file(), name
    report = (run / "report.md").read_text()
    assert "FLOPs proxy" in report and "not ImageNet accuracy" in report
    assert f"{best['measured_ms']:.3f}" in report
    assert "[1/4] lut" in proc.stdout and "best subnet" in proc.stdout and "hit rate" in proc.stdout
    # the last line names the run directory and the files once (not "results.json: results.json")
    last = proc.stdout.strip().splitlines()[-1]
    assert (
        last.startswith(f"outputs: {run.resolve()} (report.md, results.json")
        and "json: results.json" not in last
    )


def test_report_says_what_it_measured_on(first_run):
    """Issue 12: next to each figure, what "measured" means; the compile-limit rule and its share."""
    root, proc = first_run
    run = root / "run1"
    results = json.loads((run / "results.json").read_text())
    report = (run / "report.md").read_text()
    head = report.split("## DPU")[0]
    from ofa_hw.data import DATA_DIR
    from ofa_hw.dpu import DPUConfig

    dpu = DPUConfig.from_preset("zcu102_b4096")
    fit = json.loads((DATA_DIR / "calibration" / "zcu102_b4096.json").read_text())  # shipped with the preset
    mape, held = 100 * fit["fit"]["node_mape"], 100 * fit["held_out"]["node_mape"]
    assert "**Measured on:** the DPU simulator" in head and f"calibrated on {dpu.calibrated_on}" in head
    assert f"node MAPE {mape:.1f} %" in head and "not the board" in head
    tag = (
        f"measured on the simulator ({dpu.calibrated_on}, node MAPE {mape:.1f} % vs its board, "
        f"{held:.1f} % leave-one-network-out)"
    )
    for section in ("## Latency lookup table", "## Latency predictor", "## Search and deployed candidates"):
        assert tag in report.split(section)[1].split("\n## ")[0], section
    limits = results["compile_limits"]
    assert (
        limits["samples"] == 20000
        and 0.5 < limits["removed_share"] < 1.0
        and "bank depth 2048" in limits["rule"]
    )
    assert (
        f"This removes **{100 * limits['removed_share']:.1f} %** of the space" in report
        and "20 000 uniformly sampled subnets" in report
    )
    assert results["basis"]["kind"] == "simulator" and "measured on" in proc.stdout
    # Issue 11: the share of the space each toolchain generation admits; issue 15: which latency figure.
    assert (
        set(limits["admitted_by_toolchain"]) == {"dnndk", "xir"}
        and limits["admitted_by_toolchain"]["xir"] == 1.0
    )
    assert "share of the space each admits: dnndk" in report
    assert "**Latency figure** (`predictor.target=profile`): sum of the per-node DPU times" in report


def test_pareto_csv_reaches_the_ceiling(first_run):
    """Issue 12: the front reaches the space's latency ceiling (the most accurate end is near it)."""
    import csv

    root, _ = first_run
    results = json.loads((root / "run1" / "results.json").read_text())
    with open(root / "run1" / "pareto.csv") as fh:
        rows = list(csv.DictReader(fh))
    top = max(float(r["predicted_ms"]) for r in rows)
    assert top >= 0.99 * results["search"]["ceiling_ms"]


def _store_runs(workspace: Path) -> list[str]:
    with sqlite3.connect(workspace / "store.sqlite") as db:
        return [row[0] for row in db.execute("select net_name from runs where status = 'ok'")]


def test_second_run_reuses_the_store(first_run):
    root, _ = first_run
    before = _store_runs(root / "ws")
    proc = ofa_hw([f"hydra.run.dir={root / 'run2'}", *FAST], root / "ws", root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = json.loads((root / "run2" / "results.json").read_text())
    assert second["lut"]["source"] == "reused"
    new = sorted(set(_store_runs(root / "ws")) - set(before))
    # Probes, validation and held-out subnets all come from the store; at most new search candidates
    # are deployed (the predictor is refit with the first run's candidates as calibration nets).
    assert all(name.startswith("srch") for name in new), new
    assert len(new) <= second["search"]["top_k"] * len(second["search"]["rounds"])


def test_infeasible_budget_is_a_one_line_error(tmp_path):
    proc = ofa_hw(
        [f"hydra.run.dir={tmp_path / 'run'}", "task=search", "search.budget_ms=0.5"],
        tmp_path / "ws",
        tmp_path,
    )
    assert proc.returncode == 2
    assert "infeasible" in proc.stderr and "smallest" in proc.stderr
    assert "Traceback" not in proc.stderr
