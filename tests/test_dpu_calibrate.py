"""Calibration: fit figures on the seed (in-sample), prediction on the network a fit never saw
(leave-one-network-out on the two real ZCU102 networks), recovery of known constants, per-network
weighting, and the task writing results.json plus a selectable preset that reproduces the shipped one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import parse_dnndk_profile
from ofa_hw.formats.dnndk import dpu_from_dexplorer
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import simulate
from ofa_hw.sim.calibrate import BOUNDS, calibrate
from ofa_hw.sim.timing import node_times_ms
from ofa_hw.space import get_space


@pytest.fixture(scope="module")
def mobile05():
    s = get_space("proxyless_w05")
    return build_netspec(s, s.named_arch("proxyless_mobile_05"), name="proxylessmobile05")


@pytest.fixture(scope="module")
def zcu102(seed_dir):
    """The real ZCU102 networks (seed; FCN8 log) and a base with the model's neutral constants."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "calibration" / "zcu102_networks.py"
    spec = importlib.util.spec_from_file_location("zcu102_networks", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = dpu_from_dexplorer(
        (seed_dir / "dexplorer_w_dpu_config.txt").read_text(), name="fit", base=DPUConfig()
    )
    return base, mod.measurements(base), mod.FREE["new"]


def test_seed_fit_figures(mobile05, seed_dir):
    """In-sample fit figures (the seed is the network fitted): node MAPE <= 8 %, total within 2 %."""
    seed = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text())
    base = dpu_from_dexplorer((seed_dir / "dexplorer_w_dpu_config.txt").read_text(), name="fit")
    cal = calibrate([(mobile05, seed)], base)
    assert cal.node_mape <= 0.08 and abs(cal.total_error) <= 0.02
    for k, v in cal.constants.items():
        assert BOUNDS[k][0] <= v <= BOUNDS[k][1]
    assert cal.dpu.name == "fit" and "proxylessmobile05" in cal.dpu.calibrated_on
    assert len(cal.table) == 42
    # The FC node (1.28 MB of weights in 0.235 ms) pins the DDR bandwidth near its 5.3 GB/s.
    assert 4.5 <= cal.dpu.ddr_bw_gbps <= 7.5


def test_leave_one_network_out_on_the_zcu102(zcu102):
    """Prediction judged on data the fit never saw: fit on the seed, predict FCN8 (its 21 nodes and the
    log's 3 small fcn8ups nodes), and the reverse. Figures of experiments/calibration/zcu102_b4096."""
    base, nets, free = zcu102
    for train, judged, mape_max in (("seed", "fcn8", 0.12), ("fcn8", "seed", 0.13)):
        dpu = calibrate(nets[train], base, free=free).dpu
        rel = np.concatenate(
            [
                np.array([node_times_ms(m.net, dpu)[list(p)].sum() for p in m.parts]) / m.measured_ms - 1
                for m in nets[judged]
            ]
        )
        profile = nets[judged][0]
        total = node_times_ms(profile.net, dpu).sum() / profile.measured_ms.sum() - 1
        assert np.mean(np.abs(rel)) <= mape_max, (train, judged)
        assert abs(total) <= 0.07, (train, judged)
        assert 3.0 <= dpu.ddr_bw_gbps <= 8.0


def test_each_network_weighs_the_same(zcu102):
    """The 42 seed nodes do not drown FCN8's 21 nor the three small nodes (one group)."""
    from ofa_hw.sim.calibrate import _Problem

    _, nets, _ = zcu102
    problem = _Problem(nets["seed"] + nets["fcn8"])
    w2 = problem.weight**2
    seed, fcn8, small = w2[:42].sum(), w2[42:63].sum(), w2[63:].sum()
    assert len(w2) == 66 and seed == pytest.approx(fcn8) and fcn8 == pytest.approx(small)
    assert w2.sum() == pytest.approx(66)


