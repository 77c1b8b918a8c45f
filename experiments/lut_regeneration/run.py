"""LUT regeneration after a DPU config change: how the LUT and the chosen subnets move.

Drives ``ofa-hw`` as subprocesses (``python -m ofa_hw.cli``) in one workspace (``OFA_HW_WORKSPACE``,
a fresh temporary directory unless ``--workspace`` is given), per ``config.yaml``:

1. stale checks: ``task=lut lut.regenerate=false`` on every non-baseline config while the workspace
   holds no LUT yet, so the shipped baseline LUT is the only candidate (the error is captured);
2. per config: ``task=lut`` (reuse or rebuild) then ``task=search search.budget_ms=B`` per budget
   (an infeasible budget is recorded with its error message, not hidden);
3. analysis in-process: per-key latency ratio of each LUT to the baseline's, the exact LUT floor of
   the space, and the baseline's chosen subnets re-measured on each new config (simulator).

Writes into the experiment directory (``--out``): ``results.json``, ``configs.csv``, ``searches.csv``
and ``lut_regeneration.png``. Usage (from the repository root)::

    python experiments/lut_regeneration/run.py [--workspace DIR] [--out DIR] [--config FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
ERROR_PREFIX = "ofa-hw: error:"


@dataclass(frozen=True)
class Call:
    """One ``ofa-hw`` subprocess.

    Attributes:
        args: The Hydra overrides it ran with.
        rc: Exit code (0 ok, 2 = a user error such as a stale LUT or an infeasible budget).
        wall_s: Wall time including Python start-up.
        error: The ``ofa-hw: error:`` line (without the prefix) when it failed, else ``None``.
        results: Its ``results.json`` (``None`` when it failed).
    """

    args: tuple[str, ...]
    rc: int
    wall_s: float
    error: str | None
    results: dict[str, Any] | None


def ofa_hw(args: list[str], workspace: Path, rundir: Path) -> Call:
    """Run ``ofa-hw <args>`` with its Hydra run directory ``rundir``; logs land in ``rundir``."""
    rundir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OFA_HW_WORKSPACE": str(workspace)}
    cmd = [sys.executable, "-m", "ofa_hw.cli", *args, f"hydra.run.dir={rundir}"]
    print("$ ofa-hw " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, cwd=workspace, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (rundir / "stdout.txt").write_text(proc.stdout)
    (rundir / "stderr.txt").write_text(proc.stderr)
    error = None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        tagged = [ln[len(ERROR_PREFIX) :].strip() for ln in lines if ln.startswith(ERROR_PREFIX)]
        error = tagged[-1] if tagged else (lines[-1] if lines else f"exit code {proc.returncode}")
        print(f"  -> exit {proc.returncode}: {error}", flush=True)
    results_path = rundir / "results.json"
    results = json.loads(results_path.read_text()) if proc.returncode == 0 and results_path.exists() else None
    return Call(tuple(args), proc.returncode, wall, error, results)


# ----------------------------------------------------------------------------------- analysis
def ratio_stats(base_csv: Path, other_csv: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Per-key ``mean_ms`` ratio of ``other`` to ``base`` (keys both LUTs hold) and its distribution."""
    base = pd.read_csv(base_csv)[["key", "mean_ms"]]
    other = pd.read_csv(other_csv)[["key", "mean_ms"]]
    joined = base.merge(other, on="key", how="outer", suffixes=("_base", "_new"))
    common = joined.dropna().copy()
    common["ratio"] = common["mean_ms_new"] / common["mean_ms_base"]
    common["kind"] = common["key"].str.split("-").str[0]
    r = common["ratio"]

    def dist(x: pd.Series) -> dict[str, float]:
        return {"min": float(x.min()), "median": float(x.median()), "max": float(x.max()), "n": len(x)}

    ranked = common.sort_values("ratio")
    stats = {
        "common_keys": len(common),
        "lost_keys": int(joined["mean_ms_new"].isna().sum()),  # compilable before, not any more
        "gained_keys": int(joined["mean_ms_base"].isna().sum()),
        **dist(r),
        "p05": float(r.quantile(0.05)),
        "p95": float(r.quantile(0.95)),
        "mean": float(r.mean()),
        "by_kind": {k: dist(g["ratio"]) for k, g in common.groupby("kind")},
        "lowest": [{"key": k, "ratio": float(v)} for k, v in zip(ranked["key"][:3], ranked["ratio"][:3])],
        "highest": [{"key": k, "ratio": float(v)} for k, v in zip(ranked["key"][-3:], ranked["ratio"][-3:])],
    }
    return stats, common


