"""The embedded DPU (DPUCZDX8G): configuration, VAI_C emulation, timing model, DNNDK formats, calibration.

Public API::

    from ofa_hw.dpu import DPUConfig, simulate, compile_net, Profile, CompileError, ParseError
    dpu = DPUConfig.from_preset("zcu102_b4096")
    prof = simulate(netspec, dpu=dpu, runs=5, seed=0)        # Profile (per-run tables + mean)
    prof.to_dnndk_text(); prof.total_ms; prof.e2e_ms; prof.kernel_info
    cn = compile_net(netspec, dpu)                              # nodes, fused layers, DPU/CPU split
    layer_times_ms(netspec, dpu)                                # analytic time per netspec layer
    check_compilable(netspec, dpu); layer_violation(layer, dpu) # compiler limits (cheap)
    parse_dnndk_profile(text); parse_kernel_info(text); parse_dexplorer(text); parse_vaitrace_summary(text)
"""

from ofa_hw.dpu.compiler import (
    CompiledNet,
    DPUNode,
    Op,
    Subgraph,
    check_compilable,
    compile_net,
    is_compilable,
    layer_violation,
    max_dw_channels,
)
from ofa_hw.dpu.config import ARCHS, DPUConfig, list_presets
from ofa_hw.dpu.errors import CompileError, ParseError
from ofa_hw.dpu.parsers import (
    KernelInfo,
    KernelList,
    parse_dexplorer,
    parse_dnndk_profile,
    parse_kernel_info,
)
from ofa_hw.dpu.profile import Profile
from ofa_hw.dpu.timing import kernel_info_text, layer_times_ms, node_times_ms, op_times_ms, simulate
from ofa_hw.dpu.vaitrace import parse_vaitrace_summary

__all__ = [
    "ARCHS",
    "CompileError",
    "CompiledNet",
    "DPUConfig",
    "DPUNode",
    "KernelInfo",
    "KernelList",
    "Op",
    "ParseError",
    "Profile",
    "Subgraph",
    "check_compilable",
    "compile_net",
    "is_compilable",
    "kernel_info_text",
    "layer_times_ms",
    "layer_violation",
    "list_presets",
    "max_dw_channels",
    "node_times_ms",
    "op_times_ms",
    "parse_dexplorer",
    "parse_dnndk_profile",
    "parse_kernel_info",
    "parse_vaitrace_summary",
    "simulate",
]
