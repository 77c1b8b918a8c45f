"""Toolchain generations of the DPUCZDX8G: what the compiler admits and where it keeps feature maps.

Two generations compile for the same DPU IP and behave differently (DESIGN §4):

* ``dnndk``: VAI_C 1.x (Vitis-AI 1.0–1.2, DNNC + N2Cube). Refuses a depthwise conv whose weights
  do not fit one bank: ``k_w·k_h·⌈C/ICP⌉ ≤ bank depth`` (656 channels at 7×7 on B4096). Every DPU
  node writes its output to DDR and the next node reads it back: the ``Mem(MB)`` column of the seed's
  profile is node input + output + weights on 41 of 42 nodes.
* ``xir``: the XIR compiler ``vai_c_xir`` (Vitis-AI ≥ 1.3). Compiled 7×7 depthwise convs with 816
  channels into one DPU subgraph on DPU IP v4.1 (``ofa_hw/data/ultra96_b2304``), so it has no
  depthwise bank rule: it splits the channels over several weight loads. Tensors passed between
  the nodes of one subgraph stay on chip while they fit; the vaitrace ``memIO`` of the Ultra96 blocks
  equals input + output + weights until the depthwise output outgrows the buffer, then jumps by about
  twice that tensor (written once, read back) — the spill the timing model charges.

Assumptions (no XIR compiler here to ask): the XIR limits kept are those UG1414 lists for
DPUCZDX8G — kernel 1–16, stride 1–8, dense conv ``k_w·k_h·⌈Cin/ICP⌉ ≤ bank depth``, conv channels
≤ 256·ICP (``max_channels_per_icp``; fully connected layers are split by the compiler) — and depthwise convs take kernels 1–16 with any channel count up to
the same channel limit. The 816-channel 7×7 depthwise is the only direct observation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Toolchain:
    """Compiler behaviour of one toolchain generation.

    Attributes:
        name: ``dnndk`` | ``xir`` (the value of :attr:`DPUConfig.toolchain`).
        dw_bank_rule: A depthwise conv must satisfy ``k_w·k_h·⌈C/ICP⌉ ≤ bank depth``.
        max_channels_per_icp: Channel limit in units of ICP (``None``: the fixed 4096 of VAI_C 1.x).
        onchip_fmaps: Tensors between the nodes of one DPU subgraph stay on chip while they fit
            (else they spill to DDR); False: every node's output goes through DDR.
        flow: The Vitis-AI flow that uses it (for messages and the report).
    """

    name: str
    dw_bank_rule: bool
    max_channels_per_icp: int | None
    onchip_fmaps: bool
    flow: str


TOOLCHAINS: dict[str, Toolchain] = {
    "dnndk": Toolchain(
        "dnndk",
        dw_bank_rule=True,
        max_channels_per_icp=None,
        onchip_fmaps=False,
        flow="VAI_C 1.x / DNNDK (Vitis-AI 1.0-1.2)",
    ),
    "xir": Toolchain(
        "xir",
        dw_bank_rule=False,
        max_channels_per_icp=256,
        onchip_fmaps=True,
        flow="vai_c_xir / VART (Vitis-AI >= 1.3)",
    ),
}


def get_toolchain(name: str) -> Toolchain:
    """The :class:`Toolchain` called ``name`` (``ValueError`` naming the choices otherwise)."""
    try:
        return TOOLCHAINS[name]
    except KeyError:
        raise ValueError(
            f"DPUConfig.toolchain: unknown toolchain {name!r}; choose one of {sorted(TOOLCHAINS)}"
        ) from None