def test_fit_recovers_known_constants(mobile05):
    s = get_space("proxyless_w05")
    other = build_netspec(s, {"ks": [5] * 21, "e": [4] * 21, "d": [3] * 5 + [1], "r": 192}, name="other")
    truth = DPUConfig(
        name="truth", ddr_bw_gbps=8.0, node_overhead_us=12.0, tile_overhead_cycles=300.0, jitter=0.0
    )
    pairs = [(ns, simulate(ns, dpu=truth)) for ns in (mobile05, other)]
    cal = calibrate(
        pairs, DPUConfig(name="start"), free=["ddr_bw_gbps", "node_overhead_us", "tile_overhead_cycles"]
    )
    assert cal.node_mape < 0.01
    assert cal.constants["ddr_bw_gbps"] == pytest.approx(8.0, rel=0.05)
    assert cal.constants["node_overhead_us"] == pytest.approx(12.0, rel=0.1)
    assert cal.constants["tile_overhead_cycles"] == pytest.approx(300.0, rel=0.15)


def test_mismatched_profile_is_rejected(mobile05, seed_dir):
    seed = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text())
    s = get_space("proxyless_w05")
    wrong = build_netspec(
        s, {"ks": [3] * 21, "e": [3] * 21, "d": [2] * 5 + [1], "r": 224}, name="proxylessmobile05"
    )
    with pytest.raises(ValueError, match="node list differs"):
        calibrate([(wrong, seed)], DPUConfig())
    with pytest.raises(ValueError, match="no bounds"):
        calibrate([(mobile05, seed)], DPUConfig(), free=["freq_mhz"])


def test_calibrate_task_writes_preset(tmp_path, workspace, monkeypatch):
    from conftest import compose

    from ofa_hw.tasks import calibrate as task

    monkeypatch.setenv("OFA_HW_WORKSPACE", str(workspace))  # the app's search path follows this variable
    monkeypatch.setattr("ofa_hw.tasks.calibrate.output_dir", lambda: tmp_path / "out")
    (tmp_path / "out").mkdir()
    cfg = compose(
        ["task=calibrate", "calibrate=seed", "calibrate.name=myboard", "calibrate.plot=false"],
        workspace=workspace,
    )
    res = task.run(cfg)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (
        data["calibration"]["node_mape"] == pytest.approx(res["calibration"]["node_mape"])
        and data["calibration"]["node_mape"] <= 0.08
    )
    assert set(data["calibration"]["constants"]) == set(cfg.calibrate.free)
    assert {n["network"] for n in data["calibration"]["per_network"]} >= {"proxylessmobile05", "fcn8"}
    preset = workspace / "conf" / "dpu" / "myboard.yaml"
    assert preset.is_file() and (tmp_path / "out" / "dpu" / "myboard.yaml").is_file()
    dpu = DPUConfig.from_yaml(preset)
    assert dpu.name == "myboard" and dpu.cores == 3
    # calibrate=seed reproduces the shipped zcu102_b4096 exactly (constants saved at 5 significant digits),
    # so its fingerprint and the LUTs built on it stay valid.
    shipped = DPUConfig.from_preset("zcu102_b4096")
    assert dpu.replace(name=shipped.name) == shipped
    assert dpu.replace(name=shipped.name).fingerprint() == shipped.fingerprint()
    # The workspace's conf/ is on Hydra's search path: dpu=myboard now composes.
    from ofa_hw.tasks import make_dpu

    assert make_dpu(compose(["dpu=myboard"], workspace=workspace)) == dpu


def test_default_free_grows_with_the_data():
    from ofa_hw.sim.calibrate import FREE, PRIORITY, default_free

    assert set(PRIORITY) == set(BOUNDS) == set(FREE)
    assert default_free(FREE, 4) == ["ddr_bw_gbps", "node_overhead_us", "hard_act_passes"]
    assert default_free(FREE, 22) == list(PRIORITY[:7])
    assert default_free(FREE, 42) == list(PRIORITY)
    # constants the data do not inform (no hard activation measured) are skipped, not counted
    assert default_free([k for k in FREE if k != "hard_act_passes"], 9) == [
        "ddr_bw_gbps",
        "node_overhead_us",
        "fm_keep_fraction",
    ]
