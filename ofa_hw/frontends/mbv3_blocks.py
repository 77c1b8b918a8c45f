"""OFA MobileNetV3 blocks as compiler ops: the networks of the Ultra96 calibration set (and any like them).

A block is OFA's ``MBConvLayer``: 1×1 expand conv (``C → make_divisible(C·e, 8)``, absent when e = 1)
+ BN + act, k×k depthwise conv (stride s, padding k//2) + BN + act, optional squeeze-excite (mean over
H, W → 1×1 conv with bias to ``make_divisible(mid/4, 8)`` → ReLU → 1×1 conv with bias → hard-sigmoid →
multiply), 1×1 projection to C' + BN, no residual. The stem is a 3×3 stride-2 conv + BN + act.
The act is ReLU or hard-swish. Block names follow the public dataset the Ultra96 data come from
(``ofa_hw/data/ultra96_b2304/README.md``), so a CSV row names the network it measured::

    ResidualBlock-in_96x14x14-out_136-k_7-e_6-s_1-act_h_swish-use_se_True
    Conv_in-3x224x224_out-24_k-3_act-relu
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ofa_hw.frontends.ops import Op
from ofa_hw.space import make_divisible

_BLOCK = re.compile(
    r"^ResidualBlock-in_(\d+)x(\d+)x(\d+)-out_(\d+)-k_(\d+)-e_(\d+)-s_(\d+)-act_(relu|h_swish)-use_se_(True|False)$"
)
_STEM = re.compile(r"^Conv_in-(\d+)x(\d+)x(\d+)_out-(\d+)_k-(\d+)_act-(relu|h_swish)$")
_ACT = {"relu": "relu", "h_swish": "hswish"}


@dataclass(frozen=True)
class MBV3Block:
    """One OFA-MobileNetV3 block (``kind='mbconv'``) or the stem conv (``kind='stem'``).

    Attributes:
        kind: ``mbconv`` | ``stem``.
        in_c, hw, out_c: Input channels, input height (= width), output channels.
        kernel, expand, stride: Depthwise (stem: conv) kernel, expand ratio (stem: 1), stride.
        act: ``relu`` | ``hswish``.
        se: Squeeze-excite after the depthwise conv.
    """

    kind: str
    in_c: int
    hw: int
    out_c: int
    kernel: int
    expand: int = 1
    stride: int = 1
    act: str = "relu"
    se: bool = False

    @property
    def mid(self) -> int:
        """Channels of the expanded (depthwise) feature map."""
        return self.in_c if self.expand == 1 else make_divisible(self.in_c * self.expand, 8)

    @property
    def se_mid(self) -> int:
        """Channels of the squeeze-excite bottleneck (OFA: ``make_divisible(mid // 4, 8)``)."""
        return make_divisible(self.mid // 4, 8)

    @property
    def out_hw(self) -> int:
        return -(-self.hw // self.stride)

    @property
    def name(self) -> str:
        """The dataset's name of the block (what :func:`parse_block` reads)."""
        act = {v: k for k, v in _ACT.items()}[self.act]
        if self.kind == "stem":
            return f"Conv_in-{self.in_c}x{self.hw}x{self.hw}_out-{self.out_c}_k-{self.kernel}_act-{act}"
        return (
            f"ResidualBlock-in_{self.in_c}x{self.hw}x{self.hw}-out_{self.out_c}-k_{self.kernel}-e_{self.expand}"
            f"-s_{self.stride}-act_{act}-use_se_{self.se}"
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_c, self.hw, self.hw)


def parse_block(name: str) -> MBV3Block:
    """The block a dataset name describes (``ValueError`` naming the expected forms otherwise)."""
    name = name.strip()
    m = _BLOCK.match(name)
    if m:
        c, h, w, co, k, e, s, act, se = m.groups()
        if h != w:
            raise ValueError(f"block {name!r}: only square inputs are supported")
        return MBV3Block("mbconv", int(c), int(h), int(co), int(k), int(e), int(s), _ACT[act], se == "True")
    m = _STEM.match(name)
    if m:
        c, h, w, co, k, act = m.groups()
        if h != w:
            raise ValueError(f"block {name!r}: only square inputs are supported")
        return MBV3Block("stem", int(c), int(h), int(co), int(k), 1, 2, _ACT[act], False)
    raise ValueError(
        f"block {name!r} is not an OFA-MobileNetV3 block name "
        "(ResidualBlock-in_<C>x<H>x<W>-out_<C'>-k_<k>-e_<e>-s_<s>-act_<relu|h_swish>-use_se_<True|False> "
        "or Conv_in-<C>x<H>x<W>_out-<C'>_k-<k>_act-<relu|h_swish>)"
    )


class _Ops:
    """Appends chained ops with Caffe-style names (``conv_1``, ``pool_1``, ``mul_1``)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.counts: dict[str, int] = {}

    def add(self, family: str, kind: str, shape_in, shape_out, inputs=None, **kw) -> int:
        self.counts[family] = self.counts.get(family, 0) + 1
        index = len(self.ops)
        (ci, hi), (co, ho) = shape_in, shape_out
        if inputs is None:
            inputs = (index - 1,)
        self.ops.append(
            Op(
                index=index,
                name=f"{family}_{self.counts[family]}",
                kind=kind,
                in_h=hi,
                in_w=hi,
                in_c=ci,
                out_h=ho,
                out_w=ho,
                out_c=co,
                inputs=tuple(inputs),
                **kw,
            )
        )
        return index


def block_ops(block: MBV3Block) -> list[Op]:
    """The compiler ops of ``block`` (BN folded, activations fused, SE as gap/conv/conv/mul)."""
    b = _Ops()
    h, ho = block.hw, block.out_hw
    if block.kind == "stem":
        b.add(
            "conv",
            "conv",
            (block.in_c, h),
            (block.out_c, ho),
            kh=block.kernel,
            kw=block.kernel,
            stride=block.stride,
            act=block.act,
        )
        return b.ops
    mid = block.mid
    if block.expand != 1:
        b.add("conv", "conv", (block.in_c, h), (mid, h), act=block.act)
    dw = b.add(
        "conv",
        "dwconv",
        (mid, h),
        (mid, ho),
        kh=block.kernel,
        kw=block.kernel,
        stride=block.stride,
        groups=mid,
        act=block.act,
    )
    last = dw
    if block.se:
        b.add("pool", "gap", (mid, ho), (mid, 1), kh=ho, kw=ho)
        b.add("conv", "conv", (mid, 1), (block.se_mid, 1), act="relu")
        scale = b.add("conv", "conv", (block.se_mid, 1), (mid, 1), act="hsigmoid")
        last = b.add("mul", "mul", (mid, ho), (mid, ho), inputs=(dw, scale))
    b.add("conv", "conv", (mid, ho), (block.out_c, ho), inputs=(last,))
    return b.ops
