"""Schema of the ``task`` group: which entry point ``ofa-hw`` runs."""

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class TaskConfig:
    """Attributes:
    name: Task name as selected on the command line (``task=<name>``).
    _target_: Dotted path of the task function ``run(cfg) -> dict``.
    """

    name: str = MISSING
    _target_: str = MISSING
