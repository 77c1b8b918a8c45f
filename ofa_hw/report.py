"""The main job's report: ``report.md`` for people, a short summary table for the terminal.

Both read only the nested results dict the pipeline writes to ``results.json``, so a report can be
regenerated from any run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ofa_hw.lut.cost import budget_statement


def _fmt(value: Any, spec: str = ".3f", missing: str = "–") -> str:
    if value is None:
        return missing
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def _pct(value: Any) -> str:
    return _fmt(None if value is None else 100.0 * value, ".2f") + (" %" if value is not None else "")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _accuracy_label(search: dict[str, Any]) -> str:
    acc = search.get("accuracy_model", {})
    label = acc.get("label", "accuracy")
    return (
        f"{label} — a proxy, not ImageNet accuracy"
        if acc.get("is_proxy") and "proxy" not in label.lower()
        else label
    )


def _image(outdir: Path, name: str, caption: str) -> str:
    return f"![{caption}]({name})\n" if (outdir / name).is_file() else ""


def measured_on(results: dict[str, Any], short: bool = False) -> str:
    """What "measured" means in this run (``basis`` of results.json): the calibrated simulator with its
    fit error, or the board and toolchain. ``short`` gives the few words put next to each figure."""
    basis = results.get("basis")
    if not basis:
        return "measured on: not recorded"
    if not short:
        return f"**Measured on:** {basis['text']}."
    if basis.get("kind") == "simulator":
        fit = basis.get("fit") or {}
        err = (
            f", node MAPE {100 * fit['node_mape']:.1f} % vs its board"
            if fit.get("node_mape") is not None
            else ""
        )
        if fit.get("held_out_mape") is not None:  # shipped with the preset (ofa_hw/data/calibration)
            err += f", {100 * fit['held_out_mape']:.1f} % {fit.get('held_out_kind') or 'held out'}"
        return f"measured on the simulator ({basis.get('calibrated_on') or 'uncalibrated'}{err})"
    return f"measured on board(s) {', '.join(basis.get('boards', [])) or '?'} with {basis.get('toolchain') or '?'}"


def compile_limit_statement(results: dict[str, Any]) -> str:
    """The compile-limit rule of the DPU and the share of the space it removes (``compile_limits``)."""
    limits = results.get("compile_limits")
    if not limits:
        return ""
    share = f"{100 * limits['removed_share']:.1f} %"
    sample = f"{limits['samples']:,} uniformly sampled subnets (seed {limits['seed']})".replace(",", " ")
    by_gen = limits.get("admitted_by_toolchain") or {}
    generations = ""
    if by_gen:
        parts = ", ".join(f"{name} {100 * v:.1f} %" for name, v in by_gen.items())
        generations = (
            f" Compile limits belong to the toolchain generation (this DPU: "
            f"{limits.get('toolchain', '?')}); share of the space each admits: {parts}."
        )
    if not limits.get("rule"):
        return (
            f"**Compile limits:** no layer of {results['space']['name']} violates a compile limit of "
            f"{results['dpu']['preset']}; {share} of {sample} are uncompilable.{generations}"
        )
    return (
        f"**Compile limits:** the compiler rejects a layer when {limits['rule']} (e.g. layer "
        f"`{limits['example_layer']}` of the largest subnet); such subnets are excluded from the LUT "
        f"probes and the search. This removes **{share}** of the space ({limits['uncompilable_cells']} "
        f"(resolution, block, kernel, expand) cells; share estimated on {sample}, checked with "
        f"{limits['check']}).{generations}"
    )


def latency_figure_statement(target: str) -> str:
    """Which latency the predictor, the budget and the "measured" column mean (debug sum or deployable)."""
    from ofa_hw.formats.profile import FIGURES

    key = "e2e_ms" if target == "e2e" else "profile_total_ms"
    return f"**Latency figure** (`predictor.target={target}`): {FIGURES[key]}."


def subnets_statement(results: dict[str, Any]) -> str:
    """Which subnets each figure used: fixed by the seed and the LUT, never by the store's other contents."""
    lut, pred, search = results["lut"], results["predictor"], results["search"]
    calib, held = pred.get("calibration_subnets", 0), pred.get("eval_subnets", 0)
    return (
        f"Subnets behind each figure: the LUT validation MAPE, {lut.get('validation_subnets', 0)} random "
        f"subnets (`lut_validation.csv`); the predictor's per-network overhead and σ, {calib} calibration "
        f"subnets drawn with the run's seed (`predictor.calibration_arch_ids` in `results.json`); its scores, "
        f"{held} held-out subnets (`predictor_eval.csv`, `predictor.eval_arch_ids`); the measured figures "
        f"of the search, the {search.get('measured', 0)} deployed candidates (`candidates.csv`). Other "
        "measurements the workspace's store holds (earlier searches, other runs) are not used: the same "
        "command, seed and measurements give the same figures."
    )


