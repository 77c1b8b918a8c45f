"""Host side of the Vitis backends against the fake tools: argv building, flows, failures, injection."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes.fixtures import *  # noqa: F403 - pytest fixtures
from fakes.fixtures import make_settings, needs_gcc
from fakes.nets import randomize_

from ofa_hw.backends import ProfileJob
from ofa_hw.backends.vitis import VitisBackend, vitis_settings
from ofa_hw.backends.vitis.flows import CaffeFlow, Compiled, CompileFailed, kernel_name
from ofa_hw.backends.vitis.toolchain import ToolError, ToolRunner
from ofa_hw.dpu import DPUConfig
from ofa_hw.export.caffe import read_prototxt
from ofa_hw.export.xmodel import write_quantize_script
from ofa_hw.space import get_space
from ofa_hw.torchnet import build_model

SPACE = get_space("proxyless_w05")
DPU = DPUConfig.from_preset("zcu102_b4096")


def _job(name: str = "proxylessmobile05", r: int | None = None, seed: int = 0) -> ProfileJob:
    arch = SPACE.named_arch("proxyless_mobile_05")
    if r is not None:
        arch = {**arch, "r": r}
    return ProfileJob.create(SPACE, arch, name, runs=1, seed=seed)


def test_runner_builds_argv_without_a_shell(tmp_path):
    host = ToolRunner()
    assert host.command(["vai_c_caffe", "-n", "a b"], tmp_path) == ["vai_c_caffe", "-n", "a b"]
    box = ToolRunner(container="vitis", conda_env="vitis-ai-caffe", env=(("K", "v w"),))
    assert box.command(["vai_q_caffe", "quantize"], tmp_path) == [
        "docker", "exec", "-w", str(tmp_path), "-e", "K=v w", "vitis", "conda", "run", "-n", "vitis-ai-caffe", "vai_q_caffe", "quantize",
    ]  # fmt: skip
    as_user = ToolRunner(container="vitis", conda="/c", conda_env="e", user="1000:1000", home="/w/h")
    assert as_user.command(["t"], tmp_path) == [
        "docker", "exec", "-u", "1000:1000", "-w", str(tmp_path), "-e", "HOME=/w/h", "vitis", "/c", "run", "-n", "e", "t",
    ]  # fmt: skip


def test_runner_errors(tmp_path):
    with pytest.raises(ToolError, match="cannot start"):
        ToolRunner().run(["/nonexistent/vai_c_caffe"], tmp_path, 5)
    with pytest.raises(ToolError, match=r"timed out after 0.3 s"):
        ToolRunner().run(
            [sys.executable, "-c", "import time; time.sleep(5)"], tmp_path, 0.3, tmp_path / "t.log"
        )
    assert "exit" in (tmp_path / "t.log").read_text()
    with pytest.raises(ToolError, match=r"exited with status 3[\s\S]*boom"):
        ToolRunner().run([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path, 5)


def test_kernel_names():
    assert kernel_name("proxyless_mobile_05") == "proxylessmobile05"
    with pytest.raises(ValueError):
        kernel_name("___")


@needs_gcc
def test_caffe_flow_in_container(fake_tools, tmp_path):
    settings = make_settings(fake_tools, [], tmp_path / "work")
    flow = CaffeFlow(
        settings,
        ToolRunner(container="vitis", conda=str(fake_tools.conda), conda_env="vitis-ai-caffe"),
        tmp_path / "work",
        DPU,
    )
    compiled = flow.build(_job(r=128))
    assert compiled.kernel == "proxylessmobile05" and compiled.artifact.name == "dpu_proxylessmobile05.elf"
    # two ELFs of the same net: debug mode for per-node profiles, normal mode for the deployable latency
    assert compiled.artifact.parent.name == "debug" and compiled.deploy_artifact.parent.name == "normal"
    for elf, mode in ((compiled.artifact, b"debug"), (compiled.deploy_artifact, b"normal")):
        data = elf.read_bytes()
        assert data[:4] == b"\x7fELF" and mode + b"\x00" in data  # the fake compiler recorded -e's mode
    assert 'kernel list info for network "proxylessmobile05"' in compiled.kernel_info
    assert compiled.kernel_info.startswith("kernel list info")  # the console's warnings are not kept
    root = compiled.artifact.parent.parent.parent
    # float model calibrates from images; the quantizer's redundant input was removed before VAI_C
    assert read_prototxt(root / "float" / "proxylessmobile05.prototxt").layer[0].type == "ImageData"
    assert (root / "quantize_results" / "deploy.prototxt.orig").exists()
    assert "removed from deploy.prototxt: ['top-level input" in compiled.log
    for log in ("vai_q_caffe.log", "vai_c_caffe_debug.log", "vai_c_caffe_normal.log"):
        text = (root / "logs" / log).read_text()
        assert text.startswith("$ docker exec -w ") and "# exit 0" in text
    for mode in ("debug", "normal"):
        argv = shlex.split((root / "logs" / f"vai_c_caffe_{mode}.log").read_text().splitlines()[0][2:])
        assert argv[argv.index("-e") + 1] == f"{{'mode': '{mode}'}}"
    # resumable: a finished build is reused without calling the tools again
    fake_tools_fail = {"FAKE_VAI_C_ERROR": "must not be called"}
    import os

    os.environ.update(fake_tools_fail)
    try:
        again = flow.build(_job(r=128))
    finally:
        del os.environ["FAKE_VAI_C_ERROR"]
    assert again.artifact == compiled.artifact and again.timings == {"compile_s": 0.0}


@needs_gcc
def test_compile_error_is_a_failed_outcome_with_the_tools_message(fake_tools, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "FAKE_VAI_C_ERROR", "Depthwise conv with 1664 channels and 7x7 kernel exceeds the weight buffer"
    )
    settings = make_settings(fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "work")
    backend = VitisBackend("vitis_dnndk", DPUConfig.from_preset("zcu102_b4096"), settings)
    outcome = backend.compile(_job(r=128))
    assert outcome.status == "failed"
    assert "compile error" in outcome.error and "exceeds the weight buffer" in outcome.error
    assert "vai_c_caffe_debug.log" in outcome.error  # where the full log is kept


def test_missing_container_and_hostile_config_values(fake_tools, tmp_path):
    """Config values reach the tools as plain arguments: '$(…)' is never expanded by a shell."""
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker})"
    runner = ToolRunner(container=hostile, conda_env="vitis-ai-caffe")
    with pytest.raises(ToolError, match=r"No such container: \$\(touch"):
        runner.run(["vai_c_caffe", "-n", "x"], tmp_path, 30)
    workdir = tmp_path / "dir with space;$(id)"
    workdir.mkdir()
    out = ToolRunner(container="vitis", conda=str(fake_tools.conda), conda_env="vitis-ai-caffe").run(
        ["python", "-c", "import os; print(os.getcwd())"], workdir, 60
    )
    assert out.output.strip() == str(workdir)
    assert not marker.exists()


def test_generated_quantize_script_rebuilds_the_subnet(tmp_path):
    """The self-contained script's module has the same structure and weights, so the same outputs."""
    space = get_space("ofa_proxyless_w13")
    arch = space.sample(np.random.default_rng(3))
    arch["r"] = 128
    model = randomize_(build_model(space, arch, "x"), 3)
    script, weights = write_quantize_script(model.netspec, model, tmp_path, calib_iter=3)
    spec = importlib.util.spec_from_file_location("generated_quantize", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    clone = mod.OFASubnet(mod.SPEC)
    clone.load_state_dict(torch.load(weights))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(clone.eval()(x), model(x), atol=1e-5)


def test_settings_validation():
    with pytest.raises(ValueError, match="no board"):
        vitis_settings({"flow": "dnndk"})
    with pytest.raises(ValueError, match="flow"):
        vitis_settings({"flow": "tensorrt", "boards": [{"name": "a", "host": "h"}]})
    with pytest.raises(Exception, match="retries"):
        vitis_settings({"retries": "many", "boards": [{"name": "a", "host": "h"}]})
    with pytest.raises(Exception, match="hots"):
        vitis_settings({"boards": [{"name": "a", "hots": "h"}]})
    with pytest.raises(ValueError, match="duplicate"):
        vitis_settings({"boards": [{"name": "a", "host": "h"}, {"name": "a", "host": "g"}]})


def test_flow_refuses_a_split_network():
    from ofa_hw.backends.vitis.flows import _kernel_list

    text = (
        Path(__file__)
        .parent.joinpath("..", "ofa_hw", "data", "zcu102_b4096", "vai_c_kernel_info_proxylessmobile05.txt")
        .resolve()
        .read_text()
    )
    assert _kernel_list("some warning\n" + text, "proxylessmobile05").startswith("kernel list info")
    with pytest.raises(CompileFailed, match="expected the single DPU kernel 'other'"):
        _kernel_list(text, "other")
    with pytest.raises(CompileFailed, match="no kernel list"):
        _kernel_list("[VAI_C] done", "x")


def _compiled(tmp_path) -> Compiled:
    return Compiled(_job(), "proxylessmobile05", tmp_path / "x.elf", "info", "log")


def test_board_output_checks(tmp_path):
    from fakes.tools import as_printed, seed_profile_text

    from ofa_hw.backends.vitis.profilers import DnndkProfiler
    from ofa_hw.formats import ParseError

    dpu = DPUConfig.from_preset("zcu102_b4096")
    table = as_printed(seed_profile_text())
    timed = "#ofa_hw e2e_us 0 3500.0\n#ofa_hw e2e_us 1 3700.0\n#ofa_hw done time\n"
    profiled = (
        "#ofa_hw profile_run 0\n" + table + "#ofa_hw profile_run 1\n" + table + "#ofa_hw done profile\n"
    )
    prof = DnndkProfiler().parse(timed + profiled, _compiled(tmp_path), 2, dpu)
    assert prof.n_runs == 2 and prof.e2e_ms == pytest.approx(3.6) and prof.kernel_info == "info"
    with pytest.raises(ParseError, match="incomplete"):
        DnndkProfiler().parse(
            timed + profiled.replace("#ofa_hw done profile\n", ""), _compiled(tmp_path), 2, dpu
        )
    with pytest.raises(ParseError, match="no '#ofa_hw done time'"):
        DnndkProfiler().parse(profiled, _compiled(tmp_path), 2, dpu)
    with pytest.raises(ParseError, match="1 profile tables for 2 runs"):
        DnndkProfiler().parse(timed + table + "#ofa_hw done profile\n", _compiled(tmp_path), 2, dpu)
    with pytest.raises(ParseError, match="no profile of kernel 'proxylessmobile05'"):
        DnndkProfiler().parse(
            timed + table.replace("proxylessmobile05", "other") + "#ofa_hw done profile\n",
            _compiled(tmp_path),
            1,
            dpu,
        )
    with pytest.raises(ParseError, match="e2e_us"):
        DnndkProfiler().parse("#ofa_hw done time\n" + profiled, _compiled(tmp_path), 2, dpu)


def test_vaitrace_summary_to_profile():
    import pandas as pd

    from ofa_hw.backends.vitis import profile_from_vaitrace

    dpu = DPUConfig.from_preset("zcu102_b4096")
    rows = [
        ("DPUCZDX8G_1", 1, "net_conv_1", 0.014451, 0.134, 107.8, 0.30, 0.02, 0.02, 2550.7),
        ("DPUCZDX8G_2", 1, "net_conv_1", 0.014451, 0.136, 106.2, 0.30, 0.02, 0.02, 2500.0),
        ("DPUCZDX8G_1", 1, "net_fc_1", 0.002560, 0.235, 10.9, 1.24, 0.0, 0.0, 5278.4),
    ]
    cols = [
        "dpu_id",
        "batch",
        "subgraph",
        "workload_gop",
        "runtime_ms",
        "perf_gops",
        "load_weight_mb",
        "load_fm_mb",
        "store_fm_mb",
        "avg_bw_mbs",
    ]
    prof = profile_from_vaitrace(pd.DataFrame(rows, columns=cols), "net", dpu, e2e_ms=0.5)
    assert prof.nodes["name"].tolist() == ["net_conv_1", "net_fc_1"]
    assert prof.nodes["runtime_ms"].tolist() == [0.135, 0.235]  # cores averaged
    assert prof.nodes["workload_mop"].tolist() == [14.451, 2.56]
    assert prof.nodes["mem_mb"].tolist() == [0.34, 1.24]
    assert prof.total_ms == pytest.approx(0.37) and prof.e2e_ms == 0.5
