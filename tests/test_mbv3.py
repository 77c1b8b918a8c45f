"""OFA-MobileNetV3 spaces (``ofa_mbv3_w10``/``w12``) against OFA's own code.

OFA's ``OFAMobileNetV3`` (installed with the test extra) is built with random weights and random BN
statistics; its state dict is loaded through :class:`SupernetWeights`, and the package's static module
must give the outputs of OFA's ``get_active_subnet``. The LUT keys must be those OFA's
``MBv3LatencyTable`` queries.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ofa_hw.accuracy.ofa_checkpoint import SupernetWeights, bn_eps, supernet_layout
from ofa_hw.netspec import build_netspec
from ofa_hw.space import ArchError, get_space
from ofa_hw.torchnet import build_model

SPACES = ("ofa_mbv3_w10", "ofa_mbv3_w12")


def ofa_mbv3(width_mult: float, seed: int = 0):
    """OFA's ``OFAMobileNetV3`` as ``ofa_net`` builds it, every parameter and BN statistic randomised."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(seed)
    net = OFAMobileNetV3(
        dropout_rate=0,
        width_mult=width_mult,
        ks_list=[3, 5, 7],
        expand_ratio_list=[3, 4, 6],
        depth_list=[2, 3, 4],
    )
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand_like(tensor))
            elif name.endswith("_matrix"):
                tensor.add_(0.1 * torch.randn_like(tensor))  # the kernel transforms start as identities
            elif name.endswith(("bn.weight", "bn.bn.weight")):
                tensor.copy_(1 + 0.1 * torch.randn_like(tensor))
            else:
                tensor.copy_(0.1 * torch.randn_like(tensor))
    return net.eval()


def test_presets_are_ofas_widths_and_layout():
    w12, w10 = get_space("ofa_mbv3_w12"), get_space("ofa_mbv3_w10")
    assert w12.widths == (24, 24, 32, 48, 96, 136, 192, 1152, 1536)
    assert w10.widths == (16, 16, 24, 40, 80, 112, 160, 960, 1280)
    assert (w12.n_blocks, w12.n_elastic_stages, w12.n_genes) == (20, 5, 46)


def test_arch_dicts_are_ofas_own():
    space = get_space("ofa_mbv3_w12")
    arch = space.sample(np.random.default_rng(0))
    assert len(arch["ks"]) == len(arch["e"]) == 20 and len(arch["d"]) == 5
    ofa_form = {"ks": arch["ks"], "e": arch["e"], "d": arch["d"], "image_size": arch["r"]}
    assert space.validate(ofa_form) == arch
    with pytest.raises(ArchError, match=r"field 'd' must have 5 entries, got 6"):
        space.validate({**arch, "d": [*arch["d"], 1]})
    genes = space.encode([arch])
    assert genes.shape == (1, 46) and space.decode(genes)[0] == arch
    child = space.mutate(arch, np.random.default_rng(1), prob=1.0)
    assert space.validate(child) == child


def test_netspec_has_se_hswish_and_ofas_head():
    space = get_space("ofa_mbv3_w12")
    arch = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
    ns = build_netspec(space, arch)
    assert [b.kind for b in ns.blocks[-4:]] == ["Conv_1", "AvgPool2D", "Conv_2", "Logits"]
    se_blocks = [b for b in ns.blocks if b.se]
    assert len(se_blocks) == 12  # stages 2, 4, 5 at depth 4
    assert ns.layers[0].act == "hswish" and ns.layers[1].act == "relu"
    muls = [layer for layer in ns.layers if layer.kind == "mul"]
    assert all(ns.layers[layer.producers[0]].kind == "dwconv" for layer in muls)
    assert (
        ns.keys[1]
        == "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"
    )


@pytest.mark.parametrize("name", SPACES)
def test_layout_matches_ofas_state_dict(name, ofa_importable):
    space = get_space(name)
    net = ofa_mbv3(space.width_mult)
    ofa_shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ofa_shapes == supernet_layout(space)


