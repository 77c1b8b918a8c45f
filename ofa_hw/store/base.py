"""What every measurement store shares: the reads and writes, in portable SQL, and their semantics.

An ``ok`` run is never overwritten; a ``failed`` run is replaced when the job is retried
(``retry_failed=True``), keeping an attempt count. Records and job keys: :mod:`ofa_hw.store.records`.

Tables (created by :mod:`ofa_hw.store.migrations`, identical in every backend):
    ``runs``  one row per job key (status, raw text, error, timings, DPU config JSON, arch JSON …)
    ``nodes`` parsed per-node rows of each ok run: ``run = -1`` holds the profile's aggregate table,
              ``run = 0..N-1`` the table of each profile-mode run.

The SQL here is written once with ``?`` placeholders; a backend only supplies a connection, its
transaction and error handling, claims, and a few dialect words (:attr:`BaseStore.placeholder`,
:attr:`BaseStore.for_update`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.store.records import (
    CHUNK,
    NODE_COLUMNS,
    RUN_COLUMNS,
    RUN_FIELDS,
    StoredRun,
    StoreError,
    dpu_config_dict,
    job_key,
    node_rows_of,
    utc_now,
)

if TYPE_CHECKING:
    from ofa_hw.formats import Profile


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


class BaseStore(ABC):
    """A measurement store: the same records, keys and resume semantics on every backend.

    Subclasses open a DB-API connection (:attr:`_conn`), run the shared migrations, and implement
    :meth:`from_config`, :meth:`_tx`, :meth:`_errors`, :meth:`try_claim` and :meth:`release`; a store
    that hosts share (:attr:`multi_host`) also implements :meth:`advisory_lock`. Every method is safe to
    call from several threads (one lock per store); several processes and hosts are kept apart by the
    database's own transactions.
    """

    #: The open DB-API connection (``execute``, ``close``), set by the subclass's constructor.
    _conn: Any

    #: Backend name (``sqlite``, ``postgres``) as written in ``store=<name>``.
    kind: ClassVar[str]
    #: Bound-parameter marker of the driver; the shared SQL is written with ``?``.
    placeholder: ClassVar[str] = "?"
    #: Row lock taken when re-reading an existing run inside a write transaction.
    for_update: ClassVar[str] = ""
    #: Whether processes on several hosts may share the store (and lock boards through it).
    multi_host: ClassVar[bool] = False

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = float(timeout_s)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ backend hooks
    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Any, workspace: str | Path | None = None) -> BaseStore:
        """Open the store a ``store`` config node describes (``workspace``: default location)."""

    @classmethod
    def advisory_lock(
        cls, cfg: Any, name: str, timeout_s: float, poll_s: float = 0.2
    ) -> AbstractContextManager[None]:
        """Hold the exclusive lock ``name`` in the shared database ``cfg`` names (stores with
        :attr:`multi_host`; host-local stores lock with files, :func:`ofa_hw.store.locks.file_lock`)."""
        raise NotImplementedError(f"{cls.__name__} is host-local: lock '{name}' with a file lock")

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, safe to print (a file path, or a DSN without its password)."""

    @abstractmethod
    def _tx(self) -> AbstractContextManager[Any]:
        """One write transaction; yields a cursor-like object with ``execute``/``executemany``."""

    @abstractmethod
    def _errors(self, what: str) -> AbstractContextManager[None]:
        """Translate driver errors into :class:`StoreError` naming :attr:`location` and ``what``."""

    @abstractmethod
    def try_claim(self, key: str) -> bool:
        """Claim job ``key`` for this process unless another process holds it (never blocks).

        Claims keep concurrent jobs of a sweep from measuring one subnet twice: the holder measures,
        the others wait for its record. The database server (or the kernel, for a lock file) drops a
        claim when its holder dies, so a crashed job never blocks the rest.
        """

    @abstractmethod
    def release(self, key: str) -> None:
        """Release a claim taken by :meth:`try_claim`."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> BaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            cur = self._conn.execute(self._sql(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    # ------------------------------------------------------------------ writes
    def record(self, outcome: ProfileOutcome, backend: Backend) -> int:
        """Store one outcome atomically (run row + node rows in one transaction); returns the run id.

        An ``ok`` run already stored under the same job key is kept as is (measurements are never
        overwritten); a stored ``failed`` run is replaced by the new outcome and its attempt count raised.
        """
        job, prof = outcome.job, outcome.profile
        now = utc_now()
        values = {
            "job_key": job_key(job, backend),
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
            "attempts": 1,
            "created": now,
            "updated": now,
        }
        node_rows = node_rows_of(prof) if prof is not None else []
        with self._errors(f"record {job.net_name}"), self._tx() as cur:
            return self._write_run(cur, values, node_rows, replace_failed=True)

    def _write_run(
        self, cur: Any, values: dict[str, Any], node_rows: list[tuple], replace_failed: bool
    ) -> int:
        """Insert a run (or replace a stored failed one) inside the caller's transaction; returns its id.

        ``INSERT … ON CONFLICT DO NOTHING`` makes concurrent writers of one key safe on every backend:
        the loser waits for the winner's commit, inserts nothing and falls through to the re-read.
        """
        cols = ", ".join(values)
        inserted = cur.execute(
            self._sql(
                f"INSERT INTO runs ({cols}) VALUES ({_marks(len(values))}) ON CONFLICT (job_key) DO NOTHING RETURNING id"
            ),
            tuple(values.values()),
        ).fetchone()
        if inserted is not None:
            run_id = int(inserted[0])
        else:
            run_id, status = cur.execute(
                self._sql(f"SELECT id, status FROM runs WHERE job_key = ?{self.for_update}"),
                (values["job_key"],),
            ).fetchone()
            if status == "ok" or not replace_failed:
                return int(run_id)
            update = {k: v for k, v in values.items() if k not in ("job_key", "attempts", "created")}
            sets = ", ".join(f"{c} = ?" for c in update)
            cur.execute(
                self._sql(f"UPDATE runs SET {sets}, attempts = attempts + 1 WHERE id = ?"),
                (*update.values(), run_id),
            )
            cur.execute(self._sql("DELETE FROM nodes WHERE run_id = ?"), (run_id,))
        self._insert_nodes(cur, run_id, node_rows)
        return run_id

    def _insert_nodes(self, cur: Any, run_id: int, node_rows: list[tuple]) -> None:
        if node_rows:
            cur.executemany(
                self._sql(
                    f"INSERT INTO nodes (run_id, run, seq, {', '.join(NODE_COLUMNS)}) VALUES ({_marks(3 + len(NODE_COLUMNS))})"
                ),
                [(run_id, *row) for row in node_rows],
            )

    # ------------------------------------------------------------------- reads
    def _select_runs(self, where: str = "", params: Sequence[Any] = ()) -> list[StoredRun]:
        with self._errors("read runs"):
            rows = self._fetch(f"SELECT {', '.join(RUN_FIELDS)} FROM runs {where} ORDER BY id", params)
        out = []
        for row in rows:
            rec = dict(zip(RUN_FIELDS, row))
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
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            found.update(
                (r.job_key, r) for r in self._select_runs(f"WHERE job_key IN ({_marks(len(chunk))})", chunk)
            )
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
        return pd.DataFrame([dataclasses.asdict(r) for r in self.runs(**filters)], columns=RUN_FIELDS)

    def nodes(self, run_ids: Iterable[int], per_run: bool = False) -> pd.DataFrame:
        """Node rows of the given runs: the aggregate table, or every profile-mode run's table.

        Returns:
            DataFrame with ``run_id``, ``run`` (``-1`` = aggregate), ``seq`` and the node columns.
        """
        ids = list(dict.fromkeys(int(i) for i in run_ids))
        cond = "run >= 0" if per_run else "run = -1"
        cols = ["run_id", "run", "seq", *NODE_COLUMNS]
        rows: list[tuple] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            sql = (
                f"SELECT {', '.join(cols)} FROM nodes "
                f"WHERE run_id IN ({_marks(len(chunk))}) AND {cond} ORDER BY run_id, run, seq"
            )
            with self._errors("read nodes"):
                rows.extend(self._fetch(sql, chunk))
        # Built column-wise with fixed dtypes: NULL -> NaN, identical frames from every backend.
        data = list(zip(*rows)) if rows else [()] * len(cols)
        frame = {}
        for col, values in zip(cols, data):
            if col == "name":
                frame[col] = pd.Series(values, dtype=object)
            elif col in ("run_id", "run", "seq", "id"):
                frame[col] = np.asarray(values, dtype=np.int64)
            else:
                frame[col] = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        return pd.DataFrame(frame, columns=cols)

    def raw_text(self, run_id: int) -> str:
        """The profiling tool's output of a run, verbatim."""
        with self._errors("read raw text"):
            rows = self._fetch("SELECT raw_text FROM runs WHERE id = ?", (int(run_id),))
        if not rows:
            raise StoreError(f"store {self.location} has no run with id {run_id}")
        return rows[0][0]

    def profile(self, run_id: int) -> Profile:
        """Rebuild the :class:`~ofa_hw.formats.Profile` of an ok run from its stored node rows."""
        return self.profiles([run_id])[int(run_id)]

    def profiles(self, run_ids: Iterable[int]) -> dict[int, Profile]:
        """Rebuild the profiles of several ok runs with two queries (by run id).

        Raises:
            StoreError: a run id is unknown or names a failed run.
        """
        from ofa_hw.formats import Profile  # the store sits above the dpu layer; imported lazily

        ids = list(dict.fromkeys(int(i) for i in run_ids))
        meta: dict[int, tuple] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            with self._errors("read profiles"):
                rows = self._fetch(
                    f"SELECT id, status, kernel, kernel_info, e2e_ms, tasks, totals FROM runs WHERE id IN ({_marks(len(chunk))})",
                    chunk,
                )
            meta.update((r[0], r[1:]) for r in rows)
        for run_id in ids:
            if run_id not in meta:
                raise StoreError(f"store {self.location} has no run with id {run_id}")
            if meta[run_id][0] != "ok":
                raise StoreError(f"store {self.location}: run {run_id} failed; it has no profile")
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

    def outcomes(
        self, runs: Sequence[StoredRun], jobs: Sequence[ProfileJob | None] | None = None
    ) -> list[ProfileOutcome]:
        """Rebuild the outcomes of stored runs in bulk (``jobs[i]`` defaults to one rebuilt from the row)."""
        jobs = list(jobs) if jobs is not None else [None] * len(runs)
        profiles = self.profiles([r.id for r in runs if r.status == "ok"])
        raw: dict[int, str] = {}
        ids = [r.id for r in runs]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            with self._errors("read raw text"):
                raw.update(
                    self._fetch(f"SELECT id, raw_text FROM runs WHERE id IN ({_marks(len(chunk))})", chunk)
                )
        return [
            ProfileOutcome(
                job=job
                if job is not None
                else ProfileJob(run.space, run.arch, run.net_name, run.runs, run.seed),
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

    # --------------------------------------------------------- whole-store access (copy, checks)
    def table_counts(self) -> dict[str, int]:
        """Row counts: ``runs``, ``runs_ok``, ``runs_failed`` and ``nodes``."""
        with self._errors("count rows"):
            ((runs, ok),) = self._fetch(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), 0) FROM runs"
            )
            ((nodes,),) = self._fetch("SELECT COUNT(*) FROM nodes")
        return {
            "runs": int(runs),
            "runs_ok": int(ok),
            "runs_failed": int(runs) - int(ok),
            "nodes": int(nodes),
        }

    def iter_raw_runs(self, batch: int = 200) -> Iterator[list[tuple[dict[str, Any], list[tuple]]]]:
        """Every run as ``(columns, node_rows)`` in id order, ``batch`` runs at a time (for copies)."""
        last = -1
        while True:
            with self._errors("read runs"):
                rows = self._fetch(
                    f"SELECT id, {', '.join(RUN_COLUMNS)} FROM runs WHERE id > ? ORDER BY id LIMIT {int(batch)}",
                    (last,),
                )
            if not rows:
                return
            ids = [r[0] for r in rows]
            nodes: dict[int, list[tuple]] = {i: [] for i in ids}
            with self._errors("read nodes"):
                for r in self._fetch(
                    f"SELECT run_id, run, seq, {', '.join(NODE_COLUMNS)} FROM nodes WHERE run_id IN ({_marks(len(ids))}) "
                    "ORDER BY run_id, run, seq",
                    ids,
                ):
                    nodes[r[0]].append(tuple(r[1:]))
            yield [(dict(zip(RUN_COLUMNS, r[1:])), nodes[r[0]]) for r in rows]
            last = ids[-1]

    def write_raw_runs(self, runs: Sequence[tuple[dict[str, Any], list[tuple]]]) -> list[bool]:
        """Write runs read by :meth:`iter_raw_runs` in one transaction, keeping their timestamps.

        A job key already stored ``ok`` is left alone; a stored ``failed`` run is replaced only by an
        ``ok`` one. Returns, per run, whether it was written.
        """
        written = []
        with self._errors("copy runs"), self._tx() as cur:
            for values, node_rows in runs:
                before = cur.execute(
                    self._sql(f"SELECT status FROM runs WHERE job_key = ?{self.for_update}"),
                    (values["job_key"],),
                ).fetchone()
                if before is not None and (before[0] == "ok" or values["status"] != "ok"):
                    written.append(False)
                    continue
                if before is not None:
                    cur.execute(
                        self._sql("DELETE FROM runs WHERE job_key = ?"), (values["job_key"],)
                    )  # nodes cascade
                self._write_run(cur, values, node_rows, replace_failed=False)
                written.append(True)
        return written

    def digests(self) -> dict[str, tuple[str, str, int]]:
        """Per job key: ``(status, sha256 of the raw text's UTF-8 bytes, node row count)``."""
        out: dict[str, tuple[str, str, int]] = {}
        with self._errors("read digests"):
            counts = dict(self._fetch("SELECT run_id, COUNT(*) FROM nodes GROUP BY run_id"))
            last = -1
            while True:
                rows = self._fetch(
                    "SELECT id, job_key, status, raw_text FROM runs WHERE id > ? ORDER BY id LIMIT 1000",
                    (last,),
                )
                if not rows:
                    break
                for run_id, key, status, raw in rows:
                    out[key] = (
                        status,
                        hashlib.sha256(raw.encode("utf-8")).hexdigest(),
                        int(counts.get(run_id, 0)),
                    )
                last = rows[-1][0]
        return out
