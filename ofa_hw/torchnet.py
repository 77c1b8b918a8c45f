"""Static PyTorch modules for OFA subnets, built layer-for-layer from a netspec.

The module mirrors the netspec exactly (``model.layers[name]`` is the netspec layer of that name), so
exporters, the simulator's tracer and the supernet weight extraction can all rely on one mapping.
"""

from __future__ import annotations

import torch
from torch import nn

from ofa_hw.netspec import AnySpace, Layer, NetSpec, build_netspec
from ofa_hw.space import Arch

#: Activation modules by netspec name (``None``: identity).
ACTIVATIONS: dict[str | None, type[nn.Module]] = {
    None: nn.Identity,
    "relu6": nn.ReLU6,
    "relu": nn.ReLU,
    "hswish": nn.Hardswish,
    "hsigmoid": nn.Hardsigmoid,
}


class ConvBNAct(nn.Module):
    """Conv + BatchNorm (when the layer has one) + activation: one netspec conv/dwconv layer.

    Squeeze-excite convs have a bias and no BN; MobileNetV3's feature mix has neither.
    """

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            layer.in_c,
            layer.out_c,
            layer.kernel,
            stride=layer.stride,
            padding=layer.kernel // 2,
            groups=layer.groups,
            bias=layer.bias,
        )
        self.bn: nn.Module = nn.BatchNorm2d(layer.out_c) if layer.has_bn else nn.Identity()
        self.act = ACTIVATIONS[layer.act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class OFASubnet(nn.Module):
    """A static subnet: stem, MBConv blocks (with squeeze-excite where the space has it) and OFA's
    identity shortcuts, head, classifier.

    Attributes:
        netspec: The netspec the module was built from.
        layers: ``nn.ModuleDict`` keyed by netspec layer name (``conv_1`` … ``fc_1``, ResNet's pools and
            post-add ReLUs; global pools and the SE multiply are applied in :meth:`forward`).
    """

    def __init__(self, netspec: NetSpec) -> None:
        super().__init__()
        self.netspec = netspec
        modules: dict[str, nn.Module] = {}
        for layer in netspec.layers:
            if layer.kind in ("conv", "dwconv"):
                modules[layer.name] = ConvBNAct(layer)
            elif layer.kind == "fc":
                modules[layer.name] = nn.Linear(layer.in_c, layer.out_c)
            elif layer.kind == "add":  # the activation after a ResNet add (no parameters)
                modules[layer.name] = ACTIVATIONS[layer.act]()
            elif layer.kind == "maxpool":
                modules[layer.name] = nn.MaxPool2d(layer.kernel, layer.stride, layer.kernel // 2)
            elif layer.kind == "avgpool":  # OFA's downsample pool: no padding, ceil mode
                modules[layer.name] = nn.AvgPool2d(layer.kernel, layer.stride, 0, ceil_mode=True)
        self.layers = nn.ModuleDict(modules)
        self._blocks = [[netspec.layers[i] for i in block.layers] for block in netspec.blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = {-1: x}
        for block in self._blocks:
            shortcut = x
            for layer in block:
                if layer.kind == "gap":
                    x = x.mean(dim=(2, 3), keepdim=True)
                elif layer.kind == "mul":
                    a, b = (outputs[i] for i in layer.producers)
                    x = a * b
                elif layer.kind == "add":
                    a, b = (outputs[i] for i in layer.producers)
                    x = self.layers[layer.name](a + b)
                else:
                    x = outputs.get(layer.producers[0], x) if layer.inputs else x
                    if layer.kind == "fc":
                        x = torch.flatten(x, 1)
                    x = self.layers[layer.name](x)
                if layer.residual:
                    x = x + shortcut
                outputs[layer.index] = x
        return x


def build_model(space: AnySpace, arch: Arch, name: str = "net") -> OFASubnet:
    """A randomly initialised static module for ``arch`` (call ``.eval()`` before exporting)."""
    return OFASubnet(build_netspec(space, arch, name))


def count_macs(model: nn.Module, input_hw: int, input_c: int = 3) -> int:
    """MACs of conv and linear layers, counted with forward hooks on a real forward pass."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() // output.shape[0] * (module.in_channels // module.groups) * k

    def linear_hook(module: nn.Linear, _inputs, _output) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, input_c, input_hw, input_hw))
    finally:
        for handle in handles:
            handle.remove()
    return total
