"""torch.fx front end: a PyTorch CNN → the compiler's :class:`~ofa_hw.frontends.ops.Op` list.

Supported DPU operators: ``Conv2d`` (dense, grouped, depthwise), ``ConvTranspose2d``, ``BatchNorm2d``
(folded into the conv before it), ReLU / ReLU6 / LeakyReLU (module or functional; folded into their
producer), max / average / adaptive-average (global) pooling, ``Linear``, flatten / view / reshape,
dropout / identity (no-ops), residual ``add``, channel ``cat``, and (DPU IP v4.x) hard-swish /
hard-sigmoid (``nn.Hardswish``, ``nn.Hardsigmoid``) and the element-wise ``mul`` of squeeze-excite. Anything else becomes a CPU op,
which splits the network into DPU and CPU kernels as VAI_C does. Ops are named the way the Caffe
converter names layers (``conv_1`` …, ``fc_1``, ``pool_1``, ``add_1``, ``concat_1``), so node names
look like a real DNNDK profile's.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ofa_hw.frontends.ops import Op, fold_into

#: Held by every torch.fx trace + shape propagation of the package. While ``fx.symbolic_trace`` runs it
#: patches ``torch.nn.Module.__call__`` process-wide, so a trace or a ShapeProp forward in another
#: thread fails ("module is not installed as a submodule"): the Vitis backends export on
#: ``compile_jobs`` threads.
FX_LOCK = threading.RLock()

_PASSTHROUGH_MODULES = (nn.Flatten, nn.Dropout, nn.Identity)
_PASSTHROUGH_FUNCS = {torch.flatten, F.dropout}
_PASSTHROUGH_METHODS = {"flatten", "view", "reshape", "contiguous", "squeeze"}
_ACT_MODULES = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.LeakyReLU: "leakyrelu",
    nn.Hardswish: "hswish",
    nn.Hardsigmoid: "hsigmoid",
}
_ACT_FUNCS = {
    F.relu: "relu",
    torch.relu: "relu",
    F.relu6: "relu6",
    F.leaky_relu: "leakyrelu",
    F.hardswish: "hswish",
    F.hardsigmoid: "hsigmoid",
}
_ACT_METHODS = {"relu": "relu"}


def _shape(node: fx.Node) -> tuple[int, int, int]:
    """(C, H, W) of a node's output (2-D outputs are (features, 1, 1))."""
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise ValueError(
            f"trace: no tensor shape for node {node.name!r} (multiple outputs are not supported)"
        )
    s = tuple(meta.shape)
    if len(s) == 4:
        return int(s[1]), int(s[2]), int(s[3])
    if len(s) == 2:
        return int(s[1]), 1, 1
    raise ValueError(
        f"trace: node {node.name!r} has a {len(s)}-D output {s}; the DPU takes NCHW or NC tensors"
    )


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


class _Tracer:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.of: dict[fx.Node, int] = {}  # fx node -> op index (-1: network input)
        self.counts: dict[str, int] = {}

    def name(self, family: str) -> str:
        self.counts[family] = self.counts.get(family, 0) + 1
        return f"{family}_{self.counts[family]}"

    def src(self, node: fx.Node) -> list[int]:
        return [self.of[a] for a in node.all_input_nodes if a in self.of]

    def add(self, node: fx.Node, family: str, kind: str, inputs: list[int], **kw) -> None:
        first = node.all_input_nodes[0]
        c_in, h_in, w_in = _shape(first)
        c, h, w = _shape(node)
        fields: dict[str, Any] = dict(in_h=h_in, in_w=w_in, in_c=c_in, out_h=h, out_w=w, out_c=c)
        fields.update(kw)
        op = Op(index=len(self.ops), name=self.name(family), kind=kind, inputs=tuple(inputs), **fields)
        self.ops.append(op)
        self.of[node] = op.index

    def fold(self, node: fx.Node, **changes) -> bool:
        """Fold BN / an activation into the single-user op producing its input."""
        (producer,) = node.all_input_nodes[:1]
        idx = self.of.get(producer, -1)
        if idx < 0 or len(producer.users) != 1:
            return False
        folded = fold_into(self.ops[idx], **changes)
        if folded is None:
            return False
        self.ops[idx] = folded
        self.of[node] = idx
        return True


