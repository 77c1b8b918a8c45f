"""What a user sees (issue 12): one-line errors with exit status 2, honest exit codes for failed work and
Ctrl-C, workspace presets that win over packaged ones, no schema offered as an option, the report's
"measured on" and compile-limit statements, a Pareto front that reaches the ceiling, and the plots'
legends and axis limits."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import compose

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_LUT = next((ROOT / "lut").glob("ofa_proxyless_w13-zcu102_b4096-*.csv"))  # the one shipped LUT
LARGE_ARCH = json.dumps({"ks": [7] * 21, "e": [6] * 21, "d": [4] * 5 + [1], "r": 224})


def cli(
    args: list[str], workspace: Path | None, cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OFA_HW_WORKSPACE"}
    if workspace is not None:
        env["OFA_HW_WORKSPACE"] = str(workspace)
    return subprocess.run(
        [sys.executable, "-m", "ofa_hw.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one error line; fails when there is a traceback or the error spans several lines."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ofa-hw: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------------- user errors
@pytest.mark.parametrize(
    "args, expected",
    [
        (["task=deploy", "task.arch=not json"], "ofa-hw: error: task.arch: not a JSON arch dict"),
        (
            ["task=deploy", "task.named_arch=proxyless_mobile_05"],
            "ofa-hw: error: task.named_arch: space 'ofa_proxyless_w13' has no arch named 'proxyless_mobile_05'; "
            "it is an arch of space proxyless_w05: pass space=proxyless_w05",
        ),
        (["task=deploy"], "ofa-hw: error: task=deploy needs the subnet: task.arch="),
        (["task=deploy", "task.arch={ks: [3]}"], "ofa-hw: error: task.arch: arch is missing field 'e'"),
        (["dpu.freq_mhz=-5"], "ofa-hw: error: dpu: DPUConfig.freq_mhz: must be > 0"),
        (
            ["search.budget_ms=-1"],
            "ofa-hw: error: search.budget_ms must be a positive number of ms, got -1.0",
        ),
        (["search.population=1"], "ofa-hw: error: search.population must be >= 2, got 1"),
        (["predictor=predictor_schema"], "ofa-hw: error: predictor=predictor_schema is the schema of group"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(args, expected, tmp_path):
    proc = cli([f"hydra.run.dir={tmp_path / 'run'}", *args], tmp_path / "ws", tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_line(proc).startswith(expected)
    # rejected before any stage ran (the budget too: before the LUT and training stages), and once
    assert "[1/4] lut" not in proc.stdout and proc.stderr.count(expected) == 1
    assert not (tmp_path / "ws" / "store.sqlite").exists()


def test_infeasible_budget_is_rejected_before_the_lut_stage(tmp_path):
    proc = cli([f"hydra.run.dir={tmp_path / 'run'}", "search.budget_ms=1"], tmp_path / "ws", tmp_path)
    assert proc.returncode == 2
    line = error_line(proc)
    # The floor is the shipped LUT's (2.11 ms since the two-network refit of issue 22; 2.06 ms before).
    assert "latency budget 1 ms is infeasible on zcu102_b4096 (by the LUT" in line
    assert re.search(r"reaches is 2\.\d+ ms", line), line
    assert "[1/4] lut" not in proc.stdout and "[2/4] train" not in proc.stdout


def test_no_lut_from_zero_profiles_is_one_line(tmp_path, monkeypatch):
    """Every probe failing ("no successful profiles") names the backend and the first failure."""
    import ofa_hw.backends.sim as sim_module
    from ofa_hw.lut.table import LutError
    from ofa_hw.sim.compiler import CompileError
    from ofa_hw.tasks.lut import lut_for_config

    def broken(*args, **kwargs):
        raise CompileError("conv_0", "simulated toolchain outage")

    monkeypatch.setattr(sim_module, "simulate", broken)
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "no_luts"
    empty.mkdir()
    cfg = compose(
        ["space=proxyless_w05", f"lut.shipped_dir={empty}", "lut.resolutions=[224]", "lut.coverage=1"],
        workspace=tmp_path / "ws",
    )
    with pytest.raises(
        LutError,
        match=r"none of the \d+ probe subnets could be profiled on sim .*first failure, "
        r"\w+: compile error: layer conv_0: simulated toolchain outage",
    ):
        lut_for_config(cfg)


def test_hydra_composition_errors_exit_2(tmp_path):
    proc = cli(["search.budget_msx=3"], tmp_path / "ws", tmp_path)
    assert proc.returncode == 2 and "budget_msx" in proc.stderr and "Traceback" not in proc.stderr


def test_bugs_keep_their_traceback(tmp_path):
    """Not a user error: a task that crashes with a TypeError shows the traceback (Hydra's status 1)."""
    proc = cli([f"hydra.run.dir={tmp_path / 'run'}", "task._target_=json.loads"], tmp_path / "ws", tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "TypeError" in proc.stderr
    assert "ofa-hw: error" not in proc.stderr


def test_train_prints_where_its_outputs_went(tmp_path, monkeypatch, capsys):
    from ofa_hw.tasks import train

    monkeypatch.chdir(tmp_path)
    train.run(
        compose(
            ["task=train", "predictor=roofline", "predictor.eval_subnets=3", "predictor.calib_subnets=2"],
            workspace=tmp_path / "ws",
        )
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    outdir = (tmp_path / "outputs" / "adhoc").resolve()
    assert (
        last == f"outputs: {outdir} (predictor.json, predictor_eval.csv, predictor_scatter.png, results.json)"
    )


# ------------------------------------------------------------------------------- failed work, Ctrl-C
def test_failed_deploy_exits_nonzero(tmp_path):
    run = tmp_path / "run"
    proc = cli(
        [f"hydra.run.dir={run}", "task=deploy", f"task.arch='{LARGE_ARCH}'"], tmp_path / "ws", tmp_path
    )
    assert proc.returncode == 2
    assert "failed: compile error: layer conv_44: depthwise" in error_line(proc)
    assert json.loads((run / "results.json").read_text())["deploy"]["status"] == "failed"


def test_deploy_with_a_missing_container_exits_nonzero(tmp_path):
    proc = cli(
        [
            f"hydra.run.dir={tmp_path / 'run'}",
            "task=deploy",
            "task.random=true",
            "backend=vitis_dnndk",
            "backend.vitis.container=ofa_hw_no_such_container",
            "backend.vitis.retries=0",
        ],
        tmp_path / "ws",
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_deploy_of_a_random_subnet_must_be_asked_for(tmp_path, monkeypatch):
    from ofa_hw.tasks import deploy

    monkeypatch.chdir(tmp_path)
    results = deploy.run(compose(["task=deploy", "task.random=true"], workspace=tmp_path / "ws"))
    assert results["deploy"]["status"] == "ok" and results["deploy"]["net_name"] == "subnet0"


def test_ctrl_c_exits_130_with_the_kept_count(tmp_path):
    """SIGINT to a running job: exit 130 (128 + SIGINT), one line saying how to resume and what is kept."""
    ws, empty = tmp_path / "ws", tmp_path / "no_luts"
    empty.mkdir()
    env = {**os.environ, "OFA_HW_WORKSPACE": str(ws)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ofa_hw.cli",
            f"lut.shipped_dir={empty}",
            "lut.coverage=3",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background by a non-interactive shell inherits
        # SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
        # give the job the default disposition, as a user's Ctrl-C finds it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    db, deadline = ws / "store.sqlite", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        # Read-only and never creating the file (the job must create its own store), with a short busy
        # timeout: a blocked poll must not let the job run to its end before the signal is sent.
        if db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)
                try:
                    if con.execute("select count(*) from runs").fetchone()[0] >= 3:
                        break
                finally:
                    con.close()
            except sqlite3.Error:
                pass  # tables not created yet, or a writer holds the file for a moment
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    with sqlite3.connect(db) as con:
        kept = con.execute("select count(*) from runs where status = 'ok'").fetchone()[0]
    assert kept >= 3
    assert (
        "Traceback" not in err
        and err.strip().splitlines()[-1] == f"ofa-hw: interrupted; rerun to resume, {kept} measurements kept"
    )


# ------------------------------------------------------------------------------------ presets, help
def _calibrated_copy(ws: Path, freq: float = 200.0) -> Path:
    """A workspace preset under the packaged name, as ``task=calibrate calibrate.name=zcu102_b4096`` writes."""
    from ofa_hw.dpu import DPUConfig

    packaged = DPUConfig.from_yaml(ROOT / "ofa_hw" / "conf" / "dpu" / "zcu102_b4096.yaml")
    mine = packaged.replace(freq_mhz=freq, calibrated_on="DNNDK profiles: myboard")
    path = ws / "conf" / "dpu" / "zcu102_b4096.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        mine.to_yaml(
            "DPU preset zcu102_b4096: calibrated by `ofa-hw task=calibrate` on my.log\n"
            "node MAPE 0.0312, total error -0.0100; fingerprint x"
        )
    )
    return path


def test_workspace_preset_wins_over_the_packaged_one(tmp_path, monkeypatch):
    from ofa_hw.backends.sim import SimBackend
    from ofa_hw.dpu import DPUConfig, list_presets
    from ofa_hw.provenance import measurement_basis

    ws = tmp_path / "ws"
    _calibrated_copy(ws)
    monkeypatch.setenv("OFA_HW_WORKSPACE", str(ws))
    assert compose(["dpu=zcu102_b4096"]).dpu.freq_mhz == 200.0  # Hydra's search path: workspace first
    dpu = DPUConfig.from_preset("zcu102_b4096")  # the library agrees
    assert dpu.freq_mhz == 200.0 and list_presets().count("zcu102_b4096") == 1
    basis = measurement_basis(SimBackend(dpu), dpu)
    assert basis["fit"]["node_mape"] == pytest.approx(0.0312) and "DNNDK profiles: myboard" in basis["text"]
    monkeypatch.delenv("OFA_HW_WORKSPACE")
    assert compose(["dpu=zcu102_b4096"]).dpu.freq_mhz == 300.0  # other workspaces keep the packaged one


def test_workspace_override_on_the_command_line_finds_its_presets(tmp_path):
    """``task=calibrate workspace=DIR`` writes DIR/conf/dpu/<name>.yaml; ``dpu=<name> workspace=DIR`` must find
    it without $OFA_HW_WORKSPACE (the search path is fixed before composition, so it reads the command line)."""
    from ofa_hw.schemas.searchpath import _workspace_override

    assert _workspace_override(["task=lut", f"workspace={tmp_path}"]) == str(tmp_path)
    assert _workspace_override(["workspace=a,b"]) is None and _workspace_override(["task=lut"]) is None
    ws = tmp_path / "elsewhere"
    _calibrated_copy(ws, freq=150.0)
    proc = cli([f"workspace={ws}", "dpu=zcu102_b4096", "--cfg", "job"], None, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "freq_mhz: 150.0" in proc.stdout
    assert not (tmp_path / ".ofa_hw").exists()


def test_cli_says_when_a_workspace_preset_shadows(tmp_path):
    ws, run = tmp_path / "ws", tmp_path / "run"
    _calibrated_copy(ws)
    proc = cli(
        [f"hydra.run.dir={run}", "task=deploy", "space=proxyless_w05", "task.named_arch=proxyless_mobile_05"],
        ws,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr  # Hydra's console log handler
    assert "dpu=zcu102_b4096: using the workspace's preset" in log and "shadows the packaged preset" in log
    from ofa_hw.dpu import DPUConfig

    expected = DPUConfig.from_yaml(ws / "conf" / "dpu" / "zcu102_b4096.yaml").fingerprint()
    assert json.loads((run / "results.json").read_text())["dpu"]["fingerprint"] == expected


def test_help_offers_no_schema_and_creates_nothing(tmp_path):
    proc = cli(["--help"], None, tmp_path)  # no OFA_HW_WORKSPACE: the default .ofa_hw in the cwd
    assert proc.returncode == 0
    assert "_schema" not in proc.stdout and "predictor: gbdt, lut, mlp, rf, roofline, xgb" in proc.stdout
    assert "ofa-hw -m task=search search.budget_ms=3,4,5" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no .ofa_hw/conf in the current directory
    unknown = cli(["predictor=xgbb"], tmp_path / "ws", tmp_path)
    assert unknown.returncode == 2 and "Available options in 'predictor'" in unknown.stderr
    assert "_schema" not in unknown.stderr.split("Config search path")[0]


# ------------------------------------------------------------------------------------ report pieces
def test_report_statements():
    from ofa_hw.report import compile_limit_statement, measured_on

    board = {
        "basis": {
            "kind": "board",
            "boards": ["zcu102-a"],
            "toolchain": "vitis-ai-1.0/dnndk-3.1",
            "text": "real hardware: board(s) zcu102-a",
        }
    }
    assert measured_on(board, short=True) == "measured on board(s) zcu102-a with vitis-ai-1.0/dnndk-3.1"
    assert measured_on({}) == "measured on: not recorded"
    results = {
        "space": {"name": "s"},
        "dpu": {"preset": "p"},
        "compile_limits": {
            "rule": "depthwise k_w*k_h*ceil(C/16)=2352 > bank depth 2048",
            "example_layer": "conv_44",
            "samples": 20000,
            "seed": 0,
            "removed_share": 0.8669,
            "uncompilable_cells": 500,
            "check": "the check",
        },
    }
    text = compile_limit_statement(results)
    assert "when depthwise k_w*k_h*ceil(C/16)=2352 > bank depth 2048" in text and "**86.7 %**" in text
    assert "20 000 uniformly sampled subnets (seed 0)" in text


def test_compile_limit_share_agrees_with_the_per_arch_check():
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.netspec import build_netspec
    from ofa_hw.search.compilable import compile_limit_share
    from ofa_hw.sim.compiler import is_compilable
    from ofa_hw.space import get_space

    space, dpu = get_space("ofa_proxyless_w13"), DPUConfig.from_preset("zcu102_b4096")
    share = compile_limit_share(space, dpu, samples=4000, seed=1)
    rng = np.random.default_rng(7)
    direct = np.mean([not is_compilable(build_netspec(space, a), dpu) for a in space.sample(rng, 300)])
    assert abs(share["removed_share"] - direct) < 0.06  # 300 archs: ±2σ ≈ 0.04
    assert "bank depth" in share["rule"] and share["samples"] == 4000


# ------------------------------------------------------------------------------------- Pareto front
def test_pareto_front_reaches_the_ceiling_and_dominates_every_searched_point():
    from ofa_hw.accuracy.flops import FlopsProxy
    from ofa_hw.lut.table import LatencyTable
    from ofa_hw.search import EvolutionFinder, EvolutionParams, TableLatency
    from ofa_hw.search.floor import table_ceiling
    from ofa_hw.search.pareto import ParetoFinder
    from ofa_hw.space import get_space

    space = get_space("ofa_proxyless_w13")
    table = LatencyTable.load(SHIPPED_LUT, space=space).to_block_table(space)
    latency, accuracy = TableLatency(table), FlopsProxy(space)
    ceiling = table_ceiling(table).mean_ms
    searched = [
        EvolutionFinder(space, latency, accuracy, params=EvolutionParams(generations=40), k_sigma=2.0, seed=s)
        .run(b)
        .evaluated
        for s, b in enumerate((6.0, 15.0, 16.5))
    ]
    genes = np.concatenate([e.genes for e in searched])
    front = (
        ParetoFinder(space, latency, accuracy, params=EvolutionParams(generations=40), k_sigma=2.0)
        .run(None, include=genes)
        .front
    )
    assert (
        front.mean_ms.max() >= 0.99 * ceiling
        and front.mean_ms.min()
        <= 1.01 * table.evaluate(ParetoFinder(space, latency, accuracy, k_sigma=2.0).extremes()[:1])[0]
    )
    lat, _ = latency.predict_encoded(genes)
    acc = accuracy.predict_encoded(genes)
    ok = np.isfinite(lat)
    lat, acc = lat[ok], acc[ok]
    for f_lat, f_acc in zip(front.mean_ms, front.accuracy):
        dominated = (acc >= f_acc) & (lat <= f_lat) & ((acc > f_acc) | (lat < f_lat))
        assert not dominated.any(), (f_lat, f_acc)


# ---------------------------------------------------------------------------------------------- plots
class _Figures:
    """Captures the figures the plot functions would save."""

    def __init__(self, monkeypatch) -> None:
        import matplotlib.figure

        self.figures: list = []
        monkeypatch.setattr(
            matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: self.figures.append(fig)
        )

    def legend(self, index: int = -1, ax: int = 0) -> list[str]:
        legend = self.figures[index].axes[ax].get_legend()
        return [t.get_text() for t in legend.get_texts()] if legend else []


def test_plots_label_every_line_and_keep_extreme_budgets_off_the_axis(monkeypatch, tmp_path):
    from ofa_hw.predictor.metrics import scatter_plot
    from ofa_hw.search.plots import plot_pareto, plot_predicted_vs_measured

    figs = _Figures(monkeypatch)
    plot_predicted_vs_measured(tmp_path / "a.png", [9.3, 9.35], [9.31, 9.36], 9.4, [0.02, 0.02])
    assert any("y = x" in t for t in figs.legend()) and any(
        t.startswith("budget 9.4 ms") for t in figs.legend()
    )
    plot_predicted_vs_measured(tmp_path / "b.png", [9.3, 9.35], [9.31, 9.36], 1000.0)
    ax = figs.figures[-1].axes[0]
    assert ax.get_xlim()[1] < 10 and any("budget 1e+03 ms (off the axis" in t for t in figs.legend())
    plot_pareto(
        tmp_path / "c.png",
        np.array([2.0, 5.0, 9.0]),
        np.array([1.0, 50.0, 90.0]),
        500.0,
        "acc",
        [8.9, 9.0],
        [89.0, 90.0],
        [8.95, 9.05],
    )
    ax = figs.figures[-1].axes[0]
    assert ax.get_xlim()[1] < 10 and any("off the axis" in t for t in figs.legend())
    zorder = {c.get_label(): c.get_zorder() for c in ax.collections}
    assert zorder["top-K (measured)"] > zorder["top-K (predicted)"]  # filled measured markers on top
    scatter_plot([1.0, 2.0], [1.01, 2.02], tmp_path / "d.png")
    assert any("y = x" in t for t in figs.legend())


def test_coverage_title_mentions_red_only_with_a_colour_bar_that_shows_it(monkeypatch, tmp_path):
    import pandas as pd

    from ofa_hw.lut.plan import plot_coverage

    figs = _Figures(monkeypatch)
    frame = pd.DataFrame(
        {
            "key": ["a", "b", "c"],
            "position": ["b1", "b1", "b2"],
            "resolution": [224] * 3,
            "compilable": [True, True, True],
            "measured": [0, 0, 2],
        }
    )
    plot_coverage(frame, tmp_path / "cov.png")
    title = figs.figures[-1].axes[0].get_title()
    colorbar = figs.figures[-1].axes[1]
    assert (
        "red = no key measured (the colour bar's lower tip)" in title
        and len(colorbar.patches) + len(colorbar.collections) > 0
    )
    frame["measured"] = [3, 0, 2]  # a budget plan: a key left unmeasured in a cell others cover
    plot_coverage(frame, tmp_path / "cov2.png")
    assert "red =" not in figs.figures[-1].axes[0].get_title()
    image = figs.figures[-1].axes[0].images[0]
    assert float(np.nanmin(image.get_array())) >= 1.0  # no cell below the colour scale: nothing red


def test_predictor_bench_table_is_readable():
    from ofa_hw.bench.predictor import table_text

    rows = [
        {
            "model": "xgb",
            "profiled_subnets": 64,
            "mape": 0.0123,
            "acc1": 0.5,
            "acc5": 1.0,
            "kendall_tau": 0.98765,
            "train_s": 1.234,
            "archs_per_s": 2.5e6,
        }
    ]
    text = table_text({"rows": rows})
    header, rule, line = text.splitlines()
    assert "MAPE" in header and "±5 %" in header and set(rule) <= {"-", " "}
    assert "1.23 %" in line and "100 %" in line and "0.988" in line and "0.0123" not in line


def test_readme_states_the_cpu_wheel_index():
    readme = (ROOT / "README.md").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme


def test_ci_runs_the_readme_test_command():
    """CI must run exactly what the README tells a user to run."""
    readme = (ROOT / "README.md").read_text()
    command = readme.split("**Run the tests**")[1].split("```bash\n")[1].split("\n```")[0].strip()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci
