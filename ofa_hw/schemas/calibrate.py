"""Schema of the ``calibrate`` group: what ``ofa-hw task=calibrate`` fits the DPU model to."""

from dataclasses import dataclass, field


@dataclass
class CalibrateConfig:
    """Attributes:
    name: Name of the calibrated preset written (select it later with ``dpu=<name>``).
    profiles: Measured DNNDK profile logs (one table or many runs each). Relative paths are looked up
        in the working directory, then in the package's shipped data (``ofa_hw/data``).
    space: Search space of the profiled networks.
    archs: One per profile: a named arch of ``space`` (``proxyless_mobile_05``) or an arch as JSON.
    dexplorer: Optional ``dexplorer -w`` output of the board; its hardware replaces the ``dpu`` group's.
    free: Constants to fit (see ``ofa_hw.dpu.calibrate.BOUNDS``); empty = all.
    write_workspace: Also write the preset to ``<workspace>/conf/dpu/<name>.yaml``.
    plot: Write the measured-vs-simulated per-node plot.
    """

    name: str = "calibrated"
    profiles: list[str] = field(default_factory=lambda: ["zcu102_b4096/dnndk_profile_proxylessmobile05.txt"])
    space: str = "proxyless_w05"
    archs: list[str] = field(default_factory=lambda: ["proxyless_mobile_05"])
    dexplorer: str = ""
    free: list[str] = field(default_factory=list)
    write_workspace: bool = True
    plot: bool = True
