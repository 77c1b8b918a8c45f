"""Subnets with non-trivial weights, so numerical export checks can actually fail."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ofa_hw.space import SearchSpace
from ofa_hw.torchnet import OFASubnet, build_model


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running stats and affine parameters (in place), eval mode.

    Freshly built BNs are identities (mean 0, var 1, gamma 1, beta 0): an exporter that dropped or
    mangled them would still match torch. Random stats make every BN term matter.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.5)
            module.eps = 1e-3
    return model.eval()


def random_subnet(
    space: SearchSpace, seed: int, r: int | None = None, name: str = "net"
) -> tuple[OFASubnet, dict]:
    """A random arch of ``space`` (optionally at resolution ``r``) as a randomized eval-mode module."""
    arch = space.sample(np.random.default_rng(seed))
    if r is not None:
        arch = space.validate({**arch, "r": r})
    torch.manual_seed(seed)
    return randomize_(build_model(space, arch, name), seed), arch
