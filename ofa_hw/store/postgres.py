"""The server-backed store: PostgreSQL (psycopg 3), one database shared by every host of a cluster sweep.

Same tables, job keys and resume semantics as the SQLite store (the SQL is shared, see
:mod:`ofa_hw.store.base` and :mod:`ofa_hw.store.migrations`). Concurrency comes from the server:
each measurement is one transaction; writers of one job key meet at the ``UNIQUE`` index (``ON CONFLICT
DO NOTHING`` waits for the other transaction, then re-reads with ``FOR UPDATE``); a client killed
mid-transaction drops its connection and the server rolls back exactly that transaction.

The connection string (DSN) comes from ``store.dsn``, else ``$OFA_HW_PG_DSN``, else libpq's own
``PG*`` variables and ``~/.pgpass``. It is never printed: messages and ``repr`` show host, port,
database and user only (:func:`redact`), and any password text is scrubbed from driver errors.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ofa_hw.store import migrations
from ofa_hw.store.base import BaseStore
from ofa_hw.store.records import LockTimeout, StoreError, utc_now

#: Environment variable holding the DSN when ``store.dsn`` is empty.
DSN_ENV = "OFA_HW_PG_DSN"
_SHOWN = ("host", "hostaddr", "port", "dbname", "user")
_NAMESPACE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Transaction-level advisory lock serialising schema migrations of one database.
_MIGRATION_LOCK = 0x0FA0_5C4E


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError(
            "store=postgres needs psycopg 3: pip install 'ofa_hw[cluster]' (or 'psycopg[binary]')"
        ) from exc
    return psycopg


def resolve_dsn(dsn: str | None) -> str:
    """``dsn``, else ``$OFA_HW_PG_DSN``, else ``""`` (libpq then reads ``PGHOST``, ``PGUSER`` … itself)."""
    return (dsn or "").strip() or os.environ.get(DSN_ENV, "").strip()


def redact(dsn: str) -> str:
    """A printable description of ``dsn``: host, port, database and user, never the password."""
    psycopg = _psycopg()
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql (unparsable DSN)"
    for key, env in (("host", "PGHOST"), ("port", "PGPORT"), ("dbname", "PGDATABASE"), ("user", "PGUSER")):
        if key not in parts and os.environ.get(env):
            parts[key] = os.environ[env]
    shown = " ".join(f"{k}={parts[k]}" for k in _SHOWN if parts.get(k) not in (None, ""))
    return f"postgresql {shown}".strip()


def advisory_key(text: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` derived from ``text`` (stable across hosts and runs)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PostgresStore(BaseStore):
    """The PostgreSQL measurement store.

    Args:
        dsn: libpq connection string or URL; empty = ``$OFA_HW_PG_DSN``, then libpq's ``PG*`` variables.
        namespace: PostgreSQL schema holding the tables (several workspaces can share one database).
        timeout_s: How long a statement waits for another session's row lock before failing.
        connect_timeout_s: How long to wait for the server.

    Raises:
        StoreError: the server is unreachable or refuses the login, the namespace holds another
            application's tables or a newer schema version — naming the redacted DSN.
    """

    kind = "postgres"
    placeholder = "%s"
    for_update = " FOR UPDATE"
    multi_host = True

    def __init__(
        self,
        dsn: str = "",
        namespace: str = "ofa_hw",
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(timeout_s)
        self._psycopg = _psycopg()
        self._dsn = resolve_dsn(dsn)
        self._redacted = redact(self._dsn)
        if not _NAMESPACE_RE.match(namespace):
            raise StoreError(
                f"store.namespace {namespace!r}: use lower-case letters, digits and _ (a PostgreSQL schema name)"
            )
        self.namespace = namespace
        self.connect_timeout_s = float(connect_timeout_s)
        self._conn = self._connect("open")
        try:
            with self._errors("open"):
                self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def from_config(cls, cfg: Any, workspace: Any = None) -> PostgresStore:
        """Open the store a ``store`` config node names (``dsn``, ``namespace``, timeouts)."""
        return cls(
            dsn=str(cfg.get("dsn") or ""),
            namespace=str(cfg.get("namespace") or "ofa_hw"),
            timeout_s=float(cfg.get("timeout_s", 60.0)),
            connect_timeout_s=float(cfg.get("connect_timeout_s", 10.0)),
        )

    @property
    def location(self) -> str:
        return f"{self._redacted} namespace={self.namespace}"

    # ------------------------------------------------------------------ plumbing
    def _connect(self, what: str) -> Any:
        with self._errors(what):
            conn = self._psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, int(round(self.connect_timeout_s))),
                application_name="ofa_hw",
            )
        # Row locks (two writers of one job key) wait at most timeout_s, like SQLite's busy timeout.
        conn.execute(f"SET lock_timeout = {int(self.timeout_s * 1000)}")
        conn.execute(f'SET search_path TO "{self.namespace}"')
        return conn

    def _init_schema(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.namespace}"')
            tables = {
                r[0]
                for r in cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (self.namespace,),
                ).fetchall()
            }

            def execute(sql: str, params: tuple = ()) -> Any:
                return cur.execute(self._sql(sql), params)

            migrations.migrate(execute, "postgres", tables, self.location, utc_now())

    def _scrub(self, text: str) -> str:
        secrets = []
        with suppress(self._psycopg.ProgrammingError):
            secrets.append(self._psycopg.conninfo.conninfo_to_dict(self._dsn).get("password"))
        secrets.append(os.environ.get("PGPASSWORD"))
        for secret in filter(None, secrets):
            text = text.replace(str(secret), "***")
        return text.replace(self._dsn, self._redacted) if self._dsn else text

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn driver errors into :class:`StoreError` naming the redacted DSN and the operation."""
        pg = self._psycopg
        try:
            yield
        except StoreError:
            raise
        except pg.errors.LockNotAvailable:
            raise StoreError(
                f"store {self.location}: {what} waited {self.timeout_s:.0f} s for another session's lock"
            ) from None
        except pg.Error as exc:  # "from None": the driver's exception may carry connection details
            raise StoreError(
                f"store {self.location}: {what} failed: {self._scrub(' '.join(str(exc).split()))}"
            ) from None

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction on the store's session (READ COMMITTED; rows re-read with ``FOR UPDATE``)."""
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def _fetch(self, sql: str, params: Any = ()) -> list[tuple]:
        with self._lock, self._conn.cursor() as cur:
            return cur.execute(self._sql(sql), tuple(params)).fetchall()

    # ------------------------------------------------------------------ claims
    def try_claim(self, key: str) -> bool:
        """Claim ``key`` with a session advisory lock (released by the server if this process dies)."""
        with self._errors("claim a job"), self._lock:
            return bool(
                self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (advisory_key(f"ofa_hw job {self.namespace} {key}"),)
                ).fetchone()[0]
            )

    def release(self, key: str) -> None:
        with self._errors("release a job"), self._lock:
            self._conn.execute(
                "SELECT pg_advisory_unlock(%s)", (advisory_key(f"ofa_hw job {self.namespace} {key}"),)
            )

    # ------------------------------------------------------------------ board locks
    @classmethod
    @contextmanager
    def advisory_lock(cls, cfg: Any, name: str, timeout_s: float, poll_s: float = 0.2) -> Iterator[None]:
        """Hold the session-level advisory lock of ``name`` in the database ``cfg`` names.

        The lock lives on a session of its own: closing it (also when the process dies and the server
        notices the dropped connection) releases it, so a crashed job never leaves a board locked.
        Advisory locks are per database: every host and workspace sharing the database shares them.

        Raises:
            LockTimeout: another session held the lock for more than ``timeout_s``.
        """
        key = advisory_key(f"ofa_hw lock {name}")
        store = cls.from_config(cfg)
        with store:
            deadline = time.monotonic() + timeout_s
            while True:
                with store._errors(f"lock {name}"):
                    if store._fetch("SELECT pg_try_advisory_lock(?)", (key,))[0][0]:
                        break
                if time.monotonic() > deadline:
                    raise LockTimeout(
                        f"{name} busy for more than {timeout_s:g} s (advisory lock in {store._redacted})"
                    )
                time.sleep(poll_s)
            yield
