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

from ofa_hw.netspec import Block, NetSpec
from ofa_hw.space import Arch, SearchSpace
from ofa_hw.termtable import table_for


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
        self.macs_table = table_for(space, _block_macs)
        self._log_r = np.log(np.asarray(space.resolutions, dtype=np.float64))
        smallest = np.zeros((1, space.n_genes), dtype=np.int8)  # index 0 = smallest choice (sorted lists)
        largest = (space.gene_cardinality - 1).astype(np.int8)[None, :]
        lists = ("ks_list", "expand_list", "depth_list", "width_mult_list", "resolutions")
        if any(list(getattr(space, n)) != sorted(getattr(space, n)) for n in lists if hasattr(space, n)):
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
