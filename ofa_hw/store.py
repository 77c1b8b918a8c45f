"""The measurement store: every profiling run, raw output verbatim, in one SQLite file per workspace.

Why SQLite in WAL mode: Hydra multiruns (joblib launcher) and board farms write from several
processes at once; WAL lets readers proceed during a write, ``BEGIN IMMEDIATE`` serialises writers
with a busy timeout instead of failing, and a process killed with SIGKILL mid-write leaves the last
committed state (a run row and its node rows are written in one transaction, so never half a run).

A run is identified by its *job key*: backend, DPU fingerprint, toolchain, space, network (arch id),
runs and seed. The net name is deliberately not part of it: the same subnet profiled under two names
is one measurement. An ``ok`` run is never overwritten; a ``failed`` run is replaced when the job is
retried (``retry_failed=True``), keeping an attempt count.

Tables:
    ``runs``  one row per job key (status, raw text, error, timings, DPU config JSON, arch JSON …)
    ``nodes`` parsed per-node rows of each ok run: ``run = -1`` holds the profile's aggregate table,
              ``run = 0..N-1`` the table of each profile-mode run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.errors import UserError

if TYPE_CHECKING:
    from ofa_hw.dpu import DPUConfig, Profile

#: Bumped when the table layout changes; a store of another version is refused with a clear error.
SCHEMA_VERSION = 1
#: File name of the store inside a workspace directory.
STORE_FILENAME = "store.sqlite"
#: Node columns of :attr:`ofa_hw.dpu.Profile.nodes`, stored one per SQL column.
NODE_COLUMNS = ("id", "name", "workload_mop", "mem_mb", "runtime_ms", "perf_gops", "utilization", "mb_s")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    seed            INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    kernel          TEXT,
    kernel_info     TEXT,
    tasks           TEXT,
    totals          TEXT,
    total_ms        REAL,
    e2e_ms          REAL,
    raw_text        TEXT NOT NULL,
    error           TEXT,
    timings         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    created         TEXT NOT NULL,
    updated         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_select ON runs (dpu_fingerprint, space, backend, status);
CREATE TABLE IF NOT EXISTS nodes (
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    run          INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    id           INTEGER NOT NULL,
    name         TEXT NOT NULL,
    workload_mop REAL,
    mem_mb       REAL,
    runtime_ms   REAL NOT NULL,
    perf_gops    REAL,
    utilization  REAL,
    mb_s         REAL,
    PRIMARY KEY (run_id, run, seq)
);
"""


class StoreError(UserError, RuntimeError):
    """The store file is unusable (corrupt, truncated, foreign, locked) or a request is invalid."""


def dpu_config_dict(dpu: DPUConfig) -> dict[str, Any]:
    """A JSON-able dict of a DPU configuration (recorded with every run)."""
    if hasattr(dpu, "to_dict"):
        return dict(dpu.to_dict())
    return json.loads(json.dumps(dataclasses.asdict(dpu), default=str))


