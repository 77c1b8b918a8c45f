"""Netspec: the ordered layer list of an OFA subnet, its MACs, parameters and OFA LUT keys.

The netspec is the one description of a network that every later stage reads: the torch builder,
the exporters, the DPU compiler emulation, the LUT builder and the predictors. Layer names follow the
Caffe converter of the seed's flow (``conv_1`` … ``conv_N``, ``pool_1``, ``fc_1``) because the DPU
toolchain names its nodes after them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ofa_hw.netspec_base import (
    Block,
    Builder,
    Layer,
    NetSpec,
    conv_key,
    conv_out,
    logits_key,
    mbconv_key,
    mbv3_key,
)
from ofa_hw.netspec_resnet import bottleneck_key, build_resnet, resnet_keys
from ofa_hw.space import Arch, SearchSpace, make_divisible
from ofa_hw.space_resnet import ResNetSpace

AnySpace = SearchSpace | ResNetSpace

__all__ = [
    "AnySpace",
    "Block",
    "Layer",
    "NetSpec",
    "bottleneck_key",
    "build_netspec",
    "conv_key",
    "conv_out",
    "logits_key",
    "mbconv_key",
    "mbv3_key",
    "space_keys",
]


@dataclass(frozen=True)
class _MB:
    """One MBConv block's choices and its family's per-stage flavour."""

    cin: int
    cout: int
    expand: int
    kernel: int
    stride: int
    space_block: int
    act: str = "relu6"
    se: bool = False
    mbv3: bool = False
    shortcut: bool = True


def _mbconv(b: Builder, hw: int, m: _MB) -> int:
    """Append one MBConv block (1×1 expand, k×k depthwise, [SE], 1×1 project); returns the output size."""
    out_hw = conv_out(hw, m.stride)
    residual = m.shortcut and m.stride == 1 and m.cin == m.cout
    if m.expand == 1:
        mid = m.cin
    else:
        mid = _mid_channels(m.cin, m.expand)
        b.layer("conv", "expand", in_hw=hw, in_c=m.cin, out_hw=hw, out_c=mid, act=m.act)
    dw = b.layer(
        "dwconv",
        "dw",
        in_hw=hw,
        in_c=mid,
        out_hw=out_hw,
        out_c=mid,
        kernel=m.kernel,
        stride=m.stride,
        groups=mid,
        act=m.act,
    )
    if m.se:
        se_mid = make_divisible(mid // 4, 8)
        b.layer("gap", "se_pool", in_hw=out_hw, in_c=mid, out_hw=1, out_c=mid, kernel=out_hw)
        conv = dict(in_hw=1, out_hw=1, bias=True, bn=False)
        b.layer("conv", "se_reduce", in_c=mid, out_c=se_mid, act="relu", **conv)
        scale = b.layer("conv", "se_expand", in_c=se_mid, out_c=mid, act="hsigmoid", **conv)
        b.layer("mul", "se_mul", in_hw=out_hw, in_c=mid, out_hw=out_hw, out_c=mid, inputs=(dw, scale))
    b.layer("conv", "project", in_hw=out_hw, in_c=mid, out_hw=out_hw, out_c=m.cout, residual=residual)
    hs = int(m.act == "hswish")
    if m.mbv3:
        key = mbv3_key(hw, m.cin, out_hw, m.cout, mid, m.kernel, m.stride, int(residual), int(m.se), hs)
    else:
        key = mbconv_key(hw, m.cin, out_hw, m.cout, m.expand, m.kernel, m.stride, int(residual))
    b.close_block(
        "expanded_conv",
        key,
        m.space_block,
        expand=m.expand,
        kernel=m.kernel,
        stride=m.stride,
        idskip=int(residual),
        se=int(m.se),
        hs=hs,
    )
    return out_hw


def _mid_channels(cin: int, expand: int) -> int:
    return make_divisible(round(cin * expand), 8)


@lru_cache(maxsize=4096)
def _build_cached(space: SearchSpace, arch_id: str, name: str) -> NetSpec:
    arch = json.loads(arch_id)
    arch["d"] = space.full_d(arch["d"])
    widths, sk = space.widths, space.skeleton
    mbv3 = space.family == "mbv3"
    b = Builder()
    hw = arch["r"]
    # Stem: 3x3 stride-2 conv.
    out_hw = conv_out(hw, 2)
    b.layer(
        "conv", "stem", in_hw=hw, in_c=3, out_hw=out_hw, out_c=widths[0], kernel=3, stride=2, act=sk.stem_act
    )
    b.close_block("Conv", conv_key(hw, 3, out_hw, widths[0]))
    hw = out_hw
    # First block: fixed MBConv k3 s1 expand 1.
    first = _MB(widths[0], widths[1], 1, 3, 1, -1, sk.first_act, False, mbv3, sk.first_shortcut)
    hw = _mbconv(b, hw, first)
    cin = widths[1]
    for stage, stride in enumerate(sk.stage_strides):
        cout = widths[2 + stage]
        act, se = sk.stage_acts[stage], sk.stage_se[stage]
        for pos, blk in enumerate(list(space.stage_blocks(stage))[: arch["d"][stage]]):
            m = _MB(cin, cout, arch["e"][blk], arch["ks"][blk], stride if pos == 0 else 1, blk, act, se, mbv3)
            hw = _mbconv(b, hw, m)
            cin = cout
    if mbv3:
        _mbv3_head(b, hw, cin, widths[-2], widths[-1], space.n_classes)
    else:
        head = widths[-1]
        b.layer("conv", "feature_mix", in_hw=hw, in_c=cin, out_hw=hw, out_c=head, act="relu6")
        b.close_block("Conv_1", conv_key(hw, cin, hw, head, kind="Conv_1"))
        b.layer("gap", "pool", in_hw=hw, in_c=head, out_hw=1, out_c=head, kernel=hw)
        b.layer("fc", "classifier", in_hw=1, in_c=head, out_hw=1, out_c=space.n_classes, bias=True)
        b.close_block("Logits", logits_key(hw, head, space.n_classes))
    return NetSpec(name=name, input_hw=arch["r"], input_c=3, layers=tuple(b.layers), blocks=tuple(b.blocks))


def _mbv3_head(b: Builder, hw: int, cin: int, expand_c: int, mix_c: int, n_classes: int) -> None:
    """MobileNetV3's head as OFA's ``MBv3LatencyTable`` splits it: Conv_1, AvgPool2D, Conv_2, Logits."""
    b.layer("conv", "final_expand", in_hw=hw, in_c=cin, out_hw=hw, out_c=expand_c, act="hswish")
    b.close_block("Conv_1", conv_key(hw, cin, hw, expand_c, kind="Conv_1"))
    b.layer("gap", "pool", in_hw=hw, in_c=expand_c, out_hw=1, out_c=expand_c, kernel=hw)
    b.close_block("AvgPool2D", conv_key(hw, expand_c, 1, expand_c, kind="AvgPool2D"))
    b.layer("conv", "feature_mix", in_hw=1, in_c=expand_c, out_hw=1, out_c=mix_c, act="hswish", bn=False)
    b.close_block("Conv_2", conv_key(1, expand_c, 1, mix_c, kind="Conv_2"))
    b.layer("fc", "classifier", in_hw=1, in_c=mix_c, out_hw=1, out_c=n_classes, bias=True)
    b.close_block("Logits", f"Logits-input:1x1x{mix_c}-output:{n_classes}")


def build_netspec(space: AnySpace, arch: Arch, name: str = "net") -> NetSpec:
    """The netspec of ``arch`` in ``space`` (validated; cached, so repeated calls are free)."""
    arch_id = space.arch_id(space.validate(arch))
    if isinstance(space, ResNetSpace):
        return build_resnet(space, arch_id, name)
    return _build_cached(space, arch_id, name)


def space_keys(space: AnySpace, resolutions: Iterable[int] | None = None) -> list[str]:
    """Every distinct OFA LUT key the space can produce at ``resolutions`` (default: all), sorted.

    Enumerated per block position rather than per subnet: at a given resolution a position's key
    depends only on its own kernel and expand choice, so a few max-depth archs cover the lot.
    """
    if isinstance(space, ResNetSpace):
        return sorted(resnet_keys(space, resolutions if resolutions is not None else space.resolutions))
    keys: set[str] = set()
    for r in resolutions if resolutions is not None else space.resolutions:
        for k in space.ks_list:
            for e in space.expand_list:
                arch = {
                    "ks": [k] * space.n_blocks,
                    "e": [e] * space.n_blocks,
                    "d": space.max_depth_d,
                    "r": r,
                }
                keys.update(build_netspec(space, arch).keys)
    return sorted(keys)
