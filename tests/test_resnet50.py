"""OFA's ResNet-50 space (``ofa_resnet50``) against OFA's own ``OFAResNets``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ofa_hw.accuracy.ofa_checkpoint import SupernetWeights, supernet_layout
from ofa_hw.netspec import build_netspec, space_keys
from ofa_hw.space import ArchError, get_space
from ofa_hw.torchnet import build_model

SPACE = get_space("ofa_resnet50")


def ofa_resnet50(seed: int = 0):
    """OFA's ``OFAResNets`` as ``ofa_net('ofa_resnet50')`` builds it, parameters and BN statistics randomised."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAResNets

    torch.manual_seed(seed)
    net = OFAResNets(
        dropout_rate=0,
        depth_list=[0, 1, 2],
        expand_ratio_list=[0.2, 0.25, 0.35],
        width_mult_list=[0.65, 0.8, 1.0],
    )
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand_like(tensor))
            elif name.endswith("bn.weight"):
                tensor.copy_(1 + 0.1 * torch.randn_like(tensor))
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                tensor.copy_(
                    torch.randn_like(tensor) / fan_in**0.5
                    if tensor.dim() > 1
                    else 0.1 * torch.randn_like(tensor)
                )
    return net.eval()


def test_arch_dicts_are_ofas_own():
    arch = SPACE.sample(np.random.default_rng(0))
    assert (len(arch["d"]), len(arch["e"]), len(arch["w"])) == (5, 18, 6)
    ofa_form = {"d": arch["d"], "e": arch["e"], "w": arch["w"], "image_size": arch["r"]}
    assert SPACE.validate(ofa_form) == arch
    genes = SPACE.encode([SPACE.validate({**arch, "r": 224})])
    assert genes.shape == (1, 30) and SPACE.decode(genes)[0] == SPACE.validate({**arch, "r": 224})
    with pytest.raises(ArchError, match=r"field 'w'\[0\] = 3 is not one of \[0, 1, 2\]"):
        SPACE.validate({**arch, "r": 224, "w": [3, 0, 0, 0, 0, 0]})
    child = SPACE.mutate({**arch, "r": 224}, np.random.default_rng(1), prob=0.5)
    assert SPACE.validate(child) == child


def test_layout_matches_ofas_state_dict(ofa_importable):
    ofa_shapes = {k: tuple(v.shape) for k, v in ofa_resnet50().state_dict().items()}
    assert ofa_shapes == supernet_layout(SPACE)


