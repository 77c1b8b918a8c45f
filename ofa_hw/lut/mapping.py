"""Map DPU profile nodes back to the OFA LUT blocks (keys) of a netspec.

A DPU node is named after the first layer fused into it (``<kernel>_conv_4``) and holds every layer up
to the next node's first layer: that is how VAI_C fuses a sequential net (BN/ReLU6 into the conv, the
depthwise conv into the conv before it, the residual add into the project conv, the global pool into
the feature-mix conv). Usually a node lies inside one block, and a block is two nodes. When a node
spans two blocks — the stem conv fused with the first block's depthwise conv, the feature-mix conv
fused with the global pool of the ``Logits`` block — its time is split in proportion to the
simulator's analytic per-layer times, so the block times still add up to the node times.

Attribution fails loudly, naming the node, when a profile does not match the compiled network: its
nodes must start at the layers where the compiled network's nodes start (``expected_starts``, from
the VAI_C emulation), so a profile of another network is refused instead of its last node being
stretched to the end of the net.

Rows of vaitrace's ``--fine_grained`` mode (VART, debug-mode xmodel) are one per layer, un-fused, and
named by the quantizer's module paths as XIR subgraphs are: ``subgraph_`` + the node name
``OFASubnet::OFASubnet/ModuleDict[layers]/ConvBNAct[conv_3]/Conv2d[conv]/input.7`` with ``::``, ``/``,
``[``, ``]``, ``.`` turned into ``_`` (the form of Xilinx/Vitis-AI #1202's example); functional ops of
the root's ``forward`` (residual add, global pool) have the root's scope and are matched in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ofa_hw.errors import UserError
from ofa_hw.export.xmodel import MODULE_CLASS
from ofa_hw.netspec import NetSpec

_LAYER_SUFFIX = re.compile(r"(?:^|_)((?:conv|pool|mul|fc)_\d+)$")
#: XIR subgraph name of a layer's module (``ConvBNAct[conv_3]/Conv2d[conv]`` or ``Linear[fc_1]``).
_XIR_MODULE = re.compile(
    rf"^subgraph_{MODULE_CLASS}__{MODULE_CLASS}_ModuleDict_layers__"
    r"(?:ConvBNAct_(?P<conv>\w+?)__Conv2d_conv|Linear_(?P<fc>\w+?))__input_\d+$"
)
#: XIR subgraph name of a functional op in the root's ``forward`` (residual add, global pool).
_XIR_ROOT = re.compile(rf"^subgraph_{MODULE_CLASS}__{MODULE_CLASS}_input_\d+$")


class NodeMappingError(UserError, ValueError):
    """A profile's nodes do not fit the netspec (unknown or repeated layer names)."""


def node_layers(
    netspec: NetSpec, node_names: Sequence[str], expected_starts: Sequence[int] | None = None
) -> list[tuple[int, ...]]:
    """The netspec layer indices fused into each named node (same order as ``node_names``).

    Args:
        netspec: The profiled network.
        node_names: DNNDK node names (``<net>_conv_4``) or XIR fine-grained rows (``subgraph_…``).
        expected_starts: First layer of each node of the compiled network (DNNDK names only); the
            profile must have exactly these nodes.

    Raises:
        NodeMappingError: a node name does not end in a layer name of the netspec, two nodes claim the
            same first layer, or the nodes are not those of the compiled network.
    """
    if node_names and all(str(n).startswith("subgraph_") for n in node_names):
        return xir_row_layers(netspec, node_names)
    index = {layer.name: layer.index for layer in netspec.layers}
    firsts = []
    for name in node_names:
        match = _LAYER_SUFFIX.search(str(name))
        if match is None or match.group(1) not in index:
            raise NodeMappingError(f"profile node {name!r} names no layer of network {netspec.name}")
        firsts.append(index[match.group(1)])
    if len(set(firsts)) != len(firsts):
        raise NodeMappingError(f"profile of network {netspec.name} has two nodes starting at the same layer")
    if expected_starts is not None:
        _check_nodes(netspec, list(node_names), firsts, list(expected_starts))
    order = sorted(firsts)
    ends = {
        start: (order[i + 1] if i + 1 < len(order) else len(netspec.layers)) for i, start in enumerate(order)
    }
    return [tuple(range(start, ends[start])) for start in firsts]


def _check_nodes(netspec: NetSpec, names: list[str], firsts: list[int], expected: list[int]) -> None:
    """Refuse a profile whose nodes are not the compiled network's, naming the first node that differs."""
    if sorted(firsts) == sorted(expected):
        return
    layers = netspec.layers
    for i in range(max(len(firsts), len(expected))):
        got = sorted(firsts)[i] if i < len(firsts) else None
        want = sorted(expected)[i] if i < len(expected) else None
        if got == want:
            continue
        where = f"{len(firsts)}-node profile, {len(expected)}-node compiled network {netspec.name}"
        if got is None:
            assert want is not None  # one side ran out first, so the other has an entry here
            raise NodeMappingError(
                f"profile has no node for layers {layers[want].name} onward of the compiled network ({where}): "
                "the profile is of another network"
            )
        node = names[firsts.index(got)]
        want_text = f"a node starting at {layers[want].name}" if want is not None else "no further node"
        raise NodeMappingError(
            f"profile node {node!r} does not match the compiled network: expected {want_text} ({where}); "
            "the profile is of another network"
        )


def xir_row_layers(netspec: NetSpec, names: Sequence[str]) -> list[tuple[int, ...]]:
    """The netspec layer of each fine-grained vaitrace row (one row per layer, named by module path).

    Raises:
        NodeMappingError: naming a row that matches no layer, or a layer no row measured.
    """
    index = {layer.name: layer.index for layer in netspec.layers}
    # functional ops of the root, in forward order: the add after each residual layer, the global pool
    functional = [layer.index for layer in netspec.layers if layer.residual or layer.kind == "gap"]
    out: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for name in names:
        match = _XIR_MODULE.match(str(name))
        if match is not None:
            layer = match.group("conv") or match.group("fc")
            if layer not in index:
                raise NodeMappingError(f"fine-grained row {name!r} names no layer of network {netspec.name}")
            out.append((index[layer],))
            seen.add(index[layer])
        elif _XIR_ROOT.match(str(name)) and functional:
            out.append((functional.pop(0),))
            seen.add(out[-1][0])
        else:
            raise NodeMappingError(
                f"fine-grained row {name!r} matches no layer of network {netspec.name} "
                "(not a module path of the exported subnet)"
            )
    missing = [layer.name for layer in netspec.layers if layer.index not in seen]
    if missing or functional:
        raise NodeMappingError(
            f"fine-grained profile of {netspec.name} has no row for layer {(missing or ['residual add'])[0]}: "
            "the profile is of another network"
        )
    return out


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


def block_times(
    netspec: NetSpec,
    nodes: pd.DataFrame,
    layer_ms: ArrayLike,
    expected_starts: Sequence[int] | None = None,
) -> np.ndarray:
    """Per-block times (ms) of one profile table: node runtimes distributed over the blocks.

    Args:
        netspec: The profiled network.
        nodes: A profile table with ``name`` and ``runtime_ms`` columns.
        layer_ms: Analytic per-layer times (see :func:`split_matrix`).
        expected_starts: First layer of each node of the compiled network (:func:`node_layers`).

    Returns:
        Shape ``(n_blocks,)``; sums to the table's total runtime.
    """
    share = split_matrix(netspec, node_layers(netspec, list(nodes["name"]), expected_starts), layer_ms)
    return nodes["runtime_ms"].to_numpy(dtype=float) @ share
