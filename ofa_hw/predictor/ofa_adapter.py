"""OFA interop: any of our predictors as OFA's efficiency predictor (``get_efficiency(arch_dict)``).

OFA's ``EvolutionFinder`` calls ``efficiency_predictor.get_efficiency(sample)`` with its own arch
dicts (``ks``, ``e``, ``d`` with a depth for every stage, ``image_size``) and keeps samples whose value
is ``<= constraint``. The adapter validates the dict against our space (accepting OFA's form) and
returns the predicted latency in ms — optionally ``mean + k_sigma·std``, the same safety margin our
own search applies — from the compiled table. Archs the DPU cannot compile return ``inf``, so OFA's
finder never keeps them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ofa_hw.space import SearchSpace


class OFAEfficiencyAdapter:
    """``get_efficiency(arch_dict) -> float`` over a fitted :class:`LatencyPredictor`.

    Args:
        predictor: A fitted predictor of ``space``.
        space: The search space OFA samples from.
        k_sigma: Safety margin in predicted standard deviations (0 = the mean).
        target: Latency kind (``None`` = the predictor's default).
    """

    def __init__(
        self, predictor: Any, space: SearchSpace, k_sigma: float = 0.0, target: str | None = None
    ) -> None:
        if predictor.space != space:
            raise ValueError(f"predictor is for space '{predictor.space.name}', adapter for '{space.name}'")
        self.predictor = predictor
        self.space = space
        self.k_sigma = float(k_sigma)
        self.target = target
        self.table = predictor.compile(target=target)
        self.calls = 0

    def get_efficiency(self, arch_dict: dict[str, Any]) -> float:
        """Predicted latency (ms) of one OFA arch dict."""
        self.calls += 1
        return float(self._values(self.space.encode([arch_dict]))[0])

    def get_efficiencies(self, arch_dicts: list[dict[str, Any]]) -> np.ndarray:
        """Batched :meth:`get_efficiency`."""
        self.calls += len(arch_dicts)
        return self._values(self.space.encode(arch_dicts))

    def _values(self, genes: np.ndarray) -> np.ndarray:
        if not self.k_sigma:
            return self.table.evaluate(genes)  # (0 * inf std would make uncompilable archs NaN)
        mean, std = self.table.evaluate_with_std(genes)
        return mean + self.k_sigma * std
