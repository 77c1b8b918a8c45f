"""Board time vs predictor error: which subnets to profile when every probe costs board minutes.

Three ways to choose the ``n`` profiled subnets (n = 5, 10, 20, 40), each scored on the same 1 000 unseen
random subnets with the default predictor (``predictor=xgb``):

* ``full``   — subnets of today's full coverage plan (``lut.plan=full``: 9 balanced max-depth probes per
  resolution, 225 in all), ``n`` of them evenly spread over the plan (so over the resolutions); the whole
  plan (225 probes + 20 validation + 30 held-out/calibration subnets the train stage adds) is a point too;
* ``random`` — ``n`` uniformly random compilable subnets at random resolutions;
* ``active`` — the budget plan (``lut.plan=budget``, :mod:`ofa_hw.lut.active`) with a zero error target so it
  runs to 40; its first ``n`` subnets are exactly what a budget of ``n`` profiles (the loop is nested).

Every figure is measured on the **simulator** (zcu102_b4096 preset, run-to-run jitter, 10 runs), not on a
board. Board and container hours are the cost model's estimate for the DNNDK flow (``vitis_dnndk``) with
its *default* per-probe times — assumed, since no real Vitis-AI timing exists in the project's data.

Rerun (about 3 min on 2 cores; measurements go through the store, so a second run only refits)::

    python experiments/board_time/run.py [--workspace DIR] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ofa_hw.backends.base import ProfileJob
from ofa_hw.backends.sim import SimBackend
from ofa_hw.bench.predictor import model_from_config
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut import dpu_compile_check, plan_probes
from ofa_hw.lut.active import ActiveSettings, run_active
from ofa_hw.lut.cost import DEFAULT_TIMES, CostEstimate
from ofa_hw.predictor import LatencyPredictor, TrainingSet, latency_metrics
from ofa_hw.predictor.data import sample_compilable
from ofa_hw.space import get_space
from ofa_hw.store import Store, profile_jobs

HERE = Path(__file__).resolve().parent
BUDGETS = (5, 10, 20, 40)
#: Subnets the full plan profiles beyond its 225 probes: 20 LUT validation + 20 held-out + 10 calibration.
FULL_EXTRA = 50
#: The DNNDK flow's per-probe cost (assumed defaults) with its default 2 build jobs and one board.
DNNDK = DEFAULT_TIMES["vitis_dnndk"]


def dnndk_cost(n: int) -> dict[str, float]:
    """Board, container and wall hours of profiling ``n`` subnets with the DNNDK flow's default times."""
    cost = CostEstimate(n, DNNDK, host_jobs=2, boards=1, backend="vitis_dnndk")
    return {"board_h": cost.board_s / 3600, "host_h": cost.host_s / 3600, "wall_h": cost.wall_s / 3600}