@pytest.mark.parametrize("name", SPACES)
def test_static_module_equals_ofas_active_subnet(name, ofa_importable):
    """8 random subnets: our module with weights extracted from OFA's supernet == OFA's get_active_subnet."""
    space = get_space(name)
    net = ofa_mbv3(space.width_mult, seed=1)
    weights = SupernetWeights.from_state_dict(net.state_dict(), space, source="OFAMobileNetV3")
    rng = np.random.default_rng(2)
    for arch in space.sample(rng, 8):
        arch["r"] = int(rng.choice([128, 160, 176]))  # keep the forward passes cheap
        net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
        reference = net.get_active_subnet(preserve_weight=True).eval()
        ours = build_model(space, arch)
        ours.load_state_dict(weights.extract(arch), strict=True)
        for module in ours.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eps = bn_eps(space)
        ours.eval()
        x = torch.randn(2, 3, arch["r"], arch["r"], generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            want, got = reference(x), ours(x)
        assert torch.allclose(got, want, atol=1e-4, rtol=0), (arch, float((got - want).abs().max()))


@pytest.fixture(scope="module")
def mbv3_lut():
    """A LUT of ``ofa_mbv3_w12`` built on the simulated Ultra96 B2304 (XIR: SE and h-swish on the DPU)."""
    from ofa_hw.backends import ProfileJob, SimBackend
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut import build_lut, dpu_compile_check, plan_probes

    space, dpu = get_space("ofa_mbv3_w12"), DPUConfig.from_preset("ultra96_b2304")
    plan = plan_probes(space, dpu_compile_check(dpu), resolutions=(160, 224), validation_subnets=4, seed=1)
    sim = SimBackend(dpu)
    probes = [
        sim.profile(ProfileJob.create(space, a, n, runs=2)) for a, n in zip(plan.probes, plan.probe_names())
    ]
    assert all(o.ok for o in probes)
    return build_lut(space, sim, probes, plan.resolutions, plan.uncompilable, sim.provenance), plan


def test_lut_covers_the_space_and_adds_up(mbv3_lut):
    table, plan = mbv3_lut
    space = get_space("ofa_mbv3_w12")
    assert table.coverage(space)["fraction"] == 1.0
    assert {k.split("-")[0] for k in table.keys} == {
        "Conv",
        "expanded_conv",
        "Conv_1",
        "AvgPool2D",
        "Conv_2",
        "Logits",
    }
    for arch in plan.validation:
        assert table.predict(space, arch) == pytest.approx(
            sum(table.lookup(k)["mean_ms"] for k in build_netspec(space, arch).keys)
        )


def test_ofa_yaml_loads_in_ofas_mbv3_latency_table(mbv3_lut, tmp_path, ofa_importable):
    """OFA's MBv3LatencyTable, walking OFA's own subnet modules, gives our network latency from our YAML."""
    import yaml
    from ofa.nas.efficiency_predictor.latency_lookup_table import MBv3LatencyTable

    table, plan = mbv3_lut
    space = get_space("ofa_mbv3_w12")
    path = table.to_ofa_yaml(tmp_path / "mbv3.yaml")
    ofa_table = MBv3LatencyTable.__new__(MBv3LatencyTable)
    # OFA's __init__ calls yaml.load(fp) without a Loader, which PyYAML >= 6 rejects; its lookup is what matters.
    ofa_table.lut = yaml.safe_load(path.read_text())
    net = ofa_mbv3(1.2)
    for arch in plan.validation:
        net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
        subnet = net.get_active_subnet(preserve_weight=False)
        ofa_ms = ofa_table.predict_network_latency(subnet, image_size=arch["r"])
        assert ofa_ms == pytest.approx(table.predict(space, arch), rel=1e-9)
        config_ms = ofa_table.predict_network_latency_given_config(net.get_active_net_config(), arch["r"])
        assert config_ms == pytest.approx(ofa_ms, rel=1e-12)


def test_shipped_mbv3_lut_is_current_and_complete():
    """The shipped ofa_mbv3_w12 table matches the ultra96_b2304 preset (regenerate it: lut/README.md)."""
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut import LatencyTable
    from ofa_hw.lut.manage import SHIPPED_DIR

    space, dpu = get_space("ofa_mbv3_w12"), DPUConfig.from_preset("ultra96_b2304")
    path = SHIPPED_DIR / f"ofa_mbv3_w12-ultra96_b2304-{dpu.fingerprint()}.csv"
    assert path.is_file(), f"shipped LUT is stale or missing: expected {path.name}; see lut/README.md"
    table = LatencyTable.load(path, space=space, dpu_fingerprint=dpu.fingerprint())
    from ofa_hw.sim.version import stale_reason

    assert stale_reason(table.meta.toolchain) is None, "shipped LUT made by an older simulator model"
    assert table.coverage(space, space.resolutions)["fraction"] == 1.0
    assert table.meta.validation["mape"] < 0.02


def test_dnndk_dpu_refuses_an_mbv3_lut():
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut import LutError
    from ofa_hw.lut.build import check_dpu_only

    check_dpu_only(get_space("ofa_mbv3_w12"), DPUConfig.from_preset("ultra96_b2304"))
    check_dpu_only(get_space("ofa_proxyless_w13"), DPUConfig.from_preset("zcu102_b4096"))
    with pytest.raises(LutError, match=r"dnndk toolchain runs hsigmoid, hswish, mul on the CPU"):
        check_dpu_only(get_space("ofa_mbv3_w12"), DPUConfig.from_preset("zcu102_b4096"))


def test_dnndk_caffe_export_refuses_hswish_in_one_line():
    from ofa_hw.export.caffe import CaffeExportError, to_caffe

    space = get_space("ofa_mbv3_w12")
    model = build_model(space, space.sample(np.random.default_rng(0))).eval()
    with pytest.raises(CaffeExportError, match=r"h-swish has no layer in the DNNDK Caffe flow") as info:
        to_caffe(model, name="net")
    assert "\n" not in str(info.value)


def test_onnx_export_of_an_mbv3_subnet(tmp_path):
    from ofa_hw.export.onnx import check_onnx, export_onnx

    space = get_space("ofa_mbv3_w10")
    arch = space.sample(np.random.default_rng(4))
    arch["r"] = 128
    model = build_model(space, arch).eval()
    path = export_onnx(model, tmp_path / "net.onnx", 128)
    assert check_onnx(model, path, 128) < 1e-4


def test_generated_xmodel_quantize_script_rebuilds_an_mbv3_subnet(tmp_path):
    """The XIR flow's self-contained quantize script rebuilds SE, h-swish and the BN-free head."""
    import importlib.util

    from ofa_hw.export.xmodel import write_quantize_script

    space = get_space("ofa_mbv3_w12")
    arch = space.sample(np.random.default_rng(5))
    arch["r"] = 128
    model = build_model(space, arch, "x").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    script, weights = write_quantize_script(model.netspec, model, tmp_path, calib_iter=2)
    spec = importlib.util.spec_from_file_location("generated_quantize_mbv3", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    clone = mod.OFASubnet(mod.SPEC)
    clone.load_state_dict(torch.load(weights))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(clone.eval()(x), model(x), atol=1e-5)


def test_published_checkpoint_naming_loads(tmp_path, ofa_importable):
    """OFA's released files name blocks ``mobile_inverted_conv`` and wrap the dict in ``state_dict``."""
    space = get_space("ofa_mbv3_w10")
    state = ofa_mbv3(1.0, seed=4).state_dict()
    published = {
        k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
        for k, v in state.items()
    }
    assert any(".mobile_inverted_conv." in k for k in published)
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0.pth"
    torch.save({"state_dict": published}, path)
    weights = SupernetWeights.load(path, space)
    reference = SupernetWeights.from_state_dict(state, space)
    assert weights.fingerprint == reference.fingerprint


def test_supernet_accuracy_model_on_an_ofa_mbv3_checkpoint(tmp_path, ofa_importable):
    """``accuracy=supernet`` with OFA's MobileNetV3 checkpoint: its subnet is OFA's, and it evaluates."""
    from PIL import Image

    from ofa_hw.accuracy.imagefolder import ImageFolder
    from ofa_hw.accuracy.supernet import SupernetAccuracyModel

    space = get_space("ofa_mbv3_w12")
    net = ofa_mbv3(1.2, seed=6)
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.2.pth"
    torch.save({"state_dict": net.state_dict()}, path)
    rng = np.random.default_rng(0)
    for name in ("n01", "n02"):
        (tmp_path / "val" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)).save(
                tmp_path / "val" / name / f"{i}.png"
            )
    model = SupernetAccuracyModel(
        space,
        SupernetWeights.load(path, space),
        ImageFolder.scan(tmp_path / "val"),
        calib_images=4,
        batch_size=4,
        workers=1,
        threads=1,
    )
    arch = space.sample(np.random.default_rng(7))
    arch["r"] = 128
    net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
    reference = net.get_active_subnet(preserve_weight=True).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(model.subnet(arch)(x), reference(x), atol=1e-4, rtol=0)
    result = model.evaluate(arch)
    assert result.n_images == 4 and 0.0 <= result.top1 <= 100.0
