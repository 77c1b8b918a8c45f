"""First contact, round 2 (issue 18): the container as the real Vitis-AI images are, and fakes that
answer for the network they were given.

* Blocker 1: conda is not on the PATH ``docker exec`` sees (the images add it in ``~/.bashrc`` only).
* Blocker 2: a container started without ``-u`` runs as root; the folders the tools create are then
  not the host user's, and the host writes into them afterwards.
* ``conda run`` may exit 0 when the tool failed (conda/conda#9599): steps are judged by their files.
* The fake compilers profile the network they were given; attribution refuses a foreign profile.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fakes.board_server import BOARD_SRC
from fakes.fixtures import *  # noqa: F401,F403
from fakes.fixtures import make_settings, needs_gcc

import ofa_hw.backends.vitis.backend as backend_module
from ofa_hw.backends import ProfileJob
from ofa_hw.backends.vitis import VitisBackend
from ofa_hw.backends.vitis.preflight import IMAGE_CONDA, BackendUnavailable
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import parse_dnndk_profile, parse_vaitrace_summary
from ofa_hw.lut.mapping import NodeMappingError, node_layers
from ofa_hw.netspec import build_netspec
from ofa_hw.schemas.vitis import VitisConfig
from ofa_hw.sim import compile_net, simulate
from ofa_hw.space import get_space

SPACE = get_space("proxyless_w05")
B4096 = DPUConfig.from_preset("zcu102_b4096")


def _job(seed: int, r: int = 128, name: str = "probe") -> ProfileJob:
    arch = {**SPACE.sample(np.random.default_rng(seed)), "r": r}
    return ProfileJob.create(SPACE, arch, name, seed=seed)


# ------------------------------------------------------------------------------------ blocker 1
def test_conda_off_the_docker_exec_path_is_found_by_its_absolute_path(fake_tools, tmp_path):
    """The old default ``conda`` is not found in the container: one line naming the fix."""
    assert VitisConfig.conda == IMAGE_CONDA == "/opt/vitis_ai/conda/bin/conda"
    bare = make_settings(fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "w", conda="conda")
    with pytest.raises(BackendUnavailable) as e:
        VitisBackend("vitis_dnndk", B4096, bare).preflight()
    msg = str(e.value)
    assert "\n" not in msg and f"set backend.vitis.conda={IMAGE_CONDA}" in msg and "~/.bashrc" in msg


# ------------------------------------------------------------------------------------ blocker 2
@needs_gcc
@pytest.mark.parametrize("exec_user,foreign", [("auto", False), ("", True)])
def test_the_container_runs_as_the_host_user(fake_tools, tmp_path, monkeypatch, exec_user, foreign):
    """With ``exec_user=auto`` no folder of the job is created by another user than the host's; the
    container's default user (root) would create ``quantize_results`` etc. that the host then writes into."""
    monkeypatch.setattr(backend_module.os, "getuid", lambda: 1000)
    monkeypatch.setattr(backend_module.os, "getgid", lambda: 1000)
    monkeypatch.setenv("FAKE_HOST_UID", "1000")  # the fake host user is not root
    settings = make_settings(
        fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "w", exec_user=exec_user
    )
    compiled = VitisBackend("vitis_dnndk", B4096, settings).compile(_job(1))
    ledger = fake_tools.root_ledger.read_text().split() if fake_tools.root_ledger.exists() else []
    if not foreign:
        assert not isinstance(compiled, backend_module.ProfileOutcome), compiled.error
        assert ledger == []  # every folder the tools created is the host user's
    else:  # what blocker 2 was: root-owned output folders the host writes into afterwards
        assert any(d.endswith("quantize_results") for d in ledger)


