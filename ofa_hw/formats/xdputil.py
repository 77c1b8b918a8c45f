"""``xdputil query`` (VART boards, Vitis-AI >= 1.3): the DPU a board runs, as a :class:`DPUConfig`.

``xdputil query`` prints a JSON document (after the shell prompt when copied from a terminal) with
``DPU IP Spec`` (core count, IP version) and one ``kernels`` entry per core (``DPU Arch`` such as
``DPUCZDX8G_ISA1_B2304_0101000016010405``, ``DPU Frequency (MHz)``). The format is
``ofa_hw/data/ultra96_b2304/xdputil_query.txt``. Boards that have xdputil run the XIR toolchain.
"""

from __future__ import annotations

import json
import re

from ofa_hw.dpu.config import ARCHS, DPUConfig
from ofa_hw.formats.errors import ParseError


def dpu_from_xdputil(
    text: str, name: str = "xdputil", base: DPUConfig | None = None, source: str | None = None
) -> DPUConfig:
    """The DPU ``xdputil query`` describes; timing constants and optional features come from ``base``.

    Raises:
        ParseError: no JSON document, no DPUCZDX8G kernel, an unknown size or differing cores.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ParseError("no JSON document (expected the output of `xdputil query`)", source=source)
    try:
        doc = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"malformed JSON: {exc.msg}", line=text[:start].count("\n") + exc.lineno, source=source
        ) from None
    kernels = [k for k in doc.get("kernels", []) if str(k.get("IP Type", "DPU")) == "DPU"]
    if not kernels:
        raise ParseError("no DPU in 'kernels'", source=source)
    archs = {str(k.get("DPU Arch", "")) for k in kernels}
    freqs = {float(k.get("DPU Frequency (MHz)", 0)) for k in kernels}
    if len(archs) != 1 or len(freqs) != 1:
        raise ParseError(
            f"DPU cores differ (arch {sorted(archs)}, MHz {sorted(freqs)}); the simulator models identical cores",
            source=source,
        )
    (arch_name,), (freq,) = archs, freqs
    m = re.search(r"_B(\d+)_", arch_name + "_")
    if not m or f"B{m.group(1)}" not in ARCHS:
        raise ParseError(f"DPU Arch {arch_name!r}: not a DPUCZDX8G size ({', '.join(ARCHS)})", source=source)
    if freq <= 0:
        raise ParseError("missing 'DPU Frequency (MHz)'", source=source)
    spec = doc.get("DPU IP Spec", {})
    version = str(spec.get("IP version", "")).strip() or (base.target_version if base else "v4.0.0")
    base = base or DPUConfig()
    return base.replace(
        name=name,
        arch=f"B{m.group(1)}",
        target_version=version,
        toolchain="xir",
        freq_mhz=freq,
        cores=int(spec.get("DPU Core Count", len(kernels))),
    )
