"""Caffe without Caffe: ``.prototxt`` + ``.caffemodel`` for any subnet, written with protobuf.

The converter traces a PyTorch module with ``torch.fx`` and emits one Caffe layer per operator, the way
the seed's ``pytorch2caffe`` did — so the DPU node names VAI_C derives from the layer names match the
seed's (``<net>_conv_4``, ``<net>_fc_1``) — but keeps what that converter lost: in-place activations
(ReLU6 stays a layer of its own, applied in place on the conv's blob).

Layers emitted (handlers registered per module type / function / method name):

* ``Input`` (``data``, ``input_param.shape`` N×C×H×W) — what Vitis-AI's deploy files use;
  :func:`with_image_data` swaps it for the ``ImageData`` layer ``vai_q_caffe`` calibrates with;
* ``Convolution`` (``<net>_conv_N``; depthwise = ``group`` == channels), then ``BatchNorm`` + ``Scale``
  (``bn="scale"``, BVLC's three-blob BatchNorm with ``use_global_stats``) or folded into the conv's
  weights and bias (``bn="fold"``);
* ``ReLU`` / ``ReLU6`` in place; ``Eltwise`` SUM (``<net>_add_N``); ``Pooling`` AVE with
  ``global_pooling`` (and MAX/AVE windows when Caffe's ceil rounding agrees with torch's);
  ``Flatten`` before ``InnerProduct`` (``<net>_fc_N``).

A layer works in place (``bottom == top``) only when its input has no other consumer, so the blob a
residual shortcut reads is never overwritten.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from google.protobuf import text_format
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ofa_hw.export.caffe_pb import pb
from ofa_hw.frontends.torch_fx import FX_LOCK

#: How BatchNorm is written: ``scale`` = Caffe BatchNorm + Scale layers, ``fold`` = into the conv.
BN_MODES = ("scale", "fold")
#: Layer type of the clipped ReLU. BVLC Caffe has none; Xilinx's Caffe (vai_q_caffe) calls it ReLU6.
RELU6_TYPE = "ReLU6"


class CaffeExportError(ValueError):
    """The module holds something Caffe/Vitis-AI cannot express; names the fx node and operator."""


@dataclass
class _Emitter:
    """Builds the NetParameter while walking the fx graph."""

    net: Any
    prefix: str
    bn: str
    modules: dict[str, nn.Module]
    blobs: dict[torch.fx.Node, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    # conv layer whose output a following BN may be folded into: fx node of the conv -> layer message
    foldable: dict[torch.fx.Node, Any] = field(default_factory=dict)

    def name(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return f"{self.prefix}_{kind}_{self.counters[kind]}"

    def layer(
        self, node: torch.fx.Node, kind: str, type_: str, inputs: list[torch.fx.Node], inplace: bool = False
    ) -> Any:
        """Append a layer reading ``inputs``; its top is the input blob (in place) or its own name."""
        msg = self.net.layer.add(name=self.name(kind), type=type_)
        msg.bottom.extend(self.blobs[i] for i in inputs)
        can_inplace = (
            inplace and len(inputs) == 1 and len(inputs[0].users) == 1 and inputs[0].op != "placeholder"
        )
        top = self.blobs[inputs[0]] if can_inplace else msg.name
        msg.top.append(top)
        self.blobs[node] = top
        return msg

    def alias(self, node: torch.fx.Node, source: torch.fx.Node) -> None:
        self.blobs[node] = self.blobs[source]


def _shape(node: torch.fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise CaffeExportError(f"node {node.name}: no tensor shape (not a single tensor)")
    return tuple(meta.shape)


def _blob(msg: Any, array: np.ndarray) -> None:
    blob = msg.blobs.add()
    blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(np.asarray(array, dtype=np.float32).ravel().tolist())


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


# ------------------------------------------------------------------ handlers
def _conv(em: _Emitter, node: torch.fx.Node, mod: nn.Conv2d, inputs: list[torch.fx.Node]) -> None:
    if isinstance(mod.padding, str) or mod.padding_mode != "zeros":
        raise CaffeExportError(
            f"node {node.name}: conv padding {mod.padding!r}/{mod.padding_mode} has no Caffe form"
        )
    msg = em.layer(node, "conv", "Convolution", inputs)
    p = msg.convolution_param
    p.num_output = mod.out_channels
    p.bias_term = mod.bias is not None
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        _pair(v) for v in (mod.kernel_size, mod.stride, mod.padding, mod.dilation)
    )
    # Square parameters in the repeated fields (what Vitis-AI's examples use); _h/_w only when needed.
    if kh == kw:
        p.kernel_size.append(kh)
    else:
        p.kernel_h, p.kernel_w = kh, kw
    if sh == sw:
        p.stride.append(sh)
    else:
        p.stride_h, p.stride_w = sh, sw
    if ph == pw:
        if ph:
            p.pad.append(ph)
    else:
        p.pad_h, p.pad_w = ph, pw
    if (dh, dw) != (1, 1):
        if dh != dw:
            raise CaffeExportError(f"node {node.name}: anisotropic dilation {mod.dilation} unsupported")
        p.dilation.append(dh)
    if mod.groups != 1:
        p.group = mod.groups
    _blob(msg, _np(mod.weight))
    if mod.bias is not None:
        _blob(msg, _np(mod.bias))
    if len(node.users) == 1:  # a BN that is the conv's only consumer can be folded into it
        em.foldable[node] = msg


def _batchnorm(em: _Emitter, node: torch.fx.Node, mod: nn.BatchNorm2d, inputs: list[torch.fx.Node]) -> None:
    if not mod.track_running_stats or mod.running_mean is None or mod.running_var is None:
        raise CaffeExportError(f"node {node.name}: BatchNorm without running statistics cannot be exported")
    mean, var = _np(mod.running_mean), _np(mod.running_var)
    gamma = _np(mod.weight) if mod.affine else np.ones_like(mean)
    beta = _np(mod.bias) if mod.affine else np.zeros_like(mean)
    conv = em.foldable.get(inputs[0])
    if em.bn == "fold" and conv is not None:
        # y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, folded into the conv's blobs.
        scale = gamma / np.sqrt(var + mod.eps)
        weight = np.asarray(conv.blobs[0].data, np.float64).reshape(tuple(conv.blobs[0].shape.dim))
        bias = (
            np.asarray(conv.blobs[1].data, np.float64)
            if conv.convolution_param.bias_term
            else np.zeros_like(mean)
        )
        del conv.blobs[:]
        conv.convolution_param.bias_term = True
        _blob(conv, weight * scale.reshape(-1, 1, 1, 1))
        _blob(conv, (bias - mean) * scale + beta)
        em.alias(node, inputs[0])
        return
    bn = em.layer(node, "bn", "BatchNorm", inputs, inplace=True)
    bn.batch_norm_param.use_global_stats = True
    bn.batch_norm_param.eps = mod.eps
    _blob(bn, mean)
    _blob(bn, var)
    _blob(bn, np.ones(1))  # BVLC's moving-average scale factor: statistics are stored pre-divided by it
    sc = em.net.layer.add(name=em.name("scale"), type="Scale")
    sc.bottom.append(em.blobs[node])
    sc.top.append(em.blobs[node])
    sc.scale_param.bias_term = True
    _blob(sc, gamma)
    _blob(sc, beta)


def _relu(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node]) -> None:
    em.layer(node, "relu", "ReLU", inputs[:1], inplace=True)


def _relu6(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node]) -> None:
    em.layer(node, "relu6", RELU6_TYPE, inputs[:1], inplace=True)


def _hardtanh(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node], lo: float, hi: float) -> None:
    if (lo, hi) != (0.0, 6.0):
        raise CaffeExportError(
            f"node {node.name}: hardtanh({lo}, {hi}) is not ReLU6; Vitis-AI supports only ReLU6"
        )
    _relu6(em, node, inputs)


def _global_pool(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node], flatten: bool) -> None:
    msg = em.layer(node, "pool", "Pooling", inputs[:1])
    msg.pooling_param.pool = pb.PoolingParameter.AVE
    msg.pooling_param.global_pooling = True
    if flatten:
        _flatten_layer(em, node, node)


def _flatten_layer(em: _Emitter, node: torch.fx.Node, source: torch.fx.Node) -> None:
    msg = em.net.layer.add(name=em.name("flatten"), type="Flatten")
    msg.bottom.append(em.blobs[source])
    msg.top.append(msg.name)
    msg.flatten_param.axis = 1
    em.blobs[node] = msg.name


def _flatten(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node]) -> None:
    in_shape, out_shape = _shape(inputs[0]), _shape(node)
    if len(out_shape) != 2 or out_shape[0] != in_shape[0]:
        raise CaffeExportError(
            f"node {node.name}: only flattening to (N, C·H·W) is supported, got {out_shape}"
        )
    if len(in_shape) == 2:
        em.alias(node, inputs[0])  # already flat: Caffe needs no layer
    else:
        _flatten_layer(em, node, inputs[0])


def _linear(em: _Emitter, node: torch.fx.Node, mod: nn.Linear, inputs: list[torch.fx.Node]) -> None:
    if len(_shape(inputs[0])) != 2:
        raise CaffeExportError(
            f"node {node.name}: Linear on a {len(_shape(inputs[0]))}-D tensor; flatten it first"
        )
    msg = em.layer(node, "fc", "InnerProduct", inputs)
    msg.inner_product_param.num_output = mod.out_features
    msg.inner_product_param.bias_term = mod.bias is not None
    _blob(msg, _np(mod.weight))
    if mod.bias is not None:
        _blob(msg, _np(mod.bias))


def _add(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node]) -> None:
    if len(inputs) != 2 or any(not isinstance(i, torch.fx.Node) for i in inputs):
        raise CaffeExportError(f"node {node.name}: only tensor + tensor adds map to Eltwise SUM")
    if _shape(inputs[0]) != _shape(inputs[1]):
        raise CaffeExportError(
            f"node {node.name}: Eltwise needs equal shapes, got {_shape(inputs[0])} and {_shape(inputs[1])}"
        )
    msg = em.layer(node, "add", "Eltwise", inputs)
    msg.eltwise_param.operation = pb.EltwiseParameter.SUM


def _window_pool(
    em: _Emitter, node: torch.fx.Node, mod: nn.Module, inputs: list[torch.fx.Node], method: int
) -> None:
    size: Any = mod.kernel_size  # MaxPool2d/AvgPool2d: int or tuple
    k, s, p = _pair(size), _pair(mod.stride or size), _pair(mod.padding)  # type: ignore[arg-type]
    in_shape, out_shape = _shape(inputs[0]), _shape(node)
    # Caffe rounds pooled sizes up; accept only windows where that equals torch's result.
    caffe_out = tuple(-(-(in_shape[2 + i] + 2 * p[i] - k[i]) // s[i]) + 1 for i in range(2))
    if caffe_out != tuple(out_shape[2:]):
        raise CaffeExportError(
            f"node {node.name}: Caffe pooling would give {caffe_out}, torch gives {tuple(out_shape[2:])}"
        )
    if method == pb.PoolingParameter.AVE and any(p) and not getattr(mod, "count_include_pad", True):
        raise CaffeExportError(
            f"node {node.name}: Caffe average pooling counts padding (count_include_pad=True)"
        )
    msg = em.layer(node, "pool", "Pooling", inputs)
    pp = msg.pooling_param
    pp.pool = method
    pp.kernel_h, pp.kernel_w = k
    pp.stride_h, pp.stride_w = s
    if any(p):
        pp.pad_h, pp.pad_w = p


def _adaptive_avg(em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node], size: Any) -> None:
    if _pair(size) != (1, 1):
        raise CaffeExportError(
            f"node {node.name}: adaptive average pooling to {size} (only 1 = global) unsupported"
        )
    _global_pool(em, node, inputs, flatten=False)


def _mean(
    em: _Emitter, node: torch.fx.Node, inputs: list[torch.fx.Node], dim: Any = None, keepdim: bool = False
) -> None:
    ndim = len(_shape(inputs[0]))
    dims = sorted(d % ndim for d in ((dim,) if isinstance(dim, int) else tuple(dim or ())))
    if ndim != 4 or dims != [2, 3]:
        raise CaffeExportError(
            f"node {node.name}: mean over {dim} (only the spatial dims (2, 3)) unsupported"
        )
    _global_pool(em, node, inputs, flatten=not keepdim)


_IDENTITY_MODULES: tuple[type, ...] = (nn.Identity, nn.Dropout)
_MODULE_HANDLERS: dict[type, Callable[..., None]] = {
    nn.Conv2d: _conv,
    nn.BatchNorm2d: _batchnorm,
    nn.Linear: _linear,
    nn.ReLU: lambda em, node, mod, inputs: _relu(em, node, inputs),
    nn.ReLU6: lambda em, node, mod, inputs: _relu6(em, node, inputs),
    nn.Hardtanh: lambda em, node, mod, inputs: _hardtanh(em, node, inputs, mod.min_val, mod.max_val),
    nn.Flatten: lambda em, node, mod, inputs: _flatten(em, node, inputs),
    nn.MaxPool2d: lambda em, node, mod, inputs: _window_pool(em, node, mod, inputs, pb.PoolingParameter.MAX),
    nn.AvgPool2d: lambda em, node, mod, inputs: _window_pool(em, node, mod, inputs, pb.PoolingParameter.AVE),
    nn.AdaptiveAvgPool2d: lambda em, node, mod, inputs: _adaptive_avg(em, node, inputs, mod.output_size),
}
_FUNCTION_HANDLERS: dict[Any, Callable[..., None]] = {
    operator.add: lambda em, node, args, kw: _add(em, node, list(args)),
    torch.add: lambda em, node, args, kw: _add(em, node, list(args)),
    F.relu: lambda em, node, args, kw: _relu(em, node, list(args)),
    torch.relu: lambda em, node, args, kw: _relu(em, node, list(args)),
    F.relu6: lambda em, node, args, kw: _relu6(em, node, list(args)),
    F.hardtanh: lambda em, node, args, kw: _hardtanh(
        em, node, list(args[:1]), *(list(args[1:3]) or [kw.get("min_val", -1.0), kw.get("max_val", 1.0)])
    ),
    torch.flatten: lambda em, node, args, kw: _flatten(em, node, list(args[:1])),
    torch.mean: lambda em, node, args, kw: _mean(em, node, list(args[:1]), *args[1:], **kw),
    F.adaptive_avg_pool2d: lambda em, node, args, kw: _adaptive_avg(
        em, node, list(args[:1]), args[1] if len(args) > 1 else kw["output_size"]
    ),
}
_METHOD_HANDLERS: dict[str, Callable[..., None]] = {
    "add": lambda em, node, args, kw: _add(em, node, list(args)),
    "relu": lambda em, node, args, kw: _relu(em, node, list(args)),
    "flatten": lambda em, node, args, kw: _flatten(em, node, list(args[:1])),
    "view": lambda em, node, args, kw: _flatten(em, node, list(args[:1])),
    "reshape": lambda em, node, args, kw: _flatten(em, node, list(args[:1])),
    "mean": lambda em, node, args, kw: _mean(em, node, list(args[:1]), *args[1:], **kw),
}


#: Why a module has no layer in the DNNDK Caffe flow, when there is more to say than "unsupported".
_NO_DNNDK_LAYER = {
    nn.Hardswish: "h-swish",
    nn.Hardsigmoid: "hard-sigmoid (squeeze-excite)",
}


def _handle(em: _Emitter, node: torch.fx.Node) -> None:
    tensor_inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
    if node.op == "call_module":
        mod = em.modules[str(node.target)]
        if isinstance(mod, _IDENTITY_MODULES):
            em.alias(node, tensor_inputs[0])
            return
        handler = next((h for t, h in _MODULE_HANDLERS.items() if type(mod) is t), None)
        if handler is None and type(mod) in _NO_DNNDK_LAYER:
            raise CaffeExportError(
                f"node {node.name} ({node.target}): {_NO_DNNDK_LAYER[type(mod)]} has no layer in the DNNDK Caffe "
                "flow (DPU IP v1-3 lacks hard activations); deploy MobileNetV3 spaces with the XIR flow"
            )
        if handler is None:
            raise CaffeExportError(
                f"node {node.name} ({node.target}): module {type(mod).__name__} has no Caffe layer"
            )
        handler(em, node, mod, tensor_inputs)
    elif node.op == "call_function":
        handler = _FUNCTION_HANDLERS.get(node.target)
        if handler is None:
            raise CaffeExportError(
                f"node {node.name}: function {getattr(node.target, '__name__', node.target)} has no Caffe layer"
            )
        handler(em, node, node.args, node.kwargs)
    elif node.op == "call_method":
        handler = _METHOD_HANDLERS.get(str(node.target))
        if handler is None:
            raise CaffeExportError(f"node {node.name}: method .{node.target}() has no Caffe layer")
        handler(em, node, node.args, node.kwargs)
    else:
        raise CaffeExportError(f"node {node.name}: fx op {node.op} ({node.target}) unsupported")


def to_caffe(
    model: nn.Module,
    input_shape: tuple[int, int, int, int] | None = None,
    name: str = "net",
    bn: str = "scale",
) -> Any:
    """Convert ``model`` (eval mode) to a Caffe ``NetParameter`` holding structure and weights.

    Args:
        model: A module built from the supported operators (an :class:`~ofa_hw.torchnet.OFASubnet` or
            any plain CNN the DPU simulator accepts). It is put in eval mode.
        input_shape: ``(N, C, H, W)``; defaults to ``(1, 3, r, r)`` for modules carrying a ``netspec``.
        name: Network name, the prefix of every layer name (``<name>_conv_1`` …). Alphanumeric and
            underscores only (it becomes DPU node and kernel names).
        bn: ``scale`` (BatchNorm + Scale layers) or ``fold`` (BN folded into the preceding conv).

    Returns:
        A ``caffe.NetParameter`` (see :func:`save_caffe` to write it).

    Raises:
        CaffeExportError: naming the first operator Caffe cannot express.
    """
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"network name must be alphanumeric/underscore, got {name!r}")
    if input_shape is None:
        netspec = getattr(model, "netspec", None)
        if netspec is None:
            raise ValueError("input_shape is required for modules without a netspec")
        input_shape = (1, netspec.input_c, netspec.input_hw, netspec.input_hw)
    model = model.eval()
    with FX_LOCK, torch.no_grad():  # fx patches nn.Module.__call__ process-wide while tracing
        graph_module = torch.fx.symbolic_trace(model)
        ShapeProp(graph_module).propagate(torch.zeros(input_shape))
    net = pb.NetParameter(name=name)
    em = _Emitter(net=net, prefix=name, bn=bn, modules=dict(graph_module.named_modules()))
    outputs: list[str] = []
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            if em.blobs:
                raise CaffeExportError(f"node {node.name}: only single-input networks are supported")
            layer = net.layer.add(name="data", type="Input", top=["data"])
            layer.input_param.shape.add().dim.extend(int(d) for d in input_shape)
            em.blobs[node] = "data"
        elif node.op == "output":
            results: list[torch.fx.Node] = []
            torch.fx.node.map_arg(node.args, results.append)
            outputs = [em.blobs[r] for r in results]
        else:
            _handle(em, node)
    if len(outputs) != 1:
        raise CaffeExportError(f"{name}: expected one output tensor, got {len(outputs)}")
    return net


def structure(net: Any) -> Any:
    """A copy of ``net`` without weight blobs (what the ``.prototxt`` holds)."""
    copy = pb.NetParameter()
    copy.CopyFrom(net)
    for layer in copy.layer:
        del layer.blobs[:]
    return copy


def save_caffe(net: Any, prototxt: str | Path, caffemodel: str | Path) -> tuple[Path, Path]:
    """Write the network structure as text (``prototxt``) and the full net in binary (``caffemodel``)."""
    prototxt, caffemodel = Path(prototxt), Path(caffemodel)
    prototxt.parent.mkdir(parents=True, exist_ok=True)
    caffemodel.parent.mkdir(parents=True, exist_ok=True)
    prototxt.write_text(text_format.MessageToString(structure(net)))
    caffemodel.write_bytes(net.SerializeToString())
    return prototxt, caffemodel


def read_prototxt(path: str | Path) -> Any:
    """Parse a ``.prototxt``; a syntax error names the file, line and column."""
    path = Path(path)
    net = pb.NetParameter()
    try:
        text_format.Parse(path.read_text(), net)
    except text_format.ParseError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return net


def load_caffe(prototxt: str | Path, caffemodel: str | Path) -> Any:
    """The structure of ``prototxt`` with the weight blobs of ``caffemodel`` (matched by layer name)."""
    net = read_prototxt(prototxt)
    weights = pb.NetParameter()
    try:
        weights.ParseFromString(Path(caffemodel).read_bytes())
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeWarning-ish errors in upb
        raise ValueError(f"{caffemodel}: not a caffemodel ({exc})") from exc
    by_name = {layer.name: layer for layer in weights.layer}
    for layer in net.layer:
        source = by_name.get(layer.name)
        if source is not None and len(source.blobs):
            del layer.blobs[:]
            layer.blobs.extend(source.blobs)
    return net


def with_image_data(
    net: Any,
    source: str,
    root_folder: str,
    batch_size: int = 1,
    mean_value: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
) -> Any:
    """A copy of ``net`` whose ``Input`` layer is replaced by the ``ImageData`` layer vai_q_caffe reads.

    ``vai_q_caffe quantize`` runs the float model on calibration images, so the model it quantizes must
    read images: a list file ``source`` (``relative/path.jpg label`` per line) under ``root_folder``,
    resized to the input resolution. The deploy model it writes has an ``Input`` layer again.
    """
    copy = pb.NetParameter()
    copy.CopyFrom(net)
    inputs = [i for i, layer in enumerate(copy.layer) if layer.type == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"{net.name}: expected one Input layer, found {len(inputs)}")
    old = copy.layer[inputs[0]]
    _, c, h, w = tuple(old.input_param.shape[0].dim)
    new = pb.LayerParameter(name=old.name, type="ImageData", top=[old.top[0], f"{old.top[0]}_label"])
    new.transform_param.mean_value.extend(mean_value)
    new.transform_param.scale = scale
    p = new.image_data_param
    p.source, p.root_folder, p.batch_size = source, root_folder, batch_size
    p.new_height, p.new_width, p.is_color = h, w, c == 3
    layers = [new if i == inputs[0] else layer for i, layer in enumerate(copy.layer)]
    rebuilt = pb.NetParameter()
    rebuilt.CopyFrom(copy)
    del rebuilt.layer[:]
    rebuilt.layer.extend(layers)  # repeated message fields have no insert(): rebuild the list
    return rebuilt
