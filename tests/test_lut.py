"""LUT: node→block mapping, probe planning, aggregation, files, OFA YAML, block tables, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ofa_hw.backends import ProfileJob, SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats.dnndk import parse_dnndk_profile
from ofa_hw.lut import (
    LatencyTable,
    LutError,
    LutKeyError,
    NodeMappingError,
    block_times,
    build_lut,
    dpu_compile_check,
    node_layers,
    plan_probes,
    validate_lut,
)
from ofa_hw.netspec import build_netspec, space_keys
from ofa_hw.sim import compile_net, is_compilable, layer_times_ms
from ofa_hw.space import get_space

SPACE = get_space("ofa_proxyless_w13")
RES = (160, 224)


@pytest.fixture(scope="module")
def dpu() -> DPUConfig:
    return DPUConfig.from_preset("zcu102_b4096")


@pytest.fixture(scope="module")
def plan(dpu):
    return plan_probes(SPACE, dpu_compile_check(dpu), resolutions=RES, validation_subnets=6, seed=1)


@pytest.fixture(scope="module")
def built(dpu, plan):
    """A LUT built from the plan's probes on the simulator, and the validation outcomes."""
    sim = SimBackend(dpu)
    probes = [
        sim.profile(ProfileJob.create(SPACE, a, n, runs=3)) for a, n in zip(plan.probes, plan.probe_names())
    ]
    val = [
        sim.profile(ProfileJob.create(SPACE, a, n, runs=3))
        for a, n in zip(plan.validation, plan.validation_names())
    ]
    assert all(o.ok for o in probes + val)
    table = build_lut(SPACE, sim, probes, plan.resolutions, plan.uncompilable, sim.provenance)
    return table, probes, val


# ------------------------------------------------------------------------------------------ mapping
def test_node_layers_match_the_compiler_fusion(dpu):
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 5:
        arch = SPACE.sample(rng)
        ns = build_netspec(SPACE, arch, name="probe_x")
        if not is_compilable(ns, dpu):
            continue
        cn = compile_net(ns, dpu, name="probe_x")
        assert node_layers(ns, [n.name for n in cn.nodes]) == [n.layers for n in cn.nodes]
        checked += 1


def test_seed_profile_maps_onto_mobile05_blocks(seed_dir, dpu):
    """The real DNNDK profile: 42 nodes → 23 blocks; the stem node is split, every sum is kept."""
    space = get_space("proxyless_w05")
    ns = build_netspec(space, space.named_arch("proxyless_mobile_05"), "proxylessmobile05")
    prof = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text())
    layers = node_layers(ns, list(prof.nodes["name"]))
    assert layers[0] == (0, 1)  # conv_1 = stem conv + the first block's depthwise conv
    assert [ns.layers[i].role for i in layers[-2]] == ["feature_mix", "pool"]
    bt = block_times(ns, prof.nodes, layer_times_ms(ns, dpu))
    assert bt.sum() == pytest.approx(prof.nodes["runtime_ms"].sum())
    assert (
        bt[0] > 0 and bt[1] > 0 and bt[0] + bt[1] - 0.134 == pytest.approx(0.063)
    )  # conv_1 split, conv_3 whole
    assert len(bt) == len(ns.blocks) == 23
    assert (bt > 0).all()


def test_unknown_node_names_are_rejected():
    ns = build_netspec(SPACE, SPACE.sample(np.random.default_rng(0)), "n")
    with pytest.raises(NodeMappingError, match="names no layer"):
        node_layers(ns, ["n_conv_1", "n_relu_7"])
    with pytest.raises(NodeMappingError, match="two nodes"):
        node_layers(ns, ["n_conv_1", "other_conv_1"])


# ------------------------------------------------------------------------------------------ planning
def test_plan_is_minimal_and_covers_every_compilable_key(plan, dpu):
    assert len(plan.probes) == 9 * len(RES)  # the first block of a stage has 9 keys of its own
    assert all(a["d"] == [4, 4, 4, 4, 4, 1] for a in plan.probes)
    counts = plan.planned_counts()
    all_keys = set(space_keys(SPACE, RES))
    assert set(plan.keys) | set(plan.uncompilable) == all_keys
    assert all(counts.get(k, 0) >= 1 for k in plan.keys)
    assert not set(counts) & set(plan.uncompilable)
    assert len(plan.uncompilable) > 0  # wide 7x7 depthwise convs do not fit the B4096 bank
    for key in plan.uncompilable[:3]:
        assert "kernel:7" in key or "kernel:5" in key
    for arch in plan.validation:
        assert arch["r"] in RES and is_compilable(build_netspec(SPACE, arch), dpu)


def test_coverage_r_multiplies_the_probes(dpu):
    plan2 = plan_probes(SPACE, dpu_compile_check(dpu), resolutions=[192], coverage=2, validation_subnets=0)
    assert len(plan2.probes) == 18 and plan2.validation == ()
    assert min(plan2.planned_counts()[k] for k in plan2.keys) >= 2


