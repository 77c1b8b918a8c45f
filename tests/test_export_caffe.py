"""Caffe export: schema wire format, structure, numerics against torch, deploy-file surgery."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes.nets import random_subnet, randomize_
from google.protobuf import text_format
from torch import nn

from ofa_hw.export import refnet
from ofa_hw.export.caffe import (
    CaffeExportError,
    load_caffe,
    read_prototxt,
    save_caffe,
    to_caffe,
    with_image_data,
)
from ofa_hw.export.caffe_deploy import remove_redundant_input
from ofa_hw.export.caffe_pb import ProtoSyntaxError, parse_proto, pb
from ofa_hw.space import get_space
from ofa_hw.torchnet import build_model


def _torch(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).double().numpy()


def test_wire_format_uses_bvlc_field_numbers():
    """Known bytes: NetParameter.name = 1, .layer = 100; LayerParameter.name = 1, .type = 2,
    .convolution_param = 106; ConvolutionParameter.num_output = 1; BlobProto.data = 5 packed, shape = 7."""
    net = pb.NetParameter(name="n")
    layer = net.layer.add(name="c", type="T")
    layer.convolution_param.num_output = 3
    blob = layer.blobs.add()
    blob.shape.dim.append(1)
    blob.data.append(1.0)
    inner = (
        b"\x0a\x01c"
        + b"\x12\x01T"
        + b"\x3a\x0b"
        + b"\x2a\x04\x00\x00\x80\x3f"
        + b"\x3a\x03\x0a\x01\x01"
        + b"\xd2\x06\x02\x08\x03"
    )
    assert net.SerializeToString() == b"\x0a\x01n" + b"\xa2\x06" + bytes([len(inner)]) + inner
    assert pb.LayerParameter.DESCRIPTOR.fields_by_name["batch_norm_param"].number == 139
    assert pb.LayerParameter.DESCRIPTOR.fields_by_name["input_param"].number == 143
    assert pb.LayerParameter.DESCRIPTOR.fields_by_name["scale_param"].number == 142
    assert pb.LayerParameter.DESCRIPTOR.fields_by_name["pooling_param"].number == 121
    assert pb.BatchNormParameter().eps == pytest.approx(1e-5)
    assert pb.ConvolutionParameter().bias_term is True


def test_proto_parser_errors_name_the_line():
    with pytest.raises(ProtoSyntaxError, match=r"x.proto:3"):
        parse_proto('syntax = "proto2";\nmessage A {\n  optional Missing m = 1;\n}\n', "x.proto")
    with pytest.raises(ProtoSyntaxError, match=r"x.proto:2"):
        parse_proto('syntax = "proto2";\nmessage A { optional int32 a = 1 [weird = 2]; }', "x.proto")


@pytest.mark.parametrize(
    "space_name,seed,bn,r",
    [
        ("proxyless_w05", 0, "scale", 160),
        ("proxyless_w05", 1, "fold", 128),
        ("ofa_proxyless_w13", 2, "scale", 128),
        ("ofa_proxyless_w13", 3, "fold", 224),
    ],
)
def test_exported_files_run_like_torch(tmp_path, space_name, seed, bn, r):
    model, arch = random_subnet(get_space(space_name), seed, r=r, name="t")
    net = to_caffe(model, name="tnet", bn=bn)
    proto, weights = save_caffe(net, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    back = load_caffe(proto, weights)  # read back with protobuf, from the files
    x = np.random.default_rng(seed).standard_normal((1, 3, arch["r"], arch["r"])).astype(np.float32)
    out = refnet.forward(back, x)
    assert out.shape == (1, 1000)
    assert np.max(np.abs(out - _torch(model, x))) <= 1e-4
    # The prototxt is structure only; the weights live in the caffemodel.
    assert all(len(layer.blobs) == 0 for layer in read_prototxt(proto).layer)


def test_layers_as_the_seed_converter_named_them_with_relu6_kept():
    space = get_space("proxyless_w05")
    model = build_model(space, space.named_arch("proxyless_mobile_05"), "proxylessmobile05")
    net = to_caffe(model, name="proxylessmobile05")
    ns = model.netspec
    by_type: dict[str, list] = {}
    for layer in net.layer:
        by_type.setdefault(layer.type, []).append(layer)
    assert net.layer[0].type == "Input" and list(net.layer[0].input_param.shape[0].dim) == [1, 3, 224, 224]
    conv_names = [
        f"proxylessmobile05_{layer.name}" for layer in ns.layers if layer.kind in ("conv", "dwconv")
    ]
    assert [layer.name for layer in by_type["Convolution"]] == conv_names
    n_relu6 = sum(1 for layer in ns.layers if layer.act == "relu6")
    assert len(by_type["ReLU6"]) == n_relu6 and all(layer.bottom == layer.top for layer in by_type["ReLU6"])
    n_res = sum(1 for layer in ns.layers if layer.residual)
    assert [layer.name for layer in by_type["Eltwise"]] == [
        f"proxylessmobile05_add_{i}" for i in range(1, n_res + 1)
    ]
    assert all(layer.eltwise_param.operation == pb.EltwiseParameter.SUM for layer in by_type["Eltwise"])
    assert len(by_type["BatchNorm"]) == len(by_type["Scale"]) == len(conv_names)
    (pool,) = by_type["Pooling"]
    assert pool.pooling_param.pool == pb.PoolingParameter.AVE and pool.pooling_param.global_pooling
    types = [layer.type for layer in net.layer]
    assert (
        types[-3:] == ["Pooling", "Flatten", "InnerProduct"]
        and net.layer[-1].name == "proxylessmobile05_fc_1"
    )
    # depthwise = grouped conv with group == channels
    dw = next(layer for layer in ns.layers if layer.kind == "dwconv")
    conv = next(c for c in by_type["Convolution"] if c.name.endswith(f"_{dw.name}"))
    assert conv.convolution_param.group == dw.groups == conv.convolution_param.num_output


def test_check_fails_when_relu6_is_dropped(tmp_path):
    """What the seed's converter did (in-place activations lost) is caught by the numeric check."""
    model, _ = random_subnet(get_space("proxyless_w05"), 7, r=128)
    net = to_caffe(model, name="t")
    kept = [layer for layer in net.layer if layer.type != "ReLU6"]
    del net.layer[:]
    net.layer.extend(kept)
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32) * 3
    assert np.max(np.abs(refnet.forward(net, x) - _torch(model, x))) > 1e-3


