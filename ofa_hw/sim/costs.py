"""Architecture-only cost terms of a compiled net: engine cycles, tiles and DDR bytes per op and node.

Everything here depends on the DPU's hardware (parallelism, buffers, toolchain) but not on the fitted
constants of :mod:`ofa_hw.sim.timing`, so it is computed once per compiled net (cached on it) and the
calibration evaluates thousands of candidate constants on the same terms (:class:`NodeTerms`).

Per op (``C(a, b) = ceil(a / b)``):

* conv engine (conv, deconv, fc): ``out_h · C(out_w, PP) · k_h·k_w · C(Cin, ICP) · C(Cout, OCP)``.
  Channel augmentation packs one whole kernel row of a thin input (``k_w·Cin ≤ ICP``) into the ICP
  lanes: a 3×3 stem on 3 channels takes ``k_h`` instead of ``k_h·k_w`` passes. A wider kernel row
  (11×11 or 7×7 on 3 channels: 33 or 21 values > 16 lanes) is not augmented and runs at ``Cin/ICP``.
  A transposed conv runs as ``s²`` sub-convolutions on its input (cycles counted on the input size).
* depthwise ``C(C, ICP) · out_h · C(out_w, PP/2) · k²``; pool ``C(C, ICP) · out_h · C(out_w, PP/2) · k²``;
  element-wise add and multiply ``C(C, ICP) · h · w``; hard activations one element-wise pass.
* tiles: one per output-channel group of a conv-engine op (× the spatial tiles when its feature maps
  exceed the on-chip buffer, each re-loading the weights).
* weight streaming: a tile's weights (``OCP · k_h·k_w · C(Cin, ICP)·ICP`` bytes) are double-buffered
  against compute when they fit half the weight buffer (``OCP·ICP·bank depth``: 512 KiB on B4096);
  larger ones (FCN8's 7×7 conv6 on 512 channels, 401 KB per tile) load while the engine waits: their
  bytes are kept apart (``serial_weight_bytes``) and not hidden under compute.
* halo: a depthwise conv whose node is cut into spatial tiles (row bands) needs ``k − s`` extra input
  rows per band boundary. With its producing conv in the same node (``dnndk`` fusion) those rows are
  recomputed and the producer's input rows re-read; with ``xir`` a spilled input tensor is re-read.
* scatter: a transposed conv with stride > 1 writes its output as ``s²`` interleaved sub-images,
  one pixel (``Cout`` bytes) at a time; :mod:`~ofa_hw.sim.timing` charges each pixel at least
  ``scatter_burst_bytes`` of DDR transfer.

DDR bytes per node: external input/output feature maps (``dnndk``: every node's output goes through
DDR; ``xir``: tensors between nodes of one subgraph stay on chip unless they spill), the residual
input, weights (re-loaded per spatial tile) and the instruction stream (1664 B per node + 264 B per
tile, read off the Mem(MB) column of the seed profile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ofa_hw.dpu.config import BANK_DEPTH
from ofa_hw.sim.compiler import CompiledNet, node_membership

#: Instruction-stream bytes per node and per conv tile (fitted to the Mem(MB) column of the seed profile).
CODE_NODE_BYTES = 1664
CODE_TILE_BYTES = 264
MIB = float(2**20)


@dataclass(frozen=True, eq=False)
class OpCosts:
    """Per-op cost terms that depend on the architecture only (not on the fitted constants)."""

    conv_cycles: np.ndarray
    dw_cycles: np.ndarray
    misc_cycles: np.ndarray
    act_cycles: np.ndarray  # one element-wise pass over the output of ops with a hard activation
    tiles: np.ndarray
    dw_rows: np.ndarray
    layer_bytes: np.ndarray  # standalone: own input(s) + output + weights + code
    weight_bytes: np.ndarray
    membership: np.ndarray  # nodes × ops
    node_bytes: np.ndarray  # DDR bytes of each node (external fmaps + weights + code); xir: without spills
    node_weight_bytes: np.ndarray  # the weights among node_bytes (re-loads per spatial tile included)
    node_serial_weight_bytes: np.ndarray  # the weights among those that cannot be double-buffered
    node_mem_bytes: np.ndarray  # the Mem(MB) column (no spatial re-loads, no halo); xir: without spills
    tensor_bytes: np.ndarray  # xir: size of each tensor passed between nodes of one subgraph
    tensor_traffic: np.ndarray  # xir: nodes × tensors, DDR passes (1 write, 1 read per consumer) if it spills
    on_dpu: np.ndarray  # bool per op
    cpu_ops: np.ndarray  # ops of the CPU parts (2·MACs or element count)
    scatter_px: np.ndarray  # output pixels of strided transposed convs (0 for other ops)
    scatter_c: np.ndarray  # their bytes per output pixel (Cout)


def _c(a: np.ndarray | int, b: int) -> np.ndarray:
    return -(-np.asarray(a, dtype=np.int64) // b)


def op_costs(cn: CompiledNet) -> OpCosts:
    """Cost terms of every op of ``cn`` (cached on the compiled net)."""
    cached = cn.__dict__.get("_op_costs")
    if cached is not None:
        return cached
    dpu = cn.dpu
    ops = cn.ops
    n = len(ops)

    def g(attr: str) -> np.ndarray:
        return np.array([getattr(o, attr) for o in ops], dtype=np.int64)

    kind = np.array([o.kind for o in ops])
    in_h, in_w, in_c = g("in_h"), g("in_w"), g("in_c")
    out_h, out_w, out_c = g("out_h"), g("out_w"), g("out_c")
    kh, kw, groups, stride = g("kh"), g("kw"), g("groups"), g("stride")
    residual = np.array([o.residual for o in ops])
    pp, icp, ocp, dpp = dpu.pp, dpu.icp, dpu.ocp, dpu.dw_pp
    cin_g = np.maximum(in_c // groups, 1)
    cout_g = np.maximum(out_c // groups, 1)
    in_bytes = np.array([o.in_bytes for o in ops], dtype=np.int64)
    out_bytes = out_h * out_w * out_c
    weight_bytes = np.array([o.weights for o in ops], dtype=np.int64)
    fm = in_bytes + out_bytes
    spatial = np.maximum(_c(fm, dpu.fm_buffer_bytes), 1)

    is_conv = (kind == "conv") | (kind == "deconv")
    is_fc = kind == "fc"
    is_dw = kind == "dwconv"
    deconv = kind == "deconv"
    conv_tiles = groups * _c(cout_g, ocp)
    # Channel augmentation packs one whole kernel row of a thin input (k_w·Cin ≤ ICP) into the ICP lanes.
    augment = is_conv & (groups == 1) & (kw * cin_g <= icp) & bool(dpu.channel_augmentation)
    window = np.where(augment, kh, kh * kw * _c(cin_g, icp))
    conv = np.where(is_conv, groups * out_h * _c(out_w, pp) * window * _c(cout_g, ocp), 0)
    conv = np.where(deconv, groups * in_h * _c(in_w, pp) * kh * kw * _c(cin_g, icp) * _c(cout_g, ocp), conv)
    conv = np.where(is_fc, _c(in_c, icp) * _c(out_c, ocp), conv)
    tiles = np.where(is_conv | is_fc, conv_tiles * spatial, 0)
    dw = np.where(is_dw, _c(out_c, icp) * out_h * _c(out_w, dpp) * kh * kw, 0)
    dw_rows = np.where(is_dw, _c(out_c, icp) * out_h, 0)
    pool = np.isin(kind, ("maxpool", "avgpool"))
    misc = np.where(pool, _c(out_c, icp) * out_h * _c(out_w, dpp) * kh * kw, 0)
    misc = np.where(kind == "gap", _c(out_c, icp) * _c(in_h * in_w, dpp), misc)
    misc = np.where(np.isin(kind, ("add", "mul")), _c(out_c, icp) * out_h * out_w, misc)
    hard = np.array([o.act in ("hswish", "hsigmoid") for o in ops], dtype=bool)
    act = np.where(hard, _c(out_c, icp) * out_h * out_w, 0)
    misc = misc + np.where(residual, _c(out_c, icp) * out_h * out_w, 0)
    res_bytes = np.where(residual, out_bytes, 0)
    w_eff = np.where(is_conv | is_fc, weight_bytes * spatial, weight_bytes)
    # Weights of one output-channel tile; beyond half the weight buffer they cannot be double-buffered.
    tile_w = np.where(is_fc, ocp * _c(in_c, icp) * icp, ocp * kh * kw * _c(cin_g, icp) * icp)
    serial = (is_conv | is_fc) & (tile_w > dpu.ocp * dpu.icp * BANK_DEPTH // 2)
    code = CODE_TILE_BYTES * tiles
    layer_bytes = in_bytes + res_bytes + out_bytes + w_eff + code

    member = node_membership(cn)
    on_dpu = np.zeros(n, dtype=bool)
    if len(cn.nodes):
        on_dpu[np.flatnonzero(member.sum(axis=0))] = True
    node_of = {j: i for i, node in enumerate(cn.nodes) for j in node.ops}
    consumers: dict[int, list[int]] = {i: [] for i in range(n)}
    for o in ops:
        for s in o.inputs:
            if s >= 0:
                consumers[s].append(o.index)
    halo = _halo_fractions(cn, node_of, spatial)
    # dnndk fusion: the producing conv recomputes the halo rows and re-reads their input rows.
    halo_bytes = np.zeros(n)
    conv = conv.astype(float)
    for j, frac in halo.items():
        p = ops[j].inputs[0] if ops[j].inputs else -1
        if p >= 0 and node_of.get(p) == node_of.get(j) and ops[p].kind == "conv":
            conv[p] *= 1.0 + frac
            halo_bytes[p] += frac * in_bytes[p]
    input_bytes = int(np.prod(cn.input_shape))
    if dpu.tools.onchip_fmaps:
        ext, tensor_bytes, traffic = _onchip_traffic(
            cn, node_of, consumers, out_bytes, res_bytes, input_bytes, halo
        )
    else:
        tensor_bytes, traffic = np.zeros(0), np.zeros((len(cn.nodes), 0))
        ext = _ddr_traffic(cn, node_of, consumers, out_bytes, res_bytes, input_bytes)
    node_w = member @ w_eff.astype(float)
    node_serial = member @ np.where(serial, w_eff, 0).astype(float)
    node_code = CODE_NODE_BYTES + member @ code.astype(float)
    node_bytes = ext + node_w + node_code + member @ halo_bytes
    node_mem = (
        ext
        + member @ weight_bytes.astype(float)
        + CODE_NODE_BYTES
        + member @ (CODE_TILE_BYTES * np.where(is_conv | is_fc, conv_tiles, 0)).astype(float)
    )
    cpu_ops = np.where(on_dpu, 0, np.maximum(2 * np.array([o.macs for o in ops], dtype=np.int64), out_bytes))
    scatter_px = np.where(deconv & (stride > 1), out_h * out_w, 0)
    costs = OpCosts(
        conv,
        dw.astype(float),
        misc.astype(float),
        act.astype(float),
        tiles.astype(float),
        dw_rows.astype(float),
        layer_bytes.astype(float),
        weight_bytes.astype(float),
        member,
        node_bytes,
        node_w,
        node_serial,
        node_mem,
        tensor_bytes,
        traffic,
        on_dpu,
        cpu_ops.astype(float),
        scatter_px.astype(float),
        out_c.astype(float),
    )
    object.__setattr__(cn, "_op_costs", costs)
    return costs


def _halo_fractions(cn: CompiledNet, node_of: dict, spatial: np.ndarray) -> dict[int, float]:
    """Depthwise op → extra share of its input rows read because of halos: ``(bands − 1)·(k − s) / H``.

    The bands are the spatial tiles of the depthwise op's own feature maps (input + output larger than
    the on-chip feature-map buffer); at most every input row is read ``k/s`` times.
    """
    out: dict[int, float] = {}
    for o in cn.ops:
        if o.kind != "dwconv" or o.index not in node_of:
            continue
        bands = int(spatial[o.index])
        extra = max(o.kh - o.stride, 0)
        if bands > 1 and extra and o.in_h:
            out[o.index] = min((bands - 1) * extra / o.in_h, o.kh / o.stride - 1.0)
    return out


def _ddr_traffic(cn: CompiledNet, node_of: dict, consumers: dict, out_bytes, res_bytes, input_bytes: int):
    """``dnndk`` DDR feature-map bytes per node: every input from another node or the network input,
    every output some other node (or nobody: the network output) consumes, the residual input."""
    ops = cn.ops
    ext = np.zeros(len(cn.nodes))
    for i, node in enumerate(cn.nodes):
        total = 0
        for j in node.ops:
            for s in ops[j].inputs:
                if s < 0:
                    total += input_bytes
                elif node_of.get(s) != i:
                    total += _produced_bytes(ops, s, node_of, consumers)
            if not consumers[j] or any(node_of.get(c) != i for c in consumers[j]):
                total += int(out_bytes[j])
            total += int(res_bytes[j])
        ext[i] = total
    return ext


def _onchip_traffic(
    cn: CompiledNet, node_of: dict, consumers: dict, out_bytes, res_bytes, input_bytes: int, halo: dict
):
    """``xir`` DDR traffic: per node, the bytes that always cross DDR (subgraph inputs and outputs, the
    residual input), plus the tensors passed between nodes of one subgraph and how often each node
    would move it if it spilled (producer writes once, every consuming node reads once; a depthwise
    consumer tiled into bands reads its halo rows again)."""
    ops = cn.ops
    sub_of = {}
    for sub in cn.subgraphs:
        for nid in sub.nodes:
            sub_of[nid - 1] = sub.kernel
    ext = np.zeros(len(cn.nodes))
    internal: dict[int, int] = {}  # producing op -> tensor column
    rows: list[tuple[int, int, float]] = []  # (node, column, passes)
    for i, node in enumerate(cn.nodes):
        for j in node.ops:
            for s in ops[j].inputs:
                if s < 0:
                    ext[i] += input_bytes
                elif node_of.get(s) != i:
                    if s in node_of and sub_of[node_of[s]] == sub_of[i]:
                        rows.append((i, internal.setdefault(s, len(internal)), 1.0 + halo.get(j, 0.0)))
                    else:
                        ext[i] += _produced_bytes(ops, s, node_of, consumers)
            outside = [c for c in consumers[j] if node_of.get(c) != i]
            if not consumers[j] or any(c not in node_of or sub_of[node_of[c]] != sub_of[i] for c in outside):
                ext[i] += int(out_bytes[j])
            elif outside:
                rows.append((i, internal.setdefault(j, len(internal)), 1.0))
            ext[i] += int(res_bytes[j])
    tensor_bytes = np.zeros(len(internal))
    for j, col in internal.items():
        tensor_bytes[col] = float(out_bytes[j])
    traffic = np.zeros((len(cn.nodes), len(internal)))
    for i, col, passes in rows:
        traffic[i, col] += passes
    return ext, tensor_bytes, traffic


def _produced_bytes(ops, s: int, node_of: dict, consumers: dict) -> int:
    """Bytes a consumer reads from op ``s``; an in-place concat (no node) reads its own producers."""
    o = ops[s]
    if o.kind == "concat" and s not in node_of:
        return sum(_produced_bytes(ops, p, node_of, consumers) if p >= 0 else 0 for p in o.inputs)
    return o.out_h * o.out_w * o.out_c


@dataclass(frozen=True, eq=False)
class NodeTerms:
    """The cost terms of one or several compiled nets, before any constant is applied.

    Per op: engine cycles, tiles, depthwise rows and scattered output pixels; per node: DDR bytes (and
    the weights among them, and the weights that cannot be double-buffered); a (nodes × ops)
    membership; the tensors that may spill. :func:`ofa_hw.sim.timing.terms_times_ms` turns them into
    node times under any constants; the calibration stacks the terms of all measured nets once
    (:func:`stack_terms`) and evaluates thousands of candidate constants on them.
    """

    conv_cycles: np.ndarray
    tiles: np.ndarray
    dw_cycles: np.ndarray
    dw_rows: np.ndarray
    misc_cycles: np.ndarray
    act_cycles: np.ndarray
    membership: np.ndarray
    node_bytes: np.ndarray
    weight_bytes: np.ndarray
    tensor_bytes: np.ndarray
    tensor_traffic: np.ndarray
    serial_weight_bytes: np.ndarray
    scatter_px: np.ndarray
    scatter_c: np.ndarray


def node_terms(cn: CompiledNet) -> NodeTerms:
    """The :class:`NodeTerms` of ``cn`` (cached on the compiled net)."""
    cached = cn.__dict__.get("_node_terms")
    if cached is not None:
        return cached
    c = op_costs(cn)
    t = NodeTerms(
        c.conv_cycles,
        c.tiles,
        c.dw_cycles,
        c.dw_rows,
        c.misc_cycles,
        c.act_cycles,
        c.membership,
        c.node_bytes,
        c.node_weight_bytes,
        c.tensor_bytes,
        c.tensor_traffic,
        c.node_serial_weight_bytes,
        c.scatter_px,
        c.scatter_c,
    )
    object.__setattr__(cn, "_node_terms", t)
    return t


def _block_diag(mats: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((sum(m.shape[0] for m in mats), sum(m.shape[1] for m in mats)))
    r = k = 0
    for m in mats:
        out[r : r + m.shape[0], k : k + m.shape[1]] = m
        r, k = r + m.shape[0], k + m.shape[1]
    return out


def stack_terms(terms: list[NodeTerms]) -> NodeTerms:
    """The ops and nodes of several nets as one :class:`NodeTerms` (memberships and spill tensors kept apart)."""

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(t, name) for t in terms]) if terms else np.zeros(0)

    return NodeTerms(
        cat("conv_cycles"),
        cat("tiles"),
        cat("dw_cycles"),
        cat("dw_rows"),
        cat("misc_cycles"),
        cat("act_cycles"),
        _block_diag([t.membership for t in terms]),
        cat("node_bytes"),
        cat("weight_bytes"),
        cat("tensor_bytes"),
        _block_diag([t.tensor_traffic for t in terms]),
        cat("serial_weight_bytes"),
        cat("scatter_px"),
        cat("scatter_c"),
    )
