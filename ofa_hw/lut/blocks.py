"""One LUT key as its own small network: the job a ``block``-granularity LUT profiles per key.

A key's network is the block's layers alone, fed at the block's input shape (the stem: the image; an
MBConv block: its input feature map; ``Logits``: global pool + classifier), exported, quantized and
compiled like a subnet, so it becomes one DPU subgraph — as the Ultra96 blocks of
``data/ultra96_b2304`` were measured. Its time in normal mode is the key's LUT time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ofa_hw.backends.base import ProfileJob
from ofa_hw.netspec import Block, Layer, NetSpec, build_netspec
from ofa_hw.space import Arch, SearchSpace

#: Net-name prefix of key networks (``probe_`` marks LUT probes everywhere).
KEY_PREFIX = "probe_k"


def block_netspec(ns: NetSpec, block: Block, name: str) -> NetSpec:
    """The netspec of ``block`` of ``ns`` as a network of its own (layers renumbered as the exporter names them)."""
    layers: list[Layer] = []
    counts: dict[str, int] = {}
    position = {i: j for j, i in enumerate(block.layers)}
    for j, i in enumerate(block.layers):
        layer = ns.layers[i]
        family = (
            "conv"
            if layer.kind in ("conv", "dwconv")
            else ("pool" if "pool" in layer.kind or layer.kind == "gap" else layer.kind)
        )
        counts[family] = counts.get(family, 0) + 1
        # Explicit producers (the SE multiply, ResNet adds) are renumbered; outside the block = the input.
        inputs = tuple(position.get(k, -1) for k in layer.inputs)
        layers.append(
            dataclasses.replace(layer, index=j, block=0, name=f"{family}_{counts[family]}", inputs=inputs)
        )
    only = dataclasses.replace(block, index=0, layers=tuple(range(len(layers))))
    return NetSpec(name=name, input_hw=block.in_hw, input_c=block.in_c, layers=tuple(layers), blocks=(only,))


@dataclass(frozen=True)
class BlockJob(ProfileJob):
    """A :class:`ProfileJob` of one key's network (the backends export ``netspec`` instead of ``arch``).

    Attributes:
        key: The LUT key.
        netspec: The key's network (:func:`block_netspec`).
    """

    key: str = ""
    netspec: NetSpec | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def arch_id(self) -> str:
        """The key: one measurement per key, whatever subnet it was taken from."""
        return json.dumps({"block": self.key}, sort_keys=True)


def key_jobs(
    space: SearchSpace,
    archs: Sequence[Arch],
    runs: int,
    seed: int,
    limit: int | None = None,
    after: Sequence[BlockJob] = (),
) -> list[BlockJob]:
    """``after`` + one job per distinct key of ``archs`` not among them, position by position across the
    subnets (so a ``limit`` spreads over block positions and choices), at most ``limit`` jobs in all."""
    nets = [(arch, build_netspec(space, arch)) for arch in archs]
    jobs: list[BlockJob] = list(after)
    seen: set[str] = {job.key for job in after}
    for pos in range(max((len(ns.blocks) for _, ns in nets), default=0)):
        for arch, ns in nets:
            if pos >= len(ns.blocks) or ns.blocks[pos].key in seen:
                continue
            if limit is not None and len(jobs) >= limit:
                return jobs
            block = ns.blocks[pos]
            seen.add(block.key)
            name = f"{KEY_PREFIX}{len(jobs)}"
            job = BlockJob.create(space, arch, name, runs, seed)
            jobs.append(
                BlockJob(
                    job.space_name,
                    job.arch,
                    name,
                    runs,
                    seed,
                    space=space,
                    key=block.key,
                    netspec=block_netspec(ns, block, name),
                )
            )
    return jobs
