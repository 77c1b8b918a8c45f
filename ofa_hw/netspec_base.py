"""The netspec data model: layers, LUT blocks, networks, OFA key strings, and the builder that numbers layers.

Space-specific builders (:mod:`ofa_hw.netspec` for OFA's MBConv spaces, :mod:`ofa_hw.netspec_resnet` for
ResNet-50) append layers through :class:`Builder`; everything else reads :class:`NetSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass


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


class Builder:
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
