"""``ofa-hw space=ofa_resnet50`` end to end (issue 19): LUT, predictor, search, deployment, report.

Kept short like ``tests/test_pipeline.py``: the shipped ResNet-50 LUT is reused, the searches run a few
generations. Figures are consistency with the DPU simulator, not hardware.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ofa_hw.search.genes import GeneOps
from ofa_hw.search.verify import network_keys
from ofa_hw.space import get_space

FAST = ["space=ofa_resnet50", "search.generations=10", "search.pareto_generations=5"]


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


def test_resnet50_pipeline_runs_end_to_end(tmp_path):
    proc = ofa_hw([f"hydra.run.dir={tmp_path / 'run'}", *FAST], tmp_path / "ws", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["lut"]["coverage"] == 1.0 and results["lut"]["source"] == "reused"
    assert results["lut"]["keys"] == 2668 and results["lut"]["uncompilable_keys"] == 0
    search = results["search"]
    best = search["best"]
    assert best["measured_ms"] <= search["budget_ms"] and best["predicted_ms"] <= search["budget_ms"]
    assert search["floor_ms"] < search["budget_ms"] < search["ceiling_ms"]
    arch = get_space("ofa_resnet50").validate(best["arch"])  # a ResNet arch dict (d, e, w, r)
    assert set(arch) == {"d", "e", "w", "r"}
    assert results["compile_limits"]["removed_share"] == 0.0  # every ResNet-50 op compiles on the B4096
    assert (tmp_path / "run" / "report.md").is_file()


def test_resnet50_lut_built_from_scratch(tmp_path):
    """Plan, profile, build and cover one resolution: 27 probes measure every key there."""
    args = [
        "task=lut",
        "space=ofa_resnet50",
        "lut.resolutions=[160]",
        "lut.validation_subnets=3",
        "lut.reuse=false",
    ]
    proc = ofa_hw([f"hydra.run.dir={tmp_path / 'run'}", *args], tmp_path / "ws", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "27 probe subnets" in proc.stdout + proc.stderr and "coverage 100.0%" in proc.stdout


def test_resnet50_gene_ops_and_network_identity():
    space = get_space("ofa_resnet50")
    ops = GeneOps(space)
    rng = np.random.default_rng(0)
    genes = ops.sample(rng, 500)
    assert (genes >= 0).all() and (genes < space.gene_cardinality).all()
    mutants = ops.mutate(genes, rng, 0.1, 0.5)
    changed = (mutants != genes).mean(axis=0)
    assert 0.03 < changed[:-1].mean() < 0.1 and 0.35 < changed[-1] < 0.6  # per-gene coins, r with r_prob
    # Same network: inactive expands and a skipped stem's d[0] (0 or 1) do not matter.
    a = space.encode([{"d": [0, 0, 0, 0, 0], "e": [0.2] * 18, "w": [0] * 6, "r": 160}])[0]
    b = a.copy()
    b[2] = 2  # block 2 is inactive at d[1] = 0
    b[18] = 1  # d[0] = 1: the stem still skips its residual conv
    c = a.copy()
    c[0] = 1  # an active expand
    net, _ = network_keys(space, np.stack([a, b, c]))
    assert net[0] == net[1] != net[2]
    assert (ops.keys(a[None]) == ops.keys(b[None])).all()


def test_resnet50_budget_plan_lut(tmp_path):
    """The budget plan (what the Vitis backends use) on ResNet-50: seed probes, active learning, a LUT."""
    args = ["task=lut", "space=ofa_resnet50", "lut.plan=budget", "lut.max_subnets=10", "lut.reuse=false"]
    proc = ofa_hw([f"hydra.run.dir={tmp_path / 'run'}", *args], tmp_path / "ws", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "10 probe subnets" in proc.stdout and "budget plan: held-out MAPE" in proc.stdout
