"""The one profiling runner every task uses: skip what the store holds, record each outcome as it arrives.

Concurrent jobs of a sweep (any launcher, any number of hosts sharing the store) often need the same
measurements, e.g. the predictor's held-out subnets. Before measuring, a runner *claims* each job key
(:meth:`~ofa_hw.store.base.BaseStore.try_claim`); keys another process holds are left to it, and
after its own work the runner waits for their records. It releases each claim as soon as the outcome
is recorded and waits only while holding no claim, so two runners never wait for each other. A claim
dies with its holder: the waiter then measures the job itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from tqdm.auto import tqdm

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.store.base import BaseStore
from ofa_hw.store.records import StoredRun, job_key

#: Seconds between two looks at a job another process is measuring.
POLL_S = 0.2


def _needed(run: StoredRun | None, retry_failed: bool) -> bool:
    return run is None or (run.status == "failed" and retry_failed)


def profile_jobs(
    backend: Backend,
    store: BaseStore,
    jobs: Sequence[ProfileJob],
    desc: str = "profiling",
    retry_failed: bool = False,
    progress: bool = True,
) -> list[ProfileOutcome]:
    """Profile ``jobs`` on ``backend`` through ``store``.

    Jobs the store already holds are not run again (``ok`` ones always; ``failed`` ones unless
    ``retry_failed``); duplicates within ``jobs`` run once, and a job another process is measuring is
    waited for, not repeated. Every new outcome is recorded the moment it arrives, so an interrupted call
    loses at most the jobs in flight and a rerun resumes. Failures are recorded and the batch goes on.

    Returns:
        One outcome per job, in the order of ``jobs`` (stored outcomes are rebuilt from the store).
    """
    keys = [job_key(job, backend) for job in jobs]
    stored = store.lookup(keys)
    todo: dict[str, ProfileJob] = {}
    for key, job in zip(keys, jobs):
        if _needed(stored.get(key), retry_failed):
            todo.setdefault(key, job)
    fresh: dict[str, ProfileOutcome] = {}
    if todo:
        with tqdm(
            total=len(todo), desc=desc, unit="net", disable=not progress, dynamic_ncols=True, mininterval=0.5
        ) as bar:
            elsewhere = _measure(backend, store, todo, stored, fresh, retry_failed, bar)
            _wait_for(backend, store, elsewhere, stored, fresh, retry_failed, bar)
    reloaded = iter(
        store.outcomes(
            [stored[k] for k in keys if k not in fresh], [j for k, j in zip(keys, jobs) if k not in fresh]
        )
    )
    out = []
    for key, job in zip(keys, jobs):
        if key in fresh:
            out.append(fresh[key] if fresh[key].job is job else dataclasses.replace(fresh[key], job=job))
        else:
            out.append(next(reloaded))
    return out


def _measure(
    backend: Backend,
    store: BaseStore,
    todo: dict[str, ProfileJob],
    stored: dict[str, StoredRun],
    fresh: dict[str, ProfileOutcome],
    retry_failed: bool,
    bar: tqdm,
) -> dict[str, ProfileJob]:
    """Claim and measure what no other process is measuring; returns the jobs others hold."""
    mine = {k: j for k, j in todo.items() if store.try_claim(k)}
    elsewhere = {k: j for k, j in todo.items() if k not in mine}
    # Another process may have recorded a job between our lookup and our claim: look again.
    for key, run in store.lookup(list(mine)).items():
        if not _needed(run, retry_failed):
            stored[key] = run
            store.release(key)
            del mine[key]
            bar.update(1)
    if not mine:
        return elsewhere
    by_job = {id(job): key for key, job in mine.items()}
    try:
        for outcome in backend.profile_many(list(mine.values())):
            key = by_job.get(id(outcome.job)) or job_key(outcome.job, backend)
            store.record(outcome, backend)
            store.release(key)
            fresh[key] = outcome
            bar.update(1)
            failed = sum(not o.ok for o in fresh.values())
            if failed:
                bar.set_postfix(failed=failed)
    finally:  # interrupted: hand the unmeasured jobs back at once
        for key in mine:
            if key not in fresh:
                store.release(key)
    return elsewhere


def _wait_for(
    backend: Backend,
    store: BaseStore,
    elsewhere: dict[str, ProfileJob],
    stored: dict[str, StoredRun],
    fresh: dict[str, ProfileOutcome],
    retry_failed: bool,
    bar: tqdm,
) -> None:
    """Wait for jobs other processes hold; measure any whose holder gave up without a record."""
    pending = dict(elsewhere)
    while pending:
        progressed = False
        for key in list(pending):
            if not store.try_claim(key):
                continue
            progressed = True
            job = pending.pop(key)
            try:
                run = store.lookup([key]).get(key)
                if _needed(run, retry_failed):  # the holder died or was interrupted: measure it here
                    outcome = backend.profile(job)
                    store.record(outcome, backend)
                    fresh[key] = outcome
                elif run is not None:
                    stored[key] = run
            finally:
                store.release(key)
            bar.update(1)
        if pending and not progressed:
            time.sleep(POLL_S)
