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

from ofa_hw.space import Arch, SearchSpace, make_divisible
from ofa_hw.space_resnet import BASE_DEPTHS, ResNetSpace
from ofa_hw.space_resnet import STAGE_STRIDES as STAGE_STRIDES_RESNET

AnySpace = SearchSpace | ResNetSpace


def conv_out(hw: int, stride: int) -> int:
    """Output size of an OFA conv with ``padding = k // 2``: ``ceil(hw / stride)``."""
    return -(-hw // stride)


@dataclass(frozen=True)
class Layer:
    """One operator of the network (BN is folded into its conv; the activation is ``act``).

    Attributes:
        index: Position in :attr:`NetSpec.layers`.
        name: Caffe-style layer name (``conv_4``, ``pool_1``, ``mul_1``, ``fc_1``).
        kind: ``conv`` | ``dwconv`` | ``gap`` | ``maxpool`` (padding k//2) | ``avgpool`` (no padding,
            ceil mode) | ``mul`` | ``add`` (sum of its producers, then ``act``) | ``fc``.
        role: ``stem`` | ``expand`` | ``dw`` | ``se_pool`` | ``se_reduce`` | ``se_expand`` | ``se_mul`` |
            ``project`` | ``final_expand`` | ``feature_mix`` | ``pool`` | ``classifier``.
        block: Index into :attr:`NetSpec.blocks` of the block this layer belongs to.
        act: ``relu6`` | ``relu`` | ``hswish`` | ``hsigmoid`` | None.
        residual: The block's identity shortcut is added to this layer's output.
        bias: The layer has a bias of its own (the classifier, squeeze-excite convs).
        bn: A conv/dwconv layer is followed by BN (all but squeeze-excite and MBv3's feature mix).
        inputs: Producer layer indices when not just the previous layer (the SE multiply: the
            depthwise output and the SE scale).
    """

    index: int
    name: str
    kind: str
    role: str
    block: int
    in_hw: int
    in_c: int
    out_hw: int
    out_c: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str | None = None
    residual: bool = False
    bias: bool = False
    bn: bool = True
    inputs: tuple[int, ...] = ()

    @property
    def has_bn(self) -> bool:
        return self.bn and self.kind in ("conv", "dwconv")

    @property
    def producers(self) -> tuple[int, ...]:
        """Indices of the layers feeding this one (-1: the network input)."""
        return self.inputs or (self.index - 1,)

    @property
    def macs(self) -> int:
        if self.kind in ("conv", "dwconv"):
            return self.out_hw * self.out_hw * self.out_c * (self.in_c // self.groups) * self.kernel**2
        if self.kind == "fc":
            return self.in_c * self.out_c
        return 0

    @property
    def weights(self) -> int:
        """Weight count of the conv/fc kernel (no bias, no BN): what the DPU streams from DDR."""
        if self.kind in ("conv", "dwconv"):
            return self.out_c * (self.in_c // self.groups) * self.kernel**2
        if self.kind == "fc":
            return self.in_c * self.out_c
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters as PyTorch counts them (kernel + bias or BN affine)."""
        extra = self.out_c if self.bias else 0
        if self.has_bn:
            extra += 2 * self.out_c
        return self.weights + extra


@dataclass(frozen=True)
class Block:
    """A unit of OFA's latency LUT: a set of layers sharing one key.

    Attributes:
        index: Position in :attr:`NetSpec.blocks`.
        kind: ``Conv`` (stem) | ``expanded_conv`` | ``Conv_1`` (feature mix; MBv3: final expand) |
            ``AvgPool2D`` (MBv3) | ``Conv_2`` (MBv3 feature mix) | ``Logits`` (ProxylessNAS: pool + fc).
        key: OFA LUT key string.
        layers: Indices of the block's layers in :attr:`NetSpec.layers`.
        space_block: Block index in the space for the blocks of the elastic stages, -1 otherwise.
        idskip: 1 when the block has an identity shortcut.
        se, hs: MBv3 blocks: squeeze-excite, hard-swish (0/1, as in OFA's MBv3 keys).
    """

    index: int
    kind: str
    key: str
    layers: tuple[int, ...]
    space_block: int
    in_hw: int
    in_c: int
    out_hw: int
    out_c: int
    expand: int = 1
    kernel: int = 1
    stride: int = 1
    idskip: int = 0
    se: int = 0
    hs: int = 0


@dataclass(frozen=True)
class NetSpec:
    """The layers and LUT blocks of one network at one input resolution."""

    name: str
    input_hw: int
    input_c: int
    layers: tuple[Layer, ...]
    blocks: tuple[Block, ...]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def keys(self) -> list[str]:
        return [block.key for block in self.blocks]

    def block_layers(self, block: int) -> list[Layer]:
        return [self.layers[i] for i in self.blocks[block].layers]

    def block_macs(self) -> list[int]:
        return [sum(self.layers[i].macs for i in b.layers) for b in self.blocks]


def conv_key(in_hw: int, in_c: int, out_hw: int, out_c: int, kind: str = "Conv") -> str:
    return f"{kind}-input:{in_hw}x{in_hw}x{in_c}-output:{out_hw}x{out_hw}x{out_c}"


def mbconv_key(
    in_hw: int, in_c: int, out_hw: int, out_c: int, expand: int, kernel: int, stride: int, idskip: int
) -> str:
    return (
        f"expanded_conv-input:{in_hw}x{in_hw}x{in_c}-output:{out_hw}x{out_hw}x{out_c}"
        f"-expand:{expand}-kernel:{kernel}-stride:{stride}-idskip:{idskip}"
    )


def mbv3_key(
    in_hw: int,
    in_c: int,
    out_hw: int,
    out_c: int,
    mid: int,
    kernel: int,
    stride: int,
    idskip: int,
    se: int,
    hs: int,
) -> str:
    """OFA's ``MBv3LatencyTable`` key of an MBConv block (``expand`` is the middle channel count)."""
    return (
        f"expanded_conv-input:{in_hw}x{in_hw}x{in_c}-output:{out_hw}x{out_hw}x{out_c}"
        f"-expand:{mid}-kernel:{kernel}-stride:{stride}-idskip:{idskip}-se:{se}-hs:{hs}"
    )


def logits_key(in_hw: int, in_c: int, n_classes: int) -> str:
    return f"Logits-input:{in_hw}x{in_hw}x{in_c}-output:{n_classes}"


class _Builder:
    """Accumulates layers and blocks in order, numbering conv layers as the Caffe converter does."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.blocks: list[Block] = []
        self.counts: dict[str, int] = {}
        self._pending: list[dict] = []

    def layer(self, kind: str, role: str, **fields) -> int:
        """Queue a layer for the open block; returns its index in the network."""
        family = {
            "conv": "conv",
            "dwconv": "conv",
            "gap": "pool",
            "maxpool": "pool",
            "avgpool": "pool",
            "mul": "mul",
            "add": "add",
            "fc": "fc",
        }[kind]
        self.counts[family] = self.counts.get(family, 0) + 1
        self._pending.append(dict(kind=kind, role=role, name=f"{family}_{self.counts[family]}", **fields))
        return len(self.layers) + len(self._pending) - 1

    def close_block(self, kind: str, key: str, space_block: int = -1, **fields) -> None:
        block_index = len(self.blocks)
        indices = []
        for spec in self._pending:
            index = len(self.layers)
            self.layers.append(Layer(index=index, block=block_index, **spec))
            indices.append(index)
        self._pending = []
        first, last = self.layers[indices[0]], self.layers[indices[-1]]
        self.blocks.append(
            Block(
                index=block_index,
                kind=kind,
                key=key,
                layers=tuple(indices),
                space_block=space_block,
                in_hw=first.in_hw,
                in_c=first.in_c,
                out_hw=last.out_hw,
                out_c=last.out_c,
                **fields,
            )
        )


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


def _mbconv(b: _Builder, hw: int, m: _MB) -> int:
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
    b = _Builder()
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


def _mbv3_head(b: _Builder, hw: int, cin: int, expand_c: int, mix_c: int, n_classes: int) -> None:
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
        return _build_resnet(space, arch_id, name)
    return _build_cached(space, arch_id, name)


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


def _bottleneck(b: _Builder, hw: int, cin: int, cout: int, mid: int, stride: int, space_block: int) -> int:
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
def _build_resnet(space: ResNetSpace, arch_id: str, name: str) -> NetSpec:
    arch = json.loads(arch_id)  # d[0] is the stem-skip flag here (see ResNetSpace.arch_id)
    w, b = arch["w"], _Builder()
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
    for stage, stride in enumerate(STAGE_STRIDES_RESNET):
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
        for stage, stride in enumerate(STAGE_STRIDES_RESNET):
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
