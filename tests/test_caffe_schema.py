"""Exported Caffe files against Xilinx's real schema, through protobuf's own compiler and parsers.

The exporter, the fake tools and the reference interpreter all read our ``ofa_hw/export/caffe.proto``,
so checking the files with it proves only self-consistency. Here Xilinx's ``caffe.proto`` (the one
``vai_q_caffe``/``vai_c_caffe`` of Vitis-AI 1.x read, ``tests/data/real_tool_outputs/``) is compiled by
``protoc`` (grpcio-tools) into a descriptor set, and every kind of file the exporter writes must parse
with it: the prototxt with protobuf's strict text parser (an unknown field name fails), the caffemodel
with the binary parser and no field left unknown (a field number Xilinx's schema does not have), and
both must read back identically under either schema (same number → same name and type).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.nets import random_subnet
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

from ofa_hw.export.caffe import CaffeExportError, save_caffe, to_caffe, with_image_data
from ofa_hw.export.caffe_deploy import remove_redundant_input
from ofa_hw.export.caffe_pb import pb
from ofa_hw.space import PRESETS

REAL_PROTO = Path(__file__).parent / "data" / "real_tool_outputs" / "caffe_xilinx_vai1.2_caffe.proto"


@pytest.fixture(scope="module")
def xilinx_net(tmp_path_factory) -> type[Message]:
    """``caffe.NetParameter`` compiled by protoc from Xilinx's schema (not by our proto reader)."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("schema") / "caffe_xilinx.pb"
    status = protoc.main(
        ["protoc", f"--proto_path={REAL_PROTO.parent}", f"--descriptor_set_out={out}", REAL_PROTO.name]
    )
    assert status == 0, "protoc could not compile Xilinx's caffe.proto"
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


def _unknown_fields(msg: Message, path: str = "") -> list[str]:
    """Paths of every field the parser did not recognise, in ``msg`` and its sub-messages."""
    from google.protobuf.unknown_fields import UnknownFieldSet

    found = [f"{path or msg.DESCRIPTOR.name}: field #{u.field_number}" for u in UnknownFieldSet(msg)]
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        items = value if field.is_repeated else [value]
        for i, item in enumerate(items):
            found += _unknown_fields(item, f"{path}.{field.name}[{i}]")
    return found


def _layers(net: Message) -> list[tuple[str, str, list[tuple[int, ...]]]]:
    """Name, type and blob shapes of every layer (the weights' text form would be megabytes)."""
    return [(layer.name, layer.type, [tuple(b.shape.dim) for b in layer.blobs]) for layer in net.layer]


def _check(prototxt: Path, caffemodel: Path | None, xilinx_net: type[Message]) -> None:
    real = xilinx_net()
    text_format.Parse(prototxt.read_text(), real)  # strict: an unknown field or enum value raises
    ours = pb.NetParameter()
    text_format.Parse(prototxt.read_text(), ours)
    assert text_format.MessageToString(real) == text_format.MessageToString(ours)
    assert not _unknown_fields(real)
    if caffemodel is None:
        return
    blob = caffemodel.read_bytes()
    real_w = xilinx_net.FromString(blob)
    assert not _unknown_fields(real_w), _unknown_fields(real_w)[:5]
    assert real_w.SerializeToString() == blob  # nothing dropped or rewritten on the way
    assert _layers(real_w) == _layers(pb.NetParameter.FromString(blob))
    assert sum(len(layer.blobs) for layer in real_w.layer) > 0  # the weights are really there


@pytest.mark.parametrize("bn", ["scale", "fold"])
# MobileNetV3's h-swish and squeeze-excite have no DNNDK Caffe layer: their export is refused
# (tests/test_mbv3.py::test_dnndk_caffe_export_refuses_hswish_in_one_line).
@pytest.mark.parametrize("space_name", sorted(n for n, s in PRESETS.items() if s.family != "mbv3"))
def test_exported_subnets_parse_with_xilinx_schema(space_name, bn, xilinx_net, tmp_path):
    space = PRESETS[space_name]
    model, _ = random_subnet(space, seed=3, r=min(space.resolutions), name="net")
    try:
        net = to_caffe(model, name="net", bn=bn)
    except CaffeExportError as exc:  # a space the DNNDK Caffe flow cannot express is refused, by name
        assert "XIR flow" in str(exc), exc
        return
    proto, weights = save_caffe(net, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    _check(proto, weights, xilinx_net)


def test_quantizer_input_and_deploy_files_parse_with_xilinx_schema(xilinx_net, tmp_path):
    """The ImageData variant ``vai_q_caffe`` quantizes, and a deploy file after the input-layer surgery."""
    space = PRESETS["proxyless_w05"]
    model, _ = random_subnet(space, seed=5, r=min(space.resolutions), name="net")
    net = with_image_data(
        to_caffe(model, name="net"), "calib.txt", "images/", mean_value=(104.0, 117.0, 123.0)
    )
    proto, weights = save_caffe(net, tmp_path / "q.prototxt", tmp_path / "q.caffemodel")
    _check(proto, weights, xilinx_net)
    real = xilinx_net()
    text_format.Parse(proto.read_text(), real)
    assert real.layer[0].type == "ImageData" and real.layer[0].image_data_param.source == "calib.txt"

    deploy = tmp_path / "deploy.prototxt"
    text = save_caffe(to_caffe(model, name="net"), deploy, tmp_path / "d.caffemodel")[0].read_text()
    # vai_q_caffe's deploy file may carry a redundant `input:` header before the Input layer
    deploy.write_text(
        'name: "net"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 128 dim: 128 }\n'
        + text.split("\n", 1)[1]
    )
    _check(deploy, None, xilinx_net)
    remove_redundant_input(deploy)
    _check(deploy, None, xilinx_net)
