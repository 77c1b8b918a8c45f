"""The Vitis-AI backends: host-side export/quantize/compile (``flows``, ``toolchain``), SSH boards
(``board``), and the backend + farm (``backend``). Board-side programs live in ``board/``."""

from ofa_hw.backends.vitis.backend import VitisBackend, profile_from_vaitrace, vitis_settings

__all__ = ["VitisBackend", "profile_from_vaitrace", "vitis_settings"]