def lut_floor(space: Any, lut_csv: Path) -> dict[str, Any]:
    """The exact fastest and slowest compilable subnet by LUT sum (k = 0: no uncertainty margin)."""
    from ofa_hw.lut.table import LatencyTable
    from ofa_hw.search.floor import table_ceiling, table_floor

    table = LatencyTable.load(lut_csv)
    blocks = table.to_block_table(space)
    floor, ceiling = table_floor(blocks, 0.0), table_ceiling(blocks)
    arch = space.decode(floor.genes[None, :])[0]
    return {
        "floor_ms": floor.mean_ms,
        "ceiling_ms": ceiling.mean_ms,
        "floor_arch": subnet_summary(space, arch),
    }


def subnet_summary(space: Any, arch: dict[str, Any]) -> dict[str, Any]:
    """Resolution, stage depths and mean kernel/expand over the active blocks."""
    arch = space.validate(arch)
    active = space.active_blocks(arch)
    return {
        "r": int(arch["r"]),
        "depths": [int(d) for d in arch["d"][: space.n_stages - 1]],
        "mean_depth": float(np.mean(arch["d"][: space.n_stages - 1])),
        "mean_kernel": float(np.mean([arch["ks"][b] for b in active])),
        "mean_expand": float(np.mean([arch["e"][b] for b in active])),
    }


def remeasure(
    space: Any, arch: dict[str, Any], dpu_config: dict[str, Any], runs: int
) -> tuple[float | None, str | None]:
    """Profile-mode latency of ``arch`` on a DPU (the simulator the sim backend runs), or the compile error."""
    from ofa_hw.dpu import CompileError, DPUConfig
    from ofa_hw.sim import simulate

    try:
        return simulate(
            (space, space.validate(arch)), dpu=DPUConfig.from_dict(dpu_config), runs=runs, seed=0
        ).total_ms, None
    except CompileError as err:
        return None, str(err)


