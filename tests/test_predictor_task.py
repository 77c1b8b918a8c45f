"""Predictor configs, ``ofa-hw task=train``, the predictor benchmark and OFA interop."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import compose

from ofa_hw.backends.base import ProfileJob
from ofa_hw.backends.sim import SimBackend
from ofa_hw.bench.predictor import bench_params, run_benchmark
from ofa_hw.dpu import DPUConfig
from ofa_hw.errors import UserError
from ofa_hw.lut import dpu_compile_check
from ofa_hw.predictor import (
    MODELS,
    LatencyPredictor,
    OFAEfficiencyAdapter,
    PredictorError,
    TrainingSet,
    load_predictor,
    make_model,
    make_predictor,
)
from ofa_hw.predictor.data import sample_compilable
from ofa_hw.space import get_space
from ofa_hw.tasks import make_dpu, make_space
from ofa_hw.tasks import train as train_task

SPACE = get_space("ofa_proxyless_w13")


@pytest.fixture(scope="module")
def dpu() -> DPUConfig:
    return DPUConfig.from_preset("zcu102_b4096")


@pytest.fixture(scope="module")
def predictor(dpu) -> LatencyPredictor:
    backend, check = SimBackend(dpu), dpu_compile_check(dpu)
    archs = sample_compilable(SPACE, np.random.default_rng(5), 6, check, resolutions=[160, 192, 224])
    outcomes = [
        backend.profile(ProfileJob.create(SPACE, a, f"n{i}", runs=2, seed=i)) for i, a in enumerate(archs)
    ]
    return LatencyPredictor(make_model("rf", n_estimators=8, n_members=3), SPACE, dpu).fit(
        TrainingSet.from_outcomes(SPACE, dpu, outcomes)
    )


# --------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_predictor_config_composes_and_builds(name):
    cfg = compose([f"predictor={name}", "seed=11"])
    pred = make_predictor(cfg.predictor, make_space(cfg), make_dpu(cfg))
    assert pred.name == name and pred.target == "profile" and not pred.fitted
    assert pred.model.random_state == 11


def test_predictor_config_typos_fail_at_compose_time():
    with pytest.raises(Exception, match="eval_subnets"):
        compose(["predictor=xgb", "predictor.eval_subnets=many"])
    with pytest.raises(Exception, match="holdout"):
        compose(["predictor=xgb", "predictor.holdout=0.5"])


def test_make_predictor_loads_a_file_and_checks_its_model(predictor, dpu, tmp_path):
    path = predictor.save(tmp_path / "rf.json")
    cfg = compose(["predictor=rf", f"predictor.file={path}"])
    assert make_predictor(cfg.predictor, SPACE, dpu).fitted
    wrong = compose(["predictor=xgb", f"predictor.file={path}"])
    with pytest.raises(PredictorError, match="holds a 'rf' model"):
        make_predictor(wrong.predictor, SPACE, dpu)


# ----------------------------------------------------------------------------------------- train task
def test_train_task_writes_metrics_scatter_and_predictor(workspace, tmp_path, monkeypatch, dpu):
    monkeypatch.chdir(tmp_path)
    overrides = [
        "task=train",
        "predictor=roofline",
        "predictor.eval_subnets=6",
        "predictor.calib_subnets=3",
        "backend.runs=2",
    ]
    res = train_task.run(compose(overrides, workspace=workspace))
    sec = res["predictor"]
    assert sec["name"] == "roofline" and sec["eval_subnets"] == 6 and sec["calibration_subnets"] == 3
    assert sec["train_rows"] > 1000 and sec["source"] == "lut" and not sec["cached"]
    for key in ("rmse_ms", "mape", "acc1", "acc5", "acc10", "kendall_tau", "spearman_rho"):
        assert sec[key] is not None, key
    assert sec["mape"] < 0.02 and sec["acc10"] == 1.0
    assert sec["e2e"]["mape"] < 0.02
    outdir = tmp_path / "outputs" / "adhoc"
    on_disk = json.loads((outdir / "results.json").read_text())
    assert on_disk["predictor"]["mape"] == pytest.approx(sec["mape"])
    assert (outdir / "predictor_scatter.png").stat().st_size > 1000
    assert len((outdir / "predictor_eval.csv").read_text().splitlines()) == 7
    loaded = load_predictor(outdir / "predictor.json", SPACE, dpu)
    assert loaded.lut_id == sec["lut_id"]

    # Same data and config: the fitted predictor is reused, the numbers do not move.
    again = train_task.run(compose(overrides, workspace=workspace))["predictor"]
    assert again["cached"] and again["mape"] == pytest.approx(sec["mape"], rel=1e-12)


# ----------------------------------------------------------------------------------------- benchmark
def test_benchmark_rows_and_targets(tmp_path, dpu):
    backend = SimBackend(dpu)

    def measure(archs, prefix, desc):
        return [
            backend.profile(ProfileJob.create(SPACE, a, f"{prefix}_{i}", runs=2, seed=0))
            for i, a in enumerate(archs)
        ]

    params = bench_params(
        {
            "truth_subnets": 25,
            "budgets": [3, 5],
            "models": ["roofline", "lut"],
            "throughput_archs": 20000,
            "throughput_min_s": 0.05,
            "target_budget": 5,
        }
    )
    res = run_benchmark(SPACE, dpu, measure, params, tmp_path, seed=0, runs=2)
    assert [(r["model"], r["profiled_subnets"]) for r in res["rows"]] == [
        ("roofline", 3),
        ("roofline", 5),
        ("lut", 3),
        ("lut", 5),
    ]
    for row in res["rows"]:
        assert {"mape", "acc1", "acc5", "acc10", "kendall_tau", "train_s", "archs_per_s"} <= set(row)
        assert 0 <= row["mape"] < 0.05 and row["archs_per_s"] > 1e4
    assert res["best"]["profiled_subnets"] <= 5 and set(res["targets"]["met"]) == {
        "mape",
        "acc5",
        "kendall_tau",
        "archs_per_s",
    }
    assert {p.name for p in tmp_path.iterdir()} >= {"rows.csv", "predictor_bench.png", "best_scatter.png"}
    with pytest.raises(ValueError, match="unknown key"):
        bench_params({"budget": [5]})


# ---------------------------------------------------------------------------------------------- OFA
def test_adapter_accepts_ofa_arch_dicts(predictor):
    adapter = OFAEfficiencyAdapter(predictor, SPACE, k_sigma=1.5)
    arch = sample_compilable(SPACE, np.random.default_rng(9), 1, dpu_compile_check(predictor.dpu))[0]
    ofa_dict = {"ks": arch["ks"], "e": arch["e"], "d": arch["d"][:5] + [3], "image_size": arch["r"]}
    mean, std = predictor.predict([arch])
    assert adapter.get_efficiency(ofa_dict) == pytest.approx(mean[0] + 1.5 * std[0])
    np.testing.assert_allclose(adapter.get_efficiencies([ofa_dict, ofa_dict]), mean[0] + 1.5 * std[0])
    with pytest.raises(ValueError, match="space"):
        OFAEfficiencyAdapter(predictor, get_space("proxyless_w05"))


def test_ofa_evolution_finder_runs_on_our_predictor(predictor):
    ofa_evolution = pytest.importorskip("ofa.nas.search_algorithm.evolution")
    # OFA's own MobileNetArchEncoder imports torchvision; the search package's manager has its interface.
    from ofa_hw.search.ofa_compat import OFAArchManager

    class KernelSumAccuracy:
        """A stand-in accuracy predictor (OFA's interface): bigger kernels, expands and inputs score higher."""

        arch_encoder = OFAArchManager(SPACE)

        def predict_acc(self, archs):
            return np.array([sum(a["ks"]) + sum(a["e"]) + a["image_size"] / 8 for a in archs], dtype=float)

    adapter = OFAEfficiencyAdapter(predictor, SPACE)
    predicted = predictor.predict(SPACE.sample(np.random.default_rng(2), 200))[0]
    budget = float(np.median(predicted[np.isfinite(predicted)]))  # most random subnets cannot compile: inf
    random.seed(0)
    np.random.seed(0)
    finder = ofa_evolution.EvolutionFinder(
        adapter, KernelSumAccuracy(), population_size=20, max_time_budget=5
    )
    _, (_, best, latency) = finder.run_evolution_search(budget)
    assert latency <= budget and np.isfinite(latency)
    assert adapter.get_efficiency(best) == pytest.approx(latency)
    assert adapter.calls > 100


def test_train_from_the_store_probes(workspace, tmp_path, monkeypatch):
    """``predictor.source=store``: the LUT's probe profiles (grouped by subnet) instead of its key table."""
    monkeypatch.chdir(tmp_path)
    base = [
        "task=train",
        "predictor=gbdt",
        "predictor.model.n_estimators=30",
        "predictor.model.n_members=3",
        "predictor.eval_subnets=4",
        "predictor.calib_subnets=2",
        "backend.runs=2",
        "predictor.source=store",
    ]
    with pytest.raises(
        UserError, match="no probe profiles"
    ):  # the shipped LUT was reused: no probes measured
        train_task.run(compose(base, workspace=workspace))
    own_lut = [
        "lut.resolutions=[160,224]",
        "lut.validation_subnets=2",
        f"lut.shipped_dir={tmp_path / 'none'}",
    ]
    sec = train_task.run(compose(base + own_lut, workspace=workspace))["predictor"]
    assert sec["source"] == "store" and sec["train_rows"] == 18 * 21 + 18 * 4  # 18 max-depth probes
    assert sec["calibration_subnets"] >= 2 and sec["mape"] < 0.03


def test_predictor_bench_compares_models_at_one_budget():
    """The best model is picked among rows of the same budget, never a model with more subnets."""
    import pandas as pd

    from ofa_hw.bench.predictor import _best_and_targets

    frame = pd.DataFrame(
        [
            {
                "model": "lut",
                "profiled_subnets": 10,
                "mape": 0.010,
                "acc5": 1.0,
                "kendall_tau": 0.99,
                "archs_per_s": 1e6,
            },
            {
                "model": "xgb",
                "profiled_subnets": 20,
                "mape": 0.020,
                "acc5": 1.0,
                "kendall_tau": 0.99,
                "archs_per_s": 1e6,
            },
            {
                "model": "rf",
                "profiled_subnets": 20,
                "mape": 0.015,
                "acc5": 1.0,
                "kendall_tau": 0.99,
                "archs_per_s": 1e6,
            },
            {
                "model": "lut",
                "profiled_subnets": 50,
                "mape": 0.001,
                "acc5": 1.0,
                "kendall_tau": 0.99,
                "archs_per_s": 1e6,
            },
        ]
    )
    best, _ = _best_and_targets(frame, 20)
    assert (best["model"], best["profiled_subnets"]) == ("rf", 20)
    best, _ = _best_and_targets(frame, 15)
    assert (best["model"], best["profiled_subnets"]) == ("lut", 10)
