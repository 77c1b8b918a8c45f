"""What a new user meets first on the real path: toolchain checks, the preflight, the arch file, the
XIR-based vai_c_caffe, the PyTorch of the Vitis-AI containers, vaitrace's per-version options and
layouts, and export on compile_jobs threads. Each test would have caught one finding of issue 15."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import torch
from fakes.board_server import BOARD_SRC
from fakes.fixtures import *  # noqa: F401,F403
from fakes.fixtures import make_settings, needs_gcc
from fakes.real import real_text

from ofa_hw.backends import ProfileJob
from ofa_hw.backends.vitis import VitisBackend, vitis_settings
from ofa_hw.backends.vitis.flows import ToolchainMismatch, arch_json
from ofa_hw.backends.vitis.preflight import BackendUnavailable
from ofa_hw.backends.vitis.profilers import ToolchainVersionError, vaitrace_argv
from ofa_hw.dpu import DPUConfig
from ofa_hw.errors import UserError
from ofa_hw.export.caffe import to_caffe
from ofa_hw.export.xmodel import quantize_argv, write_quantize_script
from ofa_hw.space import get_space
from ofa_hw.torchnet import build_model

SPACE = get_space("proxyless_w05")
B4096 = DPUConfig.from_preset("zcu102_b4096")
B2304 = DPUConfig.from_preset("zcu102_b2304")
sys.path.insert(0, str(BOARD_SRC / "pylib"))
import ofa_fake_vaitrace  # noqa: E402  (the board's fake vaitrace)


def _job(r: int = 128, seed: int = 0) -> ProfileJob:
    return ProfileJob.create(
        SPACE, {**SPACE.named_arch("proxyless_mobile_05"), "r": r}, "proxylessmobile05", seed=seed
    )


# ----------------------------------------------------------------------------- toolchain versions
def test_toolchain_labels_are_checked_against_the_flow():
    board = [{"name": "a", "host": "h"}]
    with pytest.raises(ToolchainVersionError, match="no --txt DPU summary") as e:
        vitis_settings({"flow": "vart", "toolchain": "vitis-ai-1.3/vart", "boards": board})
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    with pytest.raises(ToolchainVersionError, match="use backend=vitis_vart"):
        vitis_settings({"flow": "dnndk", "toolchain": "vitis-ai-1.3/dnndk", "boards": board})
    with pytest.raises(ToolchainVersionError, match="names no Vitis-AI version"):
        vitis_settings({"flow": "vart", "toolchain": "latest", "boards": board})
    assert vitis_settings({"flow": "vart", "toolchain": "vitis-ai-1.4/vart", "boards": board}).flow == "vart"


def test_vaitrace_options_follow_the_version_and_the_xmodel():
    """Blocker 4: ``--fine_grained`` is no default option; only where the version gives it for the xmodel."""
    args = ["n.xmodel", "10", "0"]
    assert vaitrace_argv((1, 4), "vaitrace", "python3", "r.py", args, "o.txt") == [
        "vaitrace", "--txt", "-o", "o.txt", "python3", "r.py", *args
    ]  # fmt: skip
    for version in ((2, 0), (2, 5), (3, 0), (3, 5)):
        assert vaitrace_argv(version, "vaitrace", "python3", "r.py", args, "o.txt") == [
            "python3", "-m", "vaitrace_py", "--txt", "-o", "o.txt", "r.py", *args
        ]  # fmt: skip
    fine = dict(fine=True, debug_xmodel=False)
    assert "--fine_grained" in vaitrace_argv((2, 5), "vaitrace", "python3", "r.py", args, "o.txt", **fine)
    with pytest.raises(ToolchainVersionError, match="does not support fine grained profiling") as e:
        vaitrace_argv((3, 0), "vaitrace", "python3", "r.py", args, "o.txt", **fine)
    assert "lut.granularity=block or network" in str(e.value) and "\n" not in str(e.value)
    debug = dict(fine=True, debug_xmodel=True)
    assert "--fine_grained" in vaitrace_argv((3, 0), "vaitrace", "python3", "r.py", args, "o.txt", **debug)
    with pytest.raises(ToolchainVersionError, match="3.5 removed --fine_grained"):
        vaitrace_argv((3, 5), "vaitrace", "python3", "r.py", args, "o.txt", **debug)
    with pytest.raises(ToolchainVersionError):
        vaitrace_argv((1, 3), "vaitrace", "python3", "r.py", args, "o.txt")
    board = [{"name": "a", "host": "h"}]
    with pytest.raises(ToolchainVersionError, match="3.5 removed"):  # refused with the settings, before work
        vitis_settings(
            {"flow": "vart", "toolchain": "vitis-ai-3.5/vart", "fine_grained": True, "boards": board}
        )


def test_fake_vaitrace_prints_the_recorded_layouts_and_options_per_version(tmp_path, monkeypatch):
    for name, version in (
        ("vaitrace_txt_dpu_summary_v1.4.txt", "1.4"),
        ("vaitrace_txt_dpu_summary_v3.0.txt", "3.0"),
    ):
        text = real_text(name)
        rows = [[c.strip() for c in line.split(" | ")] for line in text.split("\n")[4:] if " | " in line]
        rendered = ofa_fake_vaitrace.render(ofa_fake_vaitrace.HEADERS[version], rows)
        rendered += ofa_fake_vaitrace.NOTES_3X if version == "3.0" else ""
        assert text.startswith(rendered) and text[len(rendered) :].strip() in ("", "....")
    script = tmp_path / "app.py"
    script.write_text("print('#ofa_hw done')\n")
    env = {"PYTHONPATH": str(BOARD_SRC / "pylib"), "PATH": "/usr/bin:/bin"}
    vaitrace = [sys.executable, str(BOARD_SRC / "vaitrace")]
    old = subprocess.run(
        vaitrace + ["--txt", sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**env, "FAKE_VAITRACE_VERSION": "1.3"},
    )
    assert old.returncode == 2 and "unrecognized arguments: --txt" in old.stderr
    py = subprocess.run(
        [sys.executable, "-m", "vaitrace_py", "--txt", str(script)],
        capture_output=True,
        text=True,
        env={**env, "FAKE_VAITRACE_VERSION": "1.4"},
    )
    assert py.returncode != 0 and "No module named vaitrace_py" in py.stderr


# ----------------------------------------------------------------------------------- arch files
def test_default_arch_file_follows_the_toolchain_version(tmp_path):
    """Blocker 3: Vitis-AI 1.1 and 1.2 ship DPUCZDX8G/<BOARD>/arch.json, also for vai_c_caffe."""
    board = [{"name": "a", "host": "h"}]

    def default_arch(flow: str, toolchain: str) -> str:
        settings = vitis_settings(
            {"flow": flow, "toolchain": toolchain, "boards": board, "workdir": str(tmp_path)}
        )
        return VitisBackend(f"vitis_{flow}", B4096, settings).flow.arch_json

    assert (
        default_arch("dnndk", "vitis-ai-1.0/dnndk-3.1")
        == "/opt/vitis_ai/compiler/arch/dpuv2/ZCU102/ZCU102.json"
    )
    for toolchain in ("vitis-ai-1.1/dnndk", "vitis-ai-1.2/dnndk"):
        assert default_arch("dnndk", toolchain) == "/opt/vitis_ai/compiler/arch/DPUCZDX8G/ZCU102/arch.json"
    for toolchain in ("vitis-ai-2.5/vart", "vitis-ai-3.0/vart"):
        assert default_arch("vart", toolchain) == "/opt/vitis_ai/compiler/arch/DPUCZDX8G/ZCU102/arch.json"


def test_arch_file_follows_the_dpu_size():
    dnndk = "/opt/vitis_ai/compiler/arch/dpuv2/{board}/{board}.json"
    xir = "/opt/vitis_ai/compiler/arch/DPUCZDX8G/{board}/arch.json"
    assert arch_json(dnndk, B4096) == "/opt/vitis_ai/compiler/arch/dpuv2/ZCU102/ZCU102.json"
    assert arch_json(xir, B4096) == "/opt/vitis_ai/compiler/arch/DPUCZDX8G/ZCU102/arch.json"
    # a B2304 must not get the stock B4096 file
    assert arch_json(dnndk, B2304) == "/opt/vitis_ai/compiler/arch/dpuv2/ZCU102_B2304/ZCU102_B2304.json"
    assert arch_json(xir, B2304) == "/opt/vitis_ai/compiler/arch/DPUCZDX8G/ZCU102_B2304/arch.json"


@needs_gcc
def test_missing_arch_file_is_one_line_naming_it(fake_tools, fake_board, tmp_path):
    template = str(fake_tools.dnndk_arch.parent / "{board}.json")  # the fakes ship ZCU102.json only
    settings = make_settings(fake_tools, [fake_board], tmp_path / "work", arch_json=template)
    VitisBackend("vitis_dnndk", B4096, settings).preflight()  # the stock file exists
    with pytest.raises(BackendUnavailable) as e:
        VitisBackend("vitis_dnndk", B2304, settings).preflight()
    msg = str(e.value)
    assert str(fake_tools.dnndk_arch.parent / "ZCU102_B2304.json") in msg and "\n" not in msg
    assert "targets B4096" in msg and "B2304" in msg
    # an XIR arch file naming another DPU size is refused too
    vart = make_settings(fake_tools, [fake_board], tmp_path / "work", flow="vart")
    with pytest.raises(
        BackendUnavailable, match="targets DPUCZDX8G_ISA0_B4096_MAX_BG2, but DPU preset zcu102_b2304"
    ):
        VitisBackend("vitis_vart", B2304, vart).preflight()


# ------------------------------------------------------------------------------------ preflight
@needs_gcc
def test_preflight_checks_container_env_and_boards_before_any_work(
    fake_tools, fake_board, tmp_path, monkeypatch
):
    ok = make_settings(fake_tools, [fake_board], tmp_path / "work")
    backend = VitisBackend("vitis_dnndk", B4096, ok)
    backend.preflight()
    assert fake_board.commands == ["command -v g++"]
    cases = {
        "does not exist or is not running": dict(container="vitis-typo"),
        "conda environment 'vitis-ai-caffee' does not exist": dict(conda_env="vitis-ai-caffee"),
        "cannot run": dict(docker=str(tmp_path / "no-docker")),
    }
    host_path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d != str(fake_tools.bin))
    real_docker = shutil.which("docker", path=host_path)
    if real_docker and subprocess.run([real_docker, "info"], capture_output=True, timeout=60).returncode != 0:
        # The real Docker client of this machine, with no daemon running (what a user without Docker sees).
        cases["Docker is not usable here"] = dict(docker=real_docker)
    for expected, change in cases.items():
        with pytest.raises(BackendUnavailable, match=expected) as e:
            VitisBackend(
                "vitis_dnndk", B4096, make_settings(fake_tools, [fake_board], tmp_path / "work", **change)
            ).preflight()
        assert "\n" not in str(e.value)
    no_gxx = make_settings(
        fake_tools,
        [
            {
                "name": "b",
                "host": "127.0.0.1",
                "port": fake_board.port,
                "key_file": str(fake_board.client_key),
                "known_hosts": str(fake_board.known_hosts),
                "cxx": "g++-none",
            }
        ],
        tmp_path / "work",
    )
    with pytest.raises(
        BackendUnavailable, match="board b: preflight: g\\+\\+-none .* not found on the board"
    ):
        VitisBackend("vitis_dnndk", B4096, no_gxx).preflight()
    # an unreachable board leaves the farm; none reachable is an error
    gone = {"name": "gone", "host": "127.0.0.1", "port": 1, "known_hosts": str(fake_board.known_hosts)}
    two = VitisBackend(
        "vitis_dnndk", B4096, make_settings(fake_tools, [fake_board, gone], tmp_path / "work", retries=0)
    )
    two.preflight()
    assert [b.name for b in two.boards] == ["board0"]
    with pytest.raises(BackendUnavailable, match="no board reachable"):
        VitisBackend(
            "vitis_dnndk", B4096, make_settings(fake_tools, [gone], tmp_path / "work", retries=0)
        ).preflight()


@needs_gcc
def test_lut_task_stops_before_planning_when_the_container_is_missing(
    fake_tools, fake_board, tmp_path, monkeypatch
):
    from conftest import compose

    import ofa_hw.lut.manage as manage
    from ofa_hw.tasks.lut import lut_for_config

    planned = []
    monkeypatch.setattr(manage, "plan_probes", lambda *a, **k: planned.append(1))
    monkeypatch.setenv("FAKE_DOCKER_CONTAINERS", "")  # the container is not running
    spec = f"{{name: loop, host: 127.0.0.1, port: {fake_board.port}, key_file: '{fake_board.client_key}', known_hosts: '{fake_board.known_hosts}'}}"
    cfg = compose(
        [
            "space=proxyless_w05",
            "task=lut",
            "backend=vitis_dnndk",
            f"backend.vitis.arch_json='{fake_tools.dnndk_arch}'",
            f"backend.vitis.boards=[{spec}]",
        ],
        workspace=tmp_path / "ws",
    )
    with pytest.raises(BackendUnavailable, match="container 'vitis' does not exist or is not running"):
        lut_for_config(cfg)
    assert planned == [] and fake_board.commands == []


# ---------------------------------------------------------------------------- XIR vai_c_caffe
@needs_gcc
def test_xir_based_vai_c_caffe_says_use_vitis_vart(fake_tools, fake_board, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VAI_C_CAFFE_XIR", "1")
    backend = VitisBackend("vitis_dnndk", B4096, make_settings(fake_tools, [fake_board], tmp_path / "work"))
    with pytest.raises(ToolchainMismatch) as e:
        list(backend.profile_many([_job(seed=i) for i in range(3)]))
    msg = str(e.value)
    assert "XIR-based" in msg and "use backend=vitis_vart" in msg and "\n" not in msg
    assert isinstance(e.value, UserError) and fake_board.commands == []
    (log,) = (tmp_path / "work").glob("*/logs/vai_c_caffe_debug.log")
    assert "[UNILOG][INFO] Compile done." in log.read_text()  # the recorded Vitis-AI 1.3 console


# ------------------------------------------------------------------ the quantize script on torch 1.4
_TORCH_14 = """
import torch, zipfile
del torch.frombuffer  # absent from the torch 1.4-1.7.1 of the Vitis-AI 1.3-2.0 containers
_load = torch.load
def load(f, *a, **k):
    if zipfile.is_zipfile(f):
        raise RuntimeError("torch 1.4 cannot read the zip serialization of torch >= 1.6")
    return _load(f, *a, **k)