def write_report(path: Path, results: dict[str, Any], outdir: Path) -> Path:
    """Write ``report.md``: DPU, LUT coverage, predictor metrics, chosen subnets, plots."""
    dpu, lut, pred, search = results["dpu"], results["lut"], results["predictor"], results["search"]
    best = search["best"]
    acc_label = _accuracy_label(search)
    tag = measured_on(results, short=True)
    parts = [
        f"# ofa-hw report: {results['space']['name']} on {dpu['preset']}",
        "",
        measured_on(results),
        "",
        "## DPU",
        _table(
            ["preset", "arch", "clock", "cores", "fingerprint", "backend"],
            [
                [
                    dpu["preset"],
                    dpu.get("arch", "–"),
                    f"{_fmt(dpu.get('freq_mhz'), '.0f')} MHz",
                    dpu.get("cores", "–"),
                    f"`{dpu['fingerprint']}`",
                    results["backend"]["name"],
                ]
            ],
        ),
        "",
        compile_limit_statement(results),
        "",
        "## Latency lookup table",
        _table(
            [
                "keys",
                "coverage (compilable keys)",
                "uncompilable keys",
                "probe subnets",
                "validation MAPE",
                "source",
            ],
            [
                [
                    lut["keys"],
                    _pct(lut["coverage"]),
                    lut.get("uncompilable_keys", "–"),
                    lut.get("probe_subnets", "–"),
                    _pct(lut.get("validation_mape")),
                    lut.get("source", "–"),
                ]
            ],
        ),
        f"\nLUT file: `{lut['path']}` ({lut.get('provenance', '')}). Validation = LUT sum vs whole-network "
        f"measurement on {lut.get('validation_subnets', 0)} random subnets, {tag}.",
        "\n" + budget_statement(lut, pred, results["backend"]["name"]),  # board time (issue 14)
        "",
        _image(outdir, "lut_coverage.png", "LUT coverage"),
        "## Latency predictor",
        _table(
            [
                "model",
                "held-out subnets",
                "MAPE",
                "RMSE (ms)",
                "±1 %",
                "±5 %",
                "±10 %",
                "Kendall τ",
                "Spearman ρ",
            ],
            [
                [
                    pred["name"],
                    pred.get("eval_subnets", "–"),
                    _pct(pred.get("mape")),
                    _fmt(pred.get("rmse_ms"), ".4f"),
                    _pct(pred.get("acc1")),
                    _pct(pred.get("acc5")),
                    _pct(pred.get("acc10")),
                    _fmt(pred.get("kendall_tau")),
                    _fmt(pred.get("spearman_rho")),
                ]
            ],
        ),
        f"\nHeld-out subnets {tag}.",
        "",
        subnets_statement(results),
        "",
        _image(outdir, "predictor_scatter.png", "predicted vs measured latency of held-out subnets"),
        "## Search and deployed candidates",
        latency_figure_statement(pred.get("target", "profile")),
        "",
        f"Budget **{_fmt(search['budget_ms'])} ms** ({search.get('budget_source', 'config')}; predicted latency "
        f"+ {_fmt(search.get('k_sigma'), 'g')}·σ must fit). The space spans {_fmt(search.get('floor_ms'))}–"
        f"{_fmt(search.get('ceiling_ms'))} ms on this DPU. {search.get('evaluations', '–')} evaluations in "
        f"{_fmt(search.get('search_s'), '.2f')} s. Accuracy column: {acc_label}."
        + (
            " The budget is above the slowest subnet of the space: every subnet fits, the most accurate one "
            "wins and no refinement round runs."
            if search.get("above_ceiling")
            else ""
        ),
        "",
        _table(
            ["", "predicted (ms)", "measured (ms)", "slack", acc_label, "arch"],
            [
                [
                    "best",
                    _fmt(best.get("predicted_ms")),
                    _fmt(best.get("measured_ms")),
                    _pct(best.get("slack")),
                    _fmt(best.get("accuracy"), ".2f"),
                    f"`{json.dumps(best.get('arch'), separators=(',', ':'))}`",
                ]
            ],
        ),
        "",
        f"Hit rate (measured latency within budget, top-{search.get('top_k')}; {tag}): "
        f"**{_pct(search.get('hit_rate'))}** over {len(search.get('rounds', []))} round(s). All candidates: `candidates.csv`; Pareto front: "
        f"`pareto.csv`. The deployed candidates differ as networks to the DPU: subnets that only reorder "
        f"the blocks of a stage (the same operations, the same latency) are deployed once, and `stands_for` "
        f"says how many searched subnets each deployed one stands for.",
        "",
        _candidates_table(outdir / "candidates.csv", acc_label),
        "",
        _image(outdir, "pred_vs_measured.png", "predicted vs measured latency of the deployed candidates"),
        _image(outdir, "pareto.png", "Pareto front with the budget line"),
    ]
    path.write_text("\n".join(p for p in parts if p is not None) + "\n")
    return path


