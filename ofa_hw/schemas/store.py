"""Schema of the ``store`` config group (the measurement database of a workspace)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StoreConfig:
    """The SQLite measurement store.

    Attributes:
        path: Database file; one per workspace so every task and every multirun job shares it.
        timeout_s: How long a writer waits for another process's write lock.
    """

    path: str = "${workspace}/store.sqlite"
    timeout_s: float = 120.0
