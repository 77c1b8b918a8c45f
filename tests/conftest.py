"""Shared fixtures: config composition, an isolated workspace, the shipped ZCU102 measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from omegaconf import DictConfig

from ofa_hw.data import SEED_DIR
from ofa_hw.schemas import register

# Two test processes (or a test and a benchmark) on a 2-core machine: torch's thread pool only adds
# contention for the small tensors tests use.
torch.set_num_threads(1)


def compose(overrides: list[str] | None = None, workspace: Path | str | None = None) -> DictConfig:
    """Compose the app's config exactly as ``ofa-hw`` would, with ``overrides``.

    Args:
        overrides: Command-line style overrides (``["task=lut", "dpu.freq_mhz=200"]``).
        workspace: Sets ``workspace=`` so tests never touch the user's store.
    """
    register()
    overrides = list(overrides or [])
    if workspace is not None:
        overrides.append(f"workspace={workspace}")
    with initialize_config_module(config_module="ofa_hw.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh, empty workspace directory."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    """The real ZCU102 B4096 measurements shipped in ``ofa_hw/data/zcu102_b4096``."""
    return SEED_DIR
