"""``lut.granularity``: at which level a LUT's times are measured — per node, per block, per network.

* ``node``: per-node (DNNDK debug-mode ELF) or per-layer (VART: debug-mode xmodel traced with vaitrace's
  ``--fine_grained``, Vitis-AI 1.4–3.0 only) times of whole probe subnets, attributed to the blocks.
  Fine-grained layer times run un-fused, so they are rescaled to the network's normal-mode time.
* ``block``: each LUT key — one OFA block at its input shape, the stem, the head — compiled as its own
  small network (one DPU subgraph) and timed in normal mode, as the Ultra96 blocks of
  ``data/ultra96_b2304`` were. Network latency = LUT sum + an overhead fitted on a few whole subnets.
* ``network``: whole subnets timed in normal mode only (all Vitis-AI 3.x gives without a debug
  compile). The simulator's constants are fitted to them, the LUT is the calibrated simulator's, and
  the predictor's overhead is trained on the measured subnets.

Defaults per backend and toolchain (:data:`DEFAULTS`), justified by ``experiments/granularity``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ofa_hw.errors import UserError

#: The values of ``lut.granularity`` besides ``auto``.
NAMES = ("node", "block", "network")


class GranularityError(UserError, ValueError):
    """``lut.granularity`` names no granularity, or one the backend's toolchain cannot give."""


@dataclass(frozen=True)
class Work:
    """What measuring one network costs at a granularity on a backend.

    Attributes:
        compiles: Compiler runs per network (a DNNDK job compiles a debug and a normal ELF).
        board_runs: Board programs per network (timed run, traced run, fine-grained traced run …).
    """

    compiles: int
    board_runs: int


def _version(toolchain: str) -> tuple[int, int] | None:
    from ofa_hw.backends.vitis.versions import ToolchainVersionError, vai_version

    try:
        return vai_version(toolchain)
    except ToolchainVersionError:
        return None


def _vart_default(toolchain: str) -> str:
    # Whole-subnet normal-mode times exist on every version (no debug compile, no --fine_grained), and at
    # the budget plan's few subnets they predicted as well as or better than per-key networks at the same
    # number of compiles, which cover too few keys (experiments/granularity/README.md for the figures).
    return "network"


#: backend name -> toolchain label -> default granularity.
DEFAULTS: dict[str, Callable[[str], str]] = {
    "sim": lambda toolchain: "node",  # the simulator gives per-node profiles for free
    "vitis_dnndk": lambda toolchain: "node",  # DNNDK's debug-mode per-node profiles: today's flow
    "vitis_vart": _vart_default,
}


def resolve(value: str | None, backend_name: str, toolchain: str) -> str:
    """The granularity ``lut.granularity=value`` means on ``backend_name`` with ``toolchain``.

    Raises:
        GranularityError: an unknown value, or ``node`` on a VART toolchain without fine-grained
            profiling (Vitis-AI 1.3, 3.5 and later).
    """
    value = str(value or "auto")
    if value == "auto":
        return DEFAULTS.get(backend_name, lambda t: "node")(toolchain)
    if value not in NAMES:
        raise GranularityError(f"lut.granularity must be one of auto, {', '.join(NAMES)}; got {value!r}")
    if value == "block" and backend_name == "vitis_dnndk":
        # a key's network takes a feature map; vai_q_caffe calibrates through an ImageData layer of images
        raise GranularityError(
            "lut.granularity=block: the DNNDK flow calibrates vai_q_caffe with images, which a LUT key's own "
            "network (a feature-map input) cannot take; use backend=vitis_vart, or lut.granularity=node or network"
        )
    if value == "node" and backend_name == "vitis_vart":
        from ofa_hw.backends.vitis.versions import fine_grained

        version = _version(toolchain)
        behaviour = fine_grained(version) if version else None
        if behaviour is None or not behaviour.option:
            note = behaviour.note if behaviour else f"toolchain {toolchain!r} names no version"
            raise GranularityError(
                f"lut.granularity=node needs vaitrace --fine_grained, which {toolchain} does not have "
                f"({note}): use lut.granularity=block or network"
            )
    return value


#: (granularity, backend) -> work per measured network; DNNDK always compiles debug + normal ELFs.
WORK: dict[tuple[str, str], Work] = {
    ("node", "vitis_dnndk"): Work(2, 2),
    ("block", "vitis_dnndk"): Work(2, 2),
    ("network", "vitis_dnndk"): Work(2, 2),
    ("node", "vitis_vart"): Work(2, 3),  # normal + debug xmodel; timed, traced, fine-grained traced
    ("block", "vitis_vart"): Work(1, 2),  # normal xmodel; timed, traced
    ("network", "vitis_vart"): Work(1, 2),
}


def work(granularity: str, backend_name: str) -> Work:
    """Compiles and board runs per measured network (the simulator: one simulated run, no board)."""
    return WORK.get((granularity, backend_name), Work(1, 0 if backend_name == "sim" else 1))
