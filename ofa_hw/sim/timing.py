"""Physical timing model of the DPUCZDX8G: per-op engine cycles, tiles and DDR bytes → node times.

Per op (cycles at ``freq_mhz``; ``C(a, b) = ceil(a / b)``):

* conv engine (conv, deconv, fc): ``out_h · C(out_w, PP) · k_h·k_w · C(Cin, ICP) · C(Cout, OCP)``
  — PP pixels of one row, ICP input and OCP output channels per cycle, so row widths, input and
  output channels are padded to the parallelism. A 3-channel first layer thus runs at 3/16 of peak.
* depthwise engine: ``C(C, ICP) · out_h · C(out_w, PP/2) · k_h·k_w``, plus ``dw_row_cycles`` of
  pipeline latency per output row and channel group (the line buffer refills k rows per row).
* pool engine ``C(C, ICP) · out_h · C(out_w, PP/2) · k²``; element-wise add and multiply
  ``C(C, ICP) · h · w``; hard-swish / hard-sigmoid (DPU IP v4.x) ``hard_act_passes`` element-wise
  passes over the op's output on top of the op.
* tiles: every output-channel group of a conv-engine op is one tile — LOAD its weights, CONV,
  SAVE — and pays ``tile_overhead_cycles`` of pipeline fill/drain and weight-load handshake that
  compute cannot hide. This is what makes 1×1 convs with many output channels at 7×7 (the
  feature-mix node) and wide expand+7×7-depthwise nodes cost far more than their MACs suggest.
  Feature maps larger than the on-chip buffer are cut into spatial tiles; each re-loads the weights.
* DDR: node input + output feature maps, the residual input, weights and instruction stream
  (1664 B per node + 264 B per tile, read off the Mem(MB) column of real profiles) over ``ddr_bw_gbps``.
  Which feature maps count depends on the toolchain generation (:mod:`ofa_hw.dpu.generations`): with
  ``dnndk`` every node writes its output to DDR and its consumers read it back; with ``xir`` a tensor
  passed between two nodes of one subgraph stays on chip unless it is larger than ``fm_keep_fraction``
  of the on-chip feature-map buffer — then it spills (written once, read back by each consumer).

Per node: engines run concurrently (a fused depthwise consumes the conv's rows on chip), hiding
``engine_overlap`` of the shorter engines; DDR transfers hide ``mem_overlap`` of the shorter of
compute and memory; each node pays ``node_overhead_us + node_overhead_us_per_mb · MB`` (instruction
fetch and sync, plus DMA set-up and DDR page misses that grow with the node's traffic). End-to-end adds
``task_overhead_us`` and the CPU parts. Runs get seeded log-normal jitter (``jitter`` per node plus a
run-wide factor of half that size for shared DDR contention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ofa_hw.dpu.config import DPUConfig
from ofa_hw.formats.profile import Profile, make_table, quantize, run_totals
from ofa_hw.sim.compiler import CONV_KINDS, CompiledNet, node_membership

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
    node_mem_bytes: (
        np.ndarray
    )  # the Mem(MB) column (fmaps + weights + code, no spatial re-loads); xir: without spills
    tensor_bytes: np.ndarray  # xir: size of each tensor passed between nodes of one subgraph
    tensor_traffic: np.ndarray  # xir: nodes × tensors, DDR passes (1 write, 1 read per consumer) if it spills
    on_dpu: np.ndarray  # bool per op
    cpu_ops: np.ndarray  # ops of the CPU parts (2·MACs or element count)


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
    g = lambda attr: np.array([getattr(o, attr) for o in ops], dtype=np.int64)  # noqa: E731
    kind = np.array([o.kind for o in ops])
    in_h, in_w, in_c, out_h, out_w, out_c = (
        g("in_h"),
        g("in_w"),
        g("in_c"),
        g("out_h"),
        g("out_w"),
        g("out_c"),
    )
    kh, kw, groups = g("kh"), g("kw"), g("groups")
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
    conv_tiles = groups * _c(cout_g, ocp)
    # Channel augmentation packs k_w neighbouring pixels of a thin input (Cin < ICP) into the ICP lanes.
    augment = is_conv & (groups == 1) & (cin_g < icp) & bool(dpu.channel_augmentation)
    window = np.where(augment, kh * _c(kw * cin_g, icp), kh * kw * _c(cin_g, icp))
    conv = np.where(is_conv, groups * out_h * _c(out_w, pp) * window * _c(cout_g, ocp), 0)
    deconv = kind == "deconv"
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
    code = CODE_TILE_BYTES * tiles
    layer_bytes = in_bytes + res_bytes + out_bytes + w_eff + code

    on_dpu = np.zeros(n, dtype=bool)
    member = node_membership(cn)
    if len(cn.nodes):
        on_dpu[np.flatnonzero(member.sum(axis=0))] = True
    node_of = {j: i for i, node in enumerate(cn.nodes) for j in node.ops}
    ext = np.zeros(len(cn.nodes))
    consumers: dict[int, list[int]] = {i: [] for i in range(n)}
    for o in ops:
        for s in o.inputs:
            if s >= 0:
                consumers[s].append(o.index)
    input_bytes = int(np.prod(cn.input_shape))
    if dpu.tools.onchip_fmaps:
        ext, tensor_bytes, traffic = _onchip_traffic(
            cn, node_of, consumers, out_bytes, res_bytes, input_bytes
        )
    else:
        tensor_bytes, traffic = np.zeros(0), np.zeros((len(cn.nodes), 0))
        for i, node in enumerate(cn.nodes):
            total = 0
            for j in node.ops:
                o = ops[j]
                for s in o.inputs:
                    if s < 0:
                        total += input_bytes
                    elif node_of.get(s) != i:
                        total += _produced_bytes(ops, s, node_of, consumers)
                if not consumers[j] or any(node_of.get(c) != i for c in consumers[j]):
                    total += int(out_bytes[j])
                total += int(res_bytes[j])
            ext[i] = total
    node_w = member @ w_eff.astype(float)
    node_code = CODE_NODE_BYTES + member @ code.astype(float)
    node_bytes = ext + node_w + node_code
    node_mem = (
        ext
        + member @ weight_bytes.astype(float)
        + CODE_NODE_BYTES
        + member @ (CODE_TILE_BYTES * np.where(is_conv | is_fc, conv_tiles, 0)).astype(float)
    )
    cpu_ops = np.where(on_dpu, 0, np.maximum(2 * np.array([o.macs for o in ops], dtype=np.int64), out_bytes))
    costs = OpCosts(
        conv.astype(float),
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
        node_mem,
        tensor_bytes,
        traffic,
        on_dpu,
        cpu_ops.astype(float),
    )
    object.__setattr__(cn, "_op_costs", costs)
    return costs


def _onchip_traffic(cn: CompiledNet, node_of: dict, consumers: dict, out_bytes, res_bytes, input_bytes: int):
    """``xir`` DDR traffic: per node, the bytes that always cross DDR (subgraph inputs and outputs, the
    residual input), plus the tensors passed between nodes of one subgraph and how often each node
    would move it if it spilled (producer writes once, every consuming node reads once)."""
    ops = cn.ops
    sub_of = {}
    for s in cn.subgraphs:
        for nid in s.nodes:
            sub_of[nid - 1] = s.kernel
    ext = np.zeros(len(cn.nodes))
    internal: dict[int, int] = {}  # producing op -> tensor column
    rows: list[tuple[int, int]] = []  # (node, column) per pass
    for i, node in enumerate(cn.nodes):
        for j in node.ops:
            for s in ops[j].inputs:
                if s < 0:
                    ext[i] += input_bytes
                elif node_of.get(s) != i:
                    if s in node_of and sub_of[node_of[s]] == sub_of[i]:
                        rows.append((i, internal.setdefault(s, len(internal))))
                    else:
                        ext[i] += _produced_bytes(ops, s, node_of, consumers)
            outside = [c for c in consumers[j] if node_of.get(c) != i]
            if not consumers[j] or any(c not in node_of or sub_of[node_of[c]] != sub_of[i] for c in outside):
                ext[i] += int(out_bytes[j])
            elif outside:
                rows.append((i, internal.setdefault(j, len(internal))))
            ext[i] += int(res_bytes[j])
    tensor_bytes = np.zeros(len(internal))
    for j, col in internal.items():
        tensor_bytes[col] = float(out_bytes[j])
    traffic = np.zeros((len(cn.nodes), len(internal)))
    for i, col in rows:
        traffic[i, col] += 1.0
    return ext, tensor_bytes, traffic


def spill_bytes(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """DDR bytes of each node for tensors that spill (``xir``: larger than ``fm_keep_fraction`` of the
    on-chip feature-map buffer); zeros for ``dnndk``, which already sends every node's output to DDR."""
    return _spill(node_terms(cn), dpu or cn.dpu)


