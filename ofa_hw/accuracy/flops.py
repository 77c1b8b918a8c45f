"""``flops`` accuracy model: a documented proxy, not ImageNet accuracy.

Within OFA's space, bigger subnets (more MACs) are on the whole more accurate, with diminishing
returns; so the proxy is monotone in log-MACs, optionally with an extra reward for resolution::

    s(arch)  = log(MACs(arch)) + β · log(r)
    score    = 100 · (s − s_min) / (s_max − s_min)

where ``s_min`` / ``s_max`` are the smallest / largest subnet of the space (smallest / largest choices
at the lowest / highest resolution), so the score spans 0..100 over the space. It ranks subnets, it
does not estimate top-1: its ``label`` says so and ``is_proxy`` is True, and every report must carry
that label. MACs come from a :class:`~ofa_hw.blocktable.BlockTable` compiled once from the netspecs,
so scoring a population is one gather and one sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ofa_hw.blocktable import BlockTable
from ofa_hw.netspec import Block, NetSpec
from ofa_hw.space import Arch, SearchSpace


def _block_macs(block: Block, netspec: NetSpec) -> float:
    return float(sum(netspec.layers[i].macs for i in block.layers))


class FlopsProxy:
    """Log-MACs proxy score in [0, 100] over the space (higher = bigger subnet).

    Args:
        space: The search space.
        resolution_weight: ``β >= 0``; 0 scores MACs only, larger values favour high resolutions.
    """

    name = "flops"
    is_proxy = True
    label = "FLOPs proxy (not ImageNet accuracy)"

    def __init__(self, space: SearchSpace, resolution_weight: float = 0.0) -> None:
        if resolution_weight < 0:
            raise ValueError(
                f"flops.resolution_weight must be >= 0 (the score must stay monotone), got {resolution_weight}"
            )
        self.space = space
        self.resolution_weight = float(resolution_weight)
        self.macs_table = BlockTable.from_block_fn(space, _block_macs)
        self._log_r = np.log(np.asarray(space.resolutions, dtype=np.float64))
        nb, ns = space.n_blocks, space.n_elastic_stages
        smallest = np.zeros((1, space.n_genes), dtype=np.int8)  # index 0 = smallest choice (sorted lists)
        largest = np.concatenate(
            [
                np.full(nb, len(space.ks_list) - 1),
                np.full(nb, len(space.expand_list) - 1),
                np.full(ns, len(space.depth_list) - 1),
                [len(space.resolutions) - 1],
            ]
        ).astype(np.int8)[None, :]
        if (
            list(space.ks_list) != sorted(space.ks_list)
            or list(space.expand_list) != sorted(space.expand_list)
            or list(space.depth_list) != sorted(space.depth_list)
            or list(space.resolutions) != sorted(space.resolutions)
        ):
            raise ValueError(
                f"space '{space.name}': choice lists must be sorted ascending for the FLOPs proxy bounds"
            )
        self._s_min = float(self._raw(smallest)[0])
        self._s_max = float(self._raw(largest)[0])

    def macs_encoded(self, genes: np.ndarray) -> np.ndarray:
        """MACs of an encoded population ``(N, n_genes)`` → ``(N,)``."""
        return self.macs_table.evaluate(genes)

    def _raw(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(genes)
        return (
            np.log(self.macs_encoded(genes))
            + self.resolution_weight * self._log_r[genes[:, -1].astype(np.intp)]
        )

    def predict_encoded(self, genes: np.ndarray) -> np.ndarray:
        """Proxy scores (0..100) of an encoded population ``(N, n_genes)`` → ``(N,)``."""
        return 100.0 * (self._raw(genes) - self._s_min) / (self._s_max - self._s_min)

    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Proxy scores (0..100) of arch dicts."""
        return self.predict_encoded(self.space.encode(archs))


def from_config(cfg: Any, space: SearchSpace) -> FlopsProxy:
    """Hydra factory (``accuracy=flops``)."""
    return FlopsProxy(space, resolution_weight=cfg.flops.resolution_weight)
