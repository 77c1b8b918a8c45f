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

from ofa_hw.space import STAGE_STRIDES, Arch, SearchSpace, make_divisible


def conv_out(hw: int, stride: int) -> int:
    """Output size of an OFA conv with ``padding = k // 2``: ``ceil(hw / stride)``."""
    return -(-hw // stride)


@dataclass(frozen=True)
class Layer:
    """One operator of the network (BN is folded into its conv; ReLU6 is ``act``).

    Attributes:
        index: Position in :attr:`NetSpec.layers`.
        name: Caffe-style layer name (``conv_4``, ``pool_1``, ``fc_1``).
        kind: ``conv`` | ``dwconv`` | ``gap`` | ``fc``.
        role: ``stem`` | ``expand`` | ``dw`` | ``project`` | ``feature_mix`` | ``pool`` | ``classifier``.
        block: Index into :attr:`NetSpec.blocks` of the block this layer belongs to.
        residual: The block's identity shortcut is added to this layer's output.
        bias: The layer has a bias of its own (only the classifier; convs get BN).
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

    @property
    def has_bn(self) -> bool:
        return self.kind in ("conv", "dwconv")

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
        kind: ``Conv`` (stem) | ``expanded_conv`` | ``Conv_1`` (feature mix) | ``Logits`` (pool + fc).
        key: OFA LUT key string.
        layers: Indices of the block's layers in :attr:`NetSpec.layers`.
        space_block: 0..20 for the blocks of the elastic stages, -1 otherwise.
        idskip: 1 when the block has an identity shortcut.
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


def conv_key(in_hw: int, in_c: int, out_hw: int, out_c: int, kind: str = "Conv") -> str:
    return f"{kind}-input:{in_hw}x{in_hw}x{in_c}-output:{out_hw}x{out_hw}x{out_c}"


def mbconv_key(
    in_hw: int, in_c: int, out_hw: int, out_c: int, expand: int, kernel: int, stride: int, idskip: int
) -> str:
    return (
        f"expanded_conv-input:{in_hw}x{in_hw}x{in_c}-output:{out_hw}x{out_hw}x{out_c}"
        f"-expand:{expand}-kernel:{kernel}-stride:{stride}-idskip:{idskip}"
    )


def logits_key(in_hw: int, in_c: int, n_classes: int) -> str:
    return f"Logits-input:{in_hw}x{in_hw}x{in_c}-output:{n_classes}"


class _Builder:
    """Accumulates layers and blocks in order, numbering conv layers as the Caffe converter does."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.blocks: list[Block] = []
        self.n_conv = 0
        self._pending: list[dict] = []

    def layer(self, kind: str, role: str, **fields) -> None:
        if kind in ("conv", "dwconv"):
            self.n_conv += 1
            name = f"conv_{self.n_conv}"
        else:
            name = {"gap": "pool_1", "fc": "fc_1"}[kind]
        self._pending.append(dict(kind=kind, role=role, name=name, **fields))

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


def _mbconv(
    b: _Builder, hw: int, cin: int, cout: int, expand: int, kernel: int, stride: int, space_block: int
) -> int:
    """Append one MBConv block (1×1 expand, k×k depthwise, 1×1 project); returns the output size."""
    out_hw = conv_out(hw, stride)
    residual = stride == 1 and cin == cout
    if expand == 1:
        mid = cin
    else:
        mid = _mid_channels(cin, expand)
        b.layer("conv", "expand", in_hw=hw, in_c=cin, out_hw=hw, out_c=mid, act="relu6")
    b.layer(
        "dwconv",
        "dw",
        in_hw=hw,
        in_c=mid,
        out_hw=out_hw,
        out_c=mid,
        kernel=kernel,
        stride=stride,
        groups=mid,
        act="relu6",
    )
    b.layer("conv", "project", in_hw=out_hw, in_c=mid, out_hw=out_hw, out_c=cout, residual=residual)
    key = mbconv_key(hw, cin, out_hw, cout, expand, kernel, stride, int(residual))
    b.close_block(
        "expanded_conv", key, space_block, expand=expand, kernel=kernel, stride=stride, idskip=int(residual)
    )
    return out_hw


def _mid_channels(cin: int, expand: int) -> int:
    return make_divisible(round(cin * expand), 8)


@lru_cache(maxsize=4096)
def _build_cached(space: SearchSpace, arch_id: str, name: str) -> NetSpec:
    arch = json.loads(arch_id)
    widths = space.widths
    b = _Builder()
    hw = arch["r"]
    # Stem: 3x3 stride-2 conv.
    out_hw = conv_out(hw, 2)
    b.layer("conv", "stem", in_hw=hw, in_c=3, out_hw=out_hw, out_c=widths[0], kernel=3, stride=2, act="relu6")
    b.close_block("Conv", conv_key(hw, 3, out_hw, widths[0]))
    hw = out_hw
    # First block: fixed MBConv k3 s1 expand 1, no shortcut.
    hw = _mbconv(b, hw, widths[0], widths[1], 1, 3, 1, space_block=-1)
    cin = widths[1]
    for stage, stride in enumerate(STAGE_STRIDES):
        cout = widths[2 + stage]
        depth = 1 if stage == space.n_stages - 1 else arch["d"][stage]
        for pos, blk in enumerate(list(space.stage_blocks(stage))[:depth]):
            hw = _mbconv(b, hw, cin, cout, arch["e"][blk], arch["ks"][blk], stride if pos == 0 else 1, blk)
            cin = cout
    head = widths[-1]
    b.layer("conv", "feature_mix", in_hw=hw, in_c=cin, out_hw=hw, out_c=head, act="relu6")
    b.close_block("Conv_1", conv_key(hw, cin, hw, head, kind="Conv_1"))
    b.layer("gap", "pool", in_hw=hw, in_c=head, out_hw=1, out_c=head, kernel=hw)
    b.layer("fc", "classifier", in_hw=1, in_c=head, out_hw=1, out_c=space.n_classes, bias=True)
    b.close_block("Logits", logits_key(hw, head, space.n_classes))
    return NetSpec(name=name, input_hw=arch["r"], input_c=3, layers=tuple(b.layers), blocks=tuple(b.blocks))


def build_netspec(space: SearchSpace, arch: Arch, name: str = "net") -> NetSpec:
    """The netspec of ``arch`` in ``space`` (validated; cached, so repeated calls are free)."""
    return _build_cached(space, space.arch_id(space.validate(arch)), name)


def space_keys(space: SearchSpace, resolutions: Iterable[int] | None = None) -> list[str]:
    """Every distinct OFA LUT key the space can produce at ``resolutions`` (default: all), sorted.

    Enumerated per block position rather than per subnet: at a given resolution a position's key
    depends only on its own kernel and expand choice, so a few max-depth archs cover the lot.
    """
    keys: set[str] = set()
    for r in resolutions if resolutions is not None else space.resolutions:
        for k in space.ks_list:
            for e in space.expand_list:
                arch = {
                    "ks": [k] * space.n_blocks,
                    "e": [e] * space.n_blocks,
                    "d": [space.max_depth] * (space.n_stages - 1) + [1],
                    "r": r,
                }
                keys.update(build_netspec(space, arch).keys)
    return sorted(keys)
