"""Simulator backend and the backend interface: jobs, outcomes, config-driven construction."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose
from omegaconf import OmegaConf

from ofa_hw.backends import Backend, ProfileJob, ProfileOutcome, SimBackend, make_backend
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats.dnndk import parse_dnndk_profile
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import is_compilable
from ofa_hw.sim.version import model_hash
from ofa_hw.space import ArchError, get_space
from ofa_hw.tasks import make_backend as task_make_backend

SPACE = get_space("ofa_proxyless_w13")


@pytest.fixture(scope="module")
def sim() -> SimBackend:
    return SimBackend(DPUConfig.from_preset("zcu102_b4096"))


def _archs(dpu, compilable: bool, n: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        arch = SPACE.sample(rng)
        if is_compilable(build_netspec(SPACE, arch), dpu) == compilable:
            out.append(arch)
    return out


def test_sim_backend_identity(sim):
    assert isinstance(sim, Backend)
    assert sim.name == "sim" and sim.toolchain == f"sim-model-{model_hash()}"
    assert sim.provenance.startswith("calibrated simulator")


def test_profile_ok_raw_text_is_the_dnndk_output(sim):
    arch = _archs(sim.dpu, True, 1)[0]
    out = sim.profile(ProfileJob.create(SPACE, arch, "probe_a", runs=4, seed=7))
    assert out.ok and out.error is None and out.timings["total_s"] > 0
    assert out.profile.n_runs == 4
    assert all(
        name.startswith("probe_a_conv_") or name == "probe_a_fc_1" for name in out.profile.nodes["name"]
    )
    assert parse_dnndk_profile(out.raw_text) == out.profile
    again = sim.profile(ProfileJob.create(SPACE, arch, "probe_a", runs=4, seed=7))
    assert again.profile == out.profile  # the seed fixes the jitter


def test_uncompilable_subnet_is_a_failed_outcome(sim):
    arch = _archs(sim.dpu, False, 1)[0]
    out = sim.profile(ProfileJob.create(SPACE, arch, "wide"))
    assert out.status == "failed" and out.profile is None
    assert out.error.startswith("compile error: layer conv_") and "bank depth" in out.error


def test_profile_many_keeps_going_after_failures(sim):
    jobs = [
        ProfileJob.create(SPACE, a, f"n{i}")
        for i, a in enumerate(_archs(sim.dpu, False, 1) + _archs(sim.dpu, True, 2))
    ]
    outs = list(sim.profile_many(jobs))
    assert [o.job.net_name for o in outs] == ["n0", "n1", "n2"]
    assert [o.status for o in outs] == ["failed", "ok", "ok"]


def test_job_and_outcome_validation():
    arch = SPACE.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="runs must be >= 1"):
        ProfileJob.create(SPACE, arch, "n", runs=0)
    with pytest.raises(ValueError, match="net_name must be alphanumeric"):
        ProfileJob.create(SPACE, arch, "n; rm -rf /")
    with pytest.raises(ArchError, match="'r'"):
        ProfileJob.create(SPACE, dict(arch, r=100), "n")
    job = ProfileJob.create(SPACE, arch, "n")
    with pytest.raises(ValueError, match="needs a profile"):
        ProfileOutcome(job, "ok")
    with pytest.raises(ValueError, match="needs an error"):
        ProfileOutcome(job, "failed")
    with pytest.raises(ValueError, match="status must be"):
        ProfileOutcome(job, "maybe", error="x")


def test_make_backend_from_config(workspace):
    cfg = compose(["backend=sim", "dpu=zcu104_b4096"], workspace=workspace)
    backend = task_make_backend(cfg)
    assert isinstance(backend, SimBackend) and backend.dpu.name == "zcu104_b4096"
    assert cfg.backend.runs >= 1 and cfg.backend.vitis is None
    dpu = DPUConfig.from_preset("zcu102_b4096")
    assert make_backend(cfg.backend, dpu).dpu is dpu


def test_make_backend_rejects_bad_targets():
    dpu = DPUConfig.from_preset("zcu102_b4096")
    with pytest.raises(ValueError, match="cannot be imported"):
        make_backend(OmegaConf.create({"_target_": "ofa_hw.backends.nope.Missing"}), dpu)
    with pytest.raises(ValueError, match="no from_config"):
        make_backend(OmegaConf.create({"_target_": "ofa_hw.dpu.DPUConfig"}), dpu)
    with pytest.raises(ValueError, match="no _target_"):
        make_backend(OmegaConf.create({"name": "sim"}), dpu)


def test_group_schemas_catch_typos_and_types(workspace):
    cfg = compose(["task=lut"], workspace=workspace)
    assert cfg.lut.coverage == 1 and cfg.lut.regenerate is True
    assert cfg.store.path == f"{workspace}/store.sqlite"
    with pytest.raises(Exception, match="coverag"):
        compose(["lut.coverag=2"], workspace=workspace)
    with pytest.raises(Exception, match="coverage"):
        compose(["lut.coverage=many"], workspace=workspace)
    with pytest.raises(Exception, match="timeout_s"):
        compose(["store.timeout_s=soon"], workspace=workspace)
    with pytest.raises(Exception, match="runs"):
        compose(["backend.runs=lots"], workspace=workspace)


def test_model_version_follows_code_not_comments_or_formatting():
    """A comment, docstring or layout change keeps stored runs and LUTs valid; a changed formula does not."""
    from ofa_hw.sim.version import _code

    base = '"""Doc."""\n\ndef t(x):\n    """Time."""\n    return 2 * x  # cycles\n'
    assert _code(base) == _code('"""Other doc."""\ndef t( x ):\n    return 2*x\n')
    assert _code(base) != _code("def t(x):\n    return 3 * x\n")
