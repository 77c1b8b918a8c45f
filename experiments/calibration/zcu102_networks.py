"""Fit and leave-one-network-out of the DPU simulator on the two real ZCU102 B4096 networks.

Every figure compares the simulator with the **real board** (DNNDK profile-mode node times, ZCU102,
3 × B4096 @ 300 MHz, Vitis-AI 1.0/1.2; ``ofa_hw/data/zcu102_b4096``):

* ``seed``: ProxylessNAS-Mobile 0.5, 42 nodes (``dnndk_profile_proxylessmobile05.txt``);
* ``fcn8``: FCN8, 21 nodes (``fcn8_dnndk_board_log.txt``, kernel ``fcn8``), plus three small nodes of
  the same log's ``fcn8ups`` kernel (``fcn8ups_nodes.csv``) that belong to the same log and go with it.

Fits (the constants of ``calibrate=seed``: its ``free`` list, from the model's neutral defaults
``DPUConfig()`` on the board's ``dexplorer`` hardware, never from a fitted preset):

* ``joint``: fit on both (what ``ofa-hw task=calibrate calibrate=seed`` ships as ``zcu102_b4096``);
* ``seed_to_fcn8``: fit on the seed only, predict the FCN8 log — nodes the fit never saw;
* ``fcn8_to_seed``: fit on the FCN8 log only, predict the seed.

Run from the repository root (about a minute)::

    python experiments/calibration/zcu102_networks.py [--out experiments/calibration/zcu102_b4096] [--tag new]

``--tag today`` with ``PYTHONPATH`` pointing at a checkout of the previous model (see the README)
records the same figures for it. Writes ``<tag>_nodes.csv`` (per node) and ``<tag>.json`` (summary);
``--plot`` draws ``lono.png`` from both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ofa_hw.data import DATA_DIR
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats.dnndk import dpu_from_dexplorer, parse_dnndk_profile
from ofa_hw.frontends.fcn8 import FCN8UPS_NODES, fcn8_ops
from ofa_hw.netspec import build_netspec
from ofa_hw.sim.calibrate import Measurement, calibrate
from ofa_hw.sim.compiler import compile_net, compile_ops
from ofa_hw.sim.timing import node_times_ms
from ofa_hw.space import get_space

SEED = DATA_DIR / "zcu102_b4096"
#: The free constants of calibrate=seed, by model (``today``: the six of the model before issue 22).
FREE = {
    "today": ["ddr_bw_gbps", "node_overhead_us", "tile_overhead_cycles", "dw_row_cycles", "mem_overlap",
              "engine_overlap"],
    "new": ["ddr_bw_gbps", "node_overhead_us", "tile_overhead_cycles", "dw_row_cycles", "mem_overlap",
            "engine_overlap", "node_overhead_knee_kb", "node_overhead_us_per_mb", "weight_burst_bytes",
            "scatter_burst_bytes"],
}  # fmt: skip


def measurements(base: DPUConfig) -> dict[str, list[Measurement]]:
    """The real ZCU102 measurements, by network (``seed``, ``fcn8``)."""
    space = get_space("proxyless_w05")
    prof = parse_dnndk_profile((SEED / "dnndk_profile_proxylessmobile05.txt").read_text())
    ns = build_netspec(space, space.named_arch("proxyless_mobile_05"), name=prof.kernel)
    seed = Measurement.from_profile(compile_net(ns, base), prof, label="proxylessmobile05")
    log = (SEED / "fcn8_dnndk_board_log.txt").read_text()
    fprof = parse_dnndk_profile(log, kernel="fcn8")
    fcn8 = Measurement.from_profile(compile_ops(fcn8_ops(), base, "", (3, 224, 224)), fprof, label="fcn8")
    ups = parse_dnndk_profile(log, kernel="fcn8ups").nodes.set_index("name")["runtime_ms"]
    small = []
    for name, op in FCN8UPS_NODES.items():
        net = compile_ops([op], base, "", (op.in_c, op.in_h, op.in_w))
        m = Measurement.whole(net, float(ups[name]), name, "DNNDK profiles")
        if "group" in Measurement.__dataclass_fields__:
            m = Measurement(m.net, m.label, m.parts, m.names, m.measured_ms, m.source, "fcn8ups")
        small.append(m)
    return {"seed": [seed], "fcn8": [fcn8, *small]}


def _rows(dpu: DPUConfig, data: list[Measurement], net: str, fit: str) -> list[dict]:
    rows = []
    for m in data:
        sim = node_times_ms(m.net, dpu)
        for part, name, meas in zip(m.parts, m.names, m.measured_ms):
            t = float(sim[list(part)].sum())
            rows.append(dict(network=net, kernel=m.label, node=name, fit=fit, measured_ms=float(meas),
                             simulated_ms=t, rel_error=t / float(meas) - 1.0))  # fmt: skip
    return rows


def _summary(df: pd.DataFrame) -> dict:
    ape = df["rel_error"].abs()
    worst = df.loc[ape.nlargest(3).index]
    profile = df[df["kernel"].isin(["proxylessmobile05", "fcn8"])]
    return {
        "nodes": len(df),
        "node_mape": float(ape.mean()),
        "median_ape": float(ape.median()),
        "total_error": float(profile["simulated_ms"].sum() / profile["measured_ms"].sum() - 1.0),
        "worst": [{"node": r.node, "rel_error": round(float(r.rel_error), 4)} for r in worst.itertuples()],
    }


def plot(out: Path) -> None:
    """``lono.png``: per-node error of each leave-one-network-out prediction, previous model vs this one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = {
        t: pd.read_csv(out / f"{t}_nodes.csv") for t in ("today", "new") if (out / f"{t}_nodes.csv").is_file()
    }
    fig, axes = plt.subplots(2, 1, figsize=(14, 8))
    for ax, fit, title in zip(
        axes, ("seed_to_fcn8", "fcn8_to_seed"), ("fit on seed, predict FCN8", "fit on FCN8, predict seed")
    ):
        for k, (tag, df) in enumerate(frames.items()):
            d = df[df["fit"] == fit]
            x = np.arange(len(d))
            ape = 100 * d["rel_error"].abs().mean()
            ax.bar(
                x + (k - 0.5) * 0.4,
                100 * d["rel_error"],
                width=0.4,
                label=f"{tag} model (node MAPE {ape:.1f} %)",
            )
            ax.set_xticks(x)
            ax.set_xticklabels([n.replace("proxylessmobile05_", "").replace("_convolution", "") for n in d["node"]],
                               rotation=90, fontsize=7)  # fmt: skip
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel("simulated / measured − 1 (%)")
        ax.set_title(f"{title} — vs the real ZCU102 B4096 (DNNDK node times), nodes the fit never saw")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "lono.png", dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/calibration/zcu102_b4096")
    ap.add_argument("--tag", default="new", choices=sorted(FREE))
    ap.add_argument("--plot", action="store_true", help="only draw lono.png from the committed CSVs")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot:
        plot(out)
        return
    base = dpu_from_dexplorer((SEED / "dexplorer_w_dpu_config.txt").read_text(), name="zcu102_b4096",
                              base=DPUConfig())  # fmt: skip
    nets = measurements(base)
    free = FREE[args.tag]
    fits = {
        "joint": (nets["seed"] + nets["fcn8"], ("seed", "fcn8")),
        "seed_to_fcn8": (nets["seed"], ("fcn8",)),
        "fcn8_to_seed": (nets["fcn8"], ("seed",)),
    }
    rows, summary = [], {"measured_on": "real ZCU102 board, DPU B4096 @ 300 MHz, DNNDK profile-mode node times",
                         "model": args.tag, "free": free}  # fmt: skip
    for fit, (train, judged) in fits.items():
        cal = calibrate(train, base, free=free)
        summary[fit] = {"constants": cal.constants}
        for net in judged:
            df = pd.DataFrame(_rows(cal.dpu, nets[net], net, fit))
            rows.append(df)
            summary[fit][net] = _summary(df)
            s = summary[fit][net]
            print(f"{args.tag} {fit:13s} on {net:5s}: node MAPE {100 * s['node_mape']:.1f} %, "
                  f"total {100 * s['total_error']:+.1f} %, worst {s['worst'][0]}")  # fmt: skip
    pd.concat(rows).to_csv(out / f"{args.tag}_nodes.csv", index=False, float_format="%.6g")
    (out / f"{args.tag}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