class Bench:
    """Space, DPU, simulator and store; profiles through the store and scores predictors on the truth."""

    def __init__(self, workspace: Path, runs: int, truth: int, model: str, seed: int) -> None:
        self.space = get_space("ofa_proxyless_w13")
        self.dpu = DPUConfig.from_preset("zcu102_b4096")
        self.backend = SimBackend(self.dpu)
        self.store = Store(workspace / "store.sqlite")
        self.check = dpu_compile_check(self.dpu)
        self.runs, self.model, self.seed = runs, model, seed
        archs = sample_compilable(self.space, np.random.default_rng(seed + 1), truth, self.check)
        outcomes = self.measure(archs, [f"benchtruth_{i}" for i in range(truth)], "truth")
        self.genes = self.space.encode(archs)
        self.y = np.array([o.profile.total_ms for o in outcomes])

    def measure(self, archs: list, names: list[str], desc: str = "profiling") -> list:
        jobs = [ProfileJob.create(self.space, a, n, self.runs, 0) for a, n in zip(archs, names)]
        outcomes = profile_jobs(self.backend, self.store, jobs, desc=desc, progress=len(jobs) > 50)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(
                f"{len(failed)} subnets failed, e.g. {failed[0].job.net_name}: {failed[0].error}"
            )
        return outcomes

    def new_predictor(self) -> LatencyPredictor:
        return LatencyPredictor(model_from_config(self.model, self.seed), self.space, self.dpu)

    def score(self, nets: tuple) -> dict[str, Any]:
        """Fit on ``nets`` (NetMeasurements with block times) and score on the truth."""
        t0 = time.perf_counter()
        pred = self.new_predictor().fit(TrainingSet(self.space, nets))
        mean, std = pred.predict_encoded(self.genes)
        m = latency_metrics(self.y, mean, std)
        return {
            k: m.get(k) for k in ("mape", "max_ape", "acc1", "acc5", "kendall_tau", "coverage_2sigma")
        } | {"fit_s": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args.workspace, args.runs, args.truth, args.model, 0)
    space, dpu, check = bench.space, bench.dpu, bench.check
    rows: list[dict[str, Any]] = []
    stops: list[dict[str, Any]] = []

    def add(strategy: str, seed: int, n: int, nets: tuple, subnets_cost: int | None = None) -> None:
        rows.append(
            {
                "strategy": strategy,
                "seed": seed,
                "subnets": n,
                **bench.score(nets[:n]),
                **dnndk_cost(subnets_cost if subnets_cost is not None else n),
            }
        )
        print(
            f"{strategy:7s} seed {seed} n={n:3d}: MAPE {rows[-1]['mape']:.3%}  tau {rows[-1]['kendall_tau']:.4f}",
            flush=True,
        )

    for seed in range(args.seeds):
        # full coverage plan: n of its probes, evenly spread over the plan (and so over the resolutions)
        plan = plan_probes(space, check, coverage=1, validation_subnets=0, seed=seed)
        outcomes = bench.measure(
            list(plan.probes),
            [f"bt_full{seed}_{i}" for i in range(len(plan.probes))],
            f"full plan (seed {seed})",
        )
        nets = TrainingSet.from_outcomes(space, dpu, outcomes).nets
        for n in BUDGETS:
            idx = np.unique(np.round(np.linspace(0, len(nets) - 1, n)).astype(int))
            add("full", seed, n, tuple(nets[i] for i in idx))
        if seed == 0:
            add("full", seed, len(nets), nets, subnets_cost=len(nets) + FULL_EXTRA)

        # random subnets at random resolutions
        archs = sample_compilable(space, np.random.default_rng(100 + seed), max(BUDGETS), check)
        outcomes = bench.measure(archs, [f"bt_rand{seed}_{i}" for i in range(len(archs))])
        nets = TrainingSet.from_outcomes(space, dpu, outcomes).nets
        for n in BUDGETS:
            add("random", seed, n, nets)

        # the budget plan, run to 40 (zero target); its first n subnets are what budget n profiles
        settings = ActiveSettings(
            max_subnets=max(BUDGETS), batch=5, target_mape=0.0, pool=args.pool, seed=seed
        )
        active = run_active(
            space,
            dpu,
            check,
            space.resolutions,
            lambda a, names, seed=seed: bench.measure(a, [f"bt_act{seed}_{x}" for x in names]),
            bench.new_predictor,
            settings,
        )
        nets = TrainingSet.from_outcomes(space, dpu, active.outcomes).nets
        for n in BUDGETS:
            add("active", seed, n, nets)
        # Where the stopping rule with the default target (1 %) would have stopped, and how honest it is.
        seen = 0
        for b in active.batches:
            seen += len(b.names)
            if b.heldout_mape is not None and b.heldout_mape <= args.target:
                break
        truth = bench.score(nets[:seen])
        stops.append(
            {
                "seed": seed,
                "target_mape": args.target,
                "subnets": seen,
                "heldout_mape_estimate": b.heldout_mape,
                "true_mape": truth["mape"],
                "true_kendall_tau": truth["kendall_tau"],
                **dnndk_cost(seen),
                "batches": [bb.heldout_mape for bb in active.batches],
            }
        )

    frame = pd.DataFrame(rows)
    summary = (
        frame[frame["subnets"].isin(BUDGETS)]
        .groupby(["strategy", "subnets"])
        .agg(
            mape=("mape", "mean"),
            mape_min=("mape", "min"),
            mape_max=("mape", "max"),
            kendall_tau=("kendall_tau", "mean"),
            acc1=("acc1", "mean"),
            board_h=("board_h", "first"),
            host_h=("host_h", "first"),
            wall_h=("wall_h", "first"),
        )
        .reset_index()
    )
    full_row = frame[(frame["strategy"] == "full") & ~frame["subnets"].isin(BUDGETS)].iloc[0].to_dict()
    return {
        "backend": "sim (the simulator: zcu102_b4096 preset, jitter, not a board)",
        "space": space.name,
        "dpu": {"preset": dpu.name, "fingerprint": dpu.fingerprint()},
        "truth": {
            "subnets": len(bench.y),
            "runs": args.runs,
            "min_ms": float(bench.y.min()),
            "max_ms": float(bench.y.max()),
        },
        "model": args.model,
        "seeds": args.seeds,
        "budgets": list(BUDGETS),
        "cost_model": {
            "backend": "vitis_dnndk",
            "per_subnet_host_s": DNNDK.host_s,
            "per_subnet_board_s": DNNDK.board_s,
            "host_jobs": 2,
            "boards": 1,
            "source": DNNDK.source,
        },
        "full_plan": {
            "probes": int(full_row["subnets"]),
            "profiled_subnets": int(full_row["subnets"]) + FULL_EXTRA,
            **{k: full_row[k] for k in ("mape", "kendall_tau", "board_h", "host_h", "wall_h")},
        },
        "stopping_rule": stops,
        "summary": summary.to_dict("records"),
        "rows": rows,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = pd.DataFrame(results["summary"])
    full = results["full_plan"]
    colours = {"full": "tab:blue", "random": "tab:orange", "active": "tab:green"}
    labels = {"full": "full-plan probes", "random": "random subnets", "active": "active (budget plan)"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for strategy, g in summary.groupby("strategy"):
        c = colours[strategy]
        axes[0].plot(g["board_h"], 100 * g["mape"], "o-", color=c, label=labels[strategy], ms=4)
        axes[0].fill_between(g["board_h"], 100 * g["mape_min"], 100 * g["mape_max"], color=c, alpha=0.15)
        axes[1].plot(g["board_h"], g["kendall_tau"], "o-", color=c, label=labels[strategy], ms=4)
    for ax, value in zip(axes, (100 * full["mape"], full["kendall_tau"])):
        ax.plot(
            [full["board_h"]],
            [value],
            "s",
            color="tab:blue",
            ms=7,
            label=f"whole full plan ({full['profiled_subnets']} subnets)",
        )
    stops = results["stopping_rule"]
    axes[0].plot(
        [s["board_h"] for s in stops],
        [100 * s["true_mape"] for s in stops],
        "*",
        color="k",
        ms=10,
        label=f"budget plan stops (target {stops[0]['target_mape']:.0%})",
    )
    for ax, label in zip(axes, ("MAPE on 1 000 unseen subnets (%)", "Kendall τ on 1 000 unseen subnets")):
        ax.set_xscale("log")
        ax.set_xlabel("board hours (DNNDK flow, assumed 30 s per subnet)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        secondary = ax.secondary_xaxis(
            "top", functions=(lambda h: h * 3600 / DNNDK.board_s, lambda n: n * DNNDK.board_s / 3600)
        )
        secondary.set_xlabel("profiled subnets", fontsize=8)
    axes[0].set_ylim(0, None)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Predictor ({results['model']}) error vs board time — measured on the SIMULATOR "
        f"({results['dpu']['preset']}), mean and range over {results['seeds']} seeds",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace", type=Path, default=None, help="store directory (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--truth", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=500)
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument("--model", default="xgb")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args.workspace = args.workspace or Path(tmp)
        args.workspace.mkdir(parents=True, exist_ok=True)
        results = run(args)
    results["wall_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    pd.DataFrame(results["rows"]).to_csv(args.out / "rows.csv", index=False, float_format="%.6g")
    plot(results, args.out / "board_time.png")
    print(pd.DataFrame(results["summary"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"stopping rule (target {args.target:.0%}):", json.dumps(results["stopping_rule"], default=float))
    print(f"wall time {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
