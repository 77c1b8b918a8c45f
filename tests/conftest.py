"""Shared fixtures: config composition, an isolated workspace, the shipped ZCU102 measurements."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
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


class _TorchvisionStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty ``torchvision`` modules: OFA's package imports torchvision for its data loaders only, and no
    CPU build of torchvision exists here; the OFA code our tests run (latency tables, evolution finder)
    never touches it."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: type(attr, (), {})  # any class OFA names at import time
        return module

    def exec_module(self, module) -> None:
        pass


@pytest.fixture
def ofa_importable(monkeypatch):
    """Make ``import ofa.*`` work without torchvision (a stub is used only when torchvision is missing)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        monkeypatch.setattr(sys, "meta_path", [_TorchvisionStub(), *sys.meta_path])
        yield
        # Forget the stub and the OFA modules imported through it, so no other test sees them.
        for name in [
            n for n in sys.modules if n in ("torchvision", "ofa") or n.startswith(("torchvision.", "ofa."))
        ]:
            del sys.modules[name]
        return
    yield


@pytest.fixture(scope="session")
def pg_dsn():
    """The DSN of a real PostgreSQL server for this test session (skips with the reason when none starts;
    fails instead under ``OFA_HW_TEST_REQUIRE_PG=1``, as in CI).

    ``OFA_HW_TEST_PG_DSN`` names a server of your own; otherwise one is started from Debian's binaries
    (see ``tests/pgserver.py``) and stopped at the end of the session.
    """
    import os

    if os.environ.get("OFA_HW_TEST_PG_DSN"):
        yield os.environ["OFA_HW_TEST_PG_DSN"]
        return
    # CI (.ci/run) sets OFA_HW_TEST_REQUIRE_PG=1: there a missing server is a failure, not a skip.
    unavailable = pytest.fail if os.environ.get("OFA_HW_TEST_REQUIRE_PG") == "1" else pytest.skip
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    from pgserver import PgServer, PgUnavailable

    try:
        server = PgServer().start()
    except PgUnavailable as exc:
        unavailable(f"no PostgreSQL server: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def pg_store_cfg(pg_dsn, request):
    """A ``store=postgres`` config node on the test server, in a namespace of its own (dropped afterwards)."""
    import re
    import uuid

    import psycopg

    namespace = "t_" + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    yield {"_target_": "ofa_hw.store.PostgresStore", "dsn": pg_dsn, "namespace": namespace, "timeout_s": 30.0}
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
