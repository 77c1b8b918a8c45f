"""A real-board-path LUT build (``task=lut backend=vitis_dnndk``) at the default settings, against the fake
Vitis-AI tools and the loopback board: every probe goes through our export (torch.fx on
``compile_jobs`` threads), the fake quantizer and compiler, and the board's C++ N2Cube profiler."""

from __future__ import annotations

import pytest
from conftest import compose
from fakes.board_server import FakeBoard
from fakes.fixtures import *  # noqa: F401,F403
from fakes.fixtures import needs_gcc

from ofa_hw.schemas.vitis import VitisConfig
from ofa_hw.store import Store
from ofa_hw.tasks.lut import lut_for_config

pytestmark = needs_gcc
#: 9 probe subnets per resolution cover every key of proxyless_w05: 12 resolutions = 108 probes.
RESOLUTIONS = list(range(128, 176, 4))


def _overrides(fake_tools, boards, tmp_path, resolutions) -> list[str]:
    spec = ", ".join(
        f"{{name: loop{i}, host: 127.0.0.1, port: {b.port}, key_file: '{b.client_key}', "
        f"known_hosts: '{b.known_hosts}', remote_tmp: '{b.root / 'tmp'}'}}"
        for i, b in enumerate(boards)
    )
    return [
        "space=proxyless_w05",
        "task=lut",
        "backend=vitis_dnndk",
        # The coverage plan (the Vitis backends default to the <= 20-subnet budget plan, issue 14): this
        # test is about >= 100 probes through export/compile at the default compile_jobs.
        "lut.plan=full",
        f"lut.resolutions=[{','.join(map(str, resolutions))}]",
        f"backend.vitis.arch_json='{fake_tools.dnndk_arch}'",
        f"backend.vitis.workdir='{tmp_path / 'vitis'}'",
        f"backend.vitis.conda='{fake_tools.conda}'",
        f"backend.vitis.lock_dir='{tmp_path / 'locks'}'",
        f"backend.vitis.boards=[{spec}]",
    ]


@pytest.fixture
def two_boards(board_root, tmp_path):
    """A farm of two loopback boards (a board-bound build takes one job per board at a time)."""
    boards = [FakeBoard(board_root, tmp_path / f"keys{i}").start() for i in range(2)]
    yield boards
    for b in boards:
        b.stop()


def _lut_build(fake_tools, boards, tmp_path, resolutions):
    cfg = compose(_overrides(fake_tools, boards, tmp_path, resolutions), workspace=tmp_path / "ws")
    assert cfg.backend.vitis.compile_jobs == VitisConfig.compile_jobs == 2  # the default settings
    result = lut_for_config(cfg, rundir=tmp_path / "run")
    with Store(tmp_path / "ws" / "store.sqlite") as store:
        runs = store.runs(backend="vitis_dnndk")
    return result, runs


@pytest.mark.slow  # 108 probes through the fakes; the granularity tests build a LUT on this path by default
def test_real_board_path_lut_build_has_no_crashes(fake_tools, two_boards, tmp_path):
    result, runs = _lut_build(fake_tools, two_boards, tmp_path, RESOLUTIONS)
    failed = [r for r in runs if r.status != "ok"]
    assert len(result.plan.probes) >= 100
    assert not failed, f"{len(failed)} of {len(runs)} failed, e.g. {failed[0].error}"
    assert len(runs) == len(result.plan.probes) + len(result.plan.validation)
    assert result.coverage["fraction"] == 1.0
    # per-node times from the debug-mode ELF, deployable latency from the normal-mode ELF, each job
    assert all(r.e2e_ms is not None and r.e2e_ms > 0 for r in runs)
    calls = [
        c for b in two_boards for c in b.n2cube_log.read_text().splitlines() if c.startswith("dpuCreateTask")
    ]
    assert sum(c.endswith(" debug 1") for c in calls) == len(runs)  # profile-mode tasks: debug ELFs only
    assert sum(c.endswith(" normal 0") for c in calls) == len(runs)  # timed tasks: normal-mode ELFs
    assert not any(c.endswith(" normal 1") for c in calls)
    assert all(b.commands for b in two_boards)  # both boards of the farm worked


def test_default_budget_plan_on_the_fake_board_path(fake_tools, two_boards, tmp_path, capsys):
    """Issue 14 on the real-board path: ``backend=vitis_dnndk`` defaults to the budget plan, prints its cost
    before the first probe and profiles at most ``lut.max_subnets`` subnets through the fake tools/boards."""
    overrides = [o for o in _overrides(fake_tools, two_boards, tmp_path, RESOLUTIONS) if o != "lut.plan=full"]
    cfg = compose(overrides, workspace=tmp_path / "ws")
    assert cfg.lut.plan == "auto" and cfg.lut.max_subnets == 20
    result = lut_for_config(cfg, rundir=tmp_path / "run")
    out = capsys.readouterr().out
    first = out.index(
        "LUT plan budget: granularity node: up to 20 subnets, up to 40 compiles and 40 board runs, about"
    )
    assert "Ctrl-C is safe, rerun resumes" in out.splitlines()[out[:first].count("\n")]
    with Store(tmp_path / "ws" / "store.sqlite") as store:
        runs = store.runs(backend="vitis_dnndk")
    assert 0 < len(runs) <= 20 and all(r.status == "ok" for r in runs)
    assert (
        result.plan is None
        and result.estimate is not None
        and result.table.meta.validation["plan"] == "budget"
    )
    # every profiled subnet went through the board: one debug-mode profile task per run
    calls = [
        c for b in two_boards for c in b.n2cube_log.read_text().splitlines() if c.startswith("dpuCreateTask")
    ]
    assert sum(c.endswith(" debug 1") for c in calls) == len(runs)
