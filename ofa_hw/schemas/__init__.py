"""Structured configs: one dataclass schema per config group, registered in Hydra's ConfigStore.

Every YAML of group ``g`` starts with ``defaults: [g_schema, _self_]``, so a typo or a wrong type in
a config file or on the command line fails at compose time, before any work is done. The schemas are
served by a config source of their own that lists none of them (:mod:`ofa_hw.schemas.searchpath`), so
they are never offered as options of their group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from ofa_hw.schemas.accuracy import AccuracyConfig
from ofa_hw.schemas.backend import BackendConfig
from ofa_hw.schemas.bench import BenchConfig
from ofa_hw.schemas.calibrate import CalibrateConfig
from ofa_hw.schemas.deploy import DeployTaskConfig
from ofa_hw.schemas.dpu import DpuConfig
from ofa_hw.schemas.lut import LutConfig
from ofa_hw.schemas.predictor import PredictorConfig
from ofa_hw.schemas.search import SearchConfig
from ofa_hw.schemas.searchpath import SCHEMA_SUFFIX, SchemaSource, WorkspaceSearchPath
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
    dpu: DpuConfig = MISSING  # generated from DPUConfig (schemas/dpu.py)
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


def schema_configs() -> dict[str, type]:
    """Config path -> dataclass of every ``<group>/<group>_schema`` (and ``config_schema``, the root)."""
    configs: dict[str, type] = {"config_schema": Config}
    configs.update({f"{group}/{group}{SCHEMA_SUFFIX}": schema for group, schema in GROUPS.items()})
    # Tasks with settings of their own extend TaskConfig (Config.task accepts the subclass).
    configs["task/deploy_schema"] = DeployTaskConfig
    configs["task/store_task_schema"] = StoreTaskConfig
    configs["store/sqlite_schema"] = SQLiteStoreConfig
    configs["store/postgres_schema"] = PostgresStoreConfig
    return configs


def register() -> None:
    """Make the schemas available to Hydra without offering them as options (idempotent).

    They are served by :class:`~ofa_hw.schemas.searchpath.SchemaSource`, which Hydra's search path
    gets through :class:`~ofa_hw.schemas.searchpath.WorkspaceSearchPath` (that also puts the
    workspace's ``conf/`` first). Hydra's ConfigStore is not used: it lists every entry it holds.
    """
    from hydra.core.plugins import Plugins

    SchemaSource.schemas = schema_configs()
    plugins = Plugins.instance()
    for plugin in (SchemaSource, WorkspaceSearchPath):
        plugins.register(plugin)
