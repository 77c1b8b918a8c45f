"""What each Vitis-AI version ships and accepts: arch-file paths, vaitrace options, fine-grained profiling.

Facts from Xilinx's sources and issues (``shared/data/real_tool_outputs/README.md``, section "containers
and XIR/VART profiling"), kept as tables so a new version is one row, not another branch:

* Arch files: Vitis-AI 1.0's DNNDK flow reads ``.../arch/dpuv2/<BOARD>/<BOARD>.json``; from 1.1 on, also
  for ``vai_c_caffe``, ``.../arch/DPUCZDX8G/<BOARD>/arch.json``.
* ``vaitrace --fine_grained``: absent before 1.4; 1.4–2.5 an option; 3.0 refuses it on a normally
  compiled xmodel (``This xmodel does not support fine grained profiling``) and needs one compiled with
  ``{'mode': 'debug'}``; 3.5 removed it from its argument parser (``unrecognized arguments``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ofa_hw.errors import UserError

_VERSION_RE = re.compile(r"vitis-ai-(\d+)\.(\d+)")

Version = tuple[int, int]


class ToolchainVersionError(UserError):
    """The configured toolchain label does not fit the flow (or gives no version to choose options by)."""


def vai_version(toolchain: str) -> Version:
    """The Vitis-AI version of a toolchain label (``vitis-ai-2.5/vart`` -> ``(2, 5)``).

    Raises:
        ToolchainVersionError: when the label names no ``vitis-ai-<major>.<minor>``.
    """
    m = _VERSION_RE.search(toolchain)
    if m is None:
        raise ToolchainVersionError(
            f"backend.vitis.toolchain={toolchain!r} names no Vitis-AI version; write it as "
            "vitis-ai-<major>.<minor>/<runtime> (e.g. vitis-ai-2.5/vart): the board commands depend on it"
        )
    return int(m.group(1)), int(m.group(2))


#: (first version, arch-file template) — the newest row not above the configured version applies.
ARCH_TEMPLATES: tuple[tuple[Version, str], ...] = (
    ((1, 0), "/opt/vitis_ai/compiler/arch/dpuv2/{board}/{board}.json"),
    ((1, 1), "/opt/vitis_ai/compiler/arch/DPUCZDX8G/{board}/arch.json"),
)


def arch_template(version: Version) -> str:
    """The stock arch-file path template of Vitis-AI ``version`` (``{board}`` still to fill in)."""
    return [template for since, template in ARCH_TEMPLATES if version >= since][-1]


@dataclass(frozen=True)
class FineGrained:
    """How a vaitrace version treats ``--fine_grained``.

    Attributes:
        option: vaitrace accepts the option at all.
        needs_debug_xmodel: It works only on an xmodel compiled with ``{'mode': 'debug'}``.
        note: What the real tool does otherwise (for messages).
    """

    option: bool
    needs_debug_xmodel: bool
    note: str


#: (first version, behaviour) — the newest row not above the configured version applies.
FINE_GRAINED: tuple[tuple[Version, FineGrained], ...] = (
    ((1, 3), FineGrained(False, False, "vaitrace of Vitis-AI 1.3 has no --fine_grained (nor --txt)")),
    ((1, 4), FineGrained(True, False, "an option of vaitrace from 1.4 to 2.5")),
    (
        (3, 0),
        FineGrained(
            True,
            True,
            "vaitrace 3.0 refuses it on a normally compiled xmodel ('This xmodel does not support fine "
            "grained profiling'); it needs an xmodel compiled with {'mode': 'debug'}",
        ),
    ),
    (
        (3, 5),
        FineGrained(False, False, "vaitrace 3.5 removed --fine_grained ('unrecognized arguments', exit 2)"),
    ),
)


def fine_grained(version: Version) -> FineGrained:
    """The ``--fine_grained`` behaviour of the vaitrace of Vitis-AI ``version``."""
    rows = [row for since, row in FINE_GRAINED if version >= since]
    return rows[-1] if rows else FINE_GRAINED[0][1]


def vaitrace_options(
    version: Version, report: str, fine: bool = False, debug_xmodel: bool = False
) -> list[str]:
    """vaitrace's options for a traced run: ``--txt -o REPORT`` and ``--fine_grained`` only when asked for
    and the version gives it for this xmodel.

    Raises:
        ToolchainVersionError: the version has no ``--txt`` summary, or ``fine`` is asked of a version
            (or an xmodel) that cannot give it.
    """
    if version < (1, 4):
        raise ToolchainVersionError(f"vaitrace of Vitis-AI {version[0]}.{version[1]} has no --txt summary")
    options = ["--txt", "-o", report]
    if not fine:
        return options
    behaviour = fine_grained(version)
    if not behaviour.option or (behaviour.needs_debug_xmodel and not debug_xmodel):
        raise ToolchainVersionError(
            f"Vitis-AI {version[0]}.{version[1]}: no fine-grained per-layer times ({behaviour.note}); "
            "use lut.granularity=block or network"
        )
    return ["--txt", "--fine_grained", "-o", report]
