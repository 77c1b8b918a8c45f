"""End to end: ``ofa-hw task=deploy backend=vitis_dnndk|vitis_vart`` against the fake tools and the
loopback board, compared with ``backend=sim`` on the same subnet.

The fake compilers profile the network our exporter gave them (the simulator's VAI_C emulation of the
exported prototxt / the traced quantizer input), while ``backend=sim`` simulates the netspec directly:
the two agree only if export, quantization script, compile, board run and parsing keep the network
(its nodes, their workloads and times). A dropped or mangled layer, a node misnamed on the way, a
profile of another network, or a figure taken from the wrong run makes this fail. These figures are
consistency with the simulator, not hardware accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from conftest import compose
from fakes.fixtures import *  # noqa: F403 - pytest fixtures
from fakes.fixtures import needs_gcc

from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import parse_vaitrace_summary
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import compile_net
from ofa_hw.sim.timing import node_times_ms
from ofa_hw.space import get_space
from ofa_hw.store import Store
from ofa_hw.tasks import deploy

pytestmark = needs_gcc
RUNS = 2
SEED_NET = [
    "space=proxyless_w05",
    "task=deploy",
    "task.named_arch=proxyless_mobile_05",
    f"backend.runs={RUNS}",
]


def _board_overrides(fake_tools, board, tmp_path, flow: str) -> list[str]:
    arch = fake_tools.dnndk_arch if flow == "dnndk" else fake_tools.xir_arch
    spec = (
        f"{{name: loop, host: 127.0.0.1, port: {board.port}, key_file: '{board.client_key}', "
        f"known_hosts: '{board.known_hosts}', remote_tmp: '{board.root / 'tmp'}'}}"
    )
    return [
        f"backend=vitis_{flow}",
        f"backend.vitis.arch_json='{arch}'",
        f"backend.vitis.workdir='{tmp_path / 'vitis'}'",
        f"backend.vitis.conda='{fake_tools.conda}'",
        f"backend.vitis.lock_dir='{tmp_path / 'locks'}'",
        "backend.vitis.calib_images=2",
        "backend.vitis.calib_iter=2",
        "backend.vitis.retries=0",
        f"backend.vitis.boards=[{spec}]",
    ]


IDENTITY = [
    "backend",
    "toolchain",
    "job_key",
    "raw_text",
    "timings",
    "e2e_ms",
    "kernel_info",
    "created",
    "updated",
    "id",
]


def _close(a, b, rel: float = 0.05) -> bool:
    """Within the simulator's run-to-run jitter (1 % per node, 0.5 % per run) with a wide margin."""
    return abs(a - b) <= rel * abs(b)


