"""Map DPU profile nodes back to the OFA LUT blocks (keys) of a netspec.

A DPU node is named after the first layer fused into it (``<kernel>_conv_4``) and holds every layer up
to the next node's first layer: that is how VAI_C fuses a sequential net (BN/ReLU6 into the conv, the
depthwise conv into the conv before it, the residual add into the project conv, the global pool into
the feature-mix conv). Usually a node lies inside one block, and a block is two nodes. When a node
spans two blocks — the stem conv fused with the first block's depthwise conv, the feature-mix conv
fused with the global pool of the ``Logits`` block — its time is split in proportion to the
simulator's analytic per-layer times, so the block times still add up to the node times.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ofa_hw.errors import UserError
from ofa_hw.netspec import NetSpec

_LAYER_SUFFIX = re.compile(r"(?:^|_)((?:conv|pool|fc)_\d+)$")


class NodeMappingError(UserError, ValueError):
    """A profile's nodes do not fit the netspec (unknown or repeated layer names)."""


def node_layers(netspec: NetSpec, node_names: Sequence[str]) -> list[tuple[int, ...]]:
    """The netspec layer indices fused into each named node (same order as ``node_names``).

    Raises:
        NodeMappingError: a node name does not end in a layer name of the netspec, or two nodes
            claim the same first layer.
    """
    index = {layer.name: layer.index for layer in netspec.layers}
    firsts = []
    for name in node_names:
        match = _LAYER_SUFFIX.search(str(name))
        if match is None or match.group(1) not in index:
            raise NodeMappingError(f"profile node {name!r} names no layer of network {netspec.name}")
        firsts.append(index[match.group(1)])
    if len(set(firsts)) != len(firsts):
        raise NodeMappingError(f"profile of network {netspec.name} has two nodes starting at the same layer")
    order = sorted(firsts)
    ends = {
        start: (order[i + 1] if i + 1 < len(order) else len(netspec.layers)) for i, start in enumerate(order)
    }
    return [tuple(range(start, ends[start])) for start in firsts]


def split_matrix(netspec: NetSpec, layers: Sequence[tuple[int, ...]], layer_ms: ArrayLike) -> np.ndarray:
    """Share of each node's time owed to each block: shape ``(n_nodes, n_blocks)``, rows sum to 1.

    Args:
        netspec: The network.
        layers: Layer indices of each node (:func:`node_layers`).
        layer_ms: Analytic time of every layer (weights of the split; only ratios matter).
    """
    weights = np.asarray(layer_ms, dtype=float)
    share = np.zeros((len(layers), len(netspec.blocks)))
    for n, idx in enumerate(layers):
        blocks = np.array([netspec.layers[i].block for i in idx])
        w = np.maximum(weights[list(idx)], 0.0)
        if w.sum() <= 0:  # nothing to weigh by: the node belongs to the block of its first layer
            share[n, blocks[0]] = 1.0
            continue
        np.add.at(share[n], blocks, w / w.sum())
    return share


def block_times(netspec: NetSpec, nodes: pd.DataFrame, layer_ms: ArrayLike) -> np.ndarray:
    """Per-block times (ms) of one profile table: node runtimes distributed over the blocks.

    Args:
        netspec: The profiled network.
        nodes: A profile table with ``name`` and ``runtime_ms`` columns.
        layer_ms: Analytic per-layer times (see :func:`split_matrix`).

    Returns:
        Shape ``(n_blocks,)``; sums to the table's total runtime.
    """
    share = split_matrix(netspec, node_layers(netspec, list(nodes["name"])), layer_ms)
    return nodes["runtime_ms"].to_numpy(dtype=float) @ share
