"""Netspecs of OFA's ResNet-50 space (``ofa_resnet50``): stem, bottlenecks with avg-pool + 1×1 downsample.

Layer names follow the same Caffe-style numbering as the MBConv spaces (``conv_N``, ``pool_N``,
``add_N``, ``fc_1``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

from ofa_hw.netspec_base import Builder, NetSpec, conv_key, conv_out, logits_key
from ofa_hw.space_resnet import BASE_DEPTHS, STAGE_STRIDES, ResNetSpace


# --------------------------------------------------------------------------------------------------
# OFA ResNet-50
# --------------------------------------------------------------------------------------------------
#: ResNet-50 LUT keys (OFA publishes none; this scheme follows OFA's ``<type>-input:…-output:…`` form):
#: ``Conv`` (stem conv 1), ``ResConv`` (the skippable residual stem conv), ``Conv_1`` (stem conv 3),
#: ``MaxPool``, ``bottleneck-input:…-output:…-mid:<C>-stride:<s>-downsample:<0|1>``, ``Logits``.
def bottleneck_key(
    in_hw: int, in_c: int, out_hw: int, out_c: int, mid: int, stride: int, downsample: int
) -> str:
    return (
        f"bottleneck-input:{in_hw}x{in_hw}x{in_c}-output:{out_hw}x{out_hw}x{out_c}"
        f"-mid:{mid}-stride:{stride}-downsample:{downsample}"
    )


def _bottleneck(b: Builder, hw: int, cin: int, cout: int, mid: int, stride: int, space_block: int) -> int:
    """conv1 1×1 → conv2 3×3 (stride) → conv3 1×1, plus identity or avg-pool + 1×1 downsample, ReLU after add."""
    out_hw = conv_out(hw, stride)
    source = len(b.layers) - 1  # the block's input: the last layer of the previous block
    b.layer("conv", "conv1", in_hw=hw, in_c=cin, out_hw=hw, out_c=mid, act="relu")
    b.layer(
        "conv", "conv2", in_hw=hw, in_c=mid, out_hw=out_hw, out_c=mid, kernel=3, stride=stride, act="relu"
    )
    main = b.layer("conv", "conv3", in_hw=out_hw, in_c=mid, out_hw=out_hw, out_c=cout)
    downsample = not (stride == 1 and cin == cout)
    if downsample:
        if stride > 1:
            source = b.layer(
                "avgpool",
                "ds_pool",
                in_hw=hw,
                in_c=cin,
                out_hw=out_hw,
                out_c=cin,
                kernel=stride,
                stride=stride,
                inputs=(source,),
            )
        source = b.layer(
            "conv", "ds_conv", in_hw=out_hw, in_c=cin, out_hw=out_hw, out_c=cout, inputs=(source,)
        )
    b.layer(
        "add", "add", in_hw=out_hw, in_c=cout, out_hw=out_hw, out_c=cout, act="relu", inputs=(main, source)
    )
    key = bottleneck_key(hw, cin, out_hw, cout, mid, stride, int(downsample))
    b.close_block("bottleneck", key, space_block, stride=stride, idskip=int(not downsample))
    return out_hw


@lru_cache(maxsize=4096)
def build_resnet(space: ResNetSpace, arch_id: str, name: str) -> NetSpec:
    arch = json.loads(arch_id)  # d[0] is the stem-skip flag here (see ResNetSpace.arch_id)
    w, b = arch["w"], Builder()
    c0, c1 = space.stem_widths(w)
    hw = arch["r"]
    out_hw = conv_out(hw, 2)
    b.layer("conv", "stem", in_hw=hw, in_c=3, out_hw=out_hw, out_c=c0, kernel=3, stride=2, act="relu")
    b.close_block("Conv", conv_key(hw, 3, out_hw, c0))
    hw = out_hw
    if not arch["d"][0]:
        b.layer(
            "conv", "stem_res", in_hw=hw, in_c=c0, out_hw=hw, out_c=c0, kernel=3, act="relu", residual=True
        )
        b.close_block("ResConv", conv_key(hw, c0, hw, c0, kind="ResConv"))
    b.layer("conv", "stem_2", in_hw=hw, in_c=c0, out_hw=hw, out_c=c1, kernel=3, act="relu")
    b.close_block("Conv_1", conv_key(hw, c0, hw, c1, kind="Conv_1"))
    out_hw = conv_out(hw, 2)
    b.layer("maxpool", "maxpool", in_hw=hw, in_c=c1, out_hw=out_hw, out_c=c1, kernel=3, stride=2)
    b.close_block("MaxPool", conv_key(hw, c1, out_hw, c1, kind="MaxPool"))
    hw, cin = out_hw, c1
    for stage, stride in enumerate(STAGE_STRIDES):
        cout = space.stage_width(stage, w[2 + stage])
        for pos, blk in enumerate(
            list(space.stage_blocks(stage))[: BASE_DEPTHS[stage] + arch["d"][stage + 1]]
        ):
            mid = space.mid_channels(cout, arch["e"][blk])
            hw = _bottleneck(b, hw, cin, cout, mid, stride if pos == 0 else 1, blk)
            cin = cout
    b.layer("gap", "pool", in_hw=hw, in_c=cin, out_hw=1, out_c=cin, kernel=hw)
    b.layer("fc", "classifier", in_hw=1, in_c=cin, out_hw=1, out_c=space.n_classes, bias=True)
    b.close_block("Logits", logits_key(hw, cin, space.n_classes))
    return NetSpec(name=name, input_hw=arch["r"], input_c=3, layers=tuple(b.layers), blocks=tuple(b.blocks))


def resnet_keys(space: ResNetSpace, resolutions: Iterable[int]) -> set[str]:
    """Every LUT key of the ResNet space at ``resolutions``: feature sizes depend on ``r`` only, widths
    on ``w``, middle widths on the stage width and ``e``, so the keys are enumerated directly."""
    keys: set[str] = set()
    nw = range(len(space.width_mult_list))
    for r in resolutions:
        hw = conv_out(r, 2)
        for w0 in nw:
            for w1 in nw:
                c0, c1 = space.stem_widths([w0, w1])
                keys |= {
                    conv_key(r, 3, hw, c0),
                    conv_key(hw, c0, hw, c0, "ResConv"),
                    conv_key(hw, c0, hw, c1, "Conv_1"),
                }
                keys.add(conv_key(hw, c1, conv_out(hw, 2), c1, "MaxPool"))
        hw = conv_out(hw, 2)
        ins = {space.stem_widths([w0, w1])[1] for w0 in nw for w1 in nw}
        for stage, stride in enumerate(STAGE_STRIDES):
            out_hw = conv_out(hw, stride)
            outs = {space.stage_width(stage, i) for i in nw}
            for cout in outs:
                for e in space.expand_list:
                    mid = space.mid_channels(cout, e)
                    for cin in ins:
                        ds = int(not (stride == 1 and cin == cout))
                        keys.add(bottleneck_key(hw, cin, out_hw, cout, mid, stride, ds))
                    keys.add(bottleneck_key(out_hw, cout, out_hw, cout, mid, 1, 0))
            ins, hw = outs, out_hw
        keys |= {logits_key(hw, c, space.n_classes) for c in ins}
    return keys
