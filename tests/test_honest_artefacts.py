"""Issue 20, point 7: plots and artefacts say what they are. Candidates are shown against the budget, measured
markers are not hidden under predicted ones, plots of simulator figures say "simulator", and a profile the
simulator wrote is marked so that no person or ofa_hw parser takes it for a board log."""

from __future__ import annotations

import numpy as np
from conftest import compose


class _Figures:
    """Captures the figures the plot functions would save."""

    def __init__(self, monkeypatch) -> None:
        import matplotlib.figure

        self.figures: list = []
        monkeypatch.setattr(
            matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: self.figures.append(fig)
        )

    def texts(self, index: int = -1) -> str:
        fig = self.figures[index]
        parts = [fig._suptitle.get_text() if fig._suptitle else ""]
        for ax in fig.axes:
            parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            legend = ax.get_legend()
            parts += [t.get_text() for t in legend.get_texts()] if legend else []
        return "\n".join(parts)


def test_pred_vs_measured_shows_every_candidate_against_the_budget(monkeypatch, tmp_path):
    from ofa_hw.search.plots import plot_predicted_vs_measured
    from ofa_hw.tasks import measured_on

    figs = _Figures(monkeypatch)
    label = measured_on("sim")
    # the case: candidates in a 0.05 ms band, the budget well above it
    plot_predicted_vs_measured(
        tmp_path / "p.png", [9.30, 9.33, 9.35], [9.31, 9.32, 9.36], 10.5, [0.02] * 3, measured_on=label
    )
    against = figs.figures[-1].axes[1]
    lo, hi = against.get_ylim()
    assert lo < 9.30 and hi > 10.5  # the budget and every candidate on one axis
    budget_lines = [ln for ln in against.get_lines() if list(ln.get_ydata()) == [10.5, 10.5]]
    assert budget_lines
    assert "simulator" in figs.texts() and "measured on the DPU simulator" in figs.texts()
    assert measured_on("vitis_dnndk") == "measured on the board (vitis_dnndk)"


def test_pareto_draws_measured_markers_above_the_predicted_ones(monkeypatch, tmp_path):
    from ofa_hw.search.plots import plot_pareto

    figs = _Figures(monkeypatch)
    plot_pareto(
        tmp_path / "c.png", np.array([2.0, 5.0, 9.0]), np.array([1.0, 50.0, 90.0]), 9.5, "acc",
        [8.9, 9.0], [89.0, 90.0], [8.95, 9.05], measured_on="measured on the DPU simulator",
    )  # fmt: skip
    ax = figs.figures[-1].axes[0]
    by_label = {c.get_label(): c for c in ax.collections}
    measured = by_label["top-K (measured on the DPU simulator)"]
    assert measured.get_zorder() > by_label["top-K (predicted)"].get_zorder()
    assert measured.get_sizes()[0] < by_label["top-K (predicted)"].get_sizes()[0]  # inside the rings


def test_predictor_scatter_names_the_simulator(monkeypatch, tmp_path):
    from ofa_hw.predictor.metrics import scatter_plot

    figs = _Figures(monkeypatch)
    scatter_plot([1.0, 2.0], [1.01, 2.02], tmp_path / "d.png", measured_on="measured on the DPU simulator")
    assert figs.figures[-1].axes[0].get_xlabel() == "latency measured on the DPU simulator (ms)"


def test_a_simulated_profile_is_marked_still_parses_and_is_refused_as_a_board_log(tmp_path, monkeypatch):
    from ofa_hw.formats import parse_dnndk_profile
    from ofa_hw.tasks import deploy
    from ofa_hw.tasks.settings import SettingsError, check_settings

    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    results = deploy.run(
        compose(["task=deploy", "space=proxyless_w05", "task.named_arch=proxyless_mobile_05"], workspace=ws)
    )
    name = results["deploy"]["net_name"]
    path = tmp_path / "outputs" / "adhoc" / f"profile_{name}.txt"
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# SIMULATED by ofa_hw's DPU simulator, not measured on a board (")
    assert deploy.is_simulated(text) and not deploy.is_simulated(text.split("\n", 1)[1])
    # the package still reads its own file: the same profile as without the mark
    assert parse_dnndk_profile(text).total_ms == parse_dnndk_profile(text.split("\n", 1)[1]).total_ms
    assert abs(parse_dnndk_profile(text).total_ms - results["deploy"]["total_ms"]) < 1e-9
    # ... and refuses it as a board measurement to calibrate on
    cfg = compose(
        ["task=calibrate", f"calibrate.profiles=[{path}]", "calibrate.archs=[proxyless_mobile_05]"],
        workspace=ws,
    )
    try:
        check_settings(cfg)
        raise AssertionError("a simulated profile was accepted as calibration input")
    except SettingsError as err:
        assert err.problems == [
            f"calibrate.profiles: {path} was written by ofa_hw's DPU simulator, not measured on a board"
        ]
