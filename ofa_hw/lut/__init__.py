"""Per-block latency lookup tables (OFA's LUT) built from DPU node profiles.

``plan`` chooses the subnets to profile, ``mapping`` turns node times into block (key) times,
``build`` aggregates them into a :class:`LatencyTable`, ``table`` holds the table, its files and
OFA's YAML form, ``manage`` finds, reuses, checks for staleness and (re)builds the LUT of a config.
"""

from ofa_hw.lut.build import aggregate, block_samples, build_lut, validate_lut
from ofa_hw.lut.mapping import NodeMappingError, block_times, node_layers
from ofa_hw.lut.plan import ProbePlan, dpu_compile_check, plan_probes
from ofa_hw.lut.table import CSV_COLUMNS, LatencyTable, LutError, LutKeyError, LutMeta, lut_filename

__all__ = [
    "CSV_COLUMNS",
    "LatencyTable",
    "LutError",
    "LutKeyError",
    "LutMeta",
    "NodeMappingError",
    "ProbePlan",
    "aggregate",
    "block_samples",
    "block_times",
    "build_lut",
    "dpu_compile_check",
    "lut_filename",
    "node_layers",
    "plan_probes",
    "validate_lut",
]
