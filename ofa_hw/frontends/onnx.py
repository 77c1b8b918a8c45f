"""ONNX front end: an ONNX file → the compiler's :class:`~ofa_hw.frontends.ops.Op` list.

The counterpart of :mod:`ofa_hw.frontends.torch_fx` for networks handed over as ONNX (what vai_q_pytorch,
vai_q_onnx and most exporters produce). Supported DPU operators: ``Conv`` (dense, grouped, depthwise),
``BatchNormalization`` (folded into the conv before it), ``Relu``, ``Clip`` to [0, 6] (ReLU6),
``LeakyRelu``, ``HardSwish``, ``HardSigmoid`` (folded into their producer), ``MaxPool``, ``AveragePool``,
``GlobalAveragePool`` and ``ReduceMean`` over H, W, ``Gemm``/``MatMul`` with constant weights, element-wise
``Add`` and ``Mul`` of two tensors, channel ``Concat``; ``Flatten``, ``Reshape``, ``Squeeze``,
``Unsqueeze``, ``Identity`` and ``Dropout`` pass through. Anything else becomes a CPU op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ofa_hw.errors import require_extra
from ofa_hw.frontends.ops import Op, fold_into

_PASSTHROUGH = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
_ACTS = {"Relu": "relu", "LeakyRelu": "leakyrelu", "HardSwish": "hswish", "HardSigmoid": "hsigmoid"}


class OnnxError(ValueError):
    """An ONNX file the front end cannot read (names the file and the node)."""


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Reader:
    def __init__(self, model, source: str) -> None:
        import onnx
        from onnx import numpy_helper

        self.source = source
        graph = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            dims = tuple(int(d.dim_value) for d in vi.type.tensor_type.shape.dim)
            if dims and all(d > 0 for d in dims):
                self.shapes[vi.name] = dims
        self.users: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                self.users[name] = self.users.get(name, 0) + 1
        self.ops: list[Op] = []
        self.of: dict[str, int] = {}  # tensor name -> producing op (-1: network input)
        self.counts: dict[str, int] = {}
        self.onnx = onnx

    def chw(self, tensor: str, node) -> tuple[int, int, int]:
        s = self.shapes.get(tensor)
        if s is None:
            raise OnnxError(
                f"{self.source}: node {node.name or node.op_type!r}: no static shape for tensor {tensor!r}"
            )
        if len(s) == 4:
            return s[1], s[2], s[3]
        if len(s) == 2:
            return s[1], 1, 1
        raise OnnxError(
            f"{self.source}: node {node.name or node.op_type!r}: tensor {tensor!r} is {len(s)}-D; the DPU takes NCHW or NC"
        )

    def tensors(self, node) -> list[str]:
        """The node's non-constant inputs."""
        return [t for t in node.input if t and t not in self.consts]

    def add(self, node, family: str, kind: str, **kw) -> None:
        ins = self.tensors(node)
        c_in, h_in, w_in = self.chw(ins[0], node)
        c, h, w = self.chw(node.output[0], node)
        self.counts[family] = self.counts.get(family, 0) + 1
        op = Op(
            index=len(self.ops),
            name=f"{family}_{self.counts[family]}",
            kind=kind,
            in_h=h_in,
            in_w=w_in,
            in_c=c_in,
            out_h=h,
            out_w=w,
            out_c=c,
            inputs=tuple(self.of[t] for t in ins if t in self.of),
            **kw,
        )
        self.ops.append(op)
        self.of[node.output[0]] = op.index

    def fold(self, node, **changes) -> bool:
        (src,) = self.tensors(node)[:1]
        idx = self.of.get(src, -1)
        if idx < 0 or self.users.get(src, 0) != 1:
            return False
        folded = fold_into(self.ops[idx], **changes)
        if folded is None:
            return False
        self.ops[idx] = folded
        self.of[node.output[0]] = idx
        return True

    def act_of(self, node) -> str | None:
        if node.op_type in _ACTS:
            return _ACTS[node.op_type]
        if node.op_type == "Clip":
            a = _attrs(node)
            lo, hi = a.get("min"), a.get("max")
            if len(node.input) > 1 and node.input[1] in self.consts:
                lo = float(np.asarray(self.consts[node.input[1]]).reshape(-1)[0])
            if len(node.input) > 2 and node.input[2] in self.consts:
                hi = float(np.asarray(self.consts[node.input[2]]).reshape(-1)[0])
            if lo == 0.0 and hi == 6.0:
                return "relu6"
        return None

    def read(self, graph) -> None:
        for vi in graph.input:
            if vi.name not in self.consts:
                self.of[vi.name] = -1
        for node in graph.node:
            t = node.op_type
            if t == "Constant":
                continue
            ins = self.tensors(node)
            if not ins:  # arithmetic on constants (exporters route weights through Identity): a constant
                for out in node.output:
                    self.consts[out] = (
                        self.consts.get(node.input[0], np.zeros(0)) if node.input else np.zeros(0)
                    )
                continue
            if t in _PASSTHROUGH:
                self.of[node.output[0]] = self.of.get(ins[0], -1)
                continue
            act = self.act_of(node)
            if act is not None:
                if not self.fold(node, act=act):
                    self.add(node, "relu", "act", act=act)
                continue
            if t == "BatchNormalization":
                if not self.fold(node, bn=True):
                    self.add(node, "bn", "cpu")
                continue
            a = _attrs(node)
            if t == "Conv":
                w = self.consts.get(node.input[1])
                if w is None or w.ndim != 4:
                    self.add(node, "conv", "cpu")
                    continue
                kh, kw = int(w.shape[2]), int(w.shape[3])
                strides = list(a.get("strides", [1, 1]))
                group = int(a.get("group", 1))
                c_in = self.chw(ins[0], node)[0]
                if strides[0] != strides[1]:
                    self.add(node, "conv", "cpu")
                    continue
                dw = group > 1 and group == c_in == int(w.shape[0])
                self.add(
                    node,
                    "conv",
                    "dwconv" if dw else "conv",
                    kh=kh,
                    kw=kw,
                    stride=int(strides[0]),
                    groups=group,
                )
            elif t in ("Gemm", "MatMul"):
                if len(node.input) < 2 or node.input[1] not in self.consts:
                    self.add(node, "fc", "cpu")
                else:
                    self.add(node, "fc", "fc")
            elif t in ("MaxPool", "AveragePool"):
                k = list(a.get("kernel_shape", [1, 1]))
                s = list(a.get("strides", k))
                self.add(
                    node,
                    "pool",
                    "maxpool" if t == "MaxPool" else "avgpool",
                    kh=int(k[0]),
                    kw=int(k[1]),
                    stride=int(s[0]),
                )
            elif t == "GlobalAveragePool" or (t == "ReduceMean" and self._spatial_mean(node, a)):
                _, h, w_ = self.chw(ins[0], node)
                self.add(node, "pool", "gap", kh=h, kw=w_)
            elif t in ("Add", "Mul") and len(ins) == 2:
                self.add(node, t.lower(), t.lower())
            elif t == "Concat" and int(a.get("axis", 1)) in (1, -3):
                self.add(node, "concat", "concat")
            else:
                self.add(node, t.lower() or "op", "cpu")

    def _spatial_mean(self, node, a: dict) -> bool:
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in self.consts:
            axes = self.consts[node.input[1]].tolist()
        return axes is not None and sorted(int(x) % 4 for x in axes) == [2, 3] and bool(a.get("keepdims", 1))


def onnx_ops(path: str | Path) -> tuple[list[Op], tuple[int, int, int]]:
    """The ops of the ONNX network in ``path`` and its input (C, H, W) (static shapes required).

    Raises:
        OnnxError: the file is not a readable ONNX model or has dynamic / non-image shapes.
    """
    require_extra("onnx", "onnx", "reading ONNX networks")
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path))
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, InferenceError …
        raise OnnxError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    r = _Reader(model, str(path))
    inputs = [vi for vi in model.graph.input if vi.name not in r.consts]
    if len(inputs) != 1:
        raise OnnxError(f"{path}: expected one network input, found {len(inputs)}")
    shape = r.shapes.get(inputs[0].name)
    if shape is None or len(shape) != 4:
        raise OnnxError(f"{path}: input {inputs[0].name!r} needs a static NCHW shape")
    r.read(model.graph)
    return r.ops, (shape[1], shape[2], shape[3])
