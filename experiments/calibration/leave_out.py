"""Leave-some-out benchmark of the calibrated simulator on the 22 real Ultra96 B2304 blocks.

Every figure compares the simulator with the **real board** (vaitrace hardware times, Ultra96-v2,
B2304 @ 200 MHz, Vitis-AI 3.0; ``ofa_hw/data/ultra96_b2304``). Fits use the same inputs and code as
``ofa-hw task=calibrate calibrate=ultra96_b2304`` (hardware from ``xdputil query``; the constants fitted
are the task's default, one per three measured blocks in priority order, ``calibrate.default_free``;
leave-one-out and few-block fits are repeated with all constants free for comparison):

* ``in_sample``: fit on all 22, predict all 22 (the shipped preset's fit error);
* ``loo``: leave-one-out — 22 fits on 21 blocks, each predicting the block it did not see;
* ``kfold``: 4-fold cross-validation repeated 5 times (fit on 16–17 blocks, predict 5–6);
* ``few_k``: fit on k random blocks (k = 4, 6, 11), predict the other 22 − k, 20 draws each —
  "a handful of real blocks" carrying over to the rest;
* ``uncalibrated``: the shipped ZCU102 constants on the Ultra96 hardware, with the DNNDK compile
  rule the simulator applied before toolchains were modelled (what a new user got before).

Run from the repository root (about 10 minutes on one core):

    python experiments/calibration/leave_out.py [--out experiments/calibration/ultra96_b2304]

Writes ``leave_out.csv`` (per block), ``leave_out.json`` (summary), ``leave_out.png`` (predicted vs
measured) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

from ofa_hw.dpu import CompileError, DPUConfig
from ofa_hw.frontends.mbv3_blocks import block_ops, parse_block
from ofa_hw.sim.calibrate import FREE, Measurement, calibrate
from ofa_hw.sim.compiler import compile_ops
from ofa_hw.sim.measurements import load_sources, sources_from_config
from ofa_hw.sim.timing import node_times_ms

#: Which constants are fitted: the task's default (one per three measured blocks, by priority) and all.
VARIANTS = {"default": None, "all_free": FREE}


def _setup():
    """The base DPU and the 22 measurements, exactly as the shipped calibrate config reads them."""
    from hydra import compose, initialize_config_module

    from ofa_hw.schemas import register
    from ofa_hw.tasks.calibrate import _base_dpu

    register()
    with initialize_config_module(config_module="ofa_hw.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["task=calibrate", "calibrate=ultra96_b2304"])
    base = _base_dpu(cfg)
    loaded = load_sources(sources_from_config(cfg.calibrate.measurements), base)
    return base, loaded.measurements


def _predict(dpu: DPUConfig, m: Measurement) -> float:
    return float(node_times_ms(m.net, dpu).sum())


def _fit(data: list[Measurement], base: DPUConfig, free=None) -> DPUConfig:
    return calibrate(data, base, free=free).dpu


def _summary(measured: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    ok = np.isfinite(predicted)
    rel = predicted[ok] / measured[ok] - 1.0
    ape = np.abs(rel)
    worst = int(np.argmax(ape))
    rho = spearmanr(measured[ok], predicted[ok]).statistic if ok.sum() > 2 else float("nan")
    return {
        "blocks": int(ok.sum()),
        "mape": float(ape.mean()),
        "median_ape": float(np.median(ape)),
        "median_ratio": float(np.median(predicted[ok] / measured[ok])),
        "worst_block": [n for n, k in zip(names, ok) if k][worst],
        "worst_error": float(rel[worst]),
        "within_10pct": float((ape <= 0.10).mean()),
        "spearman": float(rho),
        "not_compiling": int((~ok).sum()),
    }


def _uncalibrated(measurements: list[Measurement], base: DPUConfig) -> tuple[np.ndarray, DPUConfig]:
    """Seed constants on the Ultra96 hardware, compiled with the old (DNNDK) rule: NaN where it refuses."""
    seed = DPUConfig.from_preset("zcu102_b4096")
    old = seed.replace(
        name="uncalibrated",
        arch=base.arch,
        freq_mhz=base.freq_mhz,
        cores=base.cores,
        target_version=base.target_version,
        softmax=base.softmax,
    )
    preds = []
    for m in measurements:
        block = parse_block(m.label)
        try:
            cn = compile_ops(block_ops(block), old, "b", block.input_shape)
            preds.append(float(node_times_ms(cn, old).sum()))
        except CompileError:
            preds.append(float("nan"))
    return np.array(preds), old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/calibration/ultra96_b2304")
    ap.add_argument("--repeats", type=int, default=20, help="draws per few-block size")
    ap.add_argument(
        "--replot", action="store_true", help="only redraw leave_out.png from the committed CSV/JSON"
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        _plot(
            pd.read_csv(out / "leave_out.csv"),
            json.loads((out / "leave_out.json").read_text()),
            out / "leave_out.png",
        )
        return
    base, data = _setup()
    names = [m.label for m in data]
    measured = np.array([float(m.measured_ms[0]) for m in data])
    n = len(data)
    rng = np.random.default_rng(0)

    full = _fit(data, base)
    in_sample = np.array([_predict(full, m) for m in data])
    loo = {}
    for variant, free in VARIANTS.items():
        loo[variant] = np.zeros(n)
        for i in tqdm(range(n), desc=f"leave-one-out ({variant})"):
            dpu = _fit([m for j, m in enumerate(data) if j != i], base, free)
            loo[variant][i] = _predict(dpu, data[i])
    kfold_err = []
    kfold_pred = np.zeros((5, n))
    for r in tqdm(range(5), desc="4-fold x5"):
        folds = np.array_split(rng.permutation(n), 4)
        for f in folds:
            train = [m for j, m in enumerate(data) if j not in set(f)]
            dpu = _fit(train, base)
            for j in f:
                kfold_pred[r, j] = _predict(dpu, data[j])
        kfold_err.append(_summary(measured, kfold_pred[r], names)["mape"])
    few = {variant: {} for variant in VARIANTS}
    for k in (4, 6, 11):
        draws = [sorted(rng.choice(n, size=k, replace=False).tolist()) for _ in range(args.repeats)]
        for variant, free in VARIANTS.items():
            errs, medians = [], []
            for train in tqdm(draws, desc=f"fit on {k} ({variant})"):
                dpu = _fit([data[j] for j in train], base, free)
                test = [j for j in range(n) if j not in train]
                pred = np.array([_predict(dpu, data[j]) for j in test])
                ape = np.abs(pred / measured[test] - 1)
                errs.append(float(ape.mean()))
                medians.append(float(np.median(ape)))
            few[variant][f"fit_on_{k}"] = {
                "draws": args.repeats,
                "test_blocks": n - k,
                "mape_mean": float(np.mean(errs)),
                "mape_median_over_draws": float(np.median(errs)),
                "mape_worst_draw": float(np.max(errs)),
                "median_ape_mean": float(np.mean(medians)),
            }
    unc, _ = _uncalibrated(data, base)

    summary = {
        "measured_on": "real Ultra96-v2 board, DPUCZDX8G B2304 @ 200 MHz, Vitis-AI 3.0, vaitrace hardware time (22 blocks)",
        "in_sample": _summary(measured, in_sample, names),
        "loo": _summary(measured, loo["default"], names),
        "loo_all_free": _summary(measured, loo["all_free"], names),
        "kfold_4x5": {
            "mape_mean": float(np.mean(kfold_err)),
            "mape_per_repeat": kfold_err,
            **{k: v for k, v in _summary(measured, kfold_pred.mean(axis=0), names).items() if k != "mape"},
        },
        "few_blocks": few,
        "uncalibrated": {
            "description": "zcu102_b4096 constants on B2304 @ 200 MHz, DNNDK compile rule",
            **_summary(measured, unc, names),
        },
        "preset_constants": {k: getattr(full, k) for k in FREE},
        "fitted_constants": calibrate(data, base).constants,
    }
    table = pd.DataFrame(
        {
            "block": names,
            "measured_ms": measured,
            "in_sample_ms": in_sample,
            "loo_ms": loo["default"],
            "loo_all_free_ms": loo["all_free"],
            "kfold_mean_ms": kfold_pred.mean(axis=0),
            "uncalibrated_ms": unc,
        }
    )
    table["loo_error"] = table["loo_ms"] / table["measured_ms"] - 1
    table.to_csv(out / "leave_out.csv", index=False, float_format="%.5g")
    (out / "leave_out.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(table, summary, out / "leave_out.png")
    print(json.dumps({k: summary[k] for k in ("in_sample", "loo", "loo_all_free", "uncalibrated")}, indent=2))
    print(json.dumps(summary["few_blocks"], indent=2))


def _plot(table: pd.DataFrame, summary: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6))
    m = table["measured_ms"]
    lim = [0.08, 1.3 * max(m.max(), table[["in_sample_ms", "loo_ms"]].max().max())]
    ax.plot(lim, lim, color="k", lw=0.8, label="y = x")
    ax.fill_between(lim, [v * 0.9 for v in lim], [v * 1.1 for v in lim], color="0.9", label="±10 %")
    u = summary["uncalibrated"]
    ax.scatter(
        m,
        table["uncalibrated_ms"],
        marker="x",
        color="#8172b2",
        label=f"uncalibrated (ZCU102 constants): MAPE {100 * u['mape']:.0f} %, {u['not_compiling']} not compiling",
    )
    s = summary["in_sample"]
    ax.scatter(
        m,
        table["in_sample_ms"],
        s=18,
        color="#55a868",
        label=f"calibrated on all 22: MAPE {100 * s['mape']:.1f} %",
    )
    lo = summary["loo"]
    ax.scatter(
        m,
        table["loo_ms"],
        s=28,
        facecolors="none",
        edgecolors="#c44e52",
        label=f"leave-one-out (unseen block): MAPE {100 * lo['mape']:.1f} %",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ticks = [0.1, 0.2, 0.3, 0.5, 1, 2, 3]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        axis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{t:g}" for t in ticks]))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("measured on the Ultra96 (vaitrace HW time, ms)")
    ax.set_ylabel("simulated (ms)")
    ax.set_title("Ultra96 B2304: simulator vs real board, 22 OFA-MobileNetV3 blocks", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
