"""Plots of the search: the accuracy-latency front with the budget line, predicted vs measured."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: tasks run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: A series of numbers: a list or a 1-D array.
Floats = Sequence[float] | np.ndarray


def _style(ax, title: str, fontsize: int, legend_loc: str = "lower right") -> None:
    if title:
        ax.set_title(title, fontsize=fontsize)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc=legend_loc)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _budget_line(ax, budget_ms: float, lo: float, hi: float, vertical: bool = True, **style) -> None:
    """The budget line when it lies within the data's axis range; else only a legend entry saying
    where it is, so an extreme budget does not squeeze every point into one dot."""
    label = f"budget {budget_ms:.3g} ms"
    if lo <= budget_ms <= hi:
        (ax.axvline if vertical else ax.axhline)(budget_ms, label=label, **style)
    else:
        side = "right" if budget_ms > hi else "left"
        if not vertical:
            side = "above" if budget_ms > hi else "below"
        ax.plot([], [], label=f"{label} (off the axis, {side})", **style)


def _limits(values: np.ndarray, budget_ms: float, pad: float = 0.04) -> tuple[float, float]:
    """Axis range of ``values``, stretched to the budget only when it is close (within 25 % of the span)."""
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or abs(hi) or 1.0
    if lo - 0.25 * span <= budget_ms <= hi + 0.25 * span:
        lo, hi = min(lo, budget_ms), max(hi, budget_ms)
        span = hi - lo or span
    return lo - pad * span, hi + pad * span


def plot_pareto(
    path: Path,
    front_ms: np.ndarray,
    front_acc: np.ndarray,
    budget_ms: float,
    accuracy_label: str,
    candidates_ms: Floats = (),
    candidates_acc: Floats = (),
    measured_ms: Sequence[float | None] = (),
    title: str = "",
    measured_on: str = "measured",
) -> Path:
    """Front (predicted mean latency vs accuracy score), the budget line and the searched candidates:
    predicted as open circles, measured as filled markers drawn above them (so no measurement is hidden),
    each pair joined by a thin line. ``measured_on`` names what measured them (e.g. the simulator)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(
        front_ms, front_acc, "-o", ms=2.5, lw=1, color="tab:blue", zorder=1, label="Pareto front (predicted)"
    )
    xs = [np.asarray(front_ms, float)]
    if len(candidates_ms):
        ax.scatter(
            candidates_ms,
            candidates_acc,
            s=40,
            facecolors="none",
            edgecolors="tab:orange",
            lw=1.2,
            zorder=3,
            label="top-K (predicted)",
        )
        xs.append(np.asarray(candidates_ms, float))
        meas = [
            (m, a, c)
            for m, a, c in zip(measured_ms, candidates_acc, candidates_ms)
            if m is not None and np.isfinite(m)
        ]
        if meas:
            mx, my, px = zip(*meas)
            for m, a, c in meas:
                ax.plot([c, m], [a, a], color="tab:red", lw=0.6, alpha=0.6, zorder=4)
            ax.scatter(mx, my, s=16, marker="D", color="tab:red", zorder=5, label=f"top-K ({measured_on})")
            xs.append(np.asarray(mx, float))
    lo, hi = _limits(np.concatenate(xs), budget_ms)
    ax.set_xlim(lo, hi)
    _budget_line(ax, budget_ms, lo, hi, color="k", ls="--", lw=1)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(accuracy_label)
    _style(ax, title, fontsize=10)
    return _save(fig, path)


