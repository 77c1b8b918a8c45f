"""The embedded DPU simulator: VAI_C emulation (fusion, naming, limits, DPU/CPU split), the physical
timing model, and its calibration on measured times.

Public API::

    from ofa_hw.sim import simulate, compile_net
    prof = simulate(netspec, dpu=dpu, runs=5, seed=0)        # formats.Profile (per-run tables + mean)
    prof.to_dnndk_text(); prof.total_ms; prof.e2e_ms; prof.kernel_info
    cn = compile_net(netspec, dpu)                              # nodes, fused layers, DPU/CPU split
    layer_times_ms(netspec, dpu)                                # analytic time per netspec layer
    check_compilable(netspec, dpu); layer_violation(layer, dpu) # compiler limits (cheap)
"""

from ofa_hw.sim.compiler import (
    CompiledNet,
    DPUNode,
    Subgraph,
    check_compilable,
    compile_net,
    is_compilable,
    layer_violation,
    max_dw_channels,
)
from ofa_hw.sim.timing import kernel_info_text, layer_times_ms, node_times_ms, op_times_ms, simulate

__all__ = [
    "CompiledNet",
    "DPUNode",
    "Subgraph",
    "check_compilable",
    "compile_net",
    "is_compilable",
    "kernel_info_text",
    "layer_times_ms",
    "layer_violation",
    "max_dw_channels",
    "node_times_ms",
    "op_times_ms",
    "simulate",
]
