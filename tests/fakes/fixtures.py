"""Pytest fixtures of the Vitis fakes: tools on PATH, the loopback board, backend settings.

Import into a test module with ``from fakes.fixtures import *  # noqa: F401,F403``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakes import tools
from fakes.board_server import FakeBoard, build_board_root
from ofa_hw.schemas.vitis import BoardConfig, VitisConfig

__all__ = ["board_root", "fake_board", "fake_tools", "make_settings", "needs_gcc"]

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("g++") is None,
    reason="the fake DPU binaries and board are built with gcc/g++",
)


class FakeTools:
    """Where the fake tools live and the arch files they accept."""

    def __init__(self, root: Path) -> None:
        self.bin, self.conda = tools.install(root)
        self.envbin = self.conda.parents[1] / "envs" / "bin"
        self.root_ledger = root / "root_created_dirs.txt"
        arch = root / "arch"
        arch.mkdir()
        (arch / "ZCU102.dcf").write_text("fake dcf\n")
        self.dnndk_arch = arch / "ZCU102.json"
        self.dnndk_arch.write_text(
            json.dumps({"target": "dpuv2", "dcf": str(arch / "ZCU102.dcf"), "cpu_arch": "arm64", "cxx": ""})
        )
        self.xir_arch = arch / "arch.json"
        self.xir_arch.write_text(json.dumps({"target": "DPUCZDX8G_ISA0_B4096_MAX_BG2"}))


@pytest.fixture
def fake_tools(tmp_path, monkeypatch) -> FakeTools:
    """Fake docker first on PATH, a running container ``vitis`` with both conda envs (conda and the
    Vitis-AI tools inside it, off the PATH ``docker exec`` sees)."""
    fake = FakeTools(tmp_path / "tools")
    monkeypatch.setenv("PATH", f"{fake.bin}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_CONTAINERS", "vitis")
    monkeypatch.setenv("FAKE_CONDA_ENVS", "vitis-ai-caffe,vitis-ai-pytorch")
    monkeypatch.setenv("FAKE_DOCKER_ROOT_LEDGER", str(fake.root_ledger))
    for var in (
        "FAKE_VAI_C_ERROR",
        "FAKE_VAI_Q_ERROR",
        "FAKE_VAI_C_CAFFE_XIR",
        "FAKE_CONDA_RUN_EXIT0",
        "FAKE_DPU_PRESET",
    ):
        monkeypatch.delenv(var, raising=False)
    return fake


@pytest.fixture(scope="session")
def board_root(tmp_path_factory) -> Path:
    """The fake board's file system (fake libn2cube built once per session)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to build the fake board's libn2cube")
    return build_board_root(tmp_path_factory.mktemp("board"))


@pytest.fixture
def fake_board(board_root, tmp_path):
    """A running loopback board with fresh keys; stopped after the test."""
    board = FakeBoard(board_root, tmp_path / "board_keys").start()
    yield board
    board.stop()


def make_settings(
    fake: FakeTools, boards: list[FakeBoard | dict], workdir: Path, flow: str = "dnndk", **overrides
) -> VitisConfig:
    """Backend settings pointing at the fakes and ``boards`` (FakeBoards, or BoardConfig dicts)."""
    board_cfgs = []
    for i, b in enumerate(boards):
        if isinstance(b, dict):
            board_cfgs.append(BoardConfig(**b))
        else:
            board_cfgs.append(
                BoardConfig(
                    name=f"board{i}",
                    host="127.0.0.1",
                    port=b.port,
                    key_file=str(b.client_key),
                    known_hosts=str(b.known_hosts),
                    remote_tmp=str(b.root / "tmp"),
                )
            )
    values = dict(
        flow=flow,
        container="vitis",
        conda=str(fake.conda),
        conda_env="vitis-ai-caffe" if flow == "dnndk" else "vitis-ai-pytorch",
        workdir=str(workdir),
        arch_json=str(fake.dnndk_arch if flow == "dnndk" else fake.xir_arch),
        boards=board_cfgs,
        calib_images=2,
        calib_iter=2,
        retries=1,
        backoff_s=0.05,
        connect_timeout_s=5.0,
        step_timeout_s=60.0,
        warmup=1,
        lock_dir=str(workdir / "locks"),
        toolchain="vitis-ai-1.0/dnndk-3.1" if flow == "dnndk" else "vitis-ai-2.5/vart",
    )
    values.update(overrides)
    return VitisConfig(**values)
