"""Schemas of the ``store`` config group (the measurement database) and of ``task=store``."""

from __future__ import annotations

from dataclasses import dataclass

from ofa_hw.schemas.task import TaskConfig


@dataclass
class StoreConfig:
    """What every store option has.

    Attributes:
        _target_: The store class (``ofa_hw.store.SQLiteStore``, ``ofa_hw.store.PostgresStore``).
        timeout_s: How long a writer waits for another process's lock.
    """

    _target_: str = "ofa_hw.store.SQLiteStore"
    timeout_s: float = 120.0


@dataclass
class SQLiteStoreConfig(StoreConfig):
    """``store=sqlite``: one SQLite (WAL) file per workspace; every job must run on the host holding it.

    Attributes:
        path: Database file; one per workspace so every task and every multirun job shares it.
    """

    path: str = "${workspace}/store.sqlite"


@dataclass
class PostgresStoreConfig(StoreConfig):
    """``store=postgres``: one PostgreSQL database shared by every host of a sweep.

    Attributes:
        dsn: libpq connection string or URL. Keep the password out of it (``~/.pgpass`` or ``PGPASSWORD``),
            or leave the whole DSN in ``$OFA_HW_PG_DSN`` (the default), which Hydra's saved configs keep
            as the unresolved ``${oc.env:…}``. Empty = libpq's ``PG*`` variables.
        namespace: PostgreSQL schema holding the tables: one per workspace if several share a database.
        connect_timeout_s: How long to wait for the server.
    """

    _target_: str = "ofa_hw.store.PostgresStore"
    dsn: str = ""
    namespace: str = "ofa_hw"
    connect_timeout_s: float = 10.0


@dataclass
class StoreTaskConfig(TaskConfig):
    """``ofa-hw task=store task.verb=…``: move measurements between the configured store and a SQLite file.

    Verbs:
        ``info``: print the configured store's schema version and row counts.
        ``import``: copy every run of the SQLite file ``sqlite`` into the configured store.
        ``export``: copy every run of the configured store into the SQLite file ``sqlite``.

    Copies are idempotent (job keys): an ``ok`` run already in the target is kept, a ``failed`` one is
    replaced by an ``ok`` one. After a copy every source run is checked in the target (status, node row
    count, raw text byte for byte); any difference fails the task.

    Attributes:
        verb: ``info``, ``import`` or ``export``.
        sqlite: The SQLite store on the other side of the copy (default: the workspace's own file).
        batch: Runs per transaction while copying.
    """

    verb: str = "info"
    sqlite: str = "${workspace}/store.sqlite"
    batch: int = 200