def _spill(t: NodeTerms, dpu: DPUConfig) -> np.ndarray:
    if not t.tensor_bytes.size:
        return np.zeros(len(t.node_bytes))
    spilled = t.tensor_bytes > dpu.fm_keep_fraction * dpu.fm_buffer_bytes
    return t.tensor_traffic @ (t.tensor_bytes * spilled)


@dataclass(frozen=True, eq=False)
class NodeTerms:
    """The cost terms of one or several compiled nets, before any constant is applied.

    Per op: engine cycles, tiles and depthwise rows; per node: DDR bytes (and the weights among them);
    a (nodes × ops) membership; the tensors that may spill. :func:`terms_times_ms` turns them into node
    times under any constants; the calibration stacks the terms of all measured nets once
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
    cat = lambda name: np.concatenate([getattr(t, name) for t in terms]) if terms else np.zeros(0)  # noqa: E731
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
    )


def terms_times_ms(t: NodeTerms, dpu: DPUConfig) -> np.ndarray:
    """Noise-free node times (ms) of ``t`` under ``dpu``'s constants (see the module docstring)."""
    f = dpu.freq_mhz * 1e3  # cycles per ms
    m = t.membership
    conv = m @ (t.conv_cycles + dpu.tile_overhead_cycles * t.tiles) / f
    dw = m @ (t.dw_cycles + dpu.dw_row_cycles * t.dw_rows) / f
    misc = m @ (t.misc_cycles + dpu.hard_act_passes * t.act_cycles) / f
    engines = np.stack([conv, dw, misc])
    longest = engines.max(axis=0)
    compute = longest + (1.0 - dpu.engine_overlap) * (engines.sum(axis=0) - longest)
    nbytes = t.node_bytes + _spill(t, dpu)
    if dpu.weight_bw_ratio == 1.0:
        mem = nbytes / (dpu.ddr_bw_gbps * 1e6)  # bytes / (bytes per ms)
    else:  # weights stream through their own load path at weight_bw_ratio × the feature-map bandwidth
        mem = (nbytes - t.weight_bytes) / (dpu.ddr_bw_gbps * 1e6) + t.weight_bytes / (
            dpu.weight_bw_ratio * dpu.ddr_bw_gbps * 1e6
        )
    overhead = (dpu.node_overhead_us + dpu.node_overhead_us_per_mb * nbytes / 1e6) * 1e-3
    return overhead + _combine(compute, mem, dpu.mem_overlap)