def test_plan_rejects_bad_arguments(dpu):
    with pytest.raises(ValueError, match="not resolutions of space"):
        plan_probes(SPACE, dpu_compile_check(dpu), resolutions=[226])
    with pytest.raises(ValueError, match="coverage"):
        plan_probes(SPACE, dpu_compile_check(dpu), resolutions=[224], coverage=0)


def test_coverage_frame_and_plot(plan, tmp_path):
    from ofa_hw.lut.plan import plot_coverage

    frame = plan.coverage_frame(plan.planned_counts())
    assert len(frame) == len(RES) * (4 + 21 * 9)
    assert (frame.loc[frame["compilable"], "measured"] >= 1).all()
    path = plot_coverage(frame, tmp_path / "cov.png")
    assert path.stat().st_size > 5000


# ------------------------------------------------------------------------------------------ table
def test_lut_is_complete_and_sums_match_measurements(built, plan):
    table, probes, val = built
    assert table.coverage(SPACE)["fraction"] == 1.0
    assert set(table.keys) == set(plan.keys)
    assert table.meta.profiled_subnets == len(plan.probes) and table.meta.runs == 3
    assert table.meta.provenance.startswith("calibrated simulator")
    # On a probe the LUT sum is close to its own measurement (other probes' samples of shared keys differ only by jitter).
    for o in probes[:3]:
        assert table.predict(SPACE, o.job.arch) == pytest.approx(o.profile.total_ms, rel=0.02)
    report = validate_lut(table, SPACE, val)
    assert report["subnets"] == 6 and report["mape"] < 0.02
    stem = next(k for k in table.keys if k.startswith("Conv-input:224"))
    stats = table.lookup(stem)
    assert stats["count"] == 9 * 3 and stats["min_ms"] <= stats["median_ms"] and stats["std_ms"] > 0


def test_lookup_errors_name_the_key(built, plan):
    table = built[0]
    with pytest.raises(LutKeyError, match="cannot be compiled"):
        table.lookup(plan.uncompilable[0])
    with pytest.raises(LutKeyError, match="not in LUT"):
        table.lookup("Conv-input:999x999x3-output:500x500x40")


def test_block_table_matches_predict(built, plan, dpu):
    table = built[0]
    bt = table.to_block_table(SPACE)
    ri = [SPACE.resolutions.index(r) for r in RES]
    archs = list(plan.validation) + list(plan.probes[:4])
    np.testing.assert_allclose(
        bt.evaluate(SPACE.encode(archs)), [table.predict(SPACE, a) for a in archs], rtol=1e-9
    )
    assert np.isnan(bt.fixed[SPACE.resolutions.index(128)])  # not built for 128
    assert np.isinf(bt.blocks[ri]).any()  # uncompilable cells
    mean, std = bt.evaluate_with_std(SPACE.encode(archs[:2]))
    assert (std > 0).all()


def test_save_load_round_trip(built, tmp_path, dpu):
    table = built[0]
    path = table.save(tmp_path)
    assert path.name == f"ofa_proxyless_w13-zcu102_b4096-{dpu.fingerprint()}.csv"
    loaded = LatencyTable.load(path, space=SPACE, dpu_fingerprint=dpu.fingerprint())
    assert loaded.keys == table.keys and loaded.meta == table.meta
    np.testing.assert_allclose(loaded.frame["mean_ms"], table.frame["mean_ms"], rtol=1e-5)
    frame = pd.read_csv(path)
    assert list(frame.columns) == [
        "key",
        "count",
        "mean_ms",
        "std_ms",
        "min_ms",
        "median_ms",
        "dpu_fingerprint",
        "toolchain",
        "backend",
    ]


def _saved(built, tmp_path) -> Path:
    return built[0].save(tmp_path)


def test_missing_column_is_a_clear_error(built, tmp_path):
    path = _saved(built, tmp_path)
    pd.read_csv(path).drop(columns="std_ms").to_csv(path, index=False)
    with pytest.raises(LutError, match=rf"{path.name}: missing column\(s\) \['std_ms'\]"):
        LatencyTable.load(path)


def test_nan_is_a_clear_error(built, tmp_path):
    path = _saved(built, tmp_path)
    frame = pd.read_csv(path)
    frame.loc[4, "mean_ms"] = float("nan")
    frame.to_csv(path, index=False)
    with pytest.raises(LutError, match=rf"{path.name} line 6: column 'mean_ms' is NaN"):
        LatencyTable.load(path)


def test_lut_of_another_space_or_dpu_is_refused(built, tmp_path, dpu):
    path = _saved(built, tmp_path)
    with pytest.raises(
        LutError, match="is for space 'ofa_proxyless_w13', not the configured 'proxyless_w05'"
    ):
        LatencyTable.load(path, space=get_space("proxyless_w05"))
    other = dpu.replace(freq_mhz=200.0).fingerprint()
    with pytest.raises(
        LutError, match=f"fingerprint {dpu.fingerprint()}, but the configured DPU has fingerprint {other}"
    ):
        LatencyTable.load(path, dpu_fingerprint=other)


