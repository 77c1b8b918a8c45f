"""Exclusive named locks (one job per board): through a shared store across hosts, else a per-host ``flock``.

A board must run one job at a time, whichever host the job runs on. With a server-backed store
(``store=postgres``) every host already talks to one database, so the lock is a PostgreSQL advisory lock
on a hash of the name (:meth:`PostgresStore.advisory_lock`). With the embedded SQLite store the workspace
lives on one host, and an ``flock`` on a per-name file serialises its threads and processes.
Both are released by the operating system or the server when the holder dies: no stale locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ofa_hw.store.records import LockTimeout


@contextlib.contextmanager
def file_lock(name: str, lock_dir: str | Path, timeout_s: float, poll_s: float = 0.2) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``<lock_dir>/<name>.lock`` (threads and processes of this host).

    Raises:
        LockTimeout: the lock was not free within ``timeout_s``.
    """
    lock_dir = Path(lock_dir).expanduser()
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as fh:  # a new open file description per holder: flock excludes threads too
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{name} busy for more than {timeout_s:g} s (lock {path})") from None
                time.sleep(poll_s)
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def named_lock(
    name: str, store: Mapping[str, Any] | None, lock_dir: str | Path, timeout_s: float, poll_s: float = 0.2
) -> Iterator[None]:
    """Hold the exclusive lock ``name``: through ``store`` when it is shared by hosts, else an ``flock``.

    Args:
        name: What is locked (e.g. a board's ``host_port``).
        store: The run's ``store`` config node (``None`` = no store: a file lock).
        lock_dir: Directory of the lock files (used when the store is host-local).
        timeout_s: How long to wait for the lock.

    Raises:
        LockTimeout: the lock was not free within ``timeout_s``.
        StoreError: the shared store is unreachable.
    """
    from ofa_hw.store import store_class

    cls = store_class(store) if store else None
    if cls is not None and cls.multi_host:
        with cls.advisory_lock(store, name, timeout_s, poll_s):
            yield
    else:
        with file_lock(name, lock_dir, timeout_s, poll_s):
            yield
