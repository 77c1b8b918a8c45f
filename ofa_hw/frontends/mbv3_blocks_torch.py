"""PyTorch modules of OFA-MobileNetV3 blocks (:mod:`ofa_hw.frontends.mbv3_blocks`), with the operators vai_q_pytorch
deploys (``nn.Hardswish``, ``nn.Hardsigmoid``): the torch form of the networks the Ultra96 data measured.

Usable as a calibration network reference ``ofa_hw.frontends.mbv3_blocks_torch:block_module`` with ``args:
{name: <block name>}``; the ONNX export of such a module is what a vaitrace user would hand over.
"""

from __future__ import annotations

import torch
from torch import nn

from ofa_hw.frontends.mbv3_blocks import MBV3Block, parse_block


def _act(name: str) -> nn.Module:
    return nn.Hardswish() if name == "hswish" else nn.ReLU()


class SqueezeExcite(nn.Module):
    """OFA's SE: mean over H, W → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → hard-sigmoid → multiply."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        y = self.gate(self.expand(self.relu(self.reduce(y))))
        return x * y


class MBV3BlockModule(nn.Module):
    """One block (or the stem) as PyTorch layers, BN after every conv but the SE's."""

    def __init__(self, block: MBV3Block) -> None:
        super().__init__()
        self.block = block
        layers: list[nn.Module] = []
        if block.kind == "stem":
            layers += [
                nn.Conv2d(block.in_c, block.out_c, block.kernel, block.stride, block.kernel // 2, bias=False),
                nn.BatchNorm2d(block.out_c),
                _act(block.act),
            ]
        else:
            mid = block.mid
            if block.expand != 1:
                layers += [nn.Conv2d(block.in_c, mid, 1, bias=False), nn.BatchNorm2d(mid), _act(block.act)]
            layers += [
                nn.Conv2d(mid, mid, block.kernel, block.stride, block.kernel // 2, groups=mid, bias=False),
                nn.BatchNorm2d(mid),
                _act(block.act),
            ]
            if block.se:
                layers.append(SqueezeExcite(mid, block.se_mid))
            layers += [nn.Conv2d(mid, block.out_c, 1, bias=False), nn.BatchNorm2d(block.out_c)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def block_module(name: str) -> MBV3BlockModule:
    """The module of the block called ``name`` (dataset form, see :func:`ofa_hw.frontends.mbv3_blocks.parse_block`)."""
    return MBV3BlockModule(parse_block(name)).eval()
