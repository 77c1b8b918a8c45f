"""``lut.granularity=node|block|network`` each build a LUT end to end (``task=lut backend=vitis_vart``,
Vitis-AI 3.0, budget plan, default ``compile_jobs``) through the fake tools and the loopback board, with
no failed network. Small budgets keep it fast; the figures are consistency with the simulator the
fakes render, not hardware accuracy."""

from __future__ import annotations

import pytest
from conftest import compose
from fakes.fixtures import *  # noqa: F401,F403
from fakes.fixtures import needs_gcc

from ofa_hw.lut.granularity import GranularityError, resolve
from ofa_hw.schemas.vitis import VitisConfig
from ofa_hw.store import Store
from ofa_hw.tasks.lut import lut_for_config

pytestmark = needs_gcc


def _overrides(fake_tools, board, tmp_path, granularity: str, *extra: str, flow: str = "vart") -> list[str]:
    spec = (
        f"{{name: loop, host: 127.0.0.1, port: {board.port}, key_file: '{board.client_key}', "
        f"known_hosts: '{board.known_hosts}', remote_tmp: '{board.root / 'tmp'}'}}"
    )
    return [
        "space=proxyless_w05",
        "task=lut",
        f"backend=vitis_{flow}",
        "backend.runs=2",
        f"backend.vitis.toolchain={'vitis-ai-3.0/vart' if flow == 'vart' else 'vitis-ai-1.2/dnndk'}",
        "backend.vitis.calib_iter=1",
        "backend.vitis.calib_images=1",
        f"lut.granularity={granularity}",
        "lut.plan=budget",
        "lut.resolutions=[128]",
        f"backend.vitis.arch_json='{fake_tools.xir_arch if flow == 'vart' else fake_tools.dnndk_arch}'",
        f"backend.vitis.workdir='{tmp_path / 'vitis'}'",
        f"backend.vitis.conda='{fake_tools.conda}'",
        f"backend.vitis.lock_dir='{tmp_path / 'locks'}'",
        f"backend.vitis.boards=[{spec}]",
        *extra,
    ]


def _build(fake_tools, board, tmp_path, granularity, *extra, flow="vart"):
    board.behaviour["FAKE_VAITRACE_VERSION"] = "3.0"
    overrides = _overrides(fake_tools, board, tmp_path, granularity, *extra, flow=flow)
    cfg = compose(overrides, workspace=tmp_path / "ws")
    assert cfg.backend.vitis.compile_jobs == VitisConfig.compile_jobs == 2  # the default settings
    result = lut_for_config(cfg, rundir=tmp_path / "run")
    with Store(tmp_path / "ws" / "store.sqlite") as store:
        runs = store.runs(backend=f"vitis_{flow}")
    assert runs and all(r.status == "ok" for r in runs), [r.error for r in runs if r.status != "ok"][:1]
    return result, runs


def test_granularity_defaults_and_refusals():
    assert resolve("auto", "sim", "sim-1") == "node"
    assert resolve("auto", "vitis_dnndk", "vitis-ai-1.0/dnndk-3.1") == "node"
    for label in ("vitis-ai-2.5/vart", "vitis-ai-3.0/vart", "vitis-ai-3.5/vart"):
        assert resolve("auto", "vitis_vart", label) == "network"
    assert resolve("node", "vitis_vart", "vitis-ai-3.0/vart") == "node"
    with pytest.raises(GranularityError, match="use lut.granularity=block or network"):
        resolve("node", "vitis_vart", "vitis-ai-3.5/vart")
    with pytest.raises(GranularityError, match="calibrates vai_q_caffe with images"):
        resolve("block", "vitis_dnndk", "vitis-ai-1.2/dnndk")
    with pytest.raises(GranularityError, match="one of auto, node, block, network"):
        resolve("layer", "sim", "sim-1")


def test_node_granularity_end_to_end(fake_tools, fake_board, tmp_path, capsys):
    """Debug-mode xmodels traced with --fine_grained; rows attributed through module paths."""
    result, runs = _build(fake_tools, fake_board, tmp_path, "node", "lut.max_subnets=1", "lut.batch=1")
    assert "LUT plan budget: granularity node: up to 1 subnets, up to 2 compiles and 3 board runs" in (
        capsys.readouterr().out
    )
    assert len(runs) == 1 and result.summary()["granularity"] == "node"
    assert sum("--fine_grained" in c for c in fake_board.commands) == 1
    assert len(result.table) > 10  # every key of a max-depth subnet at one resolution


def test_network_granularity_end_to_end(fake_tools, fake_board, tmp_path, capsys):
    """Whole subnets in normal mode only; the LUT is the simulator calibrated on them."""
    result, runs = _build(fake_tools, fake_board, tmp_path, "network", "lut.max_subnets=2", "lut.batch=2")
    out = capsys.readouterr().out
    assert "granularity network: up to 2 subnets, up to 2 compiles and 4 board runs" in out
    assert len(runs) == 2 and not any("--fine_grained" in c for c in fake_board.commands)
    summary = result.summary()
    assert summary["granularity"] == "network" and summary["coverage"] == 1.0  # every key, from the simulator
    assert "simulator calibrated on 2 whole subnets" in result.table.meta.provenance
    assert result.validation["subnets"] == 2 and result.validation["mape"] < 0.05


def test_block_granularity_end_to_end(fake_tools, fake_board, tmp_path):
    """Each key of a shallow subnet compiled as its own network (15 keys at r=128); the overhead fitted
    on that subnet timed whole: 16 networks."""
    result, runs = _build(
        fake_tools, fake_board, tmp_path, "block", "lut.max_subnets=4", "lut.overhead_subnets=1"
    )
    keys = [r for r in runs if r.net_name.startswith("probe_k")]
    assert len(keys) == len(result.table) and len(runs) == len(keys) + 1
    summary = result.summary()
    assert summary["granularity"] == "block" and summary["overhead_ms"] is not None
    # the keys' own networks add up to less than the subnet: no on-chip hand-over between blocks lost,
    # but each key network pays its own start; the overhead closes the gap exactly on this one subnet
    assert result.validation["mape"] < 1e-6 and result.validation["mape_sum"] > 0


@pytest.mark.parametrize("toolchain", ["vitis-ai-2.5/vart", "vitis-ai-3.0/vart"])
def test_dry_run_states_granularity_and_cost(toolchain, tmp_path, capsys):
    """``ofa-hw task=lut backend=vitis_vart lut.dry_run=true``: no container, no board; the line and
    results.json state the granularity and its compiles and board runs."""
    from ofa_hw.tasks.lut import dry_run

    cfg = compose(
        ["task=lut", "backend=vitis_vart", "lut.dry_run=true", f"backend.vitis.toolchain={toolchain}"],
        workspace=tmp_path / "ws",
    )
    results = dry_run(cfg)
    out = capsys.readouterr().out
    assert out.startswith(
        "LUT plan budget: granularity network: up to 20 subnets, up to 20 compiles and 40 board runs"
    )
    est = results["lut"]["estimate"]
    assert results["lut"]["granularity"] == "network" and est["compiles"] == est["networks"] == 20
    block = dry_run(compose(
        ["task=lut", "backend=vitis_vart", "lut.dry_run=true", "lut.granularity=block", f"backend.vitis.toolchain={toolchain}"],
        workspace=tmp_path / "ws",
    ))  # fmt: skip
    assert "networks: one per LUT key of them + whole subnets for the overhead" in capsys.readouterr().out
    assert block["lut"]["estimate"]["board_runs"] == 2 * block["lut"]["estimate"]["networks"] > 40
