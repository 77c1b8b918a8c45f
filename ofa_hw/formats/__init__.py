"""What the DPU tools print and read, for both backends: parsers (strict, with line numbers) and writers.

* :mod:`ofa_hw.formats.dnndk` — N2Cube's per-node profile, VAI_C's kernel list, ``dexplorer -w``.
* :mod:`ofa_hw.formats.profile` — the :class:`Profile` record and N2Cube's exact text layout.
* :mod:`ofa_hw.formats.vaitrace` — vaitrace's DPU summary (Vitis-AI 1.4 … 3.x).
* :mod:`ofa_hw.formats.xdputil` — ``xdputil query`` as a :class:`~ofa_hw.dpu.DPUConfig`.
"""

from ofa_hw.formats.dnndk import (
    KernelInfo,
    KernelList,
    parse_dexplorer,
    parse_dnndk_profile,
    parse_kernel_info,
)
from ofa_hw.formats.errors import ParseError
from ofa_hw.formats.profile import Profile
from ofa_hw.formats.vaitrace import parse_vaitrace_summary

__all__ = [
    "KernelInfo",
    "KernelList",
    "ParseError",
    "Profile",
    "parse_dexplorer",
    "parse_dnndk_profile",
    "parse_kernel_info",
    "parse_vaitrace_summary",
]
