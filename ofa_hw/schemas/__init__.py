"""Structured configs: one dataclass schema per config group, registered in Hydra's ConfigStore.

Every YAML of group ``g`` starts with ``defaults: [g_schema, _self_]``, so a typo or a wrong type in
a config file or on the command line fails at compose time, before any work is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from ofa_hw.schemas.accuracy import AccuracyConfig
from ofa_hw.schemas.backend import BackendConfig
from ofa_hw.schemas.bench import BenchConfig
from ofa_hw.schemas.deploy import DeployTaskConfig
from ofa_hw.schemas.calibrate import CalibrateConfig
from ofa_hw.schemas.dpu import DpuConfig
from ofa_hw.schemas.lut import LutConfig
from ofa_hw.schemas.predictor import PredictorConfig
from ofa_hw.schemas.search import SearchConfig
from ofa_hw.schemas.space import SpaceConfig
from ofa_hw.schemas.store import PostgresStoreConfig, SQLiteStoreConfig, StoreConfig, StoreTaskConfig
from ofa_hw.schemas.task import TaskConfig

GROUPS: dict[str, type] = {
    "task": TaskConfig,
    "space": SpaceConfig,
    "dpu": DpuConfig,
    "backend": BackendConfig,
    "store": StoreConfig,
    "lut": LutConfig,
    "predictor": PredictorConfig,
    "search": SearchConfig,
    "accuracy": AccuracyConfig,
    "bench": BenchConfig,
    "calibrate": CalibrateConfig,
}


@dataclass
class Config:
    """The root config: one node per group plus run-wide settings."""

    task: TaskConfig = MISSING
    space: SpaceConfig = MISSING
    dpu: DpuConfig = MISSING
    backend: BackendConfig = MISSING
    store: StoreConfig = MISSING
    lut: LutConfig = MISSING
    predictor: PredictorConfig = MISSING
    search: SearchConfig = MISSING
    accuracy: AccuracyConfig = MISSING
    bench: BenchConfig = MISSING
    #: Knobs of ``task=calibrate`` (defaults fit the shipped seed profile; no config file needed).
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    #: Seed of every random choice of the run (sampling, jitter, search, model init).
    seed: int = 0
    #: Directory holding the measurement store, cached artefacts and user configs (``conf/``).
    workspace: str = MISSING
    #: Extra top-level keys a task may read (kept free-form on purpose: per-task knobs live in groups).
    extras: dict[str, Any] = field(default_factory=dict)


def register() -> None:
    """Register the root schema and every group schema (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schema in GROUPS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)
    # Tasks with settings of their own extend TaskConfig (Config.task accepts the subclass).
    cs.store(group="task", name="deploy_schema", node=DeployTaskConfig)
    cs.store(group="task", name="store_task_schema", node=StoreTaskConfig)
    cs.store(group="store", name="sqlite_schema", node=SQLiteStoreConfig)
    cs.store(group="store", name="postgres_schema", node=PostgresStoreConfig)
