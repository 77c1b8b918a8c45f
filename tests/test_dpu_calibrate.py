"""Calibration: the fit reaches the benchmark targets on the seed, recovers known constants, and the task
writes results.json plus a selectable preset."""

from __future__ import annotations

import json

import pytest

from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import parse_dnndk_profile
from ofa_hw.formats.dnndk import dpu_from_dexplorer
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import simulate
from ofa_hw.sim.calibrate import BOUNDS, SEED_FREE, calibrate
from ofa_hw.space import get_space


@pytest.fixture(scope="module")
def mobile05():
    s = get_space("proxyless_w05")
    return build_netspec(s, s.named_arch("proxyless_mobile_05"), name="proxylessmobile05")


def test_seed_fit_meets_targets(mobile05, seed_dir):
    seed = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text())
    base = dpu_from_dexplorer((seed_dir / "dexplorer_w_dpu_config.txt").read_text(), name="fit")
    cal = calibrate([(mobile05, seed)], base)
    assert cal.node_mape <= 0.08 and abs(cal.total_error) <= 0.02
    for k, v in cal.constants.items():
        assert BOUNDS[k][0] <= v <= BOUNDS[k][1]
    assert cal.dpu.name == "fit" and "proxylessmobile05" in cal.dpu.calibrated_on
    assert len(cal.table) == 42


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
    assert set(data["calibration"]["constants"]) == set(
        SEED_FREE
    )  # calibrate=seed fits the DNNDK model's six
    preset = workspace / "conf" / "dpu" / "myboard.yaml"
    assert preset.is_file() and (tmp_path / "out" / "dpu" / "myboard.yaml").is_file()
    dpu = DPUConfig.from_yaml(preset)
    assert dpu.name == "myboard" and dpu.cores == 3
    # calibrate=seed refits the shipped zcu102_b4096 constants (to 6 significant digits: the optimum is that
    # flat in tile_overhead_cycles); the preset itself, its fingerprint and the shipped LUT stay as shipped.
    shipped = DPUConfig.from_preset("zcu102_b4096")
    for k, v in data["calibration"]["constants"].items():
        assert v == pytest.approx(getattr(shipped, k), rel=1e-6, abs=1e-9), k
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
