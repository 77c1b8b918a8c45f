"""End to end: ``ofa-hw task=deploy backend=vitis_dnndk|vitis_vart`` against the fake tools and the
loopback board give the same profiles and store rows as the simulator backend replaying the same
recorded output (the seed's ProxylessNAS-Mobile 0.5 profile: 3.279 ms)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import compose
from fakes.fixtures import *  # noqa: F403 - pytest fixtures
from fakes.fixtures import needs_gcc
from fakes.tools import seed_profile_text

import ofa_hw.backends.sim as sim_module
from ofa_hw.formats import parse_dnndk_profile
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
        f"backend.vitis.lock_dir='{tmp_path / 'locks'}'",
        "backend.vitis.calib_images=2",
        "backend.vitis.calib_iter=2",
        "backend.vitis.retries=0",
        f"backend.vitis.boards=[{spec}]",
    ]


def _replay(monkeypatch) -> None:
    """The simulator backend, made to 'simulate' exactly the recorded board output."""
    monkeypatch.setattr(
        sim_module, "simulate", lambda *a, runs=1, **k: parse_dnndk_profile(seed_profile_text() * runs)
    )


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


def test_deploy_dnndk_end_to_end(fake_tools, fake_board, tmp_path, monkeypatch):
    """The real console command, in a subprocess, against the fakes on PATH and the loopback board."""
    monkeypatch.chdir(tmp_path)
    _replay(monkeypatch)
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
    assert "proxylessmobile05 on vitis_dnndk (zcu102_b4096): 3.279 ms over 42 DPU nodes" in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["deploy"]["status"] == "ok", results["deploy"]["error"]
    assert (
        results["deploy"]["backend"] == "vitis_dnndk" and results["deploy"]["kernel"] == "proxylessmobile05"
    )
    assert results["deploy"]["total_ms"] == pytest.approx(3.279) and results["deploy"]["nodes"] == 42
    # which figure is which: e2e_ms from the normal-mode ELF, profile_total_ms from the debug-mode one
    assert results["deploy"]["profile_total_ms"] == results["deploy"]["total_ms"]
    assert results["deploy"]["e2e_ms"] > 0 and "normal-mode" in results["deploy"]["figures"]["e2e_ms"]
    assert "debug-mode" in results["deploy"]["figures"]["profile_total_ms"]
    calls = fake_board.n2cube_log.read_text().splitlines()
    assert "dpuRunTask normal 0" in calls and "dpuRunTask debug 1" in calls
    assert "#ofa_hw done profile" in (tmp_path / "run" / "profile_proxylessmobile05.txt").read_text()
    sim = deploy.run(compose(SEED_NET, workspace=ws))
    assert sim["deploy"]["backend"] == "sim" and sim["deploy"]["total_ms"] == results["deploy"]["total_ms"]

    with Store(ws / "store.sqlite") as store:
        vitis_run, sim_run = store.runs(backend="vitis_dnndk")[0], store.runs(backend="sim")[0]
        assert (
            store.profile(vitis_run.id)
            == store.profile(sim_run.id)
            == parse_dnndk_profile(seed_profile_text() * RUNS)
        )
        a, b = store.runs_frame(backend="vitis_dnndk"), store.runs_frame(backend="sim")
        pd.testing.assert_frame_equal(
            a.drop(columns=IDENTITY, errors="ignore"), b.drop(columns=IDENTITY, errors="ignore")
        )
        na = store.nodes([vitis_run.id], per_run=True).drop(columns="run_id")
        nb = store.nodes([sim_run.id], per_run=True).drop(columns="run_id")
        pd.testing.assert_frame_equal(na.reset_index(drop=True), nb.reset_index(drop=True))
        assert "#ofa_hw done" in store.raw_text(vitis_run.id)
        assert vitis_run.e2e_ms is not None

    # a second deploy of the same job reuses the stored measurement (no board work but the preflight's check)
    n_cmds = len(fake_board.commands)
    again = deploy.run(
        compose(SEED_NET + _board_overrides(fake_tools, fake_board, tmp_path, "dnndk"), workspace=ws)
    )
    assert again["deploy"]["total_ms"] == results["deploy"]["total_ms"]
    assert fake_board.commands[n_cmds:] == ["command -v g++"]


@pytest.mark.parametrize(
    "version,traced",
    [
        ("1.4", "vaitrace --txt --fine_grained -o vaitrace.txt python3"),
        ("3.0", "python3 -m vaitrace_py --txt --fine_grained"),
    ],
)
def test_deploy_vart_end_to_end(fake_tools, fake_board, tmp_path, monkeypatch, version, traced):
    """The board's vaitrace prints its version's recorded layout; the flow picks that version's options."""
    monkeypatch.chdir(tmp_path)
    fake_board.behaviour["FAKE_VAITRACE_VERSION"] = version
    ws = tmp_path / "ws"
    label = f"vitis-ai-{version}/vart"
    overrides = (
        SEED_NET
        + _board_overrides(fake_tools, fake_board, tmp_path, "vart")
        + [f"backend.vitis.toolchain={label}"]
    )
    results = deploy.run(compose(overrides, workspace=ws))
    assert results["deploy"]["status"] == "ok", results["deploy"]["error"]
    assert results["deploy"]["backend"] == "vitis_vart" and results["deploy"]["toolchain"] == label
    assert results["deploy"]["total_ms"] == pytest.approx(3.279) and results["deploy"]["e2e_ms"] > 0
    assert sum(traced in c for c in fake_board.commands) == 1
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
    replay = parse_dnndk_profile(seed_profile_text())
    with Store(ws / "store.sqlite") as store:
        (run,) = store.runs(backend="vitis_vart")
        prof = store.profile(run.id)
        raw = store.raw_text(run.id)
    header = {"1.4": "DPU         | Batch | SubGraph", "3.0": "DPU Id      | Bat | DPU SubGraph"}[version]
    assert header in raw  # the recorded layout of that version
    cols = ["id", "name", "runtime_ms", "mem_mb", "mb_s"]
    pd.testing.assert_frame_equal(prof.nodes[cols], replay.nodes[cols])
    # vaitrace prints the workload in GOP with 3 decimals: MOP to within 0.5
    assert (prof.nodes["workload_mop"] - replay.nodes["workload_mop"]).abs().max() <= 0.5
    assert prof.totals["runtime_ms"].iloc[0] == pytest.approx(3.279)


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

    with pytest.raises(FailedWorkError, match="exceed the weight bank"):  # the CLI exits 2 on it
        deploy.run(
            compose(SEED_NET + _board_overrides(fake_tools, fake_board, tmp_path, "dnndk"), workspace=ws)
        )
    results = json.loads((tmp_path / "outputs" / "adhoc" / "results.json").read_text())
    assert results["deploy"]["status"] == "failed" and "exceed the weight bank" in results["deploy"]["error"]
    with Store(ws / "store.sqlite") as store:
        (run,) = store.runs(status="failed")
        assert run.backend == "vitis_dnndk" and "compile error" in run.error
    assert fake_board.commands == ["command -v g++"]  # only the preflight reached the board
