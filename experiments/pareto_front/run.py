"""Does the Pareto front reach the space's latency ceiling, and does it dominate every searched point?

For several seeds: the NSGA-II front of ``ofa_proxyless_w13`` on the shipped ``zcu102_b4096`` LUT (FLOPs
proxy accuracy, k_sigma 2, the default 300 generations), merged with the points of budget searches at
25 %, 75 % and 99 % of the latency range, against the exact ceiling of the table. ``--no-extremes`` runs
the same without seeding the first population with the extremes and without merging (the behaviour
before issue 12), for comparison.

Run from the repository root: ``python experiments/pareto_front/run.py`` (about 30 s).
Writes ``results.json`` and ``front.png`` next to this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ofa_hw.accuracy.flops import FlopsProxy
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut.table import LatencyTable
from ofa_hw.search import EvolutionFinder, EvolutionParams, TableLatency
from ofa_hw.search.floor import table_ceiling, table_floor
from ofa_hw.search.pareto import ParetoFinder
from ofa_hw.space import get_space

HERE = Path(__file__).resolve().parent
# The shipped LUT of the current zcu102_b4096 preset (its file name carries the DPU fingerprint).
LUT = (
    HERE.parents[1]
    / "lut"
    / f"ofa_proxyless_w13-zcu102_b4096-{DPUConfig.from_preset('zcu102_b4096').fingerprint()}.csv"
)


def dominated_count(front, lat: np.ndarray, acc: np.ndarray) -> int:
    """Front points that some searched point dominates."""
    return int(
        sum(
            ((acc >= fa) & (lat <= fl) & ((acc > fa) | (lat < fl))).any()
            for fl, fa in zip(front.mean_ms, front.accuracy)
        )
    )


def uncovered_count(front, lat: np.ndarray, acc: np.ndarray) -> int:
    """Searched points no front point weakly dominates (as accurate or more, as fast or faster)."""
    order = np.argsort(front.mean_ms)
    f_lat, best_acc = front.mean_ms[order], np.maximum.accumulate(front.accuracy[order])
    idx = np.searchsorted(f_lat, lat, side="right") - 1  # fastest-or-equal front prefix of each point
    covered = (idx >= 0) & (best_acc[np.clip(idx, 0, None)] >= acc)
    return int((~covered).sum())


def run(seed: int, seeded: bool, space, latency, accuracy, table) -> dict:
    floor, ceiling = table_floor(table, 0.0).mean_ms, table_ceiling(table).mean_ms
    budgets = [floor + f * (ceiling - floor) for f in (0.25, 0.75, 0.99)]
    searched = np.concatenate(
        [
            EvolutionFinder(space, latency, accuracy, k_sigma=2.0, seed=seed).run(b).evaluated.genes
            for b in budgets
        ]
    )
    searched = np.unique(searched, axis=0)
    finder = ParetoFinder(
        space, latency, accuracy, params=EvolutionParams(generations=300), k_sigma=2.0, seed=seed
    )
    if not seeded:
        finder.extremes = lambda: np.empty((0, space.n_genes), dtype=np.int8)  # the old first population
    front = finder.run(None, include=searched if seeded else None).front
    lat, _ = latency.predict_encoded(searched)
    acc = accuracy.predict_encoded(searched)
    ok = np.isfinite(lat)
    return {
        "seed": seed,
        "ceiling_ms": ceiling,
        "front_max_ms": float(front.mean_ms.max()),
        "front_max_accuracy": float(front.accuracy.max()),
        "searched_max_accuracy": float(acc[ok].max()),
        "front_points": len(front),
        "front_points_dominated_by_searched": dominated_count(front, lat[ok], acc[ok]),
        "searched_points": int(ok.sum()),
        "searched_points_not_covered": uncovered_count(front, lat[ok], acc[ok]),
        "front": [front.mean_ms.tolist(), front.accuracy.tolist()],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    space = get_space("ofa_proxyless_w13")
    table = LatencyTable.load(LUT, space=space).to_block_table(space)
    latency, accuracy = TableLatency(table), FlopsProxy(space)
    results = {
        mode: [
            run(s, mode == "seeded_and_merged", space, latency, accuracy, table) for s in range(args.seeds)
        ]
        for mode in ("before_issue_12", "seeded_and_merged")
    }

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for mode, style, color, width in (
        ("seeded_and_merged", "-", "tab:orange", 3.0),
        ("before_issue_12", "--", "tab:blue", 1.2),
    ):  # the old, shorter one on top
        lat, acc = results[mode][0]["front"]
        ax.plot(lat, acc, style, color=color, lw=width, label=f"{mode.replace('_', ' ')} (seed 0)")
    ax.axvline(
        results["seeded_and_merged"][0]["ceiling_ms"], color="k", ls=":", lw=1, label="latency ceiling"
    )
    ax.set_xlabel("predicted latency (ms, shipped zcu102_b4096 LUT)")
    ax.set_ylabel("FLOPs proxy (not ImageNet accuracy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(HERE / "front.png", dpi=110)
    for rows in results.values():
        for row in rows:
            row.pop("front")
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for mode, rows in results.items():
        print(
            mode,
            [
                (
                    round(r["front_max_ms"], 3),
                    round(r["front_max_accuracy"], 2),
                    r["front_points_dominated_by_searched"],
                    r["searched_points_not_covered"],
                )
                for r in rows
            ],
        )


if __name__ == "__main__":
    main()
