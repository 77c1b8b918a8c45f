"""Schema of the ``bench`` group: benchmarks run with ``ofa-hw task=bench bench=<name>``."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class BenchConfig:
    """Attributes:
    name: Benchmark name.
    _target_: Dotted path of the benchmark function ``run(cfg) -> dict``.
    params: Benchmark-specific knobs (documented in each benchmark's YAML and experiment README).
    """

    name: str = MISSING
    _target_: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)
