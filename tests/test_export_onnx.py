"""ONNX export of random subnets of both spaces, checked against torch with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from fakes.nets import random_subnet

from ofa_hw.export.onnx import check_onnx, export_onnx, run_onnx
from ofa_hw.space import get_space


@pytest.mark.parametrize(
    "space_name,seed",
    [("ofa_proxyless_w13", 0), ("ofa_proxyless_w13", 1), ("proxyless_w05", 2), ("proxyless_w05", 3)],
)
def test_onnx_matches_torch(tmp_path, space_name, seed):
    space = get_space(space_name)
    model, arch = random_subnet(space, seed)
    path = export_onnx(model, tmp_path / "net.onnx", arch["r"])
    diff = check_onnx(model, path, arch["r"], seed=seed)
    assert diff <= 1e-4
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["data"]
    assert [o.name for o in graph.output] == ["logits"]
    # Every conv of the netspec is in the graph (BN folded into it by constant folding or kept).
    n_conv = sum(1 for n in graph.node if n.op_type == "Conv")
    assert n_conv == sum(1 for layer in model.netspec.layers if layer.kind in ("conv", "dwconv"))


def test_check_detects_a_wrong_file(tmp_path):
    """The check compares against the model it is given: a different model gives a large difference."""
    space = get_space("proxyless_w05")
    model, _ = random_subnet(space, 4, r=128)
    path = export_onnx(model, tmp_path / "net.onnx", 128)
    with torch.no_grad():
        model.layers["fc_1"].bias.add_(1.0)
    assert check_onnx(model, path, 128) > 0.5


def test_named_seed_net_outputs(tmp_path):
    space = get_space("proxyless_w05")
    from ofa_hw.torchnet import build_model

    arch = space.named_arch("proxyless_mobile_05")
    model = build_model(space, arch, "proxylessmobile05").eval()
    path = export_onnx(model, tmp_path / "seed.onnx", 224)
    x = np.zeros((1, 3, 224, 224), np.float32)
    assert run_onnx(path, x).shape == (1, 1000)


@pytest.mark.slow
def test_dynamo_exporter(tmp_path):
    """The torch.export-based exporter gives the same numbers (kept working for future torch)."""
    space = get_space("proxyless_w05")
    model, _ = random_subnet(space, 5, r=128)
    path = export_onnx(model, tmp_path / "net.onnx", 128, dynamo=True)
    assert check_onnx(model, path, 128) <= 1e-4
