"""Schema of ``task=deploy``: which subnet to deploy and profile on the configured backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ofa_hw.schemas.task import TaskConfig


@dataclass
class DeployTaskConfig(TaskConfig):
    """``ofa-hw task=deploy``: deploy one subnet, profile it, record it in the store.

    The subnet is, in this order of precedence: ``arch`` (an OFA arch dict, or its JSON text), the
    space's named arch ``named_arch`` (e.g. ``proxyless_mobile_05`` of ``proxyless_w05``), or, only when
    ``random`` is true, an arch sampled from the space with the run's ``seed``; none of them is an error.

    Attributes:
        arch: OFA arch dict ``{ks, e, d, r}`` or JSON string; ``None`` = use ``named_arch`` / sample.
        named_arch: Name of a named arch of the space; empty = none.
        net_name: Network / kernel name (node names derive from it); empty = from the named arch
            (underscores dropped, as DPU kernel names need) or ``subnet<seed>``.
        runs: Profile-mode runs; ``None`` = ``backend.runs``.
        retry_failed: Profile again when the store holds a failed attempt of the same job.
        random: Deploy a subnet sampled with the run's seed when neither ``arch`` nor ``named_arch`` is set.
    """

    arch: Any = None
    named_arch: str = ""
    net_name: str = ""
    runs: int | None = None
    retry_failed: bool = True
    random: bool = False