torch.load = load
"""


def test_quantize_script_runs_on_the_pytorch_of_old_containers(tmp_path):
    from fakes.tools import FAKES_DIR

    from ofa_hw.backends.vitis.flows import synthetic_calibration

    arch = {**SPACE.named_arch("proxyless_mobile_05"), "r": 128}
    model = build_model(SPACE, arch, "net").eval()
    script, weights = write_quantize_script(model.netspec, model, tmp_path / "q", calib_iter=2)
    assert not zipfile.is_zipfile(weights)
    assert "frombuffer" not in script.read_text()
    calib = synthetic_calibration(tmp_path / "calib", 2, 128, 0)  # real images: the PIL -> tensor path runs
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(_TORCH_14)
    env = {"PYTHONPATH": f"{shim}:{FAKES_DIR / 'pylib'}", "PATH": "/usr/bin:/bin"}
    for mode in ("calib", "test"):
        argv = quantize_argv(
            sys.executable, script, weights, mode, tmp_path / "q" / "out", str(calib), "calibration.txt", 2
        )
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "q" / "out" / "quant_info.json").read_text())["calib_batches"] == 2
    assert (tmp_path / "q" / "out" / "OFASubnet_int.xmodel").exists()


# ------------------------------------------------------------------------ export on threads
def test_caffe_export_is_safe_on_threads():
    """torch.fx patches nn.Module.__call__ process-wide while tracing: unserialised, parallel exports
    failed with 'module is not installed as a submodule' (160 of 225 probes of a real-board LUT)."""
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(4):
            arch = SPACE.validate({**SPACE.sample(rng), "r": 128})
            try:
                to_caffe(build_model(SPACE, arch, "net").eval(), name="net")
            except Exception as exc:  # noqa: BLE001 (any failure is the finding)
                errors.append(repr(exc)[:200])

    torch.set_num_threads(1)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_failed_probes_are_retried_on_rerun_by_default(workspace):
    from conftest import compose

    from ofa_hw.schemas.lut import LutConfig

    assert compose(["task=lut"], workspace=workspace).lut.retry_failed is True
    assert LutConfig.retry_failed is True
    assert compose(["task=deploy"], workspace=workspace).task.retry_failed is True
