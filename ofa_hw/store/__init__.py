"""The measurement store: every profiling run, raw output verbatim, behind one interface and two backends.

* ``store=sqlite`` (default, :class:`SQLiteStore`, also exported as ``Store``): one file per workspace,
  for every process of one host.
* ``store=postgres`` (:class:`PostgresStore`): one PostgreSQL database for every host of a cluster sweep.

Both share the schema and its migrations (:mod:`ofa_hw.store.migrations`), job keys and resume
semantics (:mod:`ofa_hw.store.base`), the runner (:func:`profile_jobs`) and the copy between them
(:mod:`ofa_hw.store.copy`, ``ofa-hw task=store``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ofa_hw.store.base import BaseStore
from ofa_hw.store.jobs import profile_jobs
from ofa_hw.store.migrations import schema_version
from ofa_hw.store.postgres import PostgresStore
from ofa_hw.store.records import NODE_COLUMNS, LockTimeout, StoredRun, StoreError, dpu_config_dict, job_key
from ofa_hw.store.sqlite import STORE_FILENAME, SQLiteStore

#: The embedded store under its historical name (``Store(path)`` opens a workspace's SQLite file).
Store = SQLiteStore
#: Schema version this code reads and writes.
SCHEMA_VERSION = schema_version()
#: Store classes by backend name (``store.kind``) and by ``_target_``.
STORES: dict[str, type[BaseStore]] = {"sqlite": SQLiteStore, "postgres": PostgresStore}

__all__ = [
    "NODE_COLUMNS", "SCHEMA_VERSION", "STORES", "STORE_FILENAME", "BaseStore", "LockTimeout", "PostgresStore",
    "SQLiteStore", "Store", "StoreError", "StoredRun", "dpu_config_dict", "job_key", "open_store",
    "profile_jobs", "store_class",
]  # fmt: skip


def store_class(store_cfg: Any) -> type[BaseStore]:
    """The store class a ``store`` config node names by ``_target_`` (no ``_target_`` = SQLite)."""
    target = str(store_cfg.get("_target_") or "ofa_hw.store.SQLiteStore")
    for cls in STORES.values():
        if target in (f"{cls.__module__}.{cls.__name__}", f"ofa_hw.store.{cls.__name__}"):
            return cls
    raise StoreError(f"store._target_ = {target!r} is not a store; known: {sorted(STORES)}")


def open_store(cfg: Any, workspace: str | Path | None = None) -> BaseStore:
    """Open the store a root config (or its ``store`` node) names.

    ``store=sqlite``: ``store.path`` (default ``<workspace>/store.sqlite``); ``store=postgres``:
    ``store.dsn`` (default ``$OFA_HW_PG_DSN``, then libpq's ``PG*`` variables) and ``store.namespace``.
    """
    store_cfg = cfg.get("store", cfg)
    if workspace is None and "workspace" in cfg:
        workspace = cfg["workspace"]
    return store_class(store_cfg).from_config(store_cfg, workspace)
