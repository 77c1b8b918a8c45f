"""The DPU (DPUCZDX8G) as a description both backends share: configuration, presets, fingerprints and
the rules of each toolchain generation. The simulator of it is :mod:`ofa_hw.sim`; what its tools print
is :mod:`ofa_hw.formats`.

Public API::

    from ofa_hw.dpu import DPUConfig, CompileError
    dpu = DPUConfig.from_preset("zcu102_b4096"); dpu.fingerprint(); dpu.peak_gops
"""

from ofa_hw.dpu.config import ARCHS, DPUConfig, list_presets
from ofa_hw.dpu.errors import CompileError

__all__ = ["ARCHS", "CompileError", "DPUConfig", "list_presets"]
