"""Netspec: layer graph, MACs/params, OFA LUT keys; the seed's ProxylessNAS-Mobile 0.5 figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ofa_hw.blocktable import BlockTable
from ofa_hw.netspec import build_netspec, space_keys
from ofa_hw.space import get_space


@pytest.fixture(scope="module")
def mobile05():
    space = get_space("proxyless_w05")
    return build_netspec(space, space.named_arch("proxyless_mobile_05"), "proxylessmobile05")


def test_mobile05_totals(mobile05):
    assert abs(mobile05.macs / 1e6 - 103.6) < 0.05
    assert abs(mobile05.params / 1e6 - 2.2) < 0.05
    assert mobile05.macs == 103_585_728 and mobile05.params == 2_169_696


def test_mobile05_per_block_macs_match_seed_csv(mobile05, seed_dir):
    nodes = pd.read_csv(seed_dir / "proxyless_mobile_05_nodes.csv")
    layers = {layer.name: layer for layer in mobile05.layers}
    # Seed node conv_N holds layer conv_N and, for "A" parts, the depthwise conv_{N+1} fused into it.
    for row in nodes.itertuples():
        name = row.dpu_node
        macs = layers[name].macs
        if row.part == "A":
            macs += layers[f"conv_{int(name.split('_')[1]) + 1}"].macs
        assert 2 * macs / 1e6 == pytest.approx(row.mop_computed, abs=1e-3), name
    # Per OFA block: the seed's two nodes of each MBConv block sum to the netspec block's MACs.
    per_block = nodes.dropna(subset=["block_idx"]).groupby("block_idx").mop_computed.sum()
    mbconv = [b for b in mobile05.blocks if b.kind == "expanded_conv"]
    ours = [sum(mobile05.layers[i].macs for i in b.layers) * 2 / 1e6 for b in mbconv]
    # The seed's block 0 also holds the stem (fused with the first depthwise conv).
    ours[0] += mobile05.layers[0].macs * 2 / 1e6
    assert np.allclose(ours, per_block.to_numpy(), atol=2e-3)


def test_layer_graph_and_keys(mobile05):
    names = [layer.name for layer in mobile05.layers]
    assert names[:4] == ["conv_1", "conv_2", "conv_3", "conv_4"] and names[-3:] == [
        "conv_61",
        "pool_1",
        "fc_1",
    ]
    assert mobile05.keys[0] == "Conv-input:224x224x3-output:112x112x16"
    assert (
        mobile05.keys[1]
        == "expanded_conv-input:112x112x16-output:112x112x8-expand:1-kernel:3-stride:1-idskip:0"
    )
    assert (
        mobile05.keys[2]
        == "expanded_conv-input:112x112x8-output:56x56x16-expand:3-kernel:5-stride:2-idskip:0"
    )
    assert (
        mobile05.keys[3] == "expanded_conv-input:56x56x16-output:56x56x16-expand:3-kernel:3-stride:1-idskip:1"
    )
    assert mobile05.keys[-2:] == ["Conv_1-input:7x7x160-output:7x7x1280", "Logits-input:7x7x1280-output:1000"]
    residual = [layer for layer in mobile05.layers if layer.residual]
    assert all(layer.role == "project" and layer.in_hw == layer.out_hw for layer in residual)
    assert len(residual) == 13


def test_ofa_w13_keys_look_like_ofa():
    space = get_space("ofa_proxyless_w13")
    keys = space_keys(space, [224])
    assert "Conv-input:224x224x3-output:112x112x40" in keys
    assert "Conv_1-input:7x7x416-output:7x7x1664" in keys
    assert "Logits-input:7x7x1664-output:1000" in keys
    assert "expanded_conv-input:56x56x32-output:28x28x56-expand:4-kernel:5-stride:2-idskip:0" in keys


@pytest.mark.parametrize("name", ["ofa_proxyless_w13", "proxyless_w05"])
def test_key_counts(name):
    space = get_space(name)
    assert len(space_keys(space, [224])) == 103
    assert len(space_keys(space)) == 1291


@pytest.mark.parametrize("name", ["ofa_proxyless_w13", "proxyless_w05"])
def test_block_table_reproduces_netspec_sums(name):
    space = get_space(name)
    table = BlockTable.from_block_fn(space, lambda block, ns: sum(ns.layers[i].macs for i in block.layers))
    archs = space.sample(np.random.default_rng(2), 100)
    expected = [build_netspec(space, a).macs for a in archs]
    assert np.array_equal(table.evaluate(space.encode(archs)), expected)
    smallest = {"ks": [3] * 21, "e": [3] * 21, "d": [2] * 5 + [1], "r": 128}
    assert table.min_total() == build_netspec(space, smallest).macs


def test_resnet50_term_table_reproduces_netspec_sums():
    """ResNet-50: cells depend on widths of neighbouring stages; the table must still equal the per-block sum."""
    from ofa_hw.termtable import TermTable

    space = get_space("ofa_resnet50")
    table = TermTable.from_block_fn(space, lambda block, ns: sum(ns.layers[i].macs for i in block.layers))
    archs = space.sample(np.random.default_rng(2), 200)
    expected = [build_netspec(space, a).macs for a in archs]
    assert np.array_equal(table.evaluate(space.encode(archs)), expected)
    genes, least = table.argmin()
    smallest = {"d": [0] * 5, "e": [0.2] * 18, "w": [0] * 6, "r": 128}
    assert least == build_netspec(space, smallest).macs
    assert build_netspec(space, space.decode(genes[None])[0]).macs == least
    ones = TermTable.from_block_fn(space, lambda block, ns: 1.0)  # counts blocks: activity is in the index
    assert np.array_equal(
        ones.evaluate(space.encode(archs)), [len(build_netspec(space, a).blocks) for a in archs]
    )
