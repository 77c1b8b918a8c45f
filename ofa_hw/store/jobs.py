"""The one profiling runner every task uses: skip what the store holds, record each outcome as it arrives."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from tqdm.auto import tqdm

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.store.base import BaseStore, job_key


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