def test_deploy_dnndk_end_to_end(fake_tools, fake_board, tmp_path, monkeypatch):
    """The real console command, in a subprocess, against the fakes on PATH and the loopback board."""
    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    overrides = SEED_NET + _board_overrides(fake_tools, fake_board, tmp_path, "dnndk")
    cli = [
        sys.executable,
        "-c",
        "from ofa_hw.cli import main; main()",
        *overrides,
        f"workspace={ws}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())["deploy"]
    assert results["status"] == "ok", results["error"]
    assert results["backend"] == "vitis_dnndk" and results["kernel"] == "proxylessmobile05"
    # which figure is which: e2e_ms from the normal-mode ELF, profile_total_ms from the debug-mode one
    assert results["profile_total_ms"] == results["total_ms"] and results["nodes"] == 42
    assert results["e2e_ms"] > 0 and "normal-mode" in results["figures"]["e2e_ms"]
    assert "debug-mode" in results["figures"]["profile_total_ms"]
    calls = fake_board.n2cube_log.read_text().splitlines()
    assert "dpuRunTask normal 0" in calls and "dpuRunTask debug 1" in calls
    assert "#ofa_hw done profile" in (tmp_path / "run" / "profile_proxylessmobile05.txt").read_text()
    sim = deploy.run(compose(SEED_NET, workspace=ws))["deploy"]
    assert sim["backend"] == "sim" and sim["nodes"] == results["nodes"]
    assert _close(results["total_ms"], sim["total_ms"])

    with Store(ws / "store.sqlite") as store:
        vitis_run, sim_run = store.runs(backend="vitis_dnndk")[0], store.runs(backend="sim")[0]
        a, b = store.profile(vitis_run.id).nodes, store.profile(sim_run.id).nodes
        assert list(a["name"]) == list(b["name"])  # the exported net compiled into the netspec's nodes
        assert (a["workload_mop"] - b["workload_mop"]).abs().max() <= 0.0011
        assert ((a["runtime_ms"] - b["runtime_ms"]).abs() <= 0.05 * b["runtime_ms"] + 0.0011).all()
        assert "#ofa_hw done" in store.raw_text(vitis_run.id)
        assert vitis_run.e2e_ms is not None

    # a second deploy of the same job reuses the stored measurement (no board work but the preflight's check)
    n_cmds = len(fake_board.commands)
    again = deploy.run(compose(overrides, workspace=ws))
    assert again["deploy"]["total_ms"] == results["total_ms"]
    assert fake_board.commands[n_cmds:] == ["command -v g++"]


@pytest.mark.parametrize(
    "version,traced",
    [
        ("1.4", "vaitrace --txt -o vaitrace.txt python3"),
        ("3.0", "python3 -m vaitrace_py --txt -o vaitrace.txt"),
    ],
)
def test_deploy_vart_end_to_end(fake_tools, fake_board, tmp_path, monkeypatch, version, traced):
    """The board's vaitrace prints its version's recorded layout; the flow picks that version's options:
    no ``--fine_grained`` (3.0 would refuse it on this normally compiled xmodel)."""
    monkeypatch.chdir(tmp_path)
    fake_board.behaviour["FAKE_VAITRACE_VERSION"] = version
    ws = tmp_path / "ws"
    label = f"vitis-ai-{version}/vart"
    overrides = (
        SEED_NET
        + _board_overrides(fake_tools, fake_board, tmp_path, "vart")
        + [f"backend.vitis.toolchain={label}"]
    )
    results = deploy.run(compose(overrides, workspace=ws))["deploy"]
    assert results["status"] == "ok", results["error"]
    assert results["backend"] == "vitis_vart" and results["toolchain"] == label
    (traced_cmd,) = [c for c in fake_board.commands if traced in c]
    # vaitrace averages every run of the traced process: no warm-up runs there (the timed run has them)
    assert traced_cmd.endswith(f"proxylessmobile05.xmodel {RUNS} 0")
    assert not any("--fine_grained" in c for c in fake_board.commands)
    # the xmodel flow ran the generated script through the (fake) quantizer: calib, then test + export
    (xmodel,) = (tmp_path / "vitis").glob("*/compiled/proxylessmobile05.xmodel")
    source = json.loads(xmodel.read_text())["source"]
    assert source["graph"] == "OFASubnet" and source["convs"] == 61  # ProxylessNAS-Mobile 0.5
    assert (
        json.loads((xmodel.parent.parent / "quantize_result" / "quant_info.json").read_text())[
            "calib_batches"
        ]
        == 2
    )
    with Store(ws / "store.sqlite") as store:
        (run,) = store.runs(backend="vitis_vart")
        prof = store.profile(run.id)
        raw = store.raw_text(run.id)
    header = {"1.4": "DPU         | Batch | SubGraph", "3.0": "DPU Id      | Bat | DPU SubGraph"}[version]
    assert header in raw  # the recorded layout of that version
    # the whole subnet is one DPU subgraph: its hardware time is the simulator's on the XIR toolchain
    assert len(prof.nodes) == 1
    xir = dataclasses.replace(DPUConfig.from_preset("zcu102_b4096"), toolchain="xir")
    ns = build_netspec(
        get_space("proxyless_w05"), get_space("proxyless_w05").named_arch("proxyless_mobile_05")
    )
    expected = float(node_times_ms(compile_net(ns, xir), xir).sum())
    assert _close(float(prof.totals["runtime_ms"].iloc[0]), expected, 0.01)
    # the runner's own time: the DPU's plus the software overhead, warm-up excluded
    assert run.e2e_ms > expected


def test_deploy_vart_fine_grained_on_a_debug_xmodel(fake_tools, fake_board, tmp_path, monkeypatch):
    """Vitis-AI 3.0 with ``fine_grained``: a debug-mode compile, traced with ``--fine_grained``; the
    per-layer rows (un-fused, module paths) are rescaled to the normal-mode network time."""
    monkeypatch.chdir(tmp_path)
    fake_board.behaviour["FAKE_VAITRACE_VERSION"] = "3.0"
    ws = tmp_path / "ws"
    overrides = (
        SEED_NET
        + _board_overrides(fake_tools, fake_board, tmp_path, "vart")
        + [
            "backend.vitis.toolchain=vitis-ai-3.0/vart",
            "backend.vitis.fine_grained=true",
        ]
    )
    results = deploy.run(compose(overrides, workspace=ws))["deploy"]
    assert results["status"] == "ok", results["error"]
    fine = [c for c in fake_board.commands if "--fine_grained" in c]
    assert len(fine) == 1 and "proxylessmobile05_debug.xmodel" in fine[0]
    with Store(ws / "store.sqlite") as store:
        (run,) = store.runs(backend="vitis_vart")
        prof, raw = store.profile(run.id), store.raw_text(run.id)
    ns = build_netspec(
        get_space("proxyless_w05"), get_space("proxyless_w05").named_arch("proxyless_mobile_05")
    )
    assert len(prof.nodes) == len(ns.layers) + sum(x.residual for x in ns.layers)
    assert all(n.startswith("subgraph_OFASubnet__OFASubnet_") for n in prof.nodes["name"])
    network = parse_vaitrace_summary(
        raw.split("#ofa_hw vaitrace fine_grained")[0].split("#ofa_hw vaitrace")[1]
    )
    assert _close(float(prof.totals["runtime_ms"].iloc[0]), float(network["runtime_ms"].sum()), 0.01)


def test_vart_on_vitis_ai_13_is_refused_up_front(fake_tools, fake_board, tmp_path, monkeypatch):
    from ofa_hw.errors import UserError

    monkeypatch.chdir(tmp_path)
    overrides = (
        SEED_NET
        + _board_overrides(fake_tools, fake_board, tmp_path, "vart")
        + ["backend.vitis.toolchain=vitis-ai-1.3/vart"]
    )
    with pytest.raises(UserError) as e:
        deploy.run(compose(overrides, workspace=tmp_path / "ws"))
    assert "--txt" in str(e.value) and "1.3" in str(e.value) and "\n" not in str(e.value)
    assert fake_board.commands == [] and not (tmp_path / "vitis").exists()  # nothing ran


def test_deploy_compile_failure_is_recorded(fake_tools, fake_board, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "FAKE_VAI_C_ERROR",
        "[VAI_C][Error] Depthwise conv proxylessmobile05_conv_59: kernel 7x7, 1664 channels exceed the weight bank",
    )
    ws = tmp_path / "ws"
    from ofa_hw.errors import FailedWorkError

    overrides = SEED_NET + _board_overrides(fake_tools, fake_board, tmp_path, "dnndk")
    with pytest.raises(FailedWorkError, match="exceed the weight bank"):  # the CLI exits 2 on it
        deploy.run(compose(overrides, workspace=ws))
    results = json.loads((tmp_path / "outputs" / "adhoc" / "results.json").read_text())
    assert results["deploy"]["status"] == "failed" and "exceed the weight bank" in results["deploy"]["error"]
    with Store(ws / "store.sqlite") as store:
        (run,) = store.runs(status="failed")
        assert run.backend == "vitis_dnndk" and "compile error" in run.error
    assert fake_board.commands == ["command -v g++"]  # only the preflight reached the board
