"""The Vitis-AI backends: host-side export/quantize/compile (``flows``, ``toolchain``), SSH boards
(``board``), the board-side programs and their output (``profilers``, ``board/``), the checks before
any work (``preflight``), and the backend + farm (``backend``)."""

from ofa_hw.backends.vitis.backend import VitisBackend, vitis_settings
from ofa_hw.backends.vitis.profilers import profile_from_vaitrace

__all__ = ["VitisBackend", "profile_from_vaitrace", "vitis_settings"]
