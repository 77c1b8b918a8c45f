"""Board time (issue 14): the probe cost model and its up-front line, the budget plan's planner and
stopping rule, the ETA bar, and the pipeline training from a budget plan's partial LUT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import compose

from ofa_hw.backends.base import ProfileJob, ProfileOutcome
from ofa_hw.backends.sim import SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut import dpu_compile_check
from ofa_hw.lut.active import ActiveSettings, Batch, active_settings, pick_uncertain, run_active, stop_reason
from ofa_hw.lut.cost import (
    DEFAULT_TIMES,
    CostEstimate,
    MeteredBackend,
    ProbeTimes,
    budget_statement,
    estimate,
    probe_times,
)
from ofa_hw.lut.manage import LutError, ensure_lut, resolve_plan
from ofa_hw.lut.plan import plan_seed_probes, sample_subnets, spread_resolutions
from ofa_hw.netspec import build_netspec
from ofa_hw.space import get_space
from ofa_hw.store import Store, profile_jobs

SPACE = get_space("ofa_proxyless_w13")
DPU = DPUConfig.from_preset("zcu102_b4096")
RES = (160, 192, 224)


class BoardLikeSim(SimBackend):
    """The simulator dressed as a DNNDK board: Vitis stage timings, a build pipeline, counted calls.

    ``stdout_at_first_probe`` keeps what the process had printed when the first probe started.
    """

    name = "vitis_dnndk"

    def __init__(self, dpu, capsys=None, host_s: float = 100.0, board_s: float = 20.0):
        super().__init__(dpu)
        self.toolchain = "fake-vitis-ai-1.0"
        self.settings = SimpleNamespace(compile_jobs=2)
        self.boards = ["zcu102"]
        self.ran: list[str] = []
        self.capsys, self.stdout_at_first_probe = capsys, None
        self.times = {
            "export_s": 5.0,
            "quantize_s": host_s - 35.0,
            "compile_s": 30.0,
            "board_s": board_s,
            "lock_wait_s": 999.0,
        }

    def profile(self, job):
        if not self.ran and self.capsys is not None:
            out = self.capsys.readouterr().out
            self.stdout_at_first_probe = out
            print(out, end="")  # keep it visible to later readers
        self.ran.append(job.net_name)
        outcome = super().profile(job)
        return ProfileOutcome(
            outcome.job, outcome.status, outcome.profile, outcome.raw_text, outcome.error, dict(self.times)
        )


def _lut_cfg(ws: Path, **over) -> SimpleNamespace:
    base = dict(
        resolutions=list(RES),
        path=None,
        dir=str(ws / "lut"),
        shipped_dir=str(ws / "no_shipped"),
        reuse=True,
        regenerate=True,
        coverage=1,
        validation_subnets=4,
        seed=0,
        retry_failed=False,
        plan="auto",
        max_subnets=20,
        batch=5,
        target_mape=0.01,
        pool=200,
    )
    base.update(over)
    return SimpleNamespace(**base)


# ------------------------------------------------------------------------------------------- cost model
def test_estimate_arithmetic_and_the_up_front_line():
    per = ProbeTimes(120.0, 30.0, "default: assumed")
    cost = CostEstimate(
        20,
        per,
        host_jobs=2,
        boards=1,
        backend="vitis_dnndk",
        stored=3,
        upper_bound=True,
        compiles=2,
        board_runs=2,
    )
    assert cost.host_s == 2400 and cost.board_s == 600
    assert cost.wall_per_probe_s == 60  # two builds at once: 60 s per probe, the board 30 s
    assert cost.wall_s == pytest.approx(19 * 60 + 150)
    line = cost.line()
    assert line.startswith(
        "granularity node: up to 20 subnets (3 more already in the store), up to 40 compiles and 40 board "
        "runs, about 40 min of container time and 10 min of board time"
    )
    assert line.endswith("; Ctrl-C is safe, rerun resumes") and "default: assumed" in line
    sim = CostEstimate(245, ProbeTimes(0.012, 0.0, "measured"), backend="sim")
    assert sim.line().startswith(
        "granularity node: 245 subnets, about 2.9 s of simulator time and no board time"
    )
    block = CostEstimate(
        20, per, backend="vitis_vart", granularity="block", compiles=1, board_runs=2, networks=48
    )
    assert block.host_s == 48 * 120 and "(48 networks: one per LUT key of them" in block.line()
    assert "48 compiles and 96 board runs" in block.line()
    assert cost.to_dict()["board_s"] == 600 and cost.to_dict()["host_s"] == 2400


def test_probe_times_are_store_medians_else_documented_defaults(tmp_path):
    board = BoardLikeSim(DPU)
    with Store(tmp_path / "store.sqlite") as store:
        assert probe_times("vitis_dnndk", store) == DEFAULT_TIMES["vitis_dnndk"]
        assert "assumed" in DEFAULT_TIMES["vitis_dnndk"].source  # never passed off as measured
        archs = sample_subnets(SPACE, dpu_compile_check(DPU), RES, 3, np.random.default_rng(0))
        for i, (a, h) in enumerate(zip(archs, (80.0, 100.0, 400.0))):
            board.times.update(quantize_s=h - 35.0, board_s=10.0 * (i + 1))
            profile_jobs(board, store, [ProfileJob.create(SPACE, a, f"x_{i}", 1, 0)], progress=False)
        times = probe_times("vitis_dnndk", store)
        # medians; the lock wait is queueing, not work of the probe
        assert times.host_s == pytest.approx(100.0) and times.board_s == pytest.approx(20.0)
        assert times.source == "measured: median of 3 stored vitis_dnndk runs"
        assert probe_times("vitis_vart", store) == DEFAULT_TIMES["vitis_vart"]
        cost = estimate(board, store, 10)
        assert (cost.host_jobs, cost.boards, cost.host_s, cost.board_s) == (2, 1, 1000.0, 200.0)


def test_metered_backend_refines_its_eta_and_records_under_the_real_backend(tmp_path):
    board = BoardLikeSim(DPU, host_s=50.0, board_s=10.0)
    prior = CostEstimate(4, ProbeTimes(150.0, 50.0, "default"), host_jobs=1, boards=1, backend="vitis_dnndk")
    archs = sample_subnets(SPACE, dpu_compile_check(DPU), RES, 4, np.random.default_rng(1))
    jobs = [ProfileJob.create(SPACE, a, f"m_{i}", 1, 0) for i, a in enumerate(archs)]
    with Store(tmp_path / "store.sqlite") as store, MeteredBackend(board, prior, progress=False) as metered:
        assert (metered.name, metered.toolchain, metered.dpu) == (board.name, board.toolchain, board.dpu)
        assert metered._bar.total == pytest.approx(prior.wall_s)
        profile_jobs(metered, store, jobs, progress=False)
        assert metered.done == 4
        # (prior + 4 measured) / 5: the ETA moved from the assumed 150 s towards the measured 50 s per probe
        assert metered.cost.per_probe.host_s == pytest.approx((150 + 4 * 50) / 5)
        assert metered.cost.per_probe.board_s == pytest.approx((50 + 4 * 10) / 5)
        assert [r.backend for r in store.runs()] == ["vitis_dnndk"] * 4


# ------------------------------------------------------------------------------------------ the planner
def test_plan_choice_per_backend():
    assert resolve_plan(SimpleNamespace(plan="auto"), "sim") == "full"
    assert resolve_plan(SimpleNamespace(plan="auto"), "vitis_dnndk") == "budget"
    assert resolve_plan(SimpleNamespace(plan="auto"), "vitis_vart") == "budget"
    assert resolve_plan(SimpleNamespace(plan="full"), "vitis_dnndk") == "full"
    assert resolve_plan(SimpleNamespace(), "sim") == "full"  # configs without the key keep today's plan
    with pytest.raises(LutError, match="lut.plan must be one of auto, full, budget; got 'cheap'"):
        resolve_plan(SimpleNamespace(plan="cheap"), "sim")


def test_spread_resolutions():
    res = list(range(128, 225, 4))
    assert spread_resolutions(res, 3) == [128, 176, 224]
    assert spread_resolutions(res, 5) == [128, 152, 176, 200, 224]
    assert spread_resolutions([160, 224], 3) == [160, 224, 160]


def test_seed_batch_covers_shapes_and_resolutions():
    check = dpu_compile_check(DPU)
    archs = plan_seed_probes(SPACE, check, SPACE.resolutions, 5, seed=0)
    assert [a["r"] for a in archs] == [128, 152, 176, 200, 224]
    for arch in archs:
        assert arch["d"] == [SPACE.max_depth] * (SPACE.n_stages - 1) + [1]  # every block position measured
        ns = build_netspec(SPACE, arch)
        assert all(check(b, ns) for b in ns.blocks)
    for pos in range(SPACE.n_blocks):  # balanced: 5 probes, 5 distinct (kernel, expand) at every position
        assert len({(a["ks"][pos], a["e"][pos]) for a in archs}) == 5
    varied = plan_seed_probes(SPACE, check, SPACE.resolutions, 5, seed=0, vary_depth=True)
    for stage in range(SPACE.n_stages - 1):  # the variant cycles every depth of every stage
        assert {a["d"][stage] for a in varied} == set(SPACE.depth_list)
    assert plan_seed_probes(SPACE, check, SPACE.resolutions, 5, seed=0) == archs  # deterministic: resumable


def test_sampled_candidates_compile():
    check = dpu_compile_check(DPU)
    rng = np.random.default_rng(4)
    deep = sample_subnets(SPACE, check, RES, 20, rng, max_depth=True)
    mixed = sample_subnets(SPACE, check, RES, 20, rng)
    assert all(a["d"] == [SPACE.max_depth] * (SPACE.n_stages - 1) + [1] for a in deep)
    assert len({tuple(a["d"]) for a in mixed}) > 1 and {a["r"] for a in deep + mixed} <= set(RES)
    for arch in deep + mixed:
        ns = build_netspec(SPACE, arch)
        assert all(check(b, ns) for b in ns.blocks)


class _FakePredictor:
    """Relative σ = 1 / (1 + index): the first archs of the pool are the most uncertain."""

    def predict(self, archs, target="profile"):
        n = len(archs)
        return np.full(n, 5.0), 5.0 / (1.0 + np.arange(n))


def test_pick_uncertain_takes_largest_sigma_one_per_resolution_first():
    pool = [
        {**a, "r": r}
        for a, r in zip(
            sample_subnets(SPACE, dpu_compile_check(DPU), RES, 6, np.random.default_rng(2)),
            (160, 160, 192, 224, 192, 160),
        )
    ]
    exclude = {SPACE.arch_id(pool[0])}
    picked, rel = pick_uncertain(_FakePredictor(), pool, 3, exclude, SPACE)
    # pool[0] is measured already; of the rest: 1 (160), then 2 (192), skip 4 (192 again), 3 (224)
    assert [SPACE.arch_id(a) for a in picked] == [SPACE.arch_id(pool[i]) for i in (1, 2, 3)]
    assert rel == pytest.approx(np.mean([1 / 1, 1 / 2, 1 / 3]))
    picked, _ = pick_uncertain(_FakePredictor(), pool, 5, exclude, SPACE)
    assert len(picked) == 5  # then repeats of a resolution, best first


# -------------------------------------------------------------------------------------- stopping rule
def _batch(i: int, n: int, mape: float | None) -> Batch:
    return Batch(i, tuple(f"n{i}_{j}" for j in range(n)), n, mape)


def test_stopping_rule():
    s = ActiveSettings(max_subnets=20, batch=5, target_mape=0.01)
    assert stop_reason([], s) is None
    assert stop_reason([_batch(0, 5, None)], s) is None  # the seed batch has no held-out score
    assert stop_reason([_batch(0, 5, None), _batch(1, 5, 0.02)], s) is None
    assert stop_reason([_batch(0, 5, None), _batch(1, 5, 0.01)], s) == "target"  # <= target
    full = [_batch(0, 5, None), _batch(1, 5, 0.05), _batch(2, 5, 0.03), _batch(3, 5, 0.02)]
    assert stop_reason(full, s) == "budget"
    assert stop_reason(full[:3] + [_batch(3, 5, 0.005)], s) == "target"  # the target wins on the last slot
    with pytest.raises(ValueError, match="lut.target_mape must be >= 0"):
        ActiveSettings(target_mape=-0.1)
    with pytest.raises(ValueError, match="lut.max_subnets, lut.batch and lut.pool must be >= 1"):
        ActiveSettings(max_subnets=0)
    with pytest.raises(LutError, match="lut.max_subnets, lut.batch and lut.pool must be >= 1, got 0, 5, 500"):
        active_settings(SimpleNamespace(max_subnets=0))  # a UserError: one line from the CLI


def _run(settings: ActiveSettings, store: Store, backend) -> tuple:
    from ofa_hw.lut.active import default_predictor

    def measure(archs, names):
        jobs = [ProfileJob.create(SPACE, a, n, 1, 0) for a, n in zip(archs, names)]
        return profile_jobs(backend, store, jobs, progress=False)

    return run_active(
        SPACE, DPU, dpu_compile_check(DPU), RES, measure, lambda: default_predictor(SPACE, DPU), settings
    )


def test_active_plan_scores_each_batch_before_training_on_it(tmp_path):
    sim = BoardLikeSim(DPU)
    with Store(tmp_path / "store.sqlite") as store:
        res = _run(ActiveSettings(max_subnets=9, batch=3, target_mape=0.0, pool=60), store, sim)
        assert res.reason == "budget" and res.subnets == 9 and len(sim.ran) == 9
        assert [b.heldout_mape is None for b in res.batches] == [True, False, False]
        assert all(0 < b.heldout_mape < 0.05 for b in res.batches[1:])
        assert len({SPACE.arch_id(o.job.arch) for o in res.outcomes}) == 9  # no subnet measured twice
        assert store.count() == 9  # every measurement kept
        # The newest batch's score is the predictor fitted on the earlier batches only.
        from ofa_hw.lut.active import default_predictor, fit_predictor, heldout_error

        earlier = res.outcomes[:6]
        pred = fit_predictor(lambda: default_predictor(SPACE, DPU), SPACE, DPU, earlier)
        assert heldout_error(pred, res.outcomes[6:])[0] == pytest.approx(res.batches[2].heldout_mape)
        # A lax target stops after the first scored batch; the rerun replays the store (no new probes).
        lax = _run(ActiveSettings(max_subnets=9, batch=3, target_mape=1.0, pool=60), store, sim)
        assert lax.reason == "target" and lax.subnets == 6 and len(sim.ran) == 9


# ------------------------------------------------------------------------------- LUT build, end to end
def test_budget_lut_on_a_board_backend_announces_cost_first_and_resumes(tmp_path, capsys):
    ws = tmp_path / "ws"
    board = BoardLikeSim(DPU, capsys=capsys)
    result = ensure_lut(
        SPACE,
        DPU,
        _lut_cfg(ws, target_mape=0.0),
        backend=lambda: board,
        store=lambda: Store(ws / "store.sqlite"),
        runs=2,
        backend_name="vitis_dnndk",
    )
    first = board.stdout_at_first_probe
    assert first.startswith(
        "LUT plan budget: granularity node: up to 20 subnets, up to 40 compiles and 40 board runs, "
        "about 42 min of container time and 10 min of board time"
    )
    assert "default: assumed" in first and first.rstrip().endswith("Ctrl-C is safe, rerun resumes")
    summary = result.summary()
    assert result.plan_kind == "budget" and summary["plan"] == "budget"
    assert summary["profiled_subnets"] == 20 == len(board.ran)
    assert summary["estimate"]["subnets"] == 20 and summary["estimate"]["board_s"] == 600
    assert summary["active"]["stopped"] == "budget" and summary["heldout_mape"] < 0.05
    assert 0 < summary["coverage"] < 1  # a partial LUT
    with Store(ws / "store.sqlite") as store:
        assert store.count(backend="vitis_dnndk") == 20

    # Rebuilt from the store: nothing profiled again, and the estimate now uses the measured times.
    again = BoardLikeSim(DPU)
    capsys.readouterr()
    rebuilt = ensure_lut(
        SPACE,
        DPU,
        _lut_cfg(ws, target_mape=0.0, reuse=False),
        backend=lambda: again,
        store=lambda: Store(ws / "store.sqlite"),
        runs=2,
        backend_name="vitis_dnndk",
    )
    assert again.ran == [] and rebuilt.summary()["profiled_subnets"] == 20
    out = capsys.readouterr().out
    assert "LUT plan budget: granularity node: up to 0 subnets (20 more already in the store)" in out
    assert "measured: median of 20 stored vitis_dnndk runs" in out

    # The full plan does not take the budget plan's partial table for a full one.
    full = ensure_lut(
        SPACE,
        DPU,
        _lut_cfg(ws, plan="full"),
        backend=lambda: SimBackend(DPU),
        store=lambda: Store(ws / "store.sqlite"),
        runs=2,
        backend_name="vitis_dnndk",
    )
    assert full.source == "built" and full.plan_kind == "full" and full.coverage["fraction"] == 1.0


def test_full_plan_announces_its_cost_and_counts_stored_subnets(tmp_path, capsys):
    ws = tmp_path / "ws"
    ensure_lut(
        SPACE,
        DPU,
        _lut_cfg(ws, resolutions=[224]),
        backend=lambda: SimBackend(DPU),
        store=lambda: Store(ws / "store.sqlite"),
        runs=1,
    )
    out = capsys.readouterr().out
    assert (
        "LUT plan full: granularity node: 13 subnets, about " in out
        and "of simulator time and no board time" in out
    )
    ensure_lut(
        SPACE,
        DPU,
        _lut_cfg(ws, resolutions=[224], validation_subnets=6, reuse=False),
        backend=lambda: SimBackend(DPU),
        store=lambda: Store(ws / "store.sqlite"),
        runs=1,
    )
    out = capsys.readouterr().out
    # the same 9 probes and the first 4 validation subnets are stored: only 2 validation subnets are new
    assert "LUT plan full: granularity node: 2 subnets (13 more already in the store)" in out
    assert "measured: median of 13 stored sim runs" in out


def test_cli_vitis_dnndk_plans_20_subnets_and_prints_the_cost_up_front(tmp_path):
    """``ofa-hw backend=vitis_dnndk task=lut`` as a user types it (dry run: no container, no board needed)."""
    ws = tmp_path / "ws"
    cmd = [
        sys.executable,
        "-m",
        "ofa_hw.cli",
        "backend=vitis_dnndk",
        "task=lut",
        "lut.dry_run=true",
        f"workspace={ws}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("LUT plan budget: granularity node: up to 20 subnets, ")
    assert "of container time and" in proc.stdout and "Ctrl-C is safe, rerun resumes" in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["lut"]["plan"] == "budget" and results["lut"]["estimate"]["subnets"] == 20
    assert results["lut"]["estimate"]["board_s"] > 0 and results["lut"]["estimate"]["upper_bound"] is True
    assert not (ws / "store.sqlite").exists() or Store(ws / "store.sqlite").count(status=None) == 0


# ------------------------------------------------------------------------------ training and the report
def test_pipeline_trains_from_a_budget_lut_without_extra_board_subnets(tmp_path, monkeypatch):
    from ofa_hw.tasks import lut as lut_task
    from ofa_hw.tasks.train import train_for_config

    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    cfg = compose(
        [
            "lut.plan=budget",
            "lut.resolutions=[160,192,224]",
            "backend.runs=2",
            "lut.pool=100",
            f"lut.shipped_dir={tmp_path / 'none'}",
            "predictor.cache=false",
        ],
        workspace=ws,
    )
    lut = lut_task.lut_for_config(cfg)
    n = Store(ws / "store.sqlite").count(status=None)
    assert n == lut.summary()["profiled_subnets"] <= 20
    trained = train_for_config(cfg, lut=lut)
    assert Store(ws / "store.sqlite").count(status=None) == n  # the budget is the whole board budget
    sec = trained.section
    assert sec["source"] == "store" and sec["train_rows"] > 0
    assert sec["heldout_mape"] == lut.summary()["heldout_mape"] is not None
    assert sec["heldout_source"].startswith("budget plan: newest batch")
    text = budget_statement(lut.summary(), sec, "sim")
    assert text.startswith(
        f"Measured for the LUT: {n} subnets on `sim` (plan `budget`, granularity `node`, stopped on "
    )
    assert f"Predictor error on {sec['heldout_subnets']} subnets it did not train on: MAPE" in text
    mean, _ = trained.predictor.predict(
        sample_subnets(SPACE, dpu_compile_check(DPU), [128], 3, np.random.default_rng(3))
    )
    assert np.isfinite(mean).all()  # the predictor covers keys the partial LUT lacks (r=128 never profiled)