def job_key(job: ProfileJob, backend: Backend) -> str:
    """The identity of a measurement: same key, same numbers (up to the backend's jitter seed)."""
    ident = {
        "backend": backend.name,
        "dpu": backend.dpu.fingerprint(),
        "toolchain": backend.toolchain,
        "space": job.space_name,
        "arch_id": job.arch_id,
        "runs": job.runs,
        "seed": job.seed,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """One row of the ``runs`` table (without the raw text and node rows, which are fetched on demand)."""

    id: int
    job_key: str
    backend: str
    dpu_fingerprint: str
    dpu_name: str
    toolchain: str
    space: str
    arch: dict[str, Any]
    arch_id: str
    net_name: str
    runs: int
    seed: int
    status: str
    total_ms: float | None
    e2e_ms: float | None
    error: str | None
    timings: dict[str, float]
    attempts: int
    created: str
    updated: str


_RUN_FIELDS = [f.name for f in dataclasses.fields(StoredRun)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """The SQLite measurement store of a workspace.

    Args:
        path: The database file (created with its directory if missing).
        timeout_s: How long a writer waits for another process's write lock before giving up.

    Raises:
        StoreError: the file is not an SQLite database, is truncated or corrupt, or has another
            schema version — always naming the file.
    """

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        self._lock = threading.RLock()
        self._check_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot open ({exc})") from exc
        try:
            with self._errors("open"):
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
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

    @classmethod
    def for_workspace(cls, workspace: str | Path, timeout_s: float = 60.0) -> Store:
        """The store of a workspace directory (``<workspace>/store.sqlite``)."""
        return cls(Path(workspace) / STORE_FILENAME, timeout_s=timeout_s)

    # ------------------------------------------------------------------ plumbing
    def _check_file(self) -> None:
        """Refuse a directory in place of the store file.

        The file's bytes are deliberately *not* read here: opening and closing the database file
        outside SQLite drops every POSIX lock this process holds on it (``close()`` releases them all),
        so another ``Store`` of the same process would silently lose its locks and concurrent writers
        would corrupt the file. SQLite's own errors are translated instead (see :meth:`_errors`).
        """
        if self.path.is_dir():
            raise StoreError(f"store {self.path} is a directory; expected a file such as {self.path / STORE_FILENAME}")

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
            raise StoreError(f"store {self.path}: cannot switch to WAL mode (got {mode}); is it on a network drive?")

    def _init_schema(self) -> None:
        with self._tx():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version == 0 and tables - {"sqlite_sequence"}:
                raise StoreError(f"store {self.path} is an SQLite file of another application (tables {sorted(tables)})")
            if version not in (0, SCHEMA_VERSION):
                raise StoreError(
                    f"store {self.path} has schema version {version}; this ofa_hw reads version {SCHEMA_VERSION}"
                )
            # executescript() would commit the open transaction, so run the statements one by one.
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ writes
    def record(self, outcome: ProfileOutcome, backend: Backend) -> int:
        """Store one outcome atomically (run row + node rows in one transaction); returns the run id.

        An ``ok`` run already stored under the same job key is kept as is (measurements are never
        overwritten); a stored ``failed`` run is replaced by the new outcome and its attempt count raised.
        """
        job, prof = outcome.job, outcome.profile
        key = job_key(job, backend)
        now = _now()
        values = {
            "job_key": key,
            "backend": backend.name,
            "dpu_fingerprint": backend.dpu.fingerprint(),
            "dpu_name": str(getattr(backend.dpu, "name", "") or ""),
            "dpu_config": json.dumps(dpu_config_dict(backend.dpu), sort_keys=True),
            "toolchain": backend.toolchain,
            "space": job.space_name,
            "arch": job.arch_json,
            "arch_id": job.arch_id,
            "net_name": job.net_name,
            "runs": job.runs,
            "seed": job.seed,
            "status": outcome.status,
            "kernel": prof.kernel if prof is not None else None,
            "kernel_info": prof.kernel_info if prof is not None else None,
            "tasks": json.dumps(list(prof.tasks)) if prof is not None else None,
            "totals": json.dumps(prof.totals.to_dict("records")) if prof is not None else None,
            "total_ms": float(prof.total_ms) if prof is not None else None,
            "e2e_ms": float(prof.e2e_ms) if prof is not None and prof.e2e_ms is not None else None,
            "raw_text": outcome.raw_text,
            "error": outcome.error,
            "timings": json.dumps({k: float(v) for k, v in outcome.timings.items()}, sort_keys=True),
            "updated": now,
        }
        node_rows = _node_rows(prof) if prof is not None else []
        with self._errors(f"record {job.net_name}"), self._tx() as conn:
            existing = conn.execute("SELECT id, status FROM runs WHERE job_key = ?", (key,)).fetchone()
            if existing is not None and existing[1] == "ok":
                return int(existing[0])
            if existing is None:
                values["created"] = now
                cols = ", ".join(values)
                marks = ", ".join("?" for _ in values)
                run_id = conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(values.values())).lastrowid
            else:
                run_id = int(existing[0])
                sets = ", ".join(f"{c} = ?" for c in values)
                conn.execute(
                    f"UPDATE runs SET {sets}, attempts = attempts + 1 WHERE id = ?", (*values.values(), run_id)
                )
                conn.execute("DELETE FROM nodes WHERE run_id = ?", (run_id,))
            conn.executemany(
                f"INSERT INTO nodes (run_id, run, seq, {', '.join(NODE_COLUMNS)}) VALUES (?, ?, ?{', ?' * len(NODE_COLUMNS)})",
                [(run_id, *row) for row in node_rows],
            )
        return int(run_id)

    # ------------------------------------------------------------------- reads
    def _select_runs(self, where: str = "", params: Sequence[Any] = ()) -> list[StoredRun]:
        cols = ", ".join(_RUN_FIELDS)
        with self._errors("read runs"), self._lock:
            rows = self._conn.execute(f"SELECT {cols} FROM runs {where} ORDER BY id", tuple(params)).fetchall()
        out = []
        for row in rows:
            rec = dict(zip(_RUN_FIELDS, row))
            rec["arch"] = json.loads(rec["arch"])
            rec["timings"] = json.loads(rec["timings"])
            out.append(StoredRun(**rec))
        return out

    def get(self, job: ProfileJob, backend: Backend) -> StoredRun | None:
        """The stored run of ``job`` on ``backend`` (any status), or ``None``."""
        found = self.lookup([job_key(job, backend)])
        return next(iter(found.values()), None)

    def lookup(self, keys: Iterable[str]) -> dict[str, StoredRun]:
        """Stored runs by job key (missing keys are absent from the result)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, StoredRun] = {}
        for start in range(0, len(keys), 500):  # stay below SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update((r.job_key, r) for r in self._select_runs(f"WHERE job_key IN ({marks})", chunk))
        return found

    def has(self, job: ProfileJob, backend: Backend) -> bool:
        """Whether an ``ok`` measurement of ``job`` on ``backend`` is stored."""
        run = self.get(job, backend)
        return run is not None and run.status == "ok"

    def runs(
        self,
        *,
        backend: str | None = None,
        dpu_fingerprint: str | None = None,
        toolchain: str | None = None,
        space: str | None = None,
        status: str | None = "ok",
        net_name: str | None = None,
    ) -> list[StoredRun]:
        """Stored runs matching every given filter (``status='ok'`` by default; ``None`` = any)."""
        filters = {
            "backend": backend,
            "dpu_fingerprint": dpu_fingerprint,
            "toolchain": toolchain,
            "space": space,
            "status": status,
            "net_name": net_name,
        }
        active = {k: v for k, v in filters.items() if v is not None}
        where = ("WHERE " + " AND ".join(f"{k} = ?" for k in active)) if active else ""
        return self._select_runs(where, list(active.values()))

    def runs_frame(self, **filters: Any) -> pd.DataFrame:
        """:meth:`runs` as a DataFrame (one row per run, columns as :class:`StoredRun`)."""
        return pd.DataFrame([dataclasses.asdict(r) for r in self.runs(**filters)], columns=_RUN_FIELDS)

    def nodes(self, run_ids: Iterable[int], per_run: bool = False) -> pd.DataFrame:
        """Node rows of the given runs: the aggregate table, or every profile-mode run's table.

        Returns:
            DataFrame with ``run_id``, ``run`` (``-1`` = aggregate), ``seq`` and the node columns.
        """
        ids = list(dict.fromkeys(int(i) for i in run_ids))
        cond = "run >= 0" if per_run else "run = -1"
        frames = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            sql = (
                f"SELECT run_id, run, seq, {', '.join(NODE_COLUMNS)} FROM nodes "
                f"WHERE run_id IN ({marks}) AND {cond} ORDER BY run_id, run, seq"
            )
            with self._errors("read nodes"), self._lock:
                frames.append(pd.read_sql_query(sql, self._conn, params=chunk))
        if not frames:
            return pd.DataFrame(columns=["run_id", "run", "seq", *NODE_COLUMNS])
        return pd.concat(frames, ignore_index=True)

    def raw_text(self, run_id: int) -> str:
        """The profiling tool's output of a run, verbatim."""
        with self._errors("read raw text"), self._lock:
            row = self._conn.execute("SELECT raw_text FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"store {self.path} has no run with id {run_id}")
        return row[0]

    def profile(self, run_id: int) -> Profile:
        """Rebuild the :class:`~ofa_hw.dpu.Profile` of an ok run from its stored node rows."""
        return self.profiles([run_id])[int(run_id)]

    def profiles(self, run_ids: Iterable[int]) -> dict[int, Profile]:
        """Rebuild the profiles of several ok runs with two queries (by run id).

        Raises:
            StoreError: a run id is unknown or names a failed run.
        """
        from ofa_hw.dpu import Profile  # the store sits above the dpu layer; imported lazily

        ids = list(dict.fromkeys(int(i) for i in run_ids))
        meta: dict[int, tuple] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            with self._errors("read profiles"), self._lock:
                rows = self._conn.execute(
                    f"SELECT id, status, kernel, kernel_info, e2e_ms, tasks, totals FROM runs WHERE id IN ({marks})", chunk
                ).fetchall()
            meta.update((r[0], r[1:]) for r in rows)
        for run_id in ids:
            if run_id not in meta:
                raise StoreError(f"store {self.path} has no run with id {run_id}")
            if meta[run_id][0] != "ok":
                raise StoreError(f"store {self.path}: run {run_id} failed; it has no profile")
        nodes = self.nodes(ids, per_run=True)
        # Slice the (run_id, run)-sorted rows into per-run tables with numpy: pandas grouping per run is
        # the slow part when a task reloads hundreds of profiles.
        columns = {c: nodes[c].to_numpy() for c in ("run_id", "run", *NODE_COLUMNS)}
        tag = columns["run_id"].astype(np.int64) * 1_000_000 + columns["run"].astype(np.int64)
        cuts = np.flatnonzero(np.diff(tag)) + 1
        tables: dict[int, list[pd.DataFrame]] = {i: [] for i in ids}
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(tag)]):
            if hi > lo:
                tables[int(columns["run_id"][lo])].append(
                    pd.DataFrame({c: columns[c][lo:hi] for c in NODE_COLUMNS})
                )
        out = {}
        for run_id in ids:
            _, kernel, kernel_info, e2e_ms, tasks, totals = meta[run_id]
            out[run_id] = Profile.from_runs(
                kernel=kernel or "",
                runs=tables[run_id],
                totals=json.loads(totals),
                tasks=json.loads(tasks),
                e2e_ms=e2e_ms,
                kernel_info=kernel_info or "",
            )
        return out

    def outcome(self, run: StoredRun, job: ProfileJob | None = None) -> ProfileOutcome:
        """Rebuild the :class:`ProfileOutcome` of a stored run (``job`` defaults to one rebuilt from the row)."""
        return self.outcomes([run], [job])[0]

    def outcomes(self, runs: Sequence[StoredRun], jobs: Sequence[ProfileJob | None] | None = None) -> list[ProfileOutcome]:
        """Rebuild the outcomes of stored runs in bulk (``jobs[i]`` defaults to one rebuilt from the row)."""
        jobs = list(jobs) if jobs is not None else [None] * len(runs)
        profiles = self.profiles([r.id for r in runs if r.status == "ok"])
        raw: dict[int, str] = {}
        ids = [r.id for r in runs]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            with self._errors("read raw text"), self._lock:
                raw.update(self._conn.execute(f"SELECT id, raw_text FROM runs WHERE id IN ({marks})", chunk).fetchall())
        return [
            ProfileOutcome(
                job=job if job is not None else ProfileJob(run.space, run.arch, run.net_name, run.runs, run.seed),
                status=run.status,
                profile=profiles.get(run.id),
                raw_text=raw[run.id],
                error=run.error,
                timings=run.timings,
            )
            for run, job in zip(runs, jobs)
        ]

    def count(self, **filters: Any) -> int:
        return len(self.runs(**filters))


