"""Schema of the ``dpu`` group: every field of :class:`ofa_hw.dpu.DPUConfig`, so that a YAML preset
fully describes a DPU and any field can be overridden on the command line (``dpu.freq_mhz=200``).

Field meanings are documented on :class:`ofa_hw.dpu.config.DPUConfig`; a test keeps the two in sync.
"""

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class DpuConfig:
    """Attributes: see :class:`ofa_hw.dpu.config.DPUConfig` (same names, types and defaults)."""

    name: str = MISSING
    arch: str = "B4096"
    target_version: str = "v1.4.0"
    toolchain: str = "dnndk"
    freq_mhz: float = 300.0
    cores: int = 1
    ram_usage: str = "low"
    depthwise_conv: bool = True
    depthwise_relu6: bool = True
    conv_relu6: bool = True
    conv_leakyrelu: bool = True
    channel_augmentation: bool = True
    avg_pool: bool = True
    softmax: bool = False
    ddr_bw_gbps: float = 6.2
    weight_bw_ratio: float = 1.0
    node_overhead_us: float = 17.0
    node_overhead_us_per_mb: float = 0.0
    node_overhead_knee_kb: float = 0.0
    weight_burst_bytes: float = 0.0
    scatter_burst_bytes: float = 0.0
    tile_overhead_cycles: float = 487.0
    dw_row_cycles: float = 8.4
    mem_overlap: float = 0.9
    engine_overlap: float = 0.0
    fm_keep_fraction: float = 0.5
    hard_act_passes: float = 1.0
    task_overhead_us: float = 250.0
    cpu_gops: float = 2.0
    jitter: float = 0.01
    calibrated_on: str = ""