class _PlainCNN(nn.Module):
    """A non-OFA CNN: max/avg pooling windows, functional activations, a shortcut, nn.Flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(8, 8, (3, 5), padding=(1, 2), bias=False)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x)))
        x = self.pool(x)
        y = F.relu6(self.c2(x))
        x = self.avg(x + y)
        return self.fc(self.drop(self.flat(self.gap(x))))


def test_plain_cnn(tmp_path):
    torch.manual_seed(0)
    model = randomize_(_PlainCNN())
    for bn in ("scale", "fold"):
        net = to_caffe(model, (2, 3, 16, 16), name="plain", bn=bn)
        proto, weights = save_caffe(net, tmp_path / f"{bn}.prototxt", tmp_path / f"{bn}.caffemodel")
        x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
        assert np.max(np.abs(refnet.forward(load_caffe(proto, weights), x) - _torch(model, x))) <= 1e-4
    names = [layer.name for layer in net.layer]
    assert "plain_conv_2" in names and "plain_add_1" in names and names[-1] == "plain_fc_1"


def test_unsupported_operators_are_named():
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.Sigmoid()

        def forward(self, x):
            return self.act(self.conv(x))

    with pytest.raises(CaffeExportError, match="Sigmoid"):
        to_caffe(Bad(), (1, 3, 8, 8))

    class Floor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.MaxPool2d(2)  # 7x7 -> torch floors to 3, Caffe would ceil to 4

        def forward(self, x):
            return self.pool(x)

    with pytest.raises(CaffeExportError, match="Caffe pooling would give"):
        to_caffe(Floor(), (1, 3, 7, 7))
    with pytest.raises(ValueError, match="alphanumeric"):
        to_caffe(Floor(), (1, 3, 8, 8), name="a;rm -rf ~")


def test_image_data_input_for_calibration():
    model, _ = random_subnet(get_space("proxyless_w05"), 0, r=128)
    net = with_image_data(to_caffe(model, name="t"), "calib/list.txt", "calib/", batch_size=4)
    first = net.layer[0]
    assert first.type == "ImageData" and first.top[0] == "data"
    assert (first.image_data_param.new_height, first.image_data_param.batch_size) == (128, 4)
    assert [layer.type for layer in net.layer].count("Input") == 0
    assert net.layer[1].bottom[0] == "data"


DEPLOY = """name: "n"  # a comment { with a brace
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
}
layer { name: "data_dup" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "input_1" type: "Input" top: "input_1" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer {
  name: "n_conv_1"
  type: "Convolution"
  bottom: "data"
  top: "n_conv_1"
  quant_param { bw_layer_out: 8 note: "}" }
  convolution_param { num_output: 4 kernel_size: 1 }
}
"""


def test_remove_redundant_input(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    removed = remove_redundant_input(path)
    assert (
        len(removed) == 4 and any("data_dup" in r for r in removed) and any("input_1" in r for r in removed)
    )
    text = path.read_text()
    assert text.count('type: "Input"') == 1 and "input_shape" not in text
    assert 'quant_param { bw_layer_out: 8 note: "}" }' in text  # unknown Xilinx fields kept verbatim
    assert (tmp_path / "deploy.prototxt.orig").read_text() == DEPLOY
    assert remove_redundant_input(path) == []  # idempotent
    # the remaining file parses (unknown fields aside) and still has its input
    net = pb.NetParameter()
    text_format.Parse(text, net, allow_unknown_field=True)
    assert [layer.name for layer in net.layer] == ["data", "n_conv_1"]


def test_remove_redundant_input_keeps_the_only_input(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(
        'input: "data"\ninput_dim: 1\nlayer { name: "c" type: "ReLU" bottom: "data" top: "data" }\n'
    )
    assert remove_redundant_input(path) == []
    path.write_text('layer { name: "c" type: "ReLU" bottom: "data" top: "data" \n')
    with pytest.raises(ValueError, match="unbalanced"):
        remove_redundant_input(path)
