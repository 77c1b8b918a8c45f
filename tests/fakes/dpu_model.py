"""The fake tools' DPU: the simulator rendering the network a fake compiler was actually given.

A fake compiler never replays a recording of another network. ``vai_c_caffe`` reads the deploy
prototxt it was given (:func:`caffe_ops`), ``vai_c_xir`` the operator list the fake quantizer traced
from the module it was given; both compile those operators with the simulator's VAI_C emulation
(:func:`ofa_hw.sim.compiler.compile_ops`) and time them with its timing model, on the DPU preset
``$FAKE_DPU_PRESET`` (default ``zcu102_b4096``: the board the fakes stand for). Printed layouts are
the real tools' (N2Cube's title-first table; vaitrace's txt writer), see ``tests/data/real_tool_outputs``.

XIR naming: a DPU subgraph is named ``subgraph_`` + the quantizer's node name with ``::``, ``/``,
``[``, ``]`` and ``.`` replaced by ``_`` — the form of the real example
``subgraph_ResNet__ResNet_Sequential_layer2__Bottleneck_2__Conv2d_conv1__input_52`` (Xilinx/Vitis-AI
#1202). The node name of a module's op is ``<Root>::<Root>/<Class>[name]/…/input.<n>``; of a functional
op in the root's ``forward``, ``<Root>::<Root>/input.<n>``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from ofa_hw.dpu import DPUConfig
from ofa_hw.frontends.ops import Op
from ofa_hw.sim.compiler import compile_ops
from ofa_hw.sim.timing import kernel_info_text, node_times_ms, profile_from_times

#: vaitrace's SW_RT minus HW_RT of the Ultra96 blocks (0.055–0.07 ms, ``shared/data/ultra96_b2304``).
SOFTWARE_MS = 0.06


def dpu(toolchain: str | None = None) -> DPUConfig:
    """The DPU the fakes stand for (``$FAKE_DPU_PRESET``), with the compiler generation of ``toolchain``."""
    config = DPUConfig.from_preset(os.environ.get("FAKE_DPU_PRESET", "zcu102_b4096"))
    return dataclasses.replace(config, toolchain=toolchain) if toolchain else config


# ------------------------------------------------------------------------------------------ Caffe
def caffe_ops(net: Any) -> tuple[list[Op], tuple[int, int, int]]:
    """The operators of a deploy prototxt (``NetParameter``), BN/Scale/ReLU folded like the compiler does."""
    ops: list[Op] = []
    producer: dict[str, int] = {}
    shape: dict[str, tuple[int, int, int]] = {}
    input_shape = (3, 0, 0)
    for layer in net.layer:
        t, bottoms = layer.type, list(layer.bottom)
        if t == "Input":
            dims = list(layer.input_param.shape[0].dim)
            input_shape = (int(dims[1]), int(dims[2]), int(dims[3]))
            shape[layer.top[0]], producer[layer.top[0]] = input_shape, -1
            continue
        c, h, w = shape[bottoms[0]]
        src = producer[bottoms[0]]
        if t in ("BatchNorm", "Scale", "ReLU", "ReLU6", "Flatten"):  # in place or folded into the producer
            if t in ("ReLU", "ReLU6") and src >= 0:
                act = "relu6" if t == "ReLU6" or layer.relu_param.negative_slope else "relu"
                ops[src] = dataclasses.replace(ops[src], act=act)
            out = (c * h * w, 1, 1) if t == "Flatten" else (c, h, w)
            shape[layer.top[0]], producer[layer.top[0]] = out, src
            continue
        fields: dict[str, Any] = {"in_h": h, "in_w": w, "in_c": c, "inputs": (src,)}
        if t == "Convolution":
            p = layer.convolution_param
            k = int(p.kernel_size[0]) if p.kernel_size else int(p.kernel_h)
            s = int(p.stride[0]) if p.stride else 1
            pad = int(p.pad[0]) if p.pad else 0
            groups = int(p.group) or 1
            oh = (h + 2 * pad - k) // s + 1
            kind = "dwconv" if groups > 1 and groups == c == p.num_output else "conv"
            out = (int(p.num_output), oh, oh)
            fields.update(kh=k, kw=k, stride=s, groups=groups)
        elif t == "InnerProduct":
            kind, out = "fc", (int(layer.inner_product_param.num_output), 1, 1)
        elif t == "Eltwise":
            kind, out = "add", (c, h, w)
            fields["inputs"] = tuple(producer[b] for b in bottoms)
        elif t == "Pooling" and layer.pooling_param.global_pooling:
            kind, out = "gap", (c, 1, 1)
            fields.update(kh=h, kw=w)
        else:
            kind, out = "cpu", (c, h, w)
        op = Op(len(ops), layer.name, kind, out_c=out[0], out_h=out[1], out_w=out[2], **fields)
        ops.append(op)
        shape[layer.top[0]], producer[layer.top[0]] = out, op.index
    return ops, input_shape


def dnndk_profile_text(net: Any, kernel: str, runs: int = 1) -> tuple[str, str]:
    """``(N2Cube profile table, VAI_C kernel list)`` of the deploy prototxt ``net`` compiled as ``kernel``."""
    ops, input_shape = caffe_ops(net)
    config = dpu("dnndk")
    cn = compile_ops(ops, config, kernel, input_shape)
    # DNNC names a node after its first layer (the exporter names layers <net>_conv_<i>)
    nodes = tuple(dataclasses.replace(n, name=ops[n.ops[0]].name) for n in cn.nodes)
    cn = dataclasses.replace(cn, nodes=nodes)
    prof = profile_from_times(cn, config, node_times_ms(cn, config), runs=runs, seed=0)
    return prof.to_dnndk_text(), kernel_info_text(cn)


# ------------------------------------------------------------------------------------------ XIR
def xir_name(node_name: str) -> str:
    """An XIR subgraph name from a quantizer node name (the real example's character mapping)."""
    for old in ("::", "/", "[", "]", "."):
        node_name = node_name.replace(old, "__" if old == "::" else "_")
    return f"subgraph_{node_name}"


def op_to_dict(op: Op) -> dict[str, Any]:
    return dataclasses.asdict(op)


def op_from_dict(d: dict[str, Any]) -> Op:
    d = dict(d)
    d["inputs"], d["layers"] = tuple(d["inputs"]), tuple(d["layers"])
    return Op(**d)


def _row(name: str, workload_mop: float, hw_ms: float, mem_mb: float) -> dict[str, Any]:
    return {"name": name, "workload_gop": workload_mop / 1000.0, "hw_ms": hw_ms, "mem_mb": mem_mb}


def xir_compile(ops: list[Op], scopes: list[str], input_shape: tuple[int, int, int], net: str) -> dict:
    """The subgraphs of a compiled xmodel: the whole network fused into DPU subgraphs (normal mode),
    and one row per DPU layer compiled on its own with fusion off (what debug mode / fine-grained runs).

    Args:
        ops: The quantizer's operators (torch.fx trace of the module it was given).
        scopes: The quantizer node name of each op.
        input_shape: ``(C, H, W)``.
        net: ``--net_name``.
    """
    config = dpu("xir")
    cn = compile_ops(ops, config, net, input_shape)
    times = node_times_ms(cn, config)
    prof = profile_from_times(cn, config, times, runs=1, seed=0)
    mem = prof.nodes["mem_mb"].to_numpy(dtype=float)
    subgraphs = []
    for part in cn.dpu_parts:
        idx = [i - 1 for i in part.nodes]
        first = cn.nodes[idx[0]].ops[0]
        work = sum(cn.nodes[i].workload_mop for i in idx)
        subgraphs.append(_row(xir_name(scopes[first]), work, float(times[idx].sum()), float(mem[idx].sum())))
    layers = []
    for node in cn.nodes:
        for j in node.ops:
            op = ops[j]
            alone = dataclasses.replace(op, index=0, inputs=(-1,) if op.kind != "add" else (-1, -1))
            one = compile_ops([alone], config, net, (op.in_c, op.in_h, op.in_w))
            t = float(node_times_ms(one, config).sum())
            p = profile_from_times(one, config, np.array([t]), runs=1, seed=0)
            layers.append(_row(xir_name(scopes[j]), one.workload_mop, t, float(p.nodes["mem_mb"].sum())))
    return {"subgraphs": subgraphs, "layers": layers, "cpu_parts": len(cn.cpu_parts)}