def _candidates_table(csv_path: Path, acc_label: str, limit: int = 10) -> str:
    if not csv_path.is_file():
        return ""
    import pandas as pd

    frame = pd.read_csv(csv_path).head(limit)
    cols = [
        c
        for c in (
            "round",
            "rank",
            "net_name",
            "predicted_ms",
            "std_ms",
            "measured_ms",
            "meets_budget",
            "stands_for",
            "accuracy",
        )
        if c in frame.columns
    ]
    rows = [
        [_fmt(v, ".3f") if isinstance(v, float) else v for v in row]
        for row in frame[cols].itertuples(index=False)
    ]
    return _table([acc_label if c == "accuracy" else c for c in cols], rows)


def summary_table(results: dict[str, Any], job: str = "") -> str:
    """A few aligned lines for the end of a terminal run; ``job`` names the multirun job they belong to."""
    dpu, lut, pred, search = results["dpu"], results["lut"], results["predictor"], results["search"]
    best = search["best"]
    timings = results.get("timings_s", {})
    rows = [
        (
            "DPU",
            f"{dpu['preset']} ({dpu.get('arch', '')} @ {_fmt(dpu.get('freq_mhz'), '.0f')} MHz), fp {dpu['fingerprint']}",
        ),
        (
            "LUT",
            f"{lut['keys']} keys, coverage {_pct(lut['coverage'])}, {lut['profiled_subnets']} profiled subnets, "
            f"validation MAPE {_pct(lut.get('validation_mape'))}",
        ),
        (
            "predictor",
            f"{pred['name']}: MAPE {_pct(pred.get('mape'))}, ±5 % {_pct(pred.get('acc5'))}, "
            f"Kendall τ {_fmt(pred.get('kendall_tau'))}",
        ),
        ("budget", f"{_fmt(search['budget_ms'])} ms"),
        (
            "best subnet",
            f"predicted {_fmt(best.get('predicted_ms'))} ms, measured {_fmt(best.get('measured_ms'))} ms, "
            f"{_accuracy_label(search)} {_fmt(best.get('accuracy'), '.2f')}",
        ),
        ("hit rate", _pct(search.get("hit_rate"))),
        ("measured on", measured_on(results, short=True)[len("measured on ") :]),
        ("time", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())),
    ]
    width = max(len(k) for k, _ in rows)
    rule = "-" * 72
    if job:
        rows.insert(0, ("job", job))
    return "\n".join([rule, *(f"{k:<{width}}  {v}" for k, v in rows), rule])
