"""DPUConfig: presets, dexplorer, dict/YAML round trips, schema sync, fingerprint sensitivity."""

from __future__ import annotations

import dataclasses

import pytest

from ofa_hw.dpu import DPUConfig, list_presets
from ofa_hw.formats import ParseError
from ofa_hw.formats.dnndk import dpu_from_dexplorer
from ofa_hw.schemas.dpu import DpuConfig


def test_presets_exist_and_load():
    assert {"zcu102_b4096", "zcu104_b4096", "zcu102_b2304"} <= set(list_presets())
    z = DPUConfig.from_preset("zcu102_b4096")
    assert (z.arch, z.cores, z.freq_mhz, z.pp, z.icp, z.ocp) == ("B4096", 3, 300.0, 8, 16, 16)
    assert z.peak_gops == pytest.approx(1228.8)
    assert DPUConfig.from_preset("zcu104_b4096").cores == 2
    assert DPUConfig.from_preset("zcu102_b2304").icp == 12
    with pytest.raises(KeyError, match="unknown DPU preset"):
        DPUConfig.from_preset("nope")


def test_from_dexplorer_matches_seed_board(seed_dir):
    d = dpu_from_dexplorer((seed_dir / "dexplorer_w_dpu_config.txt").read_text())
    z = DPUConfig.from_preset("zcu102_b4096")
    hw = [
        "arch",
        "target_version",
        "freq_mhz",
        "cores",
        "ram_usage",
        "depthwise_conv",
        "depthwise_relu6",
        "conv_relu6",
        "conv_leakyrelu",
        "channel_augmentation",
        "avg_pool",
        "softmax",
    ]
    assert {k: getattr(d, k) for k in hw} == {k: getattr(z, k) for k in hw}


def test_from_dexplorer_rejects_garbage():
    with pytest.raises(ParseError):
        dpu_from_dexplorer("[DPU IP Spec]\nDPU Core Count : 1\n")
    with pytest.raises(ParseError) as e:
        dpu_from_dexplorer("hello\n")
    assert e.value.line == 1


def test_dict_roundtrip_and_schema_in_sync():
    z = DPUConfig.from_preset("zcu102_b4096")
    assert DPUConfig.from_dict(z.to_dict()) == z
    schema = {
        f.name: (str(f.type).replace("<class '", "").replace("'>", "")) for f in dataclasses.fields(DpuConfig)
    }
    ours = {f.name: str(f.type) for f in dataclasses.fields(DPUConfig)}
    assert schema == ours
    defaults = {f.name: f.default for f in dataclasses.fields(DpuConfig) if f.name != "name"}
    assert defaults == {f.name: f.default for f in dataclasses.fields(DPUConfig) if f.name != "name"}
    with pytest.raises(ValueError, match="unknown field"):
        DPUConfig.from_dict({"freq": 1})
    with pytest.raises(ValueError, match="arch"):
        DPUConfig(arch="B9999")


def test_compose_preset_and_override():
    from conftest import compose

    from ofa_hw.tasks import make_dpu

    dpu = make_dpu(compose(["dpu=zcu102_b4096", "dpu.freq_mhz=200"]))
    assert dpu.freq_mhz == 200.0 and dpu.name == "zcu102_b4096"
    assert dpu == DPUConfig.from_preset("zcu102_b4096").replace(freq_mhz=200.0)


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return {"B4096": "B2304", "low": "high", "dnndk": "xir"}.get(value, value + "x")
    if isinstance(value, int):
        return value + 1
    return value * 0.5 + 0.25 if value != 0.5 else 0.75


def test_fingerprint_changes_with_every_latency_field():
    z = DPUConfig.from_preset("zcu102_b4096")
    fp = z.fingerprint()
    assert len(fp) == 12 and int(fp, 16) >= 0
    assert fp == DPUConfig.from_preset("zcu102_b4096").fingerprint()
    for f in dataclasses.fields(DPUConfig):
        changed = z.replace(**{f.name: _changed(getattr(z, f.name))})
        if f.name in ("name", "calibrated_on"):
            assert changed.fingerprint() == fp, f.name
        else:
            assert changed.fingerprint() != fp, f.name


def test_yaml_preset_roundtrip(tmp_path):
    z = DPUConfig.from_preset("zcu102_b4096").replace(name="mine", freq_mhz=250.0)
    (tmp_path / "mine.yaml").write_text(z.to_yaml("hello"))
    assert DPUConfig.from_preset("mine", search_dirs=[tmp_path]) == z


def test_refit_noise_does_not_change_the_preset():
    """Issue 20: a refit whose optimiser lands a last digit away writes the same preset and fingerprint
    (constants at 5 significant digits on save and in the hash); a real change still changes both."""
    a = DPUConfig(name="a", ddr_bw_gbps=6.2005378, tile_overhead_cycles=487.087527)
    b = a.replace(ddr_bw_gbps=6.2005371, tile_overhead_cycles=487.087524)
    assert a.fingerprint() == b.fingerprint() and a.to_yaml() == b.to_yaml()
    assert "ddr_bw_gbps: 6.2005\n" in a.to_yaml() and "tile_overhead_cycles: 487.09\n" in a.to_yaml()
    assert a.replace(ddr_bw_gbps=6.21).fingerprint() != a.fingerprint()
