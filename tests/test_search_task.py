"""``ofa-hw task=search`` and ``bench=search`` end to end on the simulator (shipped LUT, small settings)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import compose

from ofa_hw.search.evolution import Candidate
from ofa_hw.search.verify import BackendMeasurer
from ofa_hw.space import get_space


@pytest.fixture(scope="module")
def shared_ws(tmp_path_factory):
    """One workspace for the task tests: the predictor is fitted once, then reused from its cache."""
    return tmp_path_factory.mktemp("search_ws")


SMALL = ["search.generations=60", "search.pareto_generations=40", "search.top_k=4", "search.refine_rounds=1"]


def test_search_config_group_composes() -> None:
    cfg = compose(["search.budget_ms=4.5", "search.k_sigma=1"])
    assert cfg.search.budget_ms == 4.5 and cfg.search.k_sigma == 1.0 and cfg.search.population == 100
    assert compose(["task=search"]).task._target_ == "ofa_hw.tasks.search.run"
    assert compose(["task=bench", "bench=search"]).bench._target_ == "ofa_hw.bench.search.bench"
    with pytest.raises(Exception, match="budget_mss"):
        compose(["search.budget_mss=4"])
    with pytest.raises(Exception, match="k_sigma"):
        compose(["search.k_sigma=lots"])


def test_backend_measurer_goes_through_the_store(workspace) -> None:
    from ofa_hw.tasks import make_backend, open_store

    cfg = compose([], workspace=workspace)
    space = get_space("ofa_proxyless_w13")
    arch = space.sample(np.random.default_rng(0))
    arch["ks"] = [3] * 21  # small kernels: compiles on the DPU
    arch = space.validate(arch)
    cand = Candidate(arch, space.arch_id(arch), 1.0, 1.0, 0.0, 1.0, space.encode([arch])[0])
    with open_store(cfg) as store:
        m = BackendMeasurer(space, make_backend(cfg), store, runs=2, progress=False)
        (first,) = m([cand], 0)
        n = store.count()
        (again,) = m([cand], 1)
        assert store.count() == n  # reused, not measured twice
    assert first.ok and first.measured_ms == again.measured_ms > 0
    assert first.net_name.startswith("srch") and first.error is None


def test_search_task_writes_results(shared_ws, tmp_path, monkeypatch) -> None:
    from ofa_hw.tasks.search import run

    monkeypatch.chdir(tmp_path)
    cfg = compose(["task=search", *SMALL], workspace=shared_ws)
    results = run(cfg)
    out = tmp_path / "outputs" / "adhoc"
    saved = json.loads((out / "results.json").read_text())
    s = saved["search"]
    for key in ("budget_ms", "hit_rate", "floor_ms", "ceiling_ms", "evaluations", "search_s"):
        assert s[key] is not None
    best = s["best"]
    assert best["measured_ms"] is not None and best["bound_ms"] <= s["budget_ms"]
    assert set(best["arch"]) == {"ks", "e", "d", "r"}
    assert s["floor_ms"] < s["budget_ms"] < s["ceiling_ms"]
    assert s["accuracy_model"]["is_proxy"] is True
    rows = list(csv.DictReader((out / "candidates.csv").read_text().splitlines()))
    assert 4 <= len(rows) <= 8 and all(float(r["bound_ms"]) <= s["budget_ms"] for r in rows)
    for name in ("pareto.csv", "pareto.png", "pred_vs_measured.png"):
        assert (out / name).stat().st_size > 0
    assert results["search"]["budget_ms"] == s["budget_ms"]
    # issue 12: the predictor the search used is in results.json, with its held-out figures
    assert saved["predictor"]["name"] == "xgb" and saved["predictor"]["mape"] is not None
    assert (out / "predictor.json").is_file() and saved["basis"]["kind"] == "simulator"


def test_budget_above_the_ceiling_warns_and_does_not_refine(shared_ws, tmp_path, monkeypatch, caplog) -> None:
    from ofa_hw.tasks.search import run

    monkeypatch.chdir(tmp_path)
    cfg = compose(
        ["task=search", "search.budget_ms=40", *SMALL, "search.refine_rounds=3"], workspace=shared_ws
    )
    with caplog.at_level("WARNING"):
        s = run(cfg)["search"]
    assert s["above_ceiling"] and len(s["rounds"]) == 1 and s["best"]["measured_ms"] < s["ceiling_ms"] + 0.5
    assert any(
        "above the slowest subnet" in r.getMessage() and "skips refinement" in r.getMessage()
        for r in caplog.records
    )


def test_search_task_rejects_an_infeasible_budget(shared_ws, tmp_path, monkeypatch) -> None:
    from ofa_hw.search import InfeasibleBudgetError
    from ofa_hw.tasks.search import run

    monkeypatch.chdir(tmp_path)
    cfg = compose(["task=search", "search.budget_ms=0.5", *SMALL], workspace=shared_ws)
    with pytest.raises(
        InfeasibleBudgetError,
        match=r"infeasible on zcu102_b4096.*smallest predicted latency.*reaches is 2\.\d+ ms",
    ):
        run(cfg)


def test_search_bench_small(shared_ws, tmp_path, monkeypatch) -> None:
    from ofa_hw.bench.search import bench

    monkeypatch.chdir(tmp_path)
    cfg = compose(
        [
            "task=bench",
            "bench=search",
            *SMALL,
            "bench.params.timing_repeats=1",
            "bench.params.ofa_generations=3",
            "bench.params.sweep_budgets=3",
        ],
        workspace=shared_ws,
    )
    res = bench(cfg)
    assert res["search_s"] > 0 and res["evaluations"] > 60 * 100
    assert len(res["rows"]) == 3
    for row in res["rows"]:
        assert set(row) >= {"budget_ms", "best_predicted_ms", "best_measured_ms", "hit_rate"}
    budgets = [r["budget_ms"] for r in res["rows"]]
    assert budgets == sorted(budgets) and res["floor_ms"] < budgets[0] and budgets[-1] < res["ceiling_ms"]
    if res["ofa"]["available"]:
        assert res["speedup"] > 0 and res["ofa_evaluations"] > 0
    assert (tmp_path / "outputs" / "adhoc" / "budget_sweep.png").exists()


def test_search_bench_says_when_ofa_is_not_timed(shared_ws, tmp_path, monkeypatch, capsys) -> None:
    """Without OFA's finder the benchmark names why there is no speedup figure instead of dropping it."""
    import builtins

    from ofa_hw.bench.search import bench

    real_import = builtins.__import__

    def no_ofa(name, *args, **kwargs):
        if name == "ofa" or name.startswith("ofa."):
            raise ImportError("No module named 'ofa'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ofa)
    monkeypatch.chdir(tmp_path)
    cfg = compose(
        [
            "task=bench",
            "bench=search",
            *SMALL,
            "bench.params.timing_repeats=1",
            "bench.params.sweep_budgets=2",
        ],
        workspace=shared_ws,
    )
    res = bench(cfg)
    assert res["ofa"]["available"] is False and "ofa not importable" in res["ofa"]["reason"]
    assert res["speedup"] is None
    assert "OFA EvolutionFinder not timed (ofa not importable" in capsys.readouterr().out
