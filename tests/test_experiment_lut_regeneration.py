"""experiments/lut_regeneration: the helpers of run.py and the committed results (fast; no full rerun)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from ofa_hw.space import get_space

EXP = Path(__file__).resolve().parents[1] / "experiments" / "lut_regeneration"


@pytest.fixture(scope="module")
def run_mod():
    spec = importlib.util.spec_from_file_location("lut_regeneration_run", EXP / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_ratio_stats_counts_lost_keys_and_quantiles(run_mod, tmp_path):
    base = pd.DataFrame(
        {"key": ["Conv-a", "expanded_conv-b", "expanded_conv-c", "Logits-d"], "mean_ms": [1.0, 2.0, 4.0, 1.0]}
    )
    new = pd.DataFrame(
        {"key": ["Conv-a", "expanded_conv-b", "Logits-d", "Conv_1-e"], "mean_ms": [1.5, 2.2, 1.0, 9.0]}
    )
    base.to_csv(tmp_path / "b.csv", index=False)
    new.to_csv(tmp_path / "n.csv", index=False)
    stats, frame = run_mod.ratio_stats(tmp_path / "b.csv", tmp_path / "n.csv")
    assert stats["common_keys"] == 3 and stats["lost_keys"] == 1 and stats["gained_keys"] == 1
    assert stats["min"] == pytest.approx(1.0) and stats["max"] == pytest.approx(1.5)
    assert stats["median"] == pytest.approx(1.1)
    assert stats["by_kind"]["Conv"]["median"] == pytest.approx(1.5)
    assert stats["highest"][-1]["key"] == "Conv-a"
    assert set(frame["kind"]) == {"Conv", "expanded_conv", "Logits"}


def test_subnet_summary_uses_active_blocks_only(run_mod):
    space = get_space("ofa_proxyless_w13")
    arch = space.validate({"ks": [7] * 21, "e": [6] * 21, "d": [2, 2, 2, 2, 2, 1], "r": 160})
    for b in space.active_blocks(arch):
        arch["ks"][b], arch["e"][b] = 3, 4
    s = run_mod.subnet_summary(space, arch)
    assert s == {
        "r": 160,
        "depths": [2, 2, 2, 2, 2],
        "mean_depth": 2.0,
        "mean_kernel": 3.0,
        "mean_expand": 4.0,
    }


def test_stale_lut_error_is_captured(run_mod, tmp_path):
    call = run_mod.ofa_hw(
        ["task=lut", "dpu.freq_mhz=250", "lut.regenerate=false"], tmp_path, tmp_path / "run"
    )
    assert call.rc == 2 and call.results is None
    assert "is stale" in call.error and "freq_mhz 300.0 -> 250.0" in call.error
    assert not (tmp_path / "lut").exists() or not list((tmp_path / "lut").glob("*.csv"))


def test_committed_results_are_consistent():
    results = json.loads((EXP / "results.json").read_text())
    configs = results["configs"]
    base = configs[results["baseline"]]
    assert base["lut"]["source"] == "reused" and base["stale_check"] is None
    for name, c in configs.items():
        if name == results["baseline"]:
            continue
        assert c["fingerprint"] != base["fingerprint"]
        assert c["stale_check"]["rc"] == 2 and c["stale_check"]["message"]
        assert c["key_ratio"]["min"] <= c["key_ratio"]["median"] <= c["key_ratio"]["max"]
        assert c["space"]["floor_ms"] > base["space"]["floor_ms"]
    rows = results["searches"]
    assert {(r["config"], r["budget_ms"]) for r in rows} >= {
        (results["baseline"], b) for b in results["budgets_ms"]
    }
    for r in rows:
        if r["status"] == "ok":
            assert r["measured_ms"] <= r["budget_ms"] and 0 <= r["hit_rate"] <= 1
        else:
            assert "infeasible" in r["error"] and r["predicted_floor_ms"] > r["budget_ms"]
    assert (EXP / "lut_regeneration.png").stat().st_size < 300_000
