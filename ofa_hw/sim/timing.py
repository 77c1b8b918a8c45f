"""Physical timing model of the DPUCZDX8G: the cost terms of :mod:`ofa_hw.sim.costs` → node times.

Per node, under a :class:`~ofa_hw.dpu.config.DPUConfig`'s constants (cycles at ``freq_mhz``):

* engines: conv ``cycles + tile_overhead_cycles · tiles`` (pipeline fill/drain and weight-load
  handshake per output-channel tile: why 1×1 convs with many output channels at 7×7 cost more than
  their MACs), depthwise ``cycles + dw_row_cycles · rows``, misc (pool, add, multiply,
  ``hard_act_passes`` passes per hard activation). They run concurrently, hiding ``engine_overlap``
  of the shorter engines.
* DDR: feature maps, code and spills (``xir``: tensors larger than ``fm_keep_fraction`` of the on-chip
  buffer) at ``ddr_bw_gbps``; weights at ``weight_bw_ratio × ddr_bw_gbps``, each weight tile costing
  ``weight_burst_bytes`` more (the DDR latency of one weight load, in bytes: a layer streaming large
  tiles, as FC layers and 1×1 convs on a 1×1 map do, gets close to the full bandwidth, many small
  tiles do not); a strided transposed conv's output pixels cost at least ``scatter_burst_bytes`` each.
  DDR hides ``mem_overlap`` of the shorter of compute and memory, except weights too large to
  double-buffer (:mod:`ofa_hw.sim.costs`), which load while the engine waits.
* overhead ``node_overhead_us · (1 − exp(−bytes / node_overhead_knee_kb)) + node_overhead_us_per_mb · MB``:
  instruction fetch and sync, which shrink for tiny nodes (a node moving a few kB costs a few µs,
  not the ~17 µs floor of ordinary nodes; ``node_overhead_knee_kb = 0``: a constant floor), plus DMA
  set-up and DDR page misses that grow with the node's traffic.

End-to-end adds ``task_overhead_us`` and the CPU parts. Runs get seeded log-normal jitter (``jitter``
per node plus a run-wide factor of half that size for shared DDR contention).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ofa_hw.dpu.config import DPUConfig
from ofa_hw.formats.profile import Profile, make_table, quantize, run_totals
from ofa_hw.sim.compiler import CONV_KINDS, CompiledNet
from ofa_hw.sim.costs import (
    CODE_NODE_BYTES,
    CODE_TILE_BYTES,
    MIB,
    NodeTerms,
    OpCosts,
    node_terms,
    op_costs,
    stack_terms,
)

__all__ = [
    "CODE_NODE_BYTES",
    "CODE_TILE_BYTES",
    "MIB",
    "NodeTerms",
    "OpCosts",
    "node_terms",
    "op_costs",
    "stack_terms",
    "spill_bytes",
    "terms_times_ms",
    "node_times_ms",
    "node_overhead_ms",
    "op_times_ms",
    "layer_times_ms",
    "profile_from_times",
    "kernel_info_text",
    "simulate",
]


def spill_bytes(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """DDR bytes of each node for tensors that spill (``xir``: larger than ``fm_keep_fraction`` of the
    on-chip feature-map buffer); zeros for ``dnndk``, which already sends every node's output to DDR."""
    return _spill(node_terms(cn), dpu or cn.dpu)


def _spill(t: NodeTerms, dpu: DPUConfig) -> np.ndarray:
    if not t.tensor_bytes.size:
        return np.zeros(len(t.node_bytes))
    spilled = t.tensor_bytes > dpu.fm_keep_fraction * dpu.fm_buffer_bytes
    return t.tensor_traffic @ (t.tensor_bytes * spilled)


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
    fm_bytes = nbytes - t.weight_bytes
    if dpu.scatter_burst_bytes:
        fm_bytes = fm_bytes + m @ (t.scatter_px * np.maximum(dpu.scatter_burst_bytes - t.scatter_c, 0.0))
    w_bytes = t.weight_bytes - t.serial_weight_bytes
    if dpu.weight_burst_bytes:
        w_bytes = w_bytes + dpu.weight_burst_bytes * (m @ t.tiles)
    bw = dpu.ddr_bw_gbps * 1e6  # bytes per ms
    mem = fm_bytes / bw + w_bytes / (dpu.weight_bw_ratio * bw)
    serial = t.serial_weight_bytes / (dpu.weight_bw_ratio * bw)
    return _overhead(nbytes, dpu) + _combine(compute, mem, dpu.mem_overlap) + serial


def _overhead(nbytes: np.ndarray, dpu: DPUConfig) -> np.ndarray:
    """Per-node fixed cost (ms): a floor that shrinks for tiny nodes, plus a part growing with the bytes."""
    fixed: np.ndarray | float = dpu.node_overhead_us
    if dpu.node_overhead_knee_kb:
        fixed = fixed * -np.expm1(-nbytes / (1e3 * dpu.node_overhead_knee_kb))
    return (fixed + dpu.node_overhead_us_per_mb * nbytes / 1e6) * 1e-3


def _combine(a: np.ndarray, b: np.ndarray, overlap: float) -> np.ndarray:
    """Two concurrent activities: the longer one plus the part of the shorter that is not hidden."""
    return np.maximum(a, b) + (1.0 - overlap) * np.minimum(a, b)


def node_times_ms(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """Noise-free runtime of every DPU node (ms) under ``dpu``'s constants (default: the compile DPU)."""
    return terms_times_ms(node_terms(cn), dpu or cn.dpu)


def node_overhead_ms(cn: CompiledNet, dpu: DPUConfig | None = None) -> np.ndarray:
    """Fixed cost of every node (ms): the shrinking floor plus ``node_overhead_us_per_mb · node DDR MB``."""
    dpu = dpu or cn.dpu
    return _overhead(op_costs(cn).node_bytes + spill_bytes(cn, dpu), dpu)


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
        totals.append(
            {k: float(v[0]) for k, v in quantize({k: np.array([v]) for k, v in tot.items()}).items()}
        )
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
