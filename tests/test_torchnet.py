"""Static torch modules: MACs from hooks equal the netspec's; every resolution runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ofa_hw.space import get_space
from ofa_hw.torchnet import build_model, count_macs


@pytest.mark.parametrize("name", ["ofa_proxyless_w13", "proxyless_w05"])
def test_hook_macs_equal_netspec_on_random_archs(name):
    space = get_space(name)
    for arch in space.sample(np.random.default_rng(11), 20):
        arch["r"] = int(np.random.default_rng(arch["r"]).choice([128, 132, 160]))  # keep the test fast
        model = build_model(space, arch)
        assert count_macs(model, arch["r"]) == model.netspec.macs
        assert sum(p.numel() for p in model.parameters()) == model.netspec.params


def test_every_resolution_runs_and_shortcuts_are_identity():
    space = get_space("proxyless_w05")
    arch = space.named_arch("proxyless_mobile_05")
    model = build_model(space, arch).eval()
    for r in (128, 132, 180, 224):
        assert model(torch.zeros(1, 3, r, r)).shape == (1, 1000)
    # With every project conv's BN zeroed, residual blocks pass their input through unchanged.
    with torch.no_grad():
        for layer in model.netspec.layers:
            if layer.role == "project":
                bn = model.layers[layer.name].bn
                bn.weight.zero_()
                bn.bias.zero_()
    seen = {}
    hooks = [
        model.layers[name].register_forward_pre_hook(
            lambda m, args, name=name: seen.setdefault(name, args[0].clone())
        )
        for name in ("conv_7", "conv_10")  # input of the residual block conv_7..conv_9, and of the next one
    ]
    model(torch.randn(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    assert torch.equal(seen["conv_7"], seen["conv_10"])
