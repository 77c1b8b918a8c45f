"""Schema of the ``dpu`` group: every field of :class:`ofa_hw.dpu.DPUConfig`, so that a YAML preset
fully describes a DPU and any field can be overridden on the command line (``dpu.freq_mhz=200``).

Generated from :class:`~ofa_hw.dpu.config.DPUConfig` (names, types, defaults): the DPU's defaults have
one source. Only ``name`` differs: a preset must name itself (``MISSING`` here).
"""

from __future__ import annotations

import dataclasses
import typing

from omegaconf import MISSING

from ofa_hw.dpu.config import DPUConfig

_HINTS = typing.get_type_hints(DPUConfig)

#: The ``dpu`` group's schema (field meanings: :class:`ofa_hw.dpu.config.DPUConfig`).
DpuConfig = dataclasses.make_dataclass(
    "DpuConfig",
    [("name", str, dataclasses.field(default=MISSING))]
    + [
        (f.name, _HINTS[f.name], dataclasses.field(default=f.default))
        for f in dataclasses.fields(DPUConfig)
        if f.init and f.name != "name"
    ],
)
DpuConfig.__module__ = __name__
DpuConfig.__doc__ = "Attributes: see :class:`ofa_hw.dpu.config.DPUConfig` (generated from it)."
