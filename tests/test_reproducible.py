"""Issue 20, point 2: the same command, seed and measurements give the same results, whatever else the
workspace's store holds (earlier searches at other budgets, other deployments)."""

from __future__ import annotations

from typing import Any

from conftest import compose

SMALL = ["search.generations=30", "search.pareto=false", "search.top_k=4", "search.refine_rounds=1"]
#: Run-specific entries, not figures: wall times, cache hits, file locations.
NOT_FIGURES = {
    "timings_s",
    "cached",
    "path",
    "file_kib",
    "scatter",
    "files",
    "search_s",
    "verify_s",
    "train_s",
}


def figures(value: Any) -> Any:
    """``results.json`` without wall times, cache flags and paths."""
    if isinstance(value, dict):
        return {k: figures(v) for k, v in value.items() if k not in NOT_FIGURES and not k.endswith("_s")}
    if isinstance(value, list):
        return [figures(v) for v in value]
    return value


def test_a_rerun_into_a_fuller_workspace_gives_the_same_figures(workspace, tmp_path, monkeypatch):
    from ofa_hw.tasks import open_store, search

    monkeypatch.chdir(tmp_path)
    first = search.run(compose(["task=search", *SMALL], workspace=workspace))
    with open_store(compose([], workspace=workspace)) as store:
        before = store.count(status="ok")
    # Other work in the same workspace: a search at another budget, which deploys other candidates.
    search.run(compose(["task=search", *SMALL, "search.budget_ms=5"], workspace=workspace))
    with open_store(compose([], workspace=workspace)) as store:
        assert store.count(status="ok") >= before + 4  # the store now holds more measurements
    again = search.run(compose(["task=search", *SMALL], workspace=workspace))

    assert figures(again) == figures(first)
    pred = first["predictor"]
    # the results say which subnets each figure used
    assert len(pred["calibration_arch_ids"]) == pred["calibration_subnets"] == 10
    assert len(pred["eval_arch_ids"]) == pred["eval_subnets"] == 20
    assert not set(pred["calibration_arch_ids"]) & set(pred["eval_arch_ids"])


def test_the_report_names_the_subnets_behind_each_figure():
    from ofa_hw.report import subnets_statement

    text = subnets_statement(
        {
            "lut": {"validation_subnets": 20},
            "predictor": {"calibration_subnets": 10, "eval_subnets": 20},
            "search": {"measured": 4},
        }
    )
    assert "10 calibration subnets drawn with the run's seed" in text
    assert "20 held-out subnets (`predictor_eval.csv`" in text and "the 4 deployed candidates" in text
