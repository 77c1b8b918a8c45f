"""Copy every run between two stores (SQLite <-> PostgreSQL), then prove nothing was lost.

Runs are matched by job key, not by row id (ids are per database). The copy is idempotent and safe to
rerun or to interrupt: it writes a batch of runs per transaction, leaves an ``ok`` run of the target
alone and replaces a target's ``failed`` run only with an ``ok`` one. The check afterwards compares every
source run with its target counterpart: status, number of node rows and the SHA-256 of the raw text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tqdm.auto import tqdm

from ofa_hw.store.base import BaseStore
from ofa_hw.store.records import StoreError


@dataclass(frozen=True)
class CopyReport:
    """What a copy did and what the check found.

    Attributes:
        source: Source location (no secrets).
        target: Target location (no secrets).
        copied: Runs written to the target.
        kept: Source runs whose job key the target already held (left as they were).
        source_counts: Row counts of the source (``runs``, ``runs_ok``, ``runs_failed``, ``nodes``).
        target_counts: Row counts of the target after the copy.
        mismatches: Job keys whose target run differs from the source's (status, nodes or raw text),
            with the difference; empty = verified.
    """

    source: str
    target: str
    copied: int
    kept: int
    source_counts: dict[str, int]
    target_counts: dict[str, int]
    mismatches: dict[str, str] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return not self.mismatches


def copy_runs(source: BaseStore, target: BaseStore, batch: int = 200, progress: bool = True) -> CopyReport:
    """Copy every run (with its node rows) of ``source`` into ``target`` and verify the result.

    Raises:
        StoreError: the stores are the same database, or a read or write fails.
    """
    if source.location == target.location:
        raise StoreError(f"task=store: source and target are the same store ({source.location})")
    counts = source.table_counts()
    copied = kept = 0
    with tqdm(
        total=counts["runs"], desc="copying runs", unit="run", disable=not progress, dynamic_ncols=True
    ) as bar:
        for chunk in source.iter_raw_runs(batch=batch):
            written = target.write_raw_runs(chunk)
            copied += sum(written)
            kept += len(written) - sum(written)
            bar.update(len(chunk))
    return CopyReport(
        source=source.location,
        target=target.location,
        copied=copied,
        kept=kept,
        source_counts=counts,
        target_counts=target.table_counts(),
        mismatches=compare(source, target),
    )


def compare(source: BaseStore, target: BaseStore) -> dict[str, str]:
    """Every source run the target lacks or holds differently (an ``ok`` target run may replace a failed one)."""
    theirs = target.digests()
    out: dict[str, str] = {}
    for key, (status, digest, nodes) in source.digests().items():
        got = theirs.get(key)
        if got is None:
            out[key] = "missing"
        elif status == "failed" and got[0] == "ok":
            continue  # the target measured it successfully: better than the failure, not a loss
        elif got != (status, digest, nodes):
            what = [
                n
                for n, a, b in zip(("status", "raw text", "node rows"), (status, digest, nodes), got)
                if a != b
            ]
            out[key] = "differs in " + ", ".join(what)
    return out
