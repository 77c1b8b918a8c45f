"""VAI_C emulation: operator list → DPU nodes (fusion, naming, compiler limits, DPU/CPU split).

Input is a list of :class:`Op` (from a netspec via :func:`ops_from_netspec`, or from a traced PyTorch
model via :mod:`ofa_hw.frontends.torch_fx`). Fusion follows what DNNDK profiles show (DESIGN §4): BN and the
activation fold into their conv; a depthwise conv joins the node of the conv that feeds it (a node is
"1×1 expand (or the stem) + depthwise", the next node is the 1×1 project); a residual add joins the
dense conv producing one of its inputs (never a transposed conv: FCN8's add after ``conv2d_transpose_1``
is its own node); max/avg/global pooling joins the conv before it. A node is named
``<net>_<name of its first layer>`` (``proxylessmobile05_conv_4``), or the layer's name alone for an
empty net name (profiles of TensorFlow models print ``block1_conv1_convolution``).

Operators the configured DPU cannot run (depthwise conv with the feature disabled, an activation
it lacks, an unknown operator) go to the CPU; the network then splits into several kernels, as the
real tools do, reported in :attr:`CompiledNet.subgraphs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ofa_hw.dpu.config import DPUConfig
from ofa_hw.dpu.errors import CompileError
from ofa_hw.frontends.ops import Op, ops_from_netspec

#: Operator kinds the DPU engines execute.
CONV_KINDS = ("conv", "deconv", "fc")
DPU_KINDS = CONV_KINDS + ("dwconv", "maxpool", "avgpool", "gap", "add", "mul", "concat")
#: Activations and the DPU feature (a :class:`DPUConfig` attribute) each needs (None: always available).
ACT_FEATURE = {
    "relu": None,
    "relu6": "conv_relu6",
    "leakyrelu": "conv_leakyrelu",
    "hswish": "hard_activations",
    "hsigmoid": "hard_activations",
}
#: Operator kinds that need a DPU feature (the element-wise multiply of squeeze-excite: IP v4.x).
KIND_FEATURE = {
    "dwconv": "depthwise_conv",
    "avgpool": "avg_pool",
    "gap": "avg_pool",
    "mul": "hard_activations",
}
MAX_KERNEL = 16
MAX_STRIDE = 8
MAX_OUT_CHANNELS = 4096
MAX_POOL_KERNEL = 8


@dataclass(frozen=True)
class DPUNode:
    """One DPU node as DNNDK reports it.

    Attributes:
        id: 1-based position in the profile.
        name: ``<net>_<first layer>``.
        ops: Indices into :attr:`CompiledNet.ops` fused into the node.
        layers: Netspec layer indices fused into the node (netspec input; ``()`` for fx input).
        kernel: Name of the DPU kernel holding the node.
        workload_mop: DNNDK workload: 2 × MACs of its conv/deconv/fc/depthwise ops, in MOP.
    """

    id: int
    name: str
    ops: tuple[int, ...]
    layers: tuple[int, ...]
    kernel: str
    workload_mop: float


@dataclass(frozen=True)
class Subgraph:
    """A maximal run of consecutive work on one device (a DNNDK kernel)."""

    kernel: str
    device: str  # 'dpu' | 'cpu'
    ops: tuple[int, ...]
    nodes: tuple[int, ...] = ()  # node ids (DPU subgraphs)


@dataclass(frozen=True, eq=False)
class CompiledNet:
    """The result of compiling a network for one DPU configuration."""

    name: str
    dpu: DPUConfig
    ops: tuple[Op, ...]
    nodes: tuple[DPUNode, ...]
    subgraphs: tuple[Subgraph, ...]
    input_shape: tuple[int, int, int]  # (C, H, W)

    @property
    def cpu_parts(self) -> list[Subgraph]:
        return [s for s in self.subgraphs if s.device == "cpu"]

    @property
    def dpu_parts(self) -> list[Subgraph]:
        return [s for s in self.subgraphs if s.device == "dpu"]

    @property
    def kernels(self) -> list[str]:
        return [s.kernel for s in self.subgraphs]

    @property
    def workload_mop(self) -> float:
        return sum(n.workload_mop for n in self.nodes)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------------
def op_violation(op: Op, dpu: DPUConfig) -> str | None:
    """The compiler limit ``op`` violates on ``dpu`` under its toolchain generation (text), or None.

    Both generations: kernels 1–16, strides 1–8, dense conv ``k_w·k_h·⌈Cin/ICP⌉ ≤ bank depth``.
    ``dnndk`` adds the depthwise bank rule and at most 4096 output channels; ``xir`` allows any
    depthwise channel count up to ``256·ICP`` channels (see :mod:`ofa_hw.dpu.generations`). Pure and cheap.
    """
    tools = dpu.tools
    if op.kind in ("conv", "deconv", "dwconv", "fc"):
        if op.kind != "fc":
            for dim, k in (("kernel_h", op.kh), ("kernel_w", op.kw)):
                if not 1 <= k <= MAX_KERNEL:
                    return f"{dim}={k} outside 1..{MAX_KERNEL}"
            if not 1 <= op.stride <= MAX_STRIDE:
                return f"stride={op.stride} outside 1..{MAX_STRIDE}"
        if tools.max_channels_per_icp is not None and op.kind != "fc":
            limit = tools.max_channels_per_icp * dpu.icp
            if max(op.in_c, op.out_c) > limit:
                return f"channels {max(op.in_c, op.out_c)} > {limit} (256*ICP, {tools.name} toolchain)"
        if op.kind == "dwconv":
            words = op.kh * op.kw * math.ceil(op.out_c / dpu.icp)
            if tools.dw_bank_rule and words > dpu.bank_depth:
                return (
                    f"depthwise k_w*k_h*ceil(C/{dpu.icp})={words} > bank depth {dpu.bank_depth} "
                    f"(at most {max_dw_channels(op.kh * op.kw, dpu)} channels for {op.kh}x{op.kw} with the {tools.name} toolchain)"
                )
        else:
            words = op.kh * op.kw * math.ceil((op.in_c // op.groups) / dpu.icp)
            if words > dpu.bank_depth:
                return f"k_w*k_h*ceil(Cin/{dpu.icp})={words} > bank depth {dpu.bank_depth}"
            if tools.max_channels_per_icp is None and op.out_c > MAX_OUT_CHANNELS:
                return f"output channels {op.out_c} > {MAX_OUT_CHANNELS}"
    elif op.kind in ("maxpool", "avgpool"):
        if not (1 <= op.kh <= MAX_POOL_KERNEL and 1 <= op.kw <= MAX_POOL_KERNEL):
            return f"pool kernel {op.kh}x{op.kw} outside 1..{MAX_POOL_KERNEL}"
        if not 1 <= op.stride <= MAX_STRIDE:
            return f"pool stride={op.stride} outside 1..{MAX_STRIDE}"
    return None


def max_dw_channels(taps: int, dpu: DPUConfig) -> int:
    """Widest depthwise conv with ``taps`` = k² that compiles (656 for 7×7, 1296 for 5×5 on B4096 with
    ``dnndk``; ``256·ICP`` with ``xir``, which has no depthwise bank rule)."""
    if not dpu.tools.dw_bank_rule:
        return (dpu.tools.max_channels_per_icp or 256) * dpu.icp
    return (dpu.bank_depth // taps) * dpu.icp


def layer_violation(layer: Any, dpu: DPUConfig) -> str | None:
    """Per-layer predicate for netspec layers (the search filters subnets with it)."""
    return op_violation(_netspec_layer_op(layer), dpu)


def _netspec_layer_op(layer: Any) -> Op:
    k = layer.kernel if layer.kind in ("conv", "dwconv") else 1
    return Op(
        layer.index,
        layer.name,
        layer.kind,
        layer.in_hw,
        layer.in_hw,
        layer.in_c,
        layer.out_hw,
        layer.out_hw,
        layer.out_c,
        k,
        k,
        layer.stride,
        layer.groups,
    )


def check_compilable(ns: Any, dpu: DPUConfig) -> None:
    """Raise :class:`CompileError` for the first netspec layer VAI_C would refuse on ``dpu``."""
    for layer in ns.layers:
        limit = layer_violation(layer, dpu)
        if limit is not None:
            raise CompileError(layer=layer.name, limit=limit)


def is_compilable(ns: Any, dpu: DPUConfig) -> bool:
    try:
        check_compilable(ns, dpu)
    except CompileError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Fusion
# --------------------------------------------------------------------------------------------------
def on_dpu(op: Op, dpu: DPUConfig) -> bool:
    """Whether ``dpu`` can execute ``op`` (including its fused activation)."""
    feature = KIND_FEATURE.get(op.kind)
    if feature is not None and not getattr(dpu, feature):
        return False
    if op.kind not in DPU_KINDS and op.kind != "act":
        return False
    if op.act is not None:
        if op.act not in ACT_FEATURE:
            return False
        feature = ACT_FEATURE[op.act]
        if op.kind == "dwconv" and op.act == "relu6":
            feature = "depthwise_relu6"
        if feature is not None and not getattr(dpu, feature):
            return False
    return True


def compile_ops(ops: list[Op], dpu: DPUConfig, name: str, input_shape: tuple[int, int, int]) -> CompiledNet:
    """Fuse ``ops`` into DPU nodes, check limits, and split DPU/CPU subgraphs."""
    consumers: dict[int, list[int]] = {i: [] for i in range(len(ops))}
    for op in ops:
        for src in op.inputs:
            if src >= 0:
                consumers[src].append(op.index)
    dev = ["dpu" if on_dpu(op, dpu) else "cpu" for op in ops]
    for op in ops:
        if dev[op.index] == "dpu":
            limit = op_violation(op, dpu)
            if limit is not None:
                raise CompileError(layer=op.name, limit=limit)
    groups: list[list[int]] = []  # op indices per node (DPU) or per CPU op
    group_of: dict[int, int] = {}
    for op in ops:
        i = op.index
        target = None
        if dev[i] == "dpu" and op.kind in ("dwconv", "maxpool", "avgpool", "gap", "add", "act") and op.inputs:
            # Join the node of a producer whose last op is a conv feeding only this op.
            for src in sorted((s for s in op.inputs if s >= 0), reverse=True):
                g = group_of.get(src)
                if g is None or dev[src] != "dpu" or groups[g][-1] != src or len(consumers[src]) != 1:
                    continue
                last = ops[src]
                if op.kind == "dwconv":
                    ok = last.kind == "conv" and not any(ops[j].kind == "dwconv" for j in groups[g])
                elif op.kind == "act":
                    ok = last.kind in CONV_KINDS + ("dwconv", "add", "mul")
                else:
                    # An add fuses into the save path of a dense conv only (FCN8: the add after
                    # a transposed conv stays its own node); pools also join deconv/depthwise.
                    hosts = ("conv",) if op.kind == "add" else ("conv", "deconv", "dwconv")
                    ok = last.kind in hosts and not any(
                        ops[j].kind in ("maxpool", "avgpool", "gap", "add") for j in groups[g]
                    )
                if ok:
                    target = g
                    break
        if op.kind == "concat" and dev[i] == "dpu":
            target = -1  # DPU concatenates in place (producers write at channel offsets): no node
        if target is None:
            groups.append([i])
            group_of[i] = len(groups) - 1
        elif target >= 0:
            groups[target].append(i)
            group_of[i] = target
    nodes: list[DPUNode] = []
    subgraphs: list[tuple[str, list[int], list[int]]] = []
    for members in groups:
        device = dev[members[0]]
        if not subgraphs or subgraphs[-1][0] != device:
            subgraphs.append((device, [], []))
        subgraphs[-1][1].extend(members)
        if device == "dpu":
            subgraphs[-1][2].append(len(nodes) + 1)
            nodes.append(
                DPUNode(
                    id=len(nodes) + 1,
                    name=f"{name}_{ops[members[0]].name}" if name else ops[members[0]].name,
                    ops=tuple(members),
                    layers=tuple(layer for j in members for layer in ops[j].layers),
                    kernel="",
                    workload_mop=2.0 * sum(ops[j].macs for j in members) / 1e6,
                )
            )
    single = len(subgraphs) == 1
    subs = []
    for k, (device, op_ids, node_ids) in enumerate(subgraphs):
        kernel = name if single else f"{name}_{k}"
        subs.append(Subgraph(kernel, device, tuple(op_ids), tuple(node_ids)))
        for nid in node_ids:
            n = nodes[nid - 1]
            nodes[nid - 1] = DPUNode(n.id, n.name, n.ops, n.layers, kernel, n.workload_mop)
    return CompiledNet(name, dpu, tuple(ops), tuple(nodes), tuple(subs), input_shape)


@lru_cache(maxsize=2048)
def _compile_netspec(ns: Any, dpu: DPUConfig, name: str) -> CompiledNet:
    return compile_ops(ops_from_netspec(ns), dpu, name, (ns.input_c, ns.input_hw, ns.input_hw))


def compile_net(
    model: Any, dpu: DPUConfig, name: str | None = None, input_shape: tuple[int, ...] | None = None
) -> CompiledNet:
    """Compile a netspec, an OFA-MobileNetV3 block (:class:`~ofa_hw.frontends.mbv3_blocks.MBV3Block`) or a
    ``torch.nn.Module`` (traced with torch.fx; needs ``input_shape``).

    Raises:
        CompileError: a layer violates a compiler limit of ``dpu``.
    """
    if hasattr(model, "layers") and hasattr(model, "blocks"):
        return _compile_netspec(model, dpu, name or model.name)
    from ofa_hw.frontends.mbv3_blocks import MBV3Block, block_ops

    if isinstance(model, MBV3Block):
        return compile_ops(block_ops(model), dpu, name or "block", model.input_shape)
    from ofa_hw.frontends.torch_fx import trace_ops

    if input_shape is None:
        raise ValueError("compile_net: a torch model needs input_shape=(N, C, H, W) or (C, H, W)")
    ops, shape = trace_ops(model, input_shape)
    return compile_ops(ops, dpu, name or "net", shape)


def node_membership(cn: CompiledNet) -> np.ndarray:
    """(nodes × ops) 0/1 matrix: which ops each node holds."""
    m = np.zeros((len(cn.nodes), len(cn.ops)))
    for i, n in enumerate(cn.nodes):
        m[i, list(n.ops)] = 1.0
    return m
