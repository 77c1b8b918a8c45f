"""Accuracy figures of a latency predictor against measured networks (errors as fractions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

#: Error bounds of the ``acc<k>`` figures: share of networks whose relative error is within ±k %.
ACC_BOUNDS = (1, 5, 10)


def latency_metrics(
    measured: ArrayLike, predicted: ArrayLike, std: ArrayLike | None = None
) -> dict[str, float]:
    """RMSE (ms), MAPE, ±1/5/10 % accuracy, Kendall τ, Spearman ρ (and 2σ coverage given ``std``).

    Non-finite predictions (uncompilable archs) count as misses and are left out of RMSE/MAPE/ranks.
    """
    y = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    ok = np.isfinite(p) & np.isfinite(y) & (y > 0)
    if not ok.any():
        raise ValueError("no finite prediction to score")
    rel = np.full(len(y), np.inf)
    rel[ok] = np.abs(p[ok] - y[ok]) / y[ok]
    out = {
        "n": len(y),
        "rmse_ms": float(np.sqrt(np.mean((p[ok] - y[ok]) ** 2))),
        "mape": float(rel[ok].mean()),
        "max_ape": float(rel[ok].max()),
        "bias": float(np.mean((p[ok] - y[ok]) / y[ok])),
    }
    for k in ACC_BOUNDS:
        out[f"acc{k}"] = float(np.mean(rel <= k / 100.0))
    if ok.sum() >= 2:
        out["kendall_tau"] = float(stats.kendalltau(y[ok], p[ok]).statistic)
        out["spearman_rho"] = float(stats.spearmanr(y[ok], p[ok]).statistic)
    if std is not None:
        s = np.asarray(std, dtype=float)
        out["coverage_2sigma"] = float(np.mean(np.abs(p[ok] - y[ok]) <= 2 * s[ok]))
        out["mean_rel_std"] = float(np.mean(s[ok] / y[ok]))
    return out


def scatter_plot(
    measured: ArrayLike,
    predicted: ArrayLike,
    path: str | Path,
    title: str = "",
    std: ArrayLike | None = None,
    measured_on: str = "measured",
) -> Path:
    """Predicted vs measured latency with the ±5 % band (PNG); ``measured_on`` names what measured them
    (``measured on the DPU simulator`` on the simulator: never to be read as a board figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, p = np.asarray(measured, float), np.asarray(predicted, float)
    ok = np.isfinite(p)
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    lo, hi = float(min(y[ok].min(), p[ok].min())), float(max(y[ok].max(), p[ok].max()))
    line = np.array([lo, hi])
    ax.fill_between(line, line * 0.95, line * 1.05, color="0.88", label="±5 %")
    ax.plot(line, line, "k-", lw=0.8, label="y = x (predicted = measured)")
    if std is not None:
        ax.errorbar(
            y[ok], p[ok], yerr=np.asarray(std, float)[ok], fmt="none", ecolor="C0", alpha=0.25, lw=0.6
        )
    ax.scatter(y[ok], p[ok], s=8, color="C0", label="subnets")
    ax.set_xlabel(f"latency {measured_on} (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