def test_missing_or_broken_metadata(built, tmp_path):
    path = _saved(built, tmp_path)
    meta = path.with_suffix(".json")
    data = json.loads(meta.read_text())
    del data["dpu_fingerprint"]
    meta.write_text(json.dumps(data))
    with pytest.raises(LutError, match=r"missing field\(s\) \['dpu_fingerprint'\]"):
        LatencyTable.load(path)
    meta.unlink()
    with pytest.raises(LutError, match="metadata file .* is missing"):
        LatencyTable.load(path)


# ------------------------------------------------------------------------------------------ OFA YAML
def test_ofa_yaml_round_trip(built, tmp_path):
    table = built[0]
    path = table.to_ofa_yaml(tmp_path / "lut.yaml")
    data = yaml.safe_load(path.read_text())
    key = table.keys[0]
    assert set(data[key]) == {"count", "mean", "std"}
    back = LatencyTable.from_ofa_yaml(path, SPACE, table.meta)
    assert back.keys == table.keys
    np.testing.assert_allclose(back.frame["mean_ms"], table.frame["mean_ms"])
    arch = built[2][0].job.arch
    assert back.predict(SPACE, arch) == pytest.approx(table.predict(SPACE, arch))


def test_ofa_yaml_with_unknown_keys_is_refused(built, tmp_path):
    path = built[0].to_ofa_yaml(tmp_path / "lut.yaml")
    data = yaml.safe_load(path.read_text())
    data["expanded_conv-input:7x7x999-output:7x7x999-expand:6-kernel:3-stride:1-idskip:1"] = {
        "count": 1,
        "mean": 1.0,
        "std": 0.0,
    }
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LutError, match=r"lut\.yaml: 1 key\(s\) are not keys of space 'ofa_proxyless_w13'"):
        LatencyTable.from_ofa_yaml(path, SPACE, built[0].meta)
    path.write_text("- just\n- a list\n")
    with pytest.raises(LutError, match="expected a mapping"):
        LatencyTable.from_ofa_yaml(path, SPACE, built[0].meta)


def test_ofa_yaml_works_with_ofas_own_latency_table(built, tmp_path, ofa_importable):
    """OFA's own ProxylessNASLatencyTable answers from our YAML (``ofa`` is in the test extra)."""
    import ofa.nas.efficiency_predictor.latency_lookup_table as lut_module

    table = built[0]
    path = table.to_ofa_yaml(tmp_path / "lut.yaml")
    ofa_table = lut_module.ProxylessNASLatencyTable.__new__(lut_module.ProxylessNASLatencyTable)
    # OFA's __init__ calls yaml.load(fp) without a Loader, which PyYAML >= 6 rejects; its lookup is what matters.
    ofa_table.lut = yaml.safe_load(path.read_text())
    arch = built[2][0].job.arch
    ns = build_netspec(SPACE, arch)
    total = 0.0
    for block in ns.blocks:
        if block.kind == "expanded_conv":
            total += ofa_table.query(
                "expanded_conv",
                [block.in_hw, block.in_hw, block.in_c],
                [block.out_hw, block.out_hw, block.out_c],
                expand=block.expand,
                ks=block.kernel,
                stride=block.stride,
                id_skip=block.idskip,
            )
        elif block.kind == "Logits":
            total += ofa_table.query("Logits", [block.in_hw, block.in_hw, block.in_c], [block.out_c])
        else:
            total += ofa_table.query(
                block.kind, [block.in_hw, block.in_hw, block.in_c], [block.out_hw, block.out_hw, block.out_c]
            )
    assert total == pytest.approx(table.predict(SPACE, arch), rel=1e-6)
    assert not math.isnan(total)


def test_simulator_lut_fit_figure_on_the_calibration_network(seed_dir, dpu):
    """Fit figure, not prediction: the ZCU102 preset's constants were fitted on this very profile (the
    seed's ProxylessNAS-Mobile 0.5, 3.279 ms; with FCN8). What this checks is that the LUT path (9
    simulated probes → per-block LUT → sum) keeps the simulator's fit for a network that is not among the
    probes. Prediction on data no fit saw: the leave-one-network-out on the ZCU102
    (tests/test_dpu_calibrate.py::test_leave_one_network_out_on_the_zcu102)."""
    space = get_space("proxyless_w05")
    plan = plan_probes(space, dpu_compile_check(dpu), resolutions=[224], validation_subnets=0)
    sim = SimBackend(dpu)
    probes = [
        sim.profile(ProfileJob.create(space, a, n, runs=2)) for a, n in zip(plan.probes, plan.probe_names())
    ]
    table = build_lut(space, sim, probes, plan.resolutions, plan.uncompilable)
    measured = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text()).total_ms
    assert len(plan.probes) == 9 and table.coverage(space)["fraction"] == 1.0
    mobile05 = space.named_arch("proxyless_mobile_05")
    assert space.arch_id(mobile05) not in {space.arch_id(a) for a in plan.probes}  # not a probe of the LUT
    assert table.predict(space, mobile05) == pytest.approx(measured, rel=0.05)
