"""The embedded store: one SQLite file per workspace, for every process of **one host**.

Why SQLite in WAL mode: Hydra multiruns (joblib, submitit_local, a local Ray) and board farms write from
several processes at once; WAL lets readers proceed during a write, ``BEGIN IMMEDIATE`` serialises
writers with a busy timeout instead of failing, and a process killed with SIGKILL mid-write leaves the
last committed state (a run row and its node rows are written in one transaction, so never half a run).

WAL keeps its index in shared memory, which works only between processes of one host: SQLite's own
documentation says WAL does not work over a network file system. A workspace whose jobs run on several
hosts must use the server-backed store (``store=postgres``, :mod:`ofa_hw.store.postgres`).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ofa_hw.store import migrations
from ofa_hw.store.base import BaseStore
from ofa_hw.store.records import StoreError, utc_now


def _writable(path: Path) -> bool:
    """Whether SQLite can write ``path``: the file and its directory (for the WAL files) are writable.

    ``os.access`` (not a trial open: closing a descriptor of the database file would drop this process's
    SQLite locks on it) knows both a read-only mount and root's exemption from permission bits.
    """
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


#: File name of the store inside a workspace directory.
STORE_FILENAME = "store.sqlite"


class SQLiteStore(BaseStore):
    """The SQLite measurement store of a workspace.

    Args:
        path: The database file (created with its directory if missing).
        timeout_s: How long a writer waits for another process's write lock before giving up.

    Raises:
        StoreError: the file is not an SQLite database, is truncated or corrupt, or has another
            schema version — always naming the file.
    """

    kind = "sqlite"

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        super().__init__(timeout_s)
        self.path = Path(path)
        self._claims_fd: int | None = None
        self._check_file()
        #: Opened read-only: the file or its directory cannot be written (a shared, archived or
        #: mounted-read-only workspace); every read works, a write fails naming the file.
        self.read_only = self.path.is_file() and not _writable(self.path)
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot open ({exc})") from exc
        try:
            with self._errors("open"):
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
                if self.read_only:
                    self._check_version()
                else:
                    self._set_wal()
                    self._conn.execute("PRAGMA foreign_keys = ON")
                    # WAL + NORMAL: a killed process loses nothing committed; only a power cut may drop the last commits.
                    self._conn.execute("PRAGMA synchronous = NORMAL")
                    self._init_schema()
                problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise StoreError(f"store {self.path} is corrupt: {'; '.join(problems[:3])}")
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
        # Read-only: ``mode=ro`` still needs the WAL index (``-shm``); where it cannot be created either,
        # ``immutable=1`` reads the file as it is (nobody can write it there).
        for flags in ("mode=ro", "immutable=1"):
            conn = sqlite3.connect(
                f"file:{self.path}?{flags}",
                uri=True,
                timeout=self.timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error:
                conn.close()
        raise sqlite3.OperationalError("unable to open the read-only database")

    def _check_version(self) -> None:
        """A read-only store cannot be migrated: its schema version must be this release's."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version != migrations.schema_version():
            raise StoreError(
                f"store {self.path} is read-only and has schema version {version}; this ofa_hw reads "
                f"{migrations.schema_version()} (copy it somewhere writable to migrate it)"
            )

    @classmethod
    def from_config(cls, cfg: Any, workspace: str | Path | None = None) -> SQLiteStore:
        """Open the store a ``store`` config node names (``path``, default ``<workspace>/store.sqlite``)."""
        path = cfg.get("path") or Path(str(workspace)) / STORE_FILENAME
        return cls(Path(str(path)).expanduser(), timeout_s=float(cfg.get("timeout_s", 60.0)))

    @property
    def location(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ plumbing
    def _check_file(self) -> None:
        """Refuse a directory in place of the store file.

        The file's bytes are deliberately *not* read here: opening and closing the database file
        outside SQLite drops every POSIX lock this process holds on it (``close()`` releases them all),
        so another store of the same process would silently lose its locks and concurrent writers
        would corrupt the file. SQLite's own errors are translated instead (see :meth:`_errors`).
        """
        if self.path.is_dir():
            raise StoreError(
                f"store {self.path} is a directory; expected a file such as {self.path / STORE_FILENAME}"
            )

    def _set_wal(self) -> None:
        # Switching the journal mode needs a moment of exclusive access; several processes opening a new
        # store at once may collide, so retry within the timeout.
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise StoreError(
                f"store {self.path}: cannot switch to WAL mode (got {mode}); is it on a network drive?"
            )

    def _init_schema(self) -> None:
        with self._tx() as conn:
            legacy = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if legacy == 0 and tables - {"sqlite_sequence", "schema_version"}:
                raise StoreError(
                    f"store {self.path} is an SQLite file of another application (tables {sorted(tables)})"
                )
            migrations.migrate(
                conn.execute, "sqlite", tables, str(self.path), utc_now(), legacy_version=legacy
            )
            # Kept in step with schema_version: older ofa_hw releases read only this.
            conn.execute(f"PRAGMA user_version = {migrations.schema_version()}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn SQLite errors into :class:`StoreError` naming the file and the operation."""
        try:
            yield
        except StoreError:
            raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(
                    f"store {self.path}: {what} waited {self.timeout_s:.0f} s for another process's lock ({exc})"
                ) from exc
            raise StoreError(f"store {self.path}: {what} failed: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if "file is not a database" in str(exc):
                raise StoreError(
                    f"store {self.path} is not an SQLite database (or its header is destroyed); move it away or delete it"
                ) from exc
            raise StoreError(f"store {self.path} is corrupt or truncated ({what}: {exc})") from exc

    # ------------------------------------------------------------------ claims
    def _claim_range(self, key: str) -> tuple[int, int]:
        # One byte of the side file per job key (48 bits of the key as its offset): POSIX record locks
        # are released by the kernel when the process dies.
        if self._claims_fd is None:
            self._claims_fd = os.open(f"{self.path}.claims", os.O_RDWR | os.O_CREAT, 0o644)
        return self._claims_fd, int(key[:12], 16)

    def try_claim(self, key: str) -> bool:
        """Claim ``key`` with a record lock on ``<store>.claims``.

        Record locks belong to the process: threads of one process share its claims (each process runs
        its own jobs in order), and closing this store releases them.
        """
        with self._lock:
            fd, offset = self._claim_range(key)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except OSError:
                return False
            return True

    def release(self, key: str) -> None:
        with self._lock:
            fd, offset = self._claim_range(key)
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    def close(self) -> None:
        with self._lock:
            if self._claims_fd is not None:
                os.close(self._claims_fd)
                self._claims_fd = None
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` takes the write lock up front (no upgrade deadlocks)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