def plot_predicted_vs_measured(
    path: Path,
    predicted_ms: Floats,
    measured_ms: Floats,
    budget_ms: float,
    std_ms: Floats | None = None,
    title: str = "",
    measured_on: str = "measured",
) -> Path:
    """Two panels. Left: measured against predicted latency of the deployed candidates (zoomed to them,
    ``y = x``). Right: every candidate against the budget, which is always on the axis there: measured
    latency per candidate, its prediction ± σ, and the budget line, so how far each one is from the
    budget is visible whatever the zoom of the left panel."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.8, 4.2), gridspec_kw={"width_ratios": [1, 1]})
    p, m = np.asarray(predicted_ms, float), np.asarray(measured_ms, float)
    sd = None if std_ms is None else np.asarray(std_ms, float)
    ax.errorbar(p, m, xerr=sd, fmt="o", ms=3.5, lw=0.8, label="deployed candidates (±σ)")
    lo, hi = _limits(np.r_[p, m], budget_ms)
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, label="y = x (measured = predicted)")
    _budget_line(ax, budget_ms, lo, hi, vertical=False, color="k", ls="--", lw=1)
    if lo <= budget_ms <= hi:
        ax.axvline(budget_ms, color="k", ls=":", lw=0.8, label="budget (predicted side)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels of a narrow range must not overlap
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(f"latency {measured_on} (ms)")
    _style(ax, "measured vs predicted", fontsize=9, legend_loc="best")

    order = np.argsort(m, kind="stable")
    x = np.arange(len(m))
    ax2.errorbar(
        x, p[order], yerr=None if sd is None else sd[order], fmt="o", mfc="none", ms=4, lw=0.8,
        color="tab:orange", label="predicted (±σ)",
    )  # fmt: skip
    ax2.plot(x, m[order], "D", ms=4, color="tab:red", zorder=3, label=measured_on)
    ax2.axhline(budget_ms, color="k", ls="--", lw=1, label=f"budget {budget_ms:.3g} ms")
    values = np.r_[p, m, budget_ms]
    span = float(values.max() - values.min()) or abs(budget_ms) or 1.0
    ax2.set_ylim(float(values.min()) - 0.08 * span, float(values.max()) + 0.08 * span)
    ax2.set_xticks(x)
    ax2.set_xlabel("deployed candidate (by measured latency)")
    ax2.set_ylabel("latency (ms)")
    _style(ax2, "candidates against the budget", fontsize=9, legend_loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_budget_sweep(path: Path, rows: Sequence[dict], title: str = "") -> Path:
    """Best candidate's latency relative to the budget, and the hit rate, against the budget."""
    b = np.array([r["budget_ms"] for r in rows], float)
    meas = np.array([np.nan if r["best_measured_ms"] is None else r["best_measured_ms"] for r in rows], float)
    pred = np.array(
        [np.nan if r["best_predicted_ms"] is None else r["best_predicted_ms"] for r in rows], float
    )
    hit = np.array([r["hit_rate"] for r in rows], float)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(6.4, 5.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    ax.axhspan(-3, 0, color="tab:green", alpha=0.15, label="target: within 3 % below the budget")
    ax.axhline(0, color="k", ls="--", lw=1, label="budget")
    ax.plot(b, 100 * (pred / b - 1), "o-", ms=3.5, lw=1, label="best candidate: predicted")
    ax.plot(b, 100 * (meas / b - 1), "s-", ms=3.5, lw=1, label="best candidate: measured")
    ax.set_ylabel("latency − budget (% of budget)")
    _style(ax, title, fontsize=9)
    ax2.bar(
        b, hit, width=0.6 * (np.min(np.diff(b)) if len(b) > 1 else 1.0), color="tab:blue", label="final round"
    )
    if all("first_round_hit_rate" in r for r in rows):
        first = np.array([r["first_round_hit_rate"] for r in rows], float)
        if np.any(first != hit):
            ax2.plot(b, first, "v", color="tab:red", ms=5, label="first round (uncorrected predictor)")
    ax2.axhline(0.95, color="k", ls="--", lw=1, label="target 95 %")
    ax2.legend(fontsize=7, loc="lower right")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("hit rate (top-K)")
    ax2.set_xlabel("budget (ms)")
    ax2.grid(alpha=0.3)
    return _save(fig, path)


def plot_convergence(
    path: Path,
    ours: Floats,
    ofa: Floats | None,
    ours_s: float,
    ofa_s: float | None,
    accuracy_label: str,
    title: str = "",
) -> Path:
    """Best accuracy per generation of our finder and of OFA's ``EvolutionFinder`` (same budget, predictor)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(np.arange(1, len(ours) + 1), ours, lw=1.5, label=f"ofa_hw (vectorised): {ours_s:.2f} s")
    if ofa:
        ax.plot(np.arange(1, len(ofa) + 1), ofa, lw=1.2, ls="--", label=f"OFA EvolutionFinder: {ofa_s:.1f} s")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"best {accuracy_label}")
    _style(ax, title, fontsize=9)
    return _save(fig, path)