# ---------------------------------------------------------------------------------------- plot
def plot(
    path: Path,
    ratios: dict[str, pd.DataFrame],
    rows: list[dict[str, Any]],
    labels: dict[str, str],
    budgets: list[float],
) -> None:
    """Per-key ratio histogram and scatter; chosen resolution and mean depth per budget per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(labels)
    colors = dict(zip(names, ["#444444", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"]))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    bins = np.linspace(1.0, max(1.6, max((f["ratio"].max() for f in ratios.values()), default=1.6)), 50)
    for name, frame in ratios.items():
        ax.hist(
            frame["ratio"],
            bins=bins,
            alpha=0.55,
            color=colors[name],
            label=f"{labels[name]} (median {frame['ratio'].median():.2f})",
        )
    ax.set(
        xlabel="per-key LUT latency ratio vs baseline",
        ylabel="LUT keys",
        title="(a) the change is not uniform across keys",
    )
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    markers = {"Conv": "s", "expanded_conv": ".", "Conv_1": "^", "Logits": "D"}
    for name, frame in ratios.items():
        for kind, g in frame.groupby("kind"):
            ax.scatter(
                g["mean_ms_base"],
                g["ratio"],
                s=10 if kind == "expanded_conv" else 28,
                marker=markers.get(kind, "o"),
                color=colors[name],
                alpha=0.5,
                label=f"{labels[name]}: {kind}" if kind != "expanded_conv" else labels[name],
            )
    ax.set_xscale("log")
    ax.set(
        xlabel="baseline key latency (ms)",
        ylabel="ratio vs baseline",
        title="(b) ratio per key and block kind",
    )
    ax.legend(fontsize=6, ncol=2, loc="upper left")

    searched = [n for n in names if any(r["config"] == n for r in rows)]
    width = 0.8 / max(1, len(searched))
    x = np.arange(len(budgets))
    panels = [
        ("r", "(c) chosen subnet: input resolution"),
        ("mean_expand", "(d) chosen subnet: mean expand ratio (text: stage depths)"),
    ]
    for col, (field, title) in enumerate(panels):
        ax = axes[1, col]
        for i, name in enumerate(searched):
            labelled = False
            for j, b in enumerate(budgets):
                row = next(r for r in rows if r["config"] == name and r["budget_ms"] == b)
                xpos = x[j] + (i - (len(searched) - 1) / 2) * width
                if row["status"] != "ok":
                    ax.text(
                        xpos,
                        0.02,
                        row["status"],
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        color=colors[name],
                        transform=ax.get_xaxis_transform(),
                    )
                    continue
                ax.bar(xpos, row[field], width, color=colors[name], label=None if labelled else labels[name])
                labelled = True
                if field == "mean_expand":
                    ax.text(
                        xpos,
                        row[field],
                        row["depths"].replace(" ", ""),
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_xticks(x, [f"{b:g} ms" for b in budgets])
        ax.set(xlabel="latency budget", title=title)
        ax.set_ylim(*((100, 235) if field == "r" else (0, 6.5)))
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("ofa_proxyless_w13 on ZCU102: LUT regenerated after a DPU clock / arch change", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- main
def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "config.yaml")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="OFA_HW_WORKSPACE to use (kept); default: a fresh temporary directory, removed at the end",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json, the CSVs and the plot go")
    args = parser.parse_args(argv)

    from ofa_hw.space import get_space

    t_start = time.perf_counter()
    cfg = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    common, search_extra = list(cfg["common_overrides"]), list(cfg["search_overrides"])
    budgets = [float(b) for b in cfg["budgets_ms"]]
    configs = cfg["configs"]
    space = get_space(next(o.split("=", 1)[1] for o in common if o.startswith("space=")))
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="ofa_hw_lutregen_"))
    workspace.mkdir(parents=True, exist_ok=True)
    runs_dir = workspace / "runs"
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"workspace {workspace}")

    try:
        # 1. stale checks while the shipped LUT is the only one (a reused workspace may already hold LUTs)
        stale_checks = {}
        for c in configs[1:]:
            call = ofa_hw(
                [*common, *c["overrides"], "task=lut", "lut.regenerate=false"],
                workspace,
                runs_dir / f"{c['name']}_stale_check",
            )
            stale_checks[c["name"]] = {
                "rc": call.rc,
                "message": call.error,
                "lut_source": (call.results or {}).get("lut", {}).get("source"),
            }

        # 2. LUT (reuse or rebuild) and the searches, config by config
        luts: dict[str, dict[str, Any]] = {}
        searches: dict[str, dict[float, Call]] = {}
        for c in configs:
            call = ofa_hw([*common, *c["overrides"], "task=lut"], workspace, runs_dir / f"{c['name']}_lut")
            if call.results is None:
                raise SystemExit(f"task=lut failed on {c['name']}: {call.error}")
            lut_json = json.loads(Path(call.results["lut"]["path"]).with_suffix(".json").read_text())
            luts[c["name"]] = {**call.results, "wall_s": call.wall_s, "dpu_config": lut_json["dpu_config"]}
            if c.get("search", True):
                searches[c["name"]] = {
                    b: ofa_hw(
                        [*common, *c["overrides"], *search_extra, "task=search", f"search.budget_ms={b:g}"],
                        workspace,
                        runs_dir / f"{c['name']}_search_{b:g}",
                    )
                    for b in budgets
                }

        # 3. analysis
        base_name = configs[0]["name"]
        base_csv = Path(luts[base_name]["lut"]["path"])
        ratios, config_rows, results_configs = {}, [], {}
        seen_fp: dict[str, str] = {}
        for c in configs:
            name, lut = c["name"], luts[c["name"]]
            fp = lut["dpu"]["fingerprint"]
            floor = lut_floor(space, Path(lut["lut"]["path"]))
            entry = {
                "label": c["label"],
                "overrides": c["overrides"],
                "preset": lut["dpu"]["preset"],
                "fingerprint": fp,
                "same_fingerprint_as": seen_fp.get(fp),
                "stale_check": stale_checks.get(name),
                "lut": {
                    k: lut["lut"][k]
                    for k in (
                        "source",
                        "keys",
                        "compilable_keys",
                        "uncompilable_keys",
                        "coverage",
                        "profiled_subnets",
                        "validation_mape",
                    )
                },
                "lut_build_s": lut["timings_s"]["total_s"] if lut["lut"]["source"] == "built" else 0.0,
                "lut_task_wall_s": lut["wall_s"],
                "space": floor,
            }
            seen_fp.setdefault(fp, name)
            if name != base_name:
                stats, frame = ratio_stats(base_csv, Path(lut["lut"]["path"]))
                entry["key_ratio"] = stats
                if entry["same_fingerprint_as"] is None:  # an identical LUT would only repeat its histogram
                    ratios[name] = frame
            results_configs[name] = entry
            kr = entry.get("key_ratio", {})
            config_rows.append(
                {
                    "config": name,
                    "label": c["label"],
                    "overrides": " ".join(c["overrides"]),
                    "fingerprint": fp,
                    "lut_source": entry["lut"]["source"],
                    "lut_build_s": round(entry["lut_build_s"], 2),
                    "profiled_subnets": entry["lut"]["profiled_subnets"],
                    "lut_keys": entry["lut"]["keys"],
                    "uncompilable_keys": entry["lut"]["uncompilable_keys"],
                    "ratio_min": kr.get("min"),
                    "ratio_median": kr.get("median"),
                    "ratio_max": kr.get("max"),
                    "lost_keys": kr.get("lost_keys"),
                    "lut_floor_ms": floor["floor_ms"],
                    "lut_ceiling_ms": floor["ceiling_ms"],
                    "stale_check_rc": (stale_checks.get(name) or {}).get("rc"),
                    "stale_check_message": (stale_checks.get(name) or {}).get("message"),
                }
            )

        search_rows = []
        base_choice: dict[float, dict[str, Any]] = {}
        for c in configs:
            name = c["name"]
            for b, call in searches.get(name, {}).items():
                row: dict[str, Any] = {"config": name, "budget_ms": b}
                if call.results is None:
                    floor = re.search(r"reaches is ([0-9.]+) ms", call.error or "")
                    row.update(
                        status="infeasible" if "infeasible" in (call.error or "") else "error",
                        error=call.error,
                        predicted_floor_ms=float(floor.group(1)) if floor else None,
                    )
                else:
                    s = call.results["search"]
                    best = s["best"]
                    sub = subnet_summary(space, best["arch"])
                    row.update(
                        status="ok",
                        **{**sub, "depths": " ".join(map(str, sub["depths"]))},
                        accuracy_proxy=best["accuracy"],
                        predicted_ms=best["predicted_ms"],
                        measured_ms=best["measured_ms"],
                        hit_rate=s["hit_rate"],
                        predicted_floor_ms=s["floor_ms"],
                        arch_id=best["arch_id"],
                        arch=json.dumps(best["arch"], separators=(",", ":")),
                    )
                    if name == base_name:
                        base_choice[b] = best
                if name != base_name and b in base_choice:
                    row["same_subnet_as_baseline"] = row.get("arch_id") == base_choice[b]["arch_id"]
                    ms, err = remeasure(
                        space, base_choice[b]["arch"], luts[name]["dpu_config"], int(cfg["crosscheck_runs"])
                    )
                    row["baseline_choice_ms"] = ms
                    row["baseline_choice_meets_budget"] = ms is not None and ms <= b
                    row["baseline_choice_error"] = err
                search_rows.append(row)

        columns = [
            "config",
            "budget_ms",
            "status",
            "r",
            "depths",
            "mean_depth",
            "mean_kernel",
            "mean_expand",
            "accuracy_proxy",
            "predicted_ms",
            "measured_ms",
            "hit_rate",
            "predicted_floor_ms",
            "same_subnet_as_baseline",
            "baseline_choice_ms",
            "baseline_choice_meets_budget",
            "baseline_choice_error",
            "error",
            "arch_id",
            "arch",
        ]
        flat_rows = [{k: r.get(k) for k in columns} for r in search_rows]
        results = {
            "space": space.name,
            "baseline": base_name,
            "budgets_ms": budgets,
            "accuracy_model": "FLOPs proxy (not ImageNet accuracy)",
            "configs": results_configs,
            "searches": [{k: v for k, v in r.items() if k != "arch"} for r in flat_rows],
            "wall_s": time.perf_counter() - t_start,
        }
        (args.out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
        write_csv(args.out / "configs.csv", config_rows)
        write_csv(args.out / "searches.csv", flat_rows)
        plot(
            args.out / "lut_regeneration.png",
            ratios,
            search_rows,
            {c["name"]: c["label"] for c in configs},
            budgets,
        )
        print_summary(config_rows, flat_rows)
        print(f"wall time {results['wall_s']:.0f} s; results in {args.out}")
        return results
    finally:
        if args.workspace is None:
            shutil.rmtree(workspace, ignore_errors=True)


def print_summary(config_rows: list[dict[str, Any]], search_rows: list[dict[str, Any]]) -> None:
    """Two compact tables on the terminal."""
    cols = [
        "config",
        "fingerprint",
        "lut_source",
        "lut_build_s",
        "ratio_min",
        "ratio_median",
        "ratio_max",
        "lost_keys",
        "lut_floor_ms",
    ]
    print(pd.DataFrame(config_rows)[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    cols = [
        "config",
        "budget_ms",
        "status",
        "r",
        "depths",
        "mean_kernel",
        "mean_expand",
        "predicted_ms",
        "measured_ms",
        "hit_rate",
        "baseline_choice_ms",
    ]
    print(pd.DataFrame(search_rows)[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
