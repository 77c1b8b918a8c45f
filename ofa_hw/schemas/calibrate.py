"""Schema of the ``calibrate`` group: what ``ofa-hw task=calibrate`` fits the DPU model to."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MeasurementSourceConfig:
    """One measured file (see :mod:`ofa_hw.sim.measurements` for formats and network references).

    Attributes:
        file: CSV of per-network hardware times, a vaitrace ``--txt`` summary (any version) or a DNNDK
            profile log. Relative paths: the working directory, then the package's ``ofa_hw/data``.
        format: ``auto`` | ``csv`` | ``vaitrace`` | ``dnndk``.
        network: The network a vaitrace/DNNDK file measured (and CSV rows without a network column): an
            OFA-MobileNetV3 block name, ``<space>:<arch>``, a ``.onnx`` file or ``module:callable`` (torch).
        input_shape: ``[C, H, W]`` at which a torch-module network is traced.
        args: Keyword arguments of a ``module:callable`` network.
        time_column: CSV column holding the hardware time (default: hw_rt_ms, runtime_ms or time_ms).
        kernel: The DPU kernel to read from a DNNDK log holding several (``fcn8``); default: the first.
    """

    file: str = ""
    format: str = "auto"
    network: str = ""
    input_shape: list[int] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)
    time_column: str = ""
    kernel: str = ""


@dataclass
class CalibrateConfig:
    """Attributes:
    name: Name of the calibrated preset written (select it later with ``dpu=<name>``).
    profiles: Measured DNNDK profile logs (one table or many runs each). Relative paths are looked up
        in the working directory, then in the package's shipped data (``ofa_hw/data``).
    space: Search space of the profiled networks.
    archs: One per profile: a named arch of ``space`` (``proxyless_mobile_05``) or an arch as JSON.
    measurements: Further measured files with the networks they measured (vaitrace, CSV, DNNDK).
    dexplorer: Optional ``dexplorer -w`` output of the board (DNNDK); its hardware replaces the ``dpu`` group's.
    xdputil: Optional ``xdputil query`` output of the board (VART); sets arch, clock, cores, IP version, xir.
    overrides: DPUConfig fields set before the fit (hardware the files do not show, starting constants).
    free: Constants to fit (see ``ofa_hw.sim.calibrate.BOUNDS``); empty = one per three measured parts
        in the order of ``ofa_hw.sim.calibrate.PRIORITY`` (``default_free``).
    admitted_samples: Subnets of the ``space`` group sampled for the admitted share per toolchain.
    write_workspace: Also write the preset to ``<workspace>/conf/dpu/<name>.yaml``.
    plot: Write the measured-vs-simulated plot.
    """

    name: str = "calibrated"
    # Empty by default: a user's own measurements must never be mixed with the seed's ZCU102 profile
    # (``calibrate=seed`` selects that one explicitly).
    profiles: list[str] = field(default_factory=list)
    space: str = "proxyless_w05"
    archs: list[str] = field(default_factory=list)
    measurements: list[MeasurementSourceConfig] = field(default_factory=list)
    dexplorer: str = ""
    xdputil: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    free: list[str] = field(default_factory=list)
    admitted_samples: int = 2000
    write_workspace: bool = True
    plot: bool = True