def open_store(cfg: Any, workspace: str | Path | None = None) -> Store:
    """The store a root config names (``cfg.store.path``, default ``<workspace>/store.sqlite``)."""
    store_cfg = cfg["store"] if "store" in cfg else cfg
    path = store_cfg.get("path") or Path(workspace if workspace is not None else cfg["workspace"]) / STORE_FILENAME
    return Store(Path(str(path)).expanduser(), timeout_s=float(store_cfg.get("timeout_s", 60.0)))


def _node_rows(prof: Profile) -> list[tuple]:
    """``(run, seq, *NODE_COLUMNS)`` rows: the aggregate table as run -1, then each run's table."""
    rows: list[tuple] = []
    for run, frame in [(-1, prof.nodes)] + list(enumerate(prof.runs)):
        missing = [c for c in NODE_COLUMNS if c not in frame.columns]
        if missing:
            raise StoreError(f"profile of kernel {prof.kernel!r} lacks node columns {missing}")
        ids = [int(v) for v in frame["id"]]
        names = [str(v) for v in frame["name"]]
        # NaN -> NULL; tolist() gives plain Python floats, which sqlite3 binds fastest.
        values = [
            [None if v != v else v for v in frame[c].to_numpy(dtype=float).tolist()] for c in NODE_COLUMNS[2:]
        ]
        rows.extend((run, seq, ids[seq], names[seq], *(col[seq] for col in values)) for seq in range(len(ids)))
    return rows