def test_static_module_equals_ofas_active_subnet(ofa_importable):
    """8 random subnets (odd feature sizes included): our module == OFA's get_active_subnet."""
    net = ofa_resnet50(seed=1)
    weights = SupernetWeights.from_state_dict(net.state_dict(), SPACE, source="OFAResNets")
    rng = np.random.default_rng(2)
    for arch in SPACE.sample(rng, 8):
        arch["r"] = int(rng.choice([128, 144, 148, 164]))  # 148, 164: odd feature maps in the later stages
        net.set_active_subnet(d=arch["d"], e=arch["e"], w=arch["w"])
        reference = net.get_active_subnet(preserve_weight=True).eval()
        ours = build_model(SPACE, arch).eval()
        ours.load_state_dict(weights.extract(arch), strict=True)
        x = torch.randn(2, 3, arch["r"], arch["r"], generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            want, got = reference(x), ours(x)
        assert torch.allclose(got, want, atol=1e-4, rtol=0), (arch, float((got - want).abs().max()))


def test_keys_cover_every_subnet():
    keys = set(space_keys(SPACE, [160]))
    for arch in SPACE.sample(np.random.default_rng(5), 50):
        arch["r"] = 160
        assert set(build_netspec(SPACE, arch).keys) <= keys
    arch = {"d": [0, 0, 0, 0, 0], "e": [0.2] * 18, "w": [0] * 6, "r": 224}
    ns = build_netspec(SPACE, arch)
    # w 0.65: stem 64·0.65 → 40, its half → 24; stage 1 256·0.65 → 168, middle round(168·0.2) → 32;
    # stage 4 2048·0.65 → 1328.
    assert ns.keys[:4] == [
        "Conv-input:224x224x3-output:112x112x24",
        "Conv_1-input:112x112x24-output:112x112x40",
        "MaxPool-input:112x112x40-output:56x56x40",
        "bottleneck-input:56x56x40-output:56x56x168-mid:32-stride:1-downsample:1",
    ]
    assert ns.keys[-1] == "Logits-input:7x7x1328-output:1000"


def test_onnx_export_and_dnndk_caffe_refusal(tmp_path):
    """ONNX carries the subnet exactly; Caffe's ceil-mode pooling cannot express OFA's stem max-pool."""
    from ofa_hw.export.caffe import CaffeExportError, to_caffe
    from ofa_hw.export.onnx import check_onnx, export_onnx

    arch = SPACE.sample(np.random.default_rng(1))
    arch["r"] = 160
    model = build_model(SPACE, arch).eval()
    assert check_onnx(model, export_onnx(model, tmp_path / "r50.onnx", 160), 160) < 1e-4
    with pytest.raises(
        CaffeExportError, match=r"Caffe pooling would give \(41, 41\), torch gives \(40, 40\)"
    ):
        to_caffe(model, name="net")


def test_simulator_compiles_a_resnet_subnet():
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.sim import compile_net

    arch = SPACE.sample(np.random.default_rng(2))
    arch["r"] = 224
    ns = build_netspec(SPACE, arch)
    cn = compile_net(ns, DPUConfig.from_preset("zcu102_b4096"))
    assert len(cn.subgraphs) == 1 and not cn.cpu_parts
    assert sum(n.workload_mop for n in cn.nodes) == pytest.approx(2 * ns.macs / 1e6)


def test_generated_xmodel_quantize_script_rebuilds_a_resnet_subnet(tmp_path):
    import importlib.util

    from ofa_hw.export.xmodel import write_quantize_script

    arch = SPACE.sample(np.random.default_rng(3))
    arch["r"] = 128
    model = build_model(SPACE, arch, "x").eval()
    script, weights = write_quantize_script(model.netspec, model, tmp_path, calib_iter=2)
    spec = importlib.util.spec_from_file_location("generated_quantize_r50", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    clone = mod.OFASubnet(mod.SPEC)
    clone.load_state_dict(torch.load(weights))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(clone.eval()(x), model(x), atol=1e-5)


def test_deploy_task_measures_a_resnet_subnet_on_the_simulator(tmp_path, monkeypatch):
    import json

    from conftest import compose

    from ofa_hw.tasks.deploy import run

    monkeypatch.chdir(tmp_path)
    run(compose(["task=deploy", "space=ofa_resnet50", "task.random=true"], workspace=tmp_path / "ws"))
    deploy = json.loads((tmp_path / "outputs" / "adhoc" / "results.json").read_text())["deploy"]
    assert deploy["status"] == "ok" and deploy["total_ms"] > 0 and deploy["nodes"] > 40


def test_every_resnet50_op_runs_on_the_zcu102_dpu():
    """The LUT stages accept the space (issue 19): the largest subnet has no CPU part under DNNDK and no
    cell of the space violates a compile limit (so the LUT needs no ``inf`` cells)."""
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut.build import check_dpu_only
    from ofa_hw.lut.plan import dpu_compile_check
    from ofa_hw.lut.plan_resnet import resnet_uncompilable

    dpu = DPUConfig.from_preset("zcu102_b4096")
    check_dpu_only(SPACE, dpu)  # raises on CPU subgraphs
    assert resnet_uncompilable(SPACE, [128, 224], dpu_compile_check(dpu)) == set()


def test_supernet_accuracy_model_on_an_ofa_resnet50_checkpoint(tmp_path, ofa_importable):
    """``accuracy=supernet`` with OFA's ResNet-50 checkpoint (OFA's flat names): its subnet is OFA's."""
    from PIL import Image

    from ofa_hw.accuracy.imagefolder import ImageFolder
    from ofa_hw.accuracy.supernet import SupernetAccuracyModel

    net = ofa_resnet50(seed=7)
    flat = {
        k.replace(".bn.bn.", ".bn.")
        .replace(".conv.conv.weight", ".conv.weight")
        .replace(".linear.linear.", ".linear."): v
        for k, v in net.state_dict().items()
    }
    path = tmp_path / "ofa_resnet50.pth"
    torch.save({"state_dict": flat}, path)
    rng = np.random.default_rng(0)
    for name in ("n01", "n02"):
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)).save(
            tmp_path / "val" / name / "0.png"
        )
    model = SupernetAccuracyModel(
        SPACE,
        SupernetWeights.load(path, SPACE),
        ImageFolder.scan(tmp_path / "val"),
        calib_images=2,
        batch_size=2,
        workers=1,
        threads=1,
    )
    arch = SPACE.sample(np.random.default_rng(8))
    arch["r"] = 128
    net.set_active_subnet(d=arch["d"], e=arch["e"], w=arch["w"])
    reference = net.get_active_subnet(preserve_weight=True).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(model.subnet(arch)(x), reference(x), atol=1e-4, rtol=0)
    assert model.evaluate(arch).n_images == 2