def trace_ops(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[Op], tuple[int, int, int]]:
    """Trace ``model`` with torch.fx at ``input_shape`` ((N,)C,H,W) and return its ops and (C, H, W)."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"trace: input_shape must be (N, C, H, W) or (C, H, W), got {input_shape}")
    model = model.eval()
    with FX_LOCK, torch.no_grad():
        gm = fx.symbolic_trace(model)
        ShapeProp(gm).propagate(torch.zeros(shape))
    modules = dict(gm.named_modules())
    t = _Tracer()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            t.of[node] = -1
            continue
        if node.op == "output":
            continue
        if node.op == "get_attr":
            raise ValueError(f"trace: parameter access {node.target!r} in forward is not a DPU operator")
        mod = modules.get(node.target) if node.op == "call_module" else None
        fn = node.target if node.op == "call_function" else None
        meth = node.target if node.op == "call_method" else None
        ins = t.src(node)
        if isinstance(mod, _PASSTHROUGH_MODULES) or fn in _PASSTHROUGH_FUNCS or meth in _PASSTHROUGH_METHODS:
            t.of[node] = t.of[node.all_input_nodes[0]]
            continue
        act = None
        if mod is not None and type(mod) in _ACT_MODULES:
            act = _ACT_MODULES[type(mod)]
        elif fn in _ACT_FUNCS:
            act = _ACT_FUNCS[fn]
        elif fn is F.hardtanh and node.args[1:3] == (0.0, 6.0):
            act = "relu6"
        elif meth in _ACT_METHODS:
            act = _ACT_METHODS[meth]
        if act is not None:
            if not t.fold(node, act=act):
                t.add(node, "relu", "act", ins, act=act)
            continue
        if isinstance(mod, nn.BatchNorm2d):
            if not t.fold(node, bn=True):
                t.add(node, "bn", "cpu", ins)
            continue
        if isinstance(mod, nn.Conv2d):
            kh, kw = _pair(mod.kernel_size)
            sh, sw = _pair(mod.stride)
            if sh != sw:
                t.add(node, "conv", "cpu", ins)
                continue
            dw = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
            t.add(node, "conv", "dwconv" if dw else "conv", ins, kh=kh, kw=kw, stride=sh, groups=mod.groups)
        elif isinstance(mod, nn.ConvTranspose2d):
            kh, kw = _pair(mod.kernel_size)
            t.add(node, "conv", "deconv", ins, kh=kh, kw=kw, stride=_pair(mod.stride)[0], groups=mod.groups)
        elif isinstance(mod, nn.Linear):
            t.add(node, "fc", "fc", ins)
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)) or fn in (F.max_pool2d, F.avg_pool2d):
            kind = "maxpool" if isinstance(mod, nn.MaxPool2d) or fn is F.max_pool2d else "avgpool"
            if mod is not None:
                k, s = mod.kernel_size, mod.stride or mod.kernel_size
            else:
                k = node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"]
                s = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride") or k
            kh, kw = _pair(k)
            _, h, w = _shape(node)
            if kind == "avgpool" and h == 1 and w == 1 and (kh, kw) == _shape(node.all_input_nodes[0])[1:]:
                kind = "gap"
            t.add(node, "pool", kind, ins, kh=kh, kw=kw, stride=_pair(s)[0])
        elif (
            isinstance(mod, nn.AdaptiveAvgPool2d)
            or fn is F.adaptive_avg_pool2d
            or (meth == "mean" and _is_spatial_mean(node))
        ):
            _, h, w = _shape(node)
            _, hi, wi = _shape(node.all_input_nodes[0])
            if (h, w) != (1, 1):
                t.add(node, "pool", "cpu", ins)
            else:
                t.add(node, "pool", "gap", ins, kh=hi, kw=wi)
        elif fn in (operator.add, torch.add) or meth == "add":
            if len(node.all_input_nodes) != 2:
                t.add(node, "add", "cpu", ins)  # adding a constant: not an element-wise DPU op
            else:
                t.add(node, "add", "add", ins)
        elif fn in (operator.mul, torch.mul) or meth == "mul":
            if len(node.all_input_nodes) != 2:
                t.add(node, "mul", "cpu", ins)  # scaling by a constant: not an element-wise DPU op
            else:
                t.add(node, "mul", "mul", ins)
        elif fn is torch.cat:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            t.add(node, "concat", "concat" if dim in (1, -3) else "cpu", ins)
        else:
            label = type(mod).__name__.lower() if mod is not None else str(getattr(fn, "__name__", meth))
            t.add(node, label.strip("_") or "op", "cpu", ins)
    _, c, h, w = shape
    return t.ops, (c, h, w)


def _is_spatial_mean(node: fx.Node) -> bool:
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return isinstance(dims, (tuple, list)) and sorted(int(d) % 4 for d in dims) == [2, 3]