def profile_jobs(
    backend: Backend,
    store: Store,
    jobs: Sequence[ProfileJob],
    desc: str = "profiling",
    retry_failed: bool = False,
    progress: bool = True,
) -> list[ProfileOutcome]:
    """Profile ``jobs`` on ``backend`` through ``store``: the one runner every task uses.

    Jobs the store already holds are not run again (``ok`` ones always; ``failed`` ones unless
    ``retry_failed``); duplicates within ``jobs`` run once. Every new outcome is recorded the moment it
    arrives, so an interrupted call loses at most the jobs in flight and a rerun resumes. Failures are
    recorded and the batch goes on.

    Returns:
        One outcome per job, in the order of ``jobs`` (stored outcomes are rebuilt from the store).
    """
    keys = [job_key(job, backend) for job in jobs]
    stored = store.lookup(keys)
    todo: dict[str, ProfileJob] = {}
    for key, job in zip(keys, jobs):
        run = stored.get(key)
        if run is None or (run.status == "failed" and retry_failed):
            todo.setdefault(key, job)
    fresh: dict[str, ProfileOutcome] = {}
    if todo:
        n_failed = 0
        by_job = {id(job): key for key, job in todo.items()}
        with tqdm(total=len(todo), desc=desc, unit="net", disable=not progress, dynamic_ncols=True, mininterval=0.5) as bar:
            for outcome in backend.profile_many(list(todo.values())):
                store.record(outcome, backend)
                key = by_job.get(id(outcome.job)) or job_key(outcome.job, backend)
                fresh[key] = outcome
                n_failed += not outcome.ok
                bar.update(1)
                if n_failed:
                    bar.set_postfix(failed=n_failed)
    reloaded = iter(store.outcomes([stored[k] for k in keys if k not in fresh], [j for k, j in zip(keys, jobs) if k not in fresh]))
    out = []
    for key, job in zip(keys, jobs):
        if key in fresh:
            out.append(fresh[key] if fresh[key].job is job else dataclasses.replace(fresh[key], job=job))
        else:
            out.append(next(reloaded))
    return out