# ---------------------------------------------------------------------------- conda run exit 0
@needs_gcc
def test_a_tool_failure_hidden_by_conda_run_fails_the_job(fake_tools, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CONDA_RUN_EXIT0", "1")
    monkeypatch.setenv("FAKE_VAI_C_ERROR", "kernel too large")
    settings = make_settings(fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "w")
    outcome = VitisBackend("vitis_dnndk", B4096, settings).compile(_job(1))
    assert outcome.status == "failed" and "exited 0 but did not write dpu_probe.elf" in outcome.error
    assert "kernel too large" in outcome.error


# ------------------------------------------------------------------ fakes answer for their input
@needs_gcc
def test_fake_dnnc_profiles_the_network_it_was_given(fake_tools, tmp_path):
    """Two subnets, two profiles: each the simulator's profile of that exported network."""
    settings = make_settings(fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "w")
    backend = VitisBackend("vitis_dnndk", B4096, settings)
    totals = []
    for seed in (1, 2):
        job = _job(seed, name=f"net{seed}")
        compiled = backend.compile(job)
        data = compiled.artifact.read_bytes()  # the table the fake N2Cube prints, embedded by the fake DNNC
        start = data.index(b"[DNNDK]")
        prof = parse_dnndk_profile(data[start : data.index(b"\x00", start)].decode())
        ns = build_netspec(SPACE, job.arch, f"net{seed}")
        sim = simulate(ns, dpu=B4096, name=f"net{seed}")
        assert list(prof.nodes["name"]) == list(sim.nodes["name"])
        assert np.allclose(prof.nodes["workload_mop"], sim.nodes["workload_mop"], atol=0.0011)
        totals.append(prof.total_ms)
        assert f"Total Node Count : {len(sim.nodes)}" in " ".join(compiled.kernel_info.split())
    assert totals[0] != totals[1]


# -------------------------------------------------------------- fake vaitrace per version (VART)
def _vart_xmodels(fake_tools, tmp_path):
    settings = make_settings(fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "w", flow="vart")
    settings.fine_grained = True
    compiled = VitisBackend("vitis_vart", B4096, settings).compile(_job(3, name="vnet"))
    assert compiled.layer_artifact is not None, getattr(compiled, "error", "")
    return compiled


def _trace(version: str, xmodel, tmp_path, fine: bool):
    app = tmp_path / "app.py"
    app.write_text("print('#ofa_hw done')\n")
    env = {"PYTHONPATH": f"{BOARD_SRC / 'pylib'}:{BOARD_SRC.parents[2]}", "PATH": "/usr/bin:/bin"}
    argv = [
        sys.executable,
        "-m",
        "vaitrace_py",
        "--txt",
        *(["--fine_grained"] if fine else []),
        str(app),
        str(xmodel),
    ]
    return subprocess.run(argv, capture_output=True, text=True, env={**env, "FAKE_VAITRACE_VERSION": version})


def test_fake_vaitrace_fine_grained_per_version(fake_tools, tmp_path):
    """3.0 refuses fine-grained on a normal xmodel; 3.5 has no such option; rows are per layer,
    un-fused (their sum exceeds the network's time) and named by the quantizer's module paths."""
    compiled = _vart_xmodels(fake_tools, tmp_path)
    normal, debug = compiled.artifact, compiled.layer_artifact
    refused = _trace("3.0", normal, tmp_path, fine=True)
    assert refused.returncode != 0 and "This xmodel does not support fine grained profiling" in refused.stderr
    removed = _trace("3.5", debug, tmp_path, fine=True)
    assert removed.returncode == 2 and "unrecognized arguments: --fine_grained" in removed.stderr
    whole = parse_vaitrace_summary(_trace("3.0", normal, tmp_path, fine=False).stdout)
    assert len(whole) == 1  # the whole subnet is one DPU subgraph
    for version, xmodel in (("2.5", normal), ("3.0", debug)):
        rows = parse_vaitrace_summary(_trace(version, xmodel, tmp_path, fine=True).stdout)
        ns = build_netspec(SPACE, compiled.job.arch, "vnet")
        assert len(rows) == len(ns.layers) + sum(x.residual for x in ns.layers)
        assert rows["runtime_ms"].sum() > 1.2 * whole["runtime_ms"].sum()
        assert (
            rows["subgraph"]
            .iloc[1]
            .startswith(
                "subgraph_OFASubnet__OFASubnet_ModuleDict_layers__ConvBNAct_conv_2__Conv2d_conv__input_"
            )
        )
        layers = node_layers(ns, list(rows["subgraph"]))  # every row maps to its layer
        assert sorted({i for t in layers for i in t}) == list(range(len(ns.layers)))


# ------------------------------------------------------------------------------- attribution
def test_attribution_refuses_a_profile_of_another_network():
    """The seed's 42-node profile does not map onto a 69-layer probe: the node that differs is named."""
    seed = simulate(
        build_netspec(SPACE, SPACE.named_arch("proxyless_mobile_05"), "net"), dpu=B4096, name="net"
    )
    big = {**SPACE.sample(np.random.default_rng(0)), "d": [4] * 6}
    ns = build_netspec(SPACE, big, "net")
    starts = [n.layers[0] for n in compile_net(ns, B4096).nodes]
    assert len(ns.layers) > 60 and len(seed.nodes) == 42
    with pytest.raises(
        NodeMappingError, match=r"does not match the compiled network|no node for layers"
    ) as e:
        node_layers(ns, list(seed.nodes["name"]), starts)
    assert "net_conv_" in str(e.value) or "conv_" in str(e.value)
    own = simulate(ns, dpu=B4096, name="net")
    assert len(node_layers(ns, list(own.nodes["name"]), starts)) == len(own.nodes)
    rows = ["subgraph_OFASubnet__OFASubnet_ModuleDict_layers__ConvBNAct_conv_1__Conv2d_conv__input_1"]
    with pytest.raises(NodeMappingError, match="no row for layer"):
        node_layers(ns, rows)
    with pytest.raises(NodeMappingError, match="matches no layer"):
        node_layers(ns, ["subgraph_ResNet__ResNet_Sequential_layer2__Bottleneck_2__Conv2d_conv1__input_52"])


# --------------------------------------------------------------------------- preflight's gather
def test_preflight_reports_every_kind_of_board_failure(fake_tools, tmp_path, monkeypatch):
    """An unexpected exception of one board's check is a problem naming the board, not a silent drop;
    and a farm whose every check crashed is no IndexError."""
    from ofa_hw.backends.vitis import preflight as pf

    async def crash(target, board):
        raise RuntimeError(f"boom on {board.name}")

    monkeypatch.setattr(pf, "_check_board", crash)
    boards = [{"name": "a", "host": "127.0.0.1"}, {"name": "b", "host": "127.0.0.1"}]
    settings = make_settings(fake_tools, boards, tmp_path / "w")
    backend = VitisBackend("vitis_dnndk", B4096, settings)
    target = pf.Target(
        settings, backend.runner, backend.workdir, backend.flow.arch_json, B4096, tuple(backend.boards)
    )
    with pytest.raises(BackendUnavailable) as e:
        pf.check_boards(target)
    msg = str(e.value)
    assert "board a: preflight check failed: RuntimeError: boom on a" in msg and "1 more board problem" in msg

    async def unreachable(target, board):
        from ofa_hw.backends.vitis.board import BoardUnreachable

        raise BoardUnreachable(board.name, "connect", "refused")

    monkeypatch.setattr(pf, "_check_board", unreachable)
    with pytest.raises(BackendUnavailable, match="no board reachable: board a: connect: refused"):
        pf.check_boards(target)


@needs_gcc
def test_fake_quantizer_checks_the_calibration_input_fits_the_network(fake_tools, tmp_path):
    """A LUT key's own network takes a feature map: the Caffe flow's image calibration (ImageData: 1 or 3
    channels) cannot feed it (why lut.granularity=block is refused on vitis_dnndk); the fake says so."""
    from ofa_hw.lut.blocks import key_jobs

    job = key_jobs(SPACE, [SPACE.validate({**SPACE.sample(np.random.default_rng(0)), "r": 128})], 1, 0)[3]
    assert job.netspec.input_c != 3
    settings = make_settings(fake_tools, [{"name": "b", "host": "127.0.0.1"}], tmp_path / "w")
    outcome = VitisBackend("vitis_dnndk", B4096, settings).compile(job)
    assert (
        outcome.status == "failed" and "the ImageData input has 1 channels, its weights take" in outcome.error
    )
