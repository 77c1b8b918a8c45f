"""Timing model: seed accuracy, plausibility on unseen layers, jitter, runs, per-layer times, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import parse_dnndk_profile
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import compile_net, is_compilable, layer_times_ms, node_times_ms, simulate
from ofa_hw.sim.calibrate import sanity_figures
from ofa_hw.space import get_space

DPU = DPUConfig.from_preset("zcu102_b4096")


@pytest.fixture(scope="module")
def mobile05():
    s = get_space("proxyless_w05")
    return build_netspec(s, s.named_arch("proxyless_mobile_05"), name="proxylessmobile05")


def test_shipped_preset_reproduces_seed(mobile05, seed_dir):
    seed = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text())
    sim = simulate(mobile05, dpu=DPU.replace(jitter=0.0))
    err = sim.nodes["runtime_ms"].to_numpy() / seed.nodes["runtime_ms"].to_numpy() - 1
    assert np.mean(np.abs(err)) <= 0.08
    assert abs(sim.total_ms / seed.total_ms - 1) <= 0.02
    assert sim.e2e_ms > sim.total_ms


def test_ordinary_layers_plausible():
    f = sanity_figures(DPU)
    assert 0.82 <= f["conv3x3_c64_56_util"] <= 0.95  # observed ~92 %
    assert 0.65 <= f["conv3x3_c128_28_util"] <= 0.88  # observed ~80 %
    assert f["stem_3ch_util"] < 0.20  # observed 16-19 %
    assert 5.0 <= f["fc_1280x1000_gbs"] <= 7.0 and 5.0 <= f["fc_4096x4096_gbs"] <= 7.0


def test_jitter_is_seeded_and_realistic(mobile05):
    a = simulate(mobile05, dpu=DPU, runs=4, seed=3)
    b = simulate(mobile05, dpu=DPU, runs=4, seed=3)
    c = simulate(mobile05, dpu=DPU, runs=4, seed=4)
    assert a == b and a.to_dnndk_text() == b.to_dnndk_text()
    assert a != c
    m = a.runtime_matrix()
    assert m.shape == (4, 42) and len(a.runs) == 4
    assert np.allclose(a.nodes["runtime_ms"], m.mean(axis=0))
    big = m[:, m.mean(axis=0) > 0.1]
    cv = (big.std(axis=0, ddof=1) / big.mean(axis=0)).mean()
    assert 0.003 <= cv <= 0.03
    quiet = simulate(mobile05, dpu=DPU.replace(jitter=0.0), runs=2)
    assert quiet.runs[0].equals(quiet.runs[1])


def test_input_forms_agree(mobile05):
    s = get_space("proxyless_w05")
    arch = s.named_arch("proxyless_mobile_05")
    ref = simulate(mobile05, dpu=DPU)
    assert simulate((s, arch), dpu=DPU, name="proxylessmobile05") == ref
    assert simulate(arch, space=s, dpu=DPU, name="proxylessmobile05") == ref


def test_layer_times_split_nodes(mobile05):
    t = layer_times_ms(mobile05, DPU)
    assert t.shape == (len(mobile05.layers),) and (t > 0).all()
    cn = compile_net(mobile05, DPU)
    exact = node_times_ms(cn, DPU)
    # The layers of a node sum to the node time without the per-node overhead.
    for node, rt in zip(cn.nodes, exact):
        assert t[list(node.layers)].sum() == pytest.approx(rt - DPU.node_overhead_us * 1e-3)
    stem, dw = t[0], t[1]
    assert dw > stem  # the 112x112 depthwise dominates the stem node


def test_physics_monotone(mobile05):
    base = simulate(mobile05, dpu=DPU.replace(jitter=0.0)).total_ms
    assert simulate(mobile05, dpu=DPU.replace(jitter=0.0, freq_mhz=200)).total_ms > base
    assert simulate(mobile05, dpu=DPU.replace(jitter=0.0, ddr_bw_gbps=3.0)).total_ms > base
    s = get_space("proxyless_w05")
    small = build_netspec(s, {"ks": [3] * 21, "e": [3] * 21, "d": [2, 2, 2, 2, 2, 1], "r": 160}, name="small")
    quiet = DPU.replace(jitter=0.0)
    times = [simulate(small, dpu=quiet.replace(arch=a)).total_ms for a in ("B4096", "B2304", "B1024", "B512")]
    assert times == sorted(times)
    assert simulate(mobile05, dpu=DPU.replace(jitter=0.0, node_overhead_us=30)).total_ms > base


def test_simulate_is_fast():
    s = get_space("ofa_proxyless_w13")
    rng = np.random.default_rng(0)
    nets = [build_netspec(s, a, name="net") for a in s.sample(rng, 40)]
    ok = [ns for ns in nets if is_compilable(ns, DPU)]
    assert len(ok) >= 5
    simulate(ok[0], dpu=DPU)
    t0 = time.perf_counter()
    for ns in ok:
        simulate(ns, dpu=DPU)
    per_net = (time.perf_counter() - t0) / len(ok)
    assert per_net < 0.015  # ~2-5 ms on an idle core; slack for a shared CI machine