def _produced_bytes(ops, s: int, node_of: dict, consumers: dict) -> int:
    """Bytes a consumer reads from op ``s``; an in-place concat (no node) reads its own producers."""
    o = ops[s]
    if o.kind == "concat" and s not in node_of:
        return sum(_produced_bytes(ops, p, node_of, consumers) if p >= 0 else 0 for p in o.inputs)
    return o.out_h * o.out_w * o.out_c


def _combine(a: np.ndarray, b: np.ndarray, overlap: float) -> np.ndarray:
    """Two concurrent activities: the longer one plus the part of the shorter that is not hidden."""
    return np.maximum(a, b) + (1.0 - overlap) * np.minimum(a, b)


def node_times_ms(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """Noise-free runtime of every DPU node (ms) under ``dpu``'s constants (default: the compile DPU)."""
    return terms_times_ms(node_terms(cn), dpu or cn.dpu)


def node_overhead_ms(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """Fixed cost of every node (ms): ``node_overhead_us + node_overhead_us_per_mb · node DDR MB``."""
    dpu = dpu or cn.dpu
    nbytes = op_costs(cn).node_bytes + spill_bytes(cn, dpu)
    return (dpu.node_overhead_us + dpu.node_overhead_us_per_mb * nbytes / 1e6) * 1e-3


def op_times_ms(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """Standalone analytic time of every op (ms), without the per-node overhead."""
    dpu = dpu or cn.dpu
    c = op_costs(cn)
    f = dpu.freq_mhz * 1e3
    compute = (
        c.conv_cycles
        + dpu.tile_overhead_cycles * c.tiles
        + c.dw_cycles
        + dpu.dw_row_cycles * c.dw_rows
        + c.misc_cycles
        + dpu.hard_act_passes * c.act_cycles
    ) / f
    mem = c.layer_bytes / (dpu.ddr_bw_gbps * 1e6)
    t = _combine(compute, mem, dpu.mem_overlap)
    return np.where(c.on_dpu, t, c.cpu_ops / (dpu.cpu_gops * 1e6))


def layer_times_ms(ns: Any, dpu: DPUConfig) -> np.ndarray:
    """One analytic time per netspec layer (ms): the noise-free node time minus the node overhead,
    shared among the node's layers in proportion to their standalone times.

    The layers of a node therefore sum to ``node time - node overhead``; use the shares to split a
    fused node that spans two OFA blocks (e.g. stem + first depthwise) between them.
    """
    from ofa_hw.sim.compiler import compile_net

    cn = compile_net(ns, dpu)
    per_op = op_times_ms(cn, dpu)
    nodes = node_times_ms(cn, dpu) - node_overhead_ms(cn, dpu)
    for node, t_node in zip(cn.nodes, nodes):
        idx = list(node.ops)
        own = per_op[idx]
        per_op[idx] = t_node * (own / own.sum() if own.sum() > 0 else np.full(len(idx), 1.0 / len(idx)))
    out = np.zeros(len(ns.layers))
    for o, t in zip(cn.ops, per_op):
        for layer in o.layers:
            out[layer] += t / len(o.layers)
    return out


def cpu_time_ms(cn: CompiledNet, dpu: DPUConfig | None = None) -> float:
    dpu = dpu or cn.dpu
    c = op_costs(cn)
    return float(c.cpu_ops.sum() / (dpu.cpu_gops * 1e6))


def profile_from_times(
    cn: CompiledNet, dpu: DPUConfig, times: np.ndarray, runs: int = 1, seed: int = 0, kernel_info: str = ""
) -> Profile:
    """A :class:`Profile` of ``runs`` jittered runs around the noise-free node ``times`` (ms)."""
    c = op_costs(cn)
    rng = np.random.default_rng(seed)
    work = np.array([n.workload_mop for n in cn.nodes])
    mem_mb = (c.node_mem_bytes + spill_bytes(cn, dpu)) / MIB
    ids = [n.id for n in cn.nodes]
    names = [n.name for n in cn.nodes]
    tables, totals, e2e = [], [], []
    cpu_ms = cpu_time_ms(cn, dpu)
    for _ in range(runs):
        z_node = rng.standard_normal(len(times))
        z_run = rng.standard_normal()
        rt = times * np.exp(dpu.jitter * z_node + 0.5 * dpu.jitter * z_run)
        perf = work / rt
        raw = {
            "workload_mop": work,
            "mem_mb": mem_mb,
            "runtime_ms": rt,
            "perf_gops": perf,
            "utilization": perf / dpu.peak_gops,
            "mb_s": mem_mb / rt * 1000.0,
        }
        q = quantize(raw)
        tables.append(make_table(ids, names, q))
        tot = run_totals(_frame(raw), dpu.peak_gops)
        totals.append({k: float(v[0]) for k, v in quantize({k: [v] for k, v in tot.items()}).items()})
        e2e.append(float(rt.sum()) + dpu.task_overhead_us * 1e-3 + cpu_ms)
    kernel = cn.dpu_parts[0].kernel if cn.dpu_parts else cn.name
    return Profile.from_runs(
        kernel,
        tables,
        totals,
        tasks=[f"{kernel}-0"] * runs,
        e2e_ms=float(np.mean(e2e)),
        kernel_info=kernel_info,
    )


def _frame(raw: dict):
    import pandas as pd

    return pd.DataFrame(raw)


def kernel_info_text(cn: CompiledNet) -> str:
    """VAI_C's kernel list for ``cn`` (the format of ``vai_c_kernel_info_*.txt``)."""
    c = op_costs(cn)
    ops = cn.ops
    key = lambda k: f"{k:>40}"  # noqa: E731
    lines = [f'kernel list info for network "{cn.name}"', f"{key('Kernel ID')} : Name"]
    lines += [f"{key(str(i))} : {s.kernel}" for i, s in enumerate(cn.subgraphs)]
    for s in cn.subgraphs:
        lines += ["", f"{key('Kernel Name')} : {s.kernel}", "-" * 80]
        if s.device == "cpu":
            lines += [f"{key('Kernel Type')} : CPUKernel"]
            continue
        node_idx = [i - 1 for i in s.nodes]
        weights = sum(
            ops[j].weights + 4 * ops[j].out_c * (ops[j].kind in CONV_KINDS + ("dwconv",))
            for i in node_idx
            for j in cn.nodes[i].ops
        )
        code = sum(
            CODE_NODE_BYTES
            + CODE_TILE_BYTES
            * sum(math.ceil(ops[j].out_c / cn.dpu.ocp) for j in cn.nodes[i].ops if ops[j].kind in CONV_KINDS)
            for i in node_idx
        )
        first, last = ops[cn.nodes[node_idx[0]].ops[0]], ops[cn.nodes[node_idx[-1]].ops[-1]]
        io = max(c.node_mem_bytes[i] - c.membership[i] @ c.weight_bytes for i in node_idx)
        mops = sum(cn.nodes[i].workload_mop for i in node_idx)
        in_shape = f"{first.in_h}*{first.in_w}*{first.in_c}"
        out_shape = f"{last.out_h}*{last.out_w}*{last.out_c}"
        first_node, last_node = cn.nodes[node_idx[0]].name, cn.nodes[node_idx[-1]].name
        lines += [
            f"{key('Kernel Type')} : DPUKernel",
            f"{key('Code Size')} : {code / MIB:.2f}MB",
            f"{key('Param Size')} : {weights / MIB:.2f}MB",
            f"{key('Workload MACs')} : {mops:.2f}MOPS",
            f"{key('IO Memory Space')} : {math.ceil(io / MIB * 100) / 100:.2f}MB",
            f"{key('Mean Value')} : " + "0, " * first.in_c,
            f"{key('Total Tensor Count')} : {len(node_idx) + 1}",
            f"{'Boundary Input Tensor(s)':>40}   (H*W*C)",
            f"{key('default_name_input_1:0(0)')} : {in_shape}",
            "",
            f"{'Boundary Output Tensor(s)':>40}   (H*W*C)",
            f"{key(last_node + ':0(0)')} : {out_shape}",
            "",
            f"{key('Total Node Count')} : {len(node_idx)}",
            f"{'Input Node(s)':>40}   (H*W*C)",
            f"{key(first_node + '(0)')} : {in_shape}",
            "",
            f"{'Output Node(s)':>40}   (H*W*C)",
            f"{key(last_node + '(0)')} : {out_shape}",
        ]
    lines += ["", "", "", "", "*" * 50, "* VITIS_AI Compilation - Xilinx Inc.", "*" * 50]
    return "\n".join(lines) + "\n"


def simulate(
    model: Any,
    input_shape: tuple[int, ...] | None = None,
    dpu: DPUConfig | None = None,
    runs: int = 1,
    seed: int = 0,
    name: str | None = None,
    space: Any = None,
) -> Profile:
    """Compile ``model`` for ``dpu`` and profile it ``runs`` times (seeded jitter).

    Args:
        model: A netspec, a ``(space, arch)`` pair, an arch dict (with ``space=``), an OFA-MobileNetV3
            block (:class:`~ofa_hw.frontends.mbv3_blocks.MBV3Block`), or a
            ``torch.nn.Module`` (with ``input_shape``).
        input_shape: ``(N, C, H, W)`` or ``(C, H, W)`` for a torch model.
        dpu: DPU configuration (default: the ``zcu102_b4096`` preset).
        runs: Profile-mode runs; the profile keeps each run's table and their mean.
        seed: Seed of the run-to-run jitter.
        name: Kernel/net name (default: the netspec's name, else ``net``).
        space: The search space of an arch dict.

    Raises:
        CompileError: the network violates a compiler limit of ``dpu``.
    """
    from ofa_hw.sim.compiler import compile_net

    if runs < 1:
        raise ValueError(f"simulate: runs must be >= 1, got {runs}")
    dpu = dpu or DPUConfig.from_preset("zcu102_b4096")
    if isinstance(model, tuple) and len(model) == 2:
        space, model = model
    if isinstance(model, dict):
        if space is None:
            raise ValueError("simulate: an arch dict needs space=")
        from ofa_hw.netspec import build_netspec

        model = build_netspec(space, model, name=name or "net")
    cn = compile_net(model, dpu, name=name, input_shape=input_shape)
    return profile_from_times(
        cn, dpu, node_times_ms(cn, dpu), runs=runs, seed=seed, kernel_info=kernel_info_text(cn)
    )
