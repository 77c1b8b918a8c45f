"""The compiler's input: :class:`Op`, one operator after BN folding, and the rules every front end shares.

Front ends (:mod:`ofa_hw.frontends.torch_fx`, :mod:`ofa_hw.frontends.onnx`, the OFA-MobileNetV3 blocks
of :mod:`ofa_hw.frontends.mbv3_blocks` and the netspec form below) turn a network into a list of ops;
the simulator's compiler (:mod:`ofa_hw.sim.compiler`) fuses them into DPU nodes. This module imports
nothing of either side, so data flows one way: front end → ops → compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Op:
    """One operator after BN folding (BN is never an op; activations are an attribute when fused).

    Attributes:
        index: Position in the op list (topological order).
        name: Caffe-style name (``conv_3``, ``fc_1``, ``add_2``, ``pool_1``).
        kind: ``conv`` | ``dwconv`` | ``deconv`` | ``fc`` | ``maxpool`` | ``avgpool`` | ``gap`` | ``add``
            | ``mul`` (element-wise multiply, the second input may be a per-channel ``C×1×1`` scale)
            | ``concat`` | ``act`` (a standalone activation) | ``cpu`` (anything else).
        inputs: Indices of producer ops (-1: the network input).
        act: Activation applied to the output (``relu`` | ``relu6`` | ``leakyrelu`` | ``hswish`` |
            ``hsigmoid`` | other | None).
        residual: A residual add is folded into this op (netspec form): one more input of the output's size.
        layers: Netspec layer indices this op stands for (empty for fx input).
    """

    index: int
    name: str
    kind: str
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    kh: int = 1
    kw: int = 1
    stride: int = 1
    groups: int = 1
    act: str | None = None
    inputs: tuple[int, ...] = ()
    residual: bool = False
    layers: tuple[int, ...] = ()
    extra_in_c: int = 0

    @property
    def macs(self) -> int:
        if self.kind in ("conv", "dwconv"):
            return self.out_h * self.out_w * self.out_c * (self.in_c // self.groups) * self.kh * self.kw
        if self.kind == "deconv":
            return self.in_h * self.in_w * self.in_c * (self.out_c // self.groups) * self.kh * self.kw
        if self.kind == "fc":
            return self.in_c * self.out_c
        return 0

    @property
    def weights(self) -> int:
        if self.kind in ("conv", "dwconv", "deconv"):
            return self.out_c * (self.in_c // self.groups) * self.kh * self.kw
        if self.kind == "fc":
            return self.in_c * self.out_c
        return 0

    @property
    def in_bytes(self) -> int:
        return self.in_h * self.in_w * (self.in_c + self.extra_in_c)

    @property
    def out_bytes(self) -> int:
        return self.out_h * self.out_w * self.out_c


#: Op kinds an activation folds into (VAI_C fuses the activation into the op producing its input).
FOLDS_ACT = ("conv", "dwconv", "deconv", "fc", "add", "mul")


def fold_into(op: Op, **changes: Any) -> Op | None:
    """``op`` with a following BN (``bn=True``) or activation (``act=...``) folded in, as VAI_C fuses
    them; ``None`` when the compiler would keep that layer separate. Front ends (torch.fx, ONNX) share it.
    """
    if "act" in changes and (op.kind not in FOLDS_ACT or op.act is not None):
        return None
    if "bn" in changes:
        if op.kind not in ("conv", "dwconv", "deconv", "fc") or op.act is not None:
            return None
        changes = {}  # BN folds into the weights: nothing of the op changes
    return replace(op, **changes)


def ops_from_netspec(ns: Any) -> list[Op]:
    """One op per netspec layer (chained unless the layer names its producers, as the SE multiply does),
    with the residual add folded into the project conv."""
    ops = []
    for layer in ns.layers:
        kind = layer.kind  # netspec kinds are op kinds (conv, dwconv, gap, maxpool, avgpool, mul, add, fc)
        k = (
            layer.kernel
            if kind in ("conv", "dwconv", "maxpool", "avgpool")
            else (layer.in_hw if kind == "gap" else 1)
        )
        ops.append(
            Op(
                index=layer.index,
                name=layer.name,
                kind=kind,
                in_h=layer.in_hw,
                in_w=layer.in_hw,
                in_c=layer.in_c,
                out_h=layer.out_hw,
                out_w=layer.out_hw,
                out_c=layer.out_c,
                kh=k,
                kw=k,
                stride=layer.stride,
                groups=layer.groups,
                act=layer.act,
                inputs=tuple(getattr(layer, "producers", (layer.index - 1,))),
                residual=layer.residual,
                layers=(layer.index,),
            )
        )
    return ops
