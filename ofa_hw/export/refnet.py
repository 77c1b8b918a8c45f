"""A numpy reference interpreter of the Caffe layer types the exporter writes.

It exists to check exported files without Caffe: read the ``.prototxt``/``.caffemodel`` back with
protobuf, run them here, compare with torch. It follows BVLC Caffe's semantics (BatchNorm's scale-factor
blob, ceil-rounded pooling, average pooling that counts padding, Flatten from ``axis``), in float64.
Layers run in file order on a blob dictionary, so in-place layers (``bottom == top``) work naturally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ofa_hw.export.caffe_pb import pb


class RefNetError(ValueError):
    """A layer the interpreter does not know, or inconsistent blobs; names the layer."""


def blob_array(blob: Any) -> np.ndarray:
    """A BlobProto as a float64 array of its shape (``shape`` or legacy num/channels/height/width)."""
    data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float64)
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = tuple(d for d in (blob.num, blob.channels, blob.height, blob.width) if d) or (data.size,)
    return data.reshape(shape)


def _conv_hw(p: Any, field: str, default: int) -> tuple[int, int]:
    """(h, w) of a ConvolutionParameter: explicit ``<field>_h``/``_w``, else the repeated field."""
    if p.HasField(f"{field}_h") or p.HasField(f"{field}_w"):
        return getattr(p, f"{field}_h"), getattr(p, f"{field}_w")
    values = list(getattr(p, "kernel_size" if field == "kernel" else field))
    if not values:
        return default, default
    return values[0], values[1 if len(values) > 1 else 0]


def _pool_hw(p: Any, field: str) -> tuple[int, int]:
    """(h, w) of a PoolingParameter: explicit ``<field>_h``/``_w``, else the scalar field."""
    if p.HasField(f"{field}_h") or p.HasField(f"{field}_w"):
        return getattr(p, f"{field}_h"), getattr(p, f"{field}_w")
    value = getattr(p, "kernel_size" if field == "kernel" else field)
    return value, value


def _conv(layer: Any, x: np.ndarray) -> np.ndarray:
    p = layer.convolution_param
    kh, kw = _conv_hw(p, "kernel", 1)
    sh, sw = _conv_hw(p, "stride", 1)
    ph, pw = _conv_hw(p, "pad", 0)
    dil = p.dilation[0] if len(p.dilation) else 1
    groups = p.group
    weight = blob_array(layer.blobs[0])
    n, c, _, _ = x.shape
    if weight.shape != (p.num_output, c // groups, kh, kw):
        raise RefNetError(
            f"layer {layer.name}: weight blob {weight.shape} != {(p.num_output, c // groups, kh, kw)}"
        )
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # Windows of the (dilated) kernel: (N, C, Ho, Wo, kh, kw).
    span_h, span_w = dil * (kh - 1) + 1, dil * (kw - 1) + 1
    win = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw, ::dil, ::dil]
    ho, wo = win.shape[2], win.shape[3]
    win = win.reshape(n, groups, c // groups, ho, wo, kh, kw)
    w = weight.reshape(groups, p.num_output // groups, c // groups, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, w, optimize=True).reshape(n, p.num_output, ho, wo)
    if p.bias_term:
        out = out + blob_array(layer.blobs[1]).reshape(1, -1, 1, 1)
    return out


def _batchnorm(layer: Any, x: np.ndarray) -> np.ndarray:
    mean, var, factor = (blob_array(b) for b in layer.blobs[:3])
    s = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = layer.batch_norm_param.eps
    return (x - (mean * s).reshape(shape)) / np.sqrt((var * s).reshape(shape) + eps)


def _scale(layer: Any, x: np.ndarray) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = x * blob_array(layer.blobs[0]).reshape(shape)
    if layer.scale_param.bias_term:
        out = out + blob_array(layer.blobs[1]).reshape(shape)
    return out


def _pool(layer: Any, x: np.ndarray) -> np.ndarray:
    p = layer.pooling_param
    n, c, h, w = x.shape
    if p.global_pooling:
        kh, kw, sh, sw, ph, pw = h, w, 1, 1, 0, 0
    else:
        (kh, kw), (sh, sw), (ph, pw) = _pool_hw(p, "kernel"), _pool_hw(p, "stride"), _pool_hw(p, "pad")
    # Caffe rounds the output size up, then drops a last window that would start inside the padding.
    ho = -(-(h + 2 * ph - kh) // sh) + 1
    wo = -(-(w + 2 * pw - kw) // sw) + 1
    if ph and (ho - 1) * sh >= h + ph:
        ho -= 1
    if pw and (wo - 1) * sw >= w + pw:
        wo -= 1
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            area = (h1 - h0) * (w1 - w0)  # AVE divides by the window clipped to the padded input
            hs, ws = max(h0, 0), max(w0, 0)
            he, we = min(h1, h), min(w1, w)
            window = x[:, :, hs:he, ws:we]
            if p.pool == pb.PoolingParameter.MAX:
                out[:, :, i, j] = window.max(axis=(2, 3))
            elif p.pool == pb.PoolingParameter.AVE:
                out[:, :, i, j] = window.sum(axis=(2, 3)) / area
            else:
                raise RefNetError(f"layer {layer.name}: pooling method {p.pool} unsupported")
    return out


def _flatten(layer: Any, x: np.ndarray) -> np.ndarray:
    axis = layer.flatten_param.axis % x.ndim
    end = layer.flatten_param.end_axis % x.ndim
    return x.reshape(x.shape[:axis] + (-1,) + x.shape[end + 1 :])


def _inner_product(layer: Any, x: np.ndarray) -> np.ndarray:
    p = layer.inner_product_param
    x2 = x.reshape(int(np.prod(x.shape[: p.axis])), -1)
    weight = (
        blob_array(layer.blobs[0]).reshape(p.num_output, -1)
        if not p.transpose
        else blob_array(layer.blobs[0]).T
    )
    if weight.shape[1] != x2.shape[1]:
        raise RefNetError(
            f"layer {layer.name}: input has {x2.shape[1]} features, weights expect {weight.shape[1]}"
        )
    out = x2 @ weight.T
    if p.bias_term:
        out = out + blob_array(layer.blobs[1]).reshape(1, -1)
    return out


def _relu(layer: Any, x: np.ndarray) -> np.ndarray:
    slope = layer.relu_param.negative_slope
    return np.where(x > 0, x, x * slope)


def _eltwise(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    p = layer.eltwise_param
    if any(x.shape != xs[0].shape for x in xs):
        raise RefNetError(f"layer {layer.name}: Eltwise inputs of different shapes {[x.shape for x in xs]}")
    if p.operation == pb.EltwiseParameter.SUM:
        coeff = list(p.coeff) or [1.0] * len(xs)
        return sum(c * x for c, x in zip(coeff, xs))
    if p.operation == pb.EltwiseParameter.PROD:
        return np.prod(np.stack(xs), axis=0)
    return np.max(np.stack(xs), axis=0)


_UNARY: dict[str, Callable[[Any, np.ndarray], np.ndarray]] = {
    "Convolution": _conv,
    "BatchNorm": _batchnorm,
    "Scale": _scale,
    "ReLU": _relu,
    "ReLU6": lambda layer, x: np.clip(x, 0.0, 6.0),
    "Clip": lambda layer, x: np.clip(x, layer.clip_param.min, layer.clip_param.max),
    "Pooling": _pool,
    "Flatten": _flatten,
    "InnerProduct": _inner_product,
    "Dropout": lambda layer, x: x,  # inference
}
_INPUTS = ("Input", "ImageData", "Data")


def run(net: Any, inputs: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``net`` (a NetParameter with weights) in inference mode.

    Args:
        net: The network, e.g. from :func:`ofa_hw.export.caffe.load_caffe`.
        inputs: The array for the (single) input blob, or ``{blob name: array}``.

    Returns:
        Every blob's final value by name (in-place layers leave the last value written).

    Raises:
        RefNetError: naming the layer that is unsupported or inconsistent.
    """
    blobs: dict[str, np.ndarray] = {}
    input_tops = [layer.top[0] for layer in net.layer if layer.type in _INPUTS] + list(net.input)
    if isinstance(inputs, dict):
        blobs.update({k: np.asarray(v, np.float64) for k, v in inputs.items()})
    else:
        if len(input_tops) != 1:
            raise RefNetError(f"{net.name}: {len(input_tops)} input blobs; pass a dict")
        blobs[input_tops[0]] = np.asarray(inputs, np.float64)
    for layer in net.layer:
        if layer.type in _INPUTS:
            if layer.top[0] not in blobs:
                raise RefNetError(f"layer {layer.name}: no array given for input blob {layer.top[0]!r}")
            continue
        missing = [b for b in layer.bottom if b not in blobs]
        if missing:
            raise RefNetError(
                f"layer {layer.name}: bottom blob(s) {missing} not produced by an earlier layer"
            )
        if layer.type == "Eltwise":
            out = _eltwise(layer, [blobs[b] for b in layer.bottom])
        elif layer.type in _UNARY:
            out = _UNARY[layer.type](layer, blobs[layer.bottom[0]])
        else:
            raise RefNetError(f"layer {layer.name}: type {layer.type!r} is not interpreted")
        blobs[layer.top[0]] = out
    return blobs


def forward(net: Any, x: np.ndarray) -> np.ndarray:
    """The value of the net's last layer's top blob for input ``x``."""
    return run(net, x)[net.layer[-1].top[0]]
