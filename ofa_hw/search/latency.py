"""The latency side of the search: the constraint ``mean + k·σ ≤ budget`` and its feasibility floor.

The finder is duck-typed against the latency predictor: anything with
``predict_encoded(genes) -> (mean_ms, std_ms)`` works; ``inf`` means "does not compile on this DPU"
(compiled predictor tables mark such blocks ``inf``). To state the smallest reachable latency exactly,
the predictor exposes its compiled :class:`~ofa_hw.blocktable.BlockTable` (attribute ``block_table``
or ``table``, or a ``compile()`` method returning it, as :class:`ofa_hw.predictor.LatencyPredictor`
has) — or, failing that, a ``latency_floor(k_sigma) -> Floor`` or ``min_latency_ms()`` of its own.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ofa_hw.blocktable import BlockTable
from ofa_hw.errors import UserError
from ofa_hw.search.floor import Floor, table_floor
from ofa_hw.termtable import TermTable


class InfeasibleBudgetError(UserError, ValueError):
    """No compilable subnet of the space meets the latency budget under the predictor."""

    def __init__(self, budget_ms: float, floor: Floor, k_sigma: float, where: str) -> None:
        self.budget_ms, self.floor, self.k_sigma = budget_ms, floor, k_sigma
        sigma = f" + {k_sigma:g}·σ" if k_sigma else ""
        super().__init__(
            f"latency budget {budget_ms:.4g} ms is infeasible on {where}: the smallest predicted "
            f"latency{sigma} any compilable subnet reaches is {floor.bound_ms:.4g} ms "
            f"(mean {floor.mean_ms:.4g} ms, σ {floor.std_ms:.3g} ms); raise search.budget_ms to at least that"
            + (" or lower search.k_sigma" if k_sigma else "")
        )


@runtime_checkable
class LatencyModel(Protocol):
    """What the finder needs from a latency predictor."""

    def predict_encoded(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and σ (ms) of an encoded population ``(N, n_genes)``; ``inf`` = not compilable."""
        ...


class TableLatency:
    """A :class:`BlockTable` (e.g. a LUT's compiled form) used directly as a latency model.

    Args:
        table: Latency table in ms (``inf`` cells = blocks that do not compile).
        name: Label for reports.
    """

    def __init__(self, table: BlockTable | TermTable, name: str = "table") -> None:
        self.block_table = table
        self.name = name

    def predict_encoded(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.block_table.evaluate_with_std(genes)


def block_table_of(model: Any) -> BlockTable | TermTable | None:
    """The compiled table behind a latency model, if it exposes one (ResNet-50: a :class:`TermTable`)."""
    tables = (BlockTable, TermTable)
    if isinstance(model, tables):
        return model
    for attr in ("block_table", "table"):
        table = getattr(model, attr, None)
        if isinstance(table, tables):
            return table
    compile_fn = getattr(model, "compile", None)
    if callable(compile_fn):
        table = compile_fn()
        if isinstance(table, tables):
            return table
    return None


class LatencyConstraint:
    """``mean + k·σ ≤ budget`` and compilable, over encoded populations.

    Args:
        model: The latency predictor (see :class:`LatencyModel`).
        k_sigma: Safety factor ``k`` on the predictor's σ (0 = trust the mean).
        where: Names the DPU/predictor in error messages (e.g. ``zcu102_b4096 (predictor xgb)``).
    """

    def __init__(self, model: Any, k_sigma: float = 0.0, where: str = "this DPU") -> None:
        if k_sigma < 0:
            raise ValueError(f"search.k_sigma must be >= 0, got {k_sigma}")
        if not callable(getattr(model, "predict_encoded", None)):
            raise TypeError(
                f"latency model {type(model).__name__} has no predict_encoded(genes) -> (mean, std)"
            )
        self.model = model
        self.k_sigma = float(k_sigma)
        self.where = where
        self._floor: Floor | None = None

    def evaluate(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, std, bound)`` per row; ``bound = mean + k·σ`` is ``inf`` where the net cannot compile."""
        mean, std = self.model.predict_encoded(genes)
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        bound = mean + self.k_sigma * std if self.k_sigma else mean.copy()
        bound[~np.isfinite(bound)] = np.inf  # nan (e.g. a key missing from a LUT) is never feasible
        return mean, std, bound

    def floor(self) -> Floor:
        """The exact smallest ``mean + k·σ`` over the space (cached)."""
        if self._floor is None:
            self._floor = self._compute_floor()
        return self._floor

    def _compute_floor(self) -> Floor:
        own_floor = getattr(self.model, "latency_floor", None)
        if callable(own_floor):
            return own_floor(k_sigma=self.k_sigma)
        table = block_table_of(self.model)
        if table is not None:
            return table_floor(table, self.k_sigma)
        own = getattr(self.model, "min_latency_ms", None)
        if callable(own):
            params = inspect.signature(own).parameters
            value = float(own(k_sigma=self.k_sigma) if "k_sigma" in params else own())
            return Floor(value, value, 0.0, np.empty(0, dtype=np.int8))
        raise TypeError(
            f"latency model {type(self.model).__name__} exposes neither a compiled BlockTable "
            "(attribute block_table/table) nor min_latency_ms(): the budget's feasibility cannot be checked"
        )

    def check_budget(self, budget_ms: float) -> Floor:
        """Raise :class:`InfeasibleBudgetError` at once when nothing can meet ``budget_ms``."""
        if not np.isfinite(budget_ms) or budget_ms <= 0:
            raise UserError(f"search.budget_ms must be a positive number of ms, got {budget_ms}")
        floor = self.floor()
        if not floor.bound_ms <= budget_ms:
            raise InfeasibleBudgetError(budget_ms, floor, self.k_sigma, self.where)
        return floor
