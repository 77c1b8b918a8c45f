"""The records of the measurement store: job keys, the run row, node rows, and the store's errors.

A run is identified by its *job key*: backend, DPU fingerprint, toolchain, space, network (arch id),
runs and seed. The net name is deliberately not part of it: the same subnet profiled under two names
is one measurement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ofa_hw.backends.base import Backend, ProfileJob
from ofa_hw.errors import UserError

if TYPE_CHECKING:
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.formats import Profile

#: Node columns of :attr:`ofa_hw.formats.Profile.nodes`, stored one per SQL column.
NODE_COLUMNS = ("id", "name", "workload_mop", "mem_mb", "runtime_ms", "perf_gops", "utilization", "mb_s")
#: Columns of ``runs`` other than ``id``, in table order (a copy between stores moves exactly these).
RUN_COLUMNS = (
    "job_key", "backend", "dpu_fingerprint", "dpu_name", "dpu_config", "toolchain", "space", "arch",
    "arch_id", "net_name", "runs", "seed", "status", "kernel", "kernel_info", "tasks", "totals", "total_ms",
    "e2e_ms", "raw_text", "error", "timings", "attempts", "created", "updated",
)  # fmt: skip
#: Rows per ``IN (...)`` query: below SQLite's bound-parameter limit, small enough for PostgreSQL.
CHUNK = 500


class StoreError(UserError, RuntimeError):
    """The store is unusable (corrupt, truncated, foreign, unreachable, locked) or a request is invalid."""


class LockTimeout(StoreError, TimeoutError):
    """A lock (a board's, through the store or a lock file) was not free within its timeout."""


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


RUN_FIELDS = [f.name for f in dataclasses.fields(StoredRun)]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def node_rows_of(prof: Profile) -> list[tuple]:
    """``(run, seq, *NODE_COLUMNS)`` rows: the aggregate table as run -1, then each run's table."""
    rows: list[tuple] = []
    for run, frame in [(-1, prof.nodes)] + list(enumerate(prof.runs)):
        missing = [c for c in NODE_COLUMNS if c not in frame.columns]
        if missing:
            raise StoreError(f"profile of kernel {prof.kernel!r} lacks node columns {missing}")
        ids = [int(v) for v in frame["id"]]
        names = [str(v) for v in frame["name"]]
        # NaN -> NULL; tolist() gives plain Python floats, which the drivers bind fastest.
        values = [
            [None if v != v else v for v in frame[c].to_numpy(dtype=float).tolist()] for c in NODE_COLUMNS[2:]
        ]
        rows.extend(
            (run, seq, ids[seq], names[seq], *(col[seq] for col in values)) for seq in range(len(ids))
        )
    return rows
