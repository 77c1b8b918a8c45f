"""FCN8 (VGG-16 encoder, transposed-conv decoder) as a torch module: the second real ZCU102 network.

Rebuilt from its layer-by-layer description (``ofa_hw/data/zcu102_b4096/fcn8_network.md``: Keras
``FCN8()`` of the Xilinx Vitis tutorials, no BN, ``upscale="False"``, n = 512, 12 classes, input
224×224×3). ``forward`` runs the layers in the order of the real DNNDK profile's nodes
(``fcn8_dnndk_board_log.txt``), so the traced op list compiles into the profiled node list: 21 nodes.
:func:`fcn8_ops` renames the traced ops to the Keras/TensorFlow names DNNDK prints
(``block1_conv1_convolution``, ``conv2d_transpose_2_conv2d_transpose``, ``add_layer_add_1``);
compile them with an empty net name (:func:`fcn8_net`) to get the profile's node names.

The log's second kernel, ``fcn8ups``, is not fully described, but three of its small nodes that FCN8
lacks are determined by their Workload and Mem(MB) columns alone (:data:`FCN8UPS_NODES`): the 1×1
convs 12→12 on 14×14 (0.056 MOP) and 7×7 (0.014 MOP) and the 7×7 conv 512→12 on a 7×7 map
(29.503 MOP); each is usable as a one-node network (``ofa_hw.frontends.fcn8:pool411_b`` …).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ofa_hw.frontends.ops import Op

#: (C, H, W) of the input the real FCN8 ran at.
INPUT_SHAPE = (3, 224, 224)
#: Encoder convs (3×3, pad 1, ReLU) and whether a 2×2 max pool follows, in order.
VGG = (
    ("block1_conv1", 3, 64, False),
    ("block1_conv2", 64, 64, True),
    ("block2_conv1", 64, 128, False),
    ("block2_conv2", 128, 128, True),
    ("block3_conv1", 128, 256, False),
    ("block3_conv2", 256, 256, False),
    ("block3_conv3", 256, 256, True),
    ("block4_conv1", 256, 512, False),
    ("block4_conv2", 512, 512, False),
    ("block4_conv3", 512, 512, True),
    ("block5_conv1", 512, 512, False),
    ("block5_conv2", 512, 512, False),
    ("block5_conv3", 512, 512, True),
)


class FCN8(nn.Module):
    """FCN8 with ``classes`` output channels and ``n`` channels in conv6/conv7 (the tutorial's n = 512)."""

    block5_conv1: nn.Conv2d  # the encoder convs are set by name from VGG; block5's are called directly
    block5_conv2: nn.Conv2d
    block5_conv3: nn.Conv2d

    def __init__(self, classes: int = 12, n: int = 512) -> None:
        super().__init__()
        for name, cin, cout, _ in VGG:
            setattr(self, name, nn.Conv2d(cin, cout, 3, padding=1))
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU()
        self.pool4_11 = nn.Conv2d(512, classes, 1)
        self.pool3_11 = nn.Conv2d(256, classes, 1)
        self.conv6 = nn.Conv2d(512, n, 7, padding=3)
        self.conv7 = nn.Conv2d(n, n, 1)
        self.conv2d_transpose_2 = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)
        self.conv2d_transpose_1 = nn.ConvTranspose2d(n, classes, 4, stride=4, bias=False)
        self.conv2d_transpose_3 = nn.ConvTranspose2d(classes, classes, 8, stride=8, bias=False)

    def _vgg(self, x: torch.Tensor, first: int, last: int) -> torch.Tensor:
        for name, _, _, pool in VGG[first:last]:
            conv: nn.Module = getattr(self, name)
            x = self.relu(conv(x))
            if pool:
                x = self.pool(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Layer order = the order of the profile's nodes (DNNDK schedules the decoder between block5's convs).
        pool3 = self._vgg(x, 0, 7)
        pool4 = self._vgg(pool3, 7, 10)
        o = self.relu(self.pool4_11(pool4))
        x = self.relu(self.block5_conv1(pool4))
        o = self.conv2d_transpose_2(o)
        x = self.relu(self.block5_conv2(x))
        o = self.relu(self.pool3_11(pool3)) + o
        x = self.pool(self.relu(self.block5_conv3(x)))
        x = self.relu(self.conv6(x))
        x = self.relu(self.conv7(x))
        x = self.conv2d_transpose_1(x)
        return self.conv2d_transpose_3(o + x)


def _dnndk_names() -> list[str]:
    """The name DNNDK prints for each non-pool traced op (TensorFlow op names of the Keras layers)."""
    names = [f"{name}_convolution" for name, _, _, _ in VGG[:10]]
    names += ["pool4_11_convolution", "block5_conv1_convolution", "conv2d_transpose_2_conv2d_transpose"]
    names += ["block5_conv2_convolution", "pool3_11_convolution", "add_layer_add"]
    names += ["block5_conv3_convolution", "conv6_convolution", "conv7_convolution"]
    names += ["conv2d_transpose_1_conv2d_transpose", "add_layer_add_1", "conv2d_transpose_3_conv2d_transpose"]
    return names


def fcn8_ops(classes: int = 12, n: int = 512) -> list[Op]:
    """The traced ops of :class:`FCN8`, named as DNNDK names the nodes (max pools keep their fx names)."""
    from ofa_hw.frontends.torch_fx import trace_ops

    ops, _ = trace_ops(FCN8(classes, n), INPUT_SHAPE)
    names = iter(_dnndk_names())
    return [o if o.kind == "maxpool" else replace(o, name=next(names)) for o in ops]


def fcn8_net(dpu: Any, classes: int = 12, n: int = 512) -> Any:
    """:class:`FCN8` compiled for ``dpu`` with the real profile's node names (no net-name prefix)."""
    from ofa_hw.sim.compiler import compile_ops

    return compile_ops(fcn8_ops(classes, n), dpu, "", INPUT_SHAPE)


def _single(name: str, c_in: int, hw: int, c_out: int, k: int) -> Op:
    return Op(0, name, "conv", hw, hw, c_in, hw, hw, c_out, k, k, act="relu", inputs=(-1,))


#: Nodes of the ``fcn8ups`` kernel that FCN8 lacks, reconstructed from their Workload(MOP) and Mem(MB).
FCN8UPS_NODES = {
    "pool411_b_convolution": _single("pool411_b_convolution", 12, 14, 12, 1),
    "conv7_4b_convolution": _single("conv7_4b_convolution", 12, 7, 12, 1),
    "conv7_4a_convolution": _single("conv7_4a_convolution", 512, 7, 12, 7),
}


def pool411_b() -> list[Op]:
    """``fcn8ups``'s ``pool411_b_convolution``: 1×1 conv 12→12 on 14×14 (0.056 MOP)."""
    return [FCN8UPS_NODES["pool411_b_convolution"]]


def conv7_4b() -> list[Op]:
    """``fcn8ups``'s ``conv7_4b_convolution``: 1×1 conv 12→12 on 7×7 (0.014 MOP)."""
    return [FCN8UPS_NODES["conv7_4b_convolution"]]


def conv7_4a() -> list[Op]:
    """``fcn8ups``'s ``conv7_4a_convolution``: 7×7 conv 512→12 on 7×7 (29.503 MOP)."""
    return [FCN8UPS_NODES["conv7_4a_convolution"]]
