"""Schema migrations shared by every store backend: ordered steps, written once, recorded in ``schema_version``.

Each step is plain SQL with a few dialect words in braces (``{id}``, ``{float}``, ``{bigint}``) that
:data:`DIALECTS` fills in: SQLite's ``REAL`` is a double, PostgreSQL's is not, so measurements use
``{float}``. A store records every applied step in ``schema_version``; opening it applies the missing
steps in order inside one transaction that the backend serialises (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-level advisory lock), so many processes opening a new store at once create it
exactly once. A store newer than this code is refused rather than guessed at.

Adding a step: append a :class:`Migration` with the next version; never edit a released one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ofa_hw.store.records import StoreError


@dataclass(frozen=True)
class Migration:
    """One ordered schema step.

    Attributes:
        version: The schema version the step produces (1, 2, …, no gaps).
        description: What the step does, recorded with it.
        statements: SQL statements with ``{id}``/``{float}``/``{bigint}`` dialect words.
    """

    version: int
    description: str
    statements: tuple[str, ...]


#: Dialect words per backend.
DIALECTS: dict[str, dict[str, str]] = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "float": "REAL", "bigint": "INTEGER"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "float": "DOUBLE PRECISION", "bigint": "BIGINT"},
}

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "runs and their node tables",
        (
            """CREATE TABLE runs (
                id              {id},
                job_key         TEXT NOT NULL UNIQUE,
                backend         TEXT NOT NULL,
                dpu_fingerprint TEXT NOT NULL,
                dpu_name        TEXT NOT NULL,
                dpu_config      TEXT NOT NULL,
                toolchain       TEXT NOT NULL,
                space           TEXT NOT NULL,
                arch            TEXT NOT NULL,
                arch_id         TEXT NOT NULL,
                net_name        TEXT NOT NULL,
                runs            INTEGER NOT NULL,
                seed            {bigint} NOT NULL,
                status          TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
                kernel          TEXT,
                kernel_info     TEXT,
                tasks           TEXT,
                totals          TEXT,
                total_ms        {float},
                e2e_ms          {float},
                raw_text        TEXT NOT NULL,
                error           TEXT,
                timings         TEXT NOT NULL,
                attempts        INTEGER NOT NULL DEFAULT 1,
                created         TEXT NOT NULL,
                updated         TEXT NOT NULL
            )""",
            "CREATE INDEX runs_select ON runs (dpu_fingerprint, space, backend, status)",
            """CREATE TABLE nodes (
                run_id       {bigint} NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                run          INTEGER NOT NULL,
                seq          INTEGER NOT NULL,
                id           INTEGER NOT NULL,
                name         TEXT NOT NULL,
                workload_mop {float},
                mem_mb       {float},
                runtime_ms   {float} NOT NULL,
                perf_gops    {float},
                utilization  {float},
                mb_s         {float},
                PRIMARY KEY (run_id, run, seq)
            )""",
        ),
    ),
]

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied TEXT NOT NULL)"
)


def schema_version() -> int:
    """The version this code reads and writes (the last migration's)."""
    return MIGRATIONS[-1].version


def migrate(
    execute: Callable[..., Any],
    dialect: str,
    tables: set[str],
    location: str,
    now: str,
    legacy_version: int = 0,
) -> tuple[int, list[int]]:
    """Bring a store to :func:`schema_version` inside the caller's (serialised) transaction.

    Args:
        execute: ``execute(sql, params=())`` returning a cursor, with ``?`` placeholders already adapted.
        dialect: A key of :data:`DIALECTS`.
        tables: Names of the tables already in the store's namespace.
        location: The store, for messages (no secrets).
        now: Timestamp recorded with applied steps.
        legacy_version: A version the store recorded outside ``schema_version`` (SQLite's
            ``user_version`` of stores made before migrations were shared).

    Returns:
        The version before, and the versions applied now.

    Raises:
        StoreError: the namespace holds another application's tables, or a newer schema.
    """
    known = tables - {"sqlite_sequence"}
    if "schema_version" in known:
        rows = execute("SELECT MAX(version) FROM schema_version").fetchall()
        current = max(int(rows[0][0] or 0), legacy_version)
    elif {"runs", "nodes"} <= known and legacy_version >= 1:
        current = legacy_version  # a store made before schema_version existed: adopt its steps
    elif known:
        raise StoreError(f"store {location} is a database of another application (tables {sorted(known)})")
    else:
        current = 0
    target = schema_version()
    if current > target:
        raise StoreError(f"store {location} has schema version {current}; this ofa_hw reads version {target}")
    execute(VERSION_TABLE)
    if "schema_version" not in known:
        for step in MIGRATIONS:
            if step.version <= current:  # adopted legacy steps are recorded as such
                execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (step.version, step.description + " (adopted)", now),
                )
    applied = []
    for step in MIGRATIONS:
        if step.version > current:
            for statement in step.statements:
                execute(statement.format(**DIALECTS[dialect]))
            execute("INSERT INTO schema_version VALUES (?, ?, ?)", (step.version, step.description, now))
            applied.append(step.version)
    return current, applied
