"""Network latency = Σ block predictions + a learned per-network overhead, with a calibrated std.

:class:`LatencyPredictor` wraps one per-block model (:mod:`ofa_hw.predictor.models`) for one search
space on one DPU configuration:

* ``fit`` trains the block model on a :class:`~ofa_hw.predictor.data.TrainingSet`, fits the
  per-network overhead of each latency kind (``profile``: what the node profile does not attribute
  to blocks, normally ~0; ``e2e``: the task overhead outside profile mode) as ``a + b·(r/224)²`` on
  whole-network measurements, and calibrates the uncertainty (below);
* ``compile`` evaluates the model once on every cell of the space into a
  :class:`~ofa_hw.blocktable.BlockTable` with variances, so ``predict_encoded`` (the search's hot
  path) is a gather; cells the DPU cannot compile are ``inf``.

Uncertainty: a block's variance is ``s²·spread² + (ρ·mean)²`` — the bootstrap spread of the block
model scaled by ``s``, plus the measurement noise ``ρ`` (median relative run-to-run std of the
training blocks); variances add over blocks (the BlockTable rule) plus the overhead's residual
variance. ``s ≥ 1`` is the smallest scale at which the *out-of-bag* network errors (each training
subnet predicted by the bootstrap members that never saw it, plus any whole-network-only subnets)
have unit mean squared z-score, i.e. it is calibrated on held-out nets with the same summation the
table uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ofa_hw.blocktable import BlockTable
from ofa_hw.netspec import Block, NetSpec, build_netspec
from ofa_hw.predictor.data import TARGETS, TrainingSet, all_cells, cell_layout
from ofa_hw.predictor.features import HwParams, featurize
from ofa_hw.predictor.models import MODELS, BlockModel, member_spread
from ofa_hw.space import Arch, SearchSpace
from ofa_hw.space_resnet import ResNetSpace

#: ``compilable(block, netspec) -> bool`` (see :func:`ofa_hw.lut.dpu_compile_check`).
CompileCheck = Callable[[Block, NetSpec], bool]


class PredictorError(ValueError):
    """A predictor used against the wrong space/DPU, or asked for something it was not fitted for."""


@dataclass(frozen=True)
class Overhead:
    """Per-network overhead ``coef · [1, (r/224)²]`` (ms) and the variance of its residuals."""

    coef: tuple[float, float] = (0.0, 0.0)
    var: float = 0.0
    n_nets: int = 0

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        x = (np.asarray(r, dtype=float) / 224.0) ** 2
        return self.coef[0] + self.coef[1] * x

    @classmethod
    def fit(cls, r: np.ndarray, resid: np.ndarray) -> Overhead:
        r, resid = np.asarray(r, float), np.asarray(resid, float)
        if len(resid) == 0:
            return cls()
        if len(np.unique(r)) >= 3 and len(resid) >= 4:
            A = np.stack([np.ones_like(r), (r / 224.0) ** 2], axis=1)
            coef, *_ = np.linalg.lstsq(A, resid, rcond=None)
            dof = max(len(resid) - 2, 1)
        else:
            coef, dof = np.array([resid.mean(), 0.0]), max(len(resid) - 1, 1)
        fitted = coef[0] + coef[1] * (r / 224.0) ** 2
        var = float(np.sum((resid - fitted) ** 2) / dof) if len(resid) > 1 else 0.0
        return cls((float(coef[0]), float(coef[1])), var, len(resid))


class LatencyPredictor:
    """Latency of subnets of ``space`` on one DPU: block model + overhead + calibrated std.

    Args:
        model: The per-block estimator (unfitted for :meth:`fit`, or fitted when loaded).
        space: The search space.
        dpu: The DPU configuration (its parallelism feeds the features; its fingerprint is recorded;
            its compile limits mark ``inf`` cells). ``None`` uses B4096 defaults and no compile check.
        target: Default latency kind: ``profile`` (sum of DPU nodes) or ``e2e``.
        compile_check: Overrides the DPU's compile check (``None`` = :func:`ofa_hw.lut.dpu_compile_check`).
    """

    def __init__(
        self,
        model: BlockModel,
        space: SearchSpace,
        dpu: Any = None,
        target: str = "profile",
        compile_check: CompileCheck | None = None,
    ) -> None:
        if target not in TARGETS:
            raise PredictorError(f"predictor target must be one of {TARGETS}, got {target!r}")
        self.model = model
        self.space = space
        self.dpu = dpu
        self.target = target
        self.hw = HwParams.from_dpu(dpu)
        self._compile_check = compile_check
        self.overheads: dict[str, Overhead] = {}
        self.scale = 1.0
        self.noise_rel = 0.0
        self.lut_id: str | None = None
        self.info: dict[str, Any] = {}
        self._tables: dict[str, BlockTable] = {}

    # ------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self.model.name

    @property
    def dpu_fingerprint(self) -> str | None:
        fp = getattr(self.dpu, "fingerprint", None)
        return fp() if callable(fp) else None

    @property
    def fitted(self) -> bool:
        return bool(self.overheads)

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainingSet) -> LatencyPredictor:
        """Fit block model, overheads and uncertainty calibration on ``data``."""
        if data.space != self.space:
            raise PredictorError(
                f"training data is for space '{data.space.name}', predictor for '{self.space.name}'"
            )
        t0 = time.perf_counter()
        X, y, ystd, groups = data.block_rows(self.hw)
        self.model.fit(X, y, groups=groups)
        ok = (y > 0) & (ystd > 0)
        self.noise_rel = float(np.median(ystd[ok] / y[ok])) if ok.any() else 0.0
        self.overheads = {}
        for target in TARGETS:
            nets = data.net_frame(target)
            if nets.empty:
                continue
            resid, r = self._overhead_residuals(data, nets)
            self.overheads[target] = Overhead.fit(r, resid)
        if not self.overheads:
            # LUT only, no whole-network time: profile latency is the plain block sum (OFA's rule).
            self.overheads["profile"] = Overhead()
        self.scale = self._calibrate(data)
        self.lut_id = data.lut_id
        self._tables = {}
        self.info = {
            "train_rows": len(y),
            "train_nets": int(sum(1 for n in data.nets if n.block_ms)),
            "train_keys": len(data.keys),
            "fit_s": time.perf_counter() - t0,
        }
        return self

    def _overhead_residuals(self, data: TrainingSet, nets: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Measured total minus block sum: the measured block sum where there is one, else predicted."""
        block_sum = nets["block_sum_ms"].to_numpy(dtype=float, copy=True)
        missing = ~np.isfinite(block_sum)
        if missing.any():
            by_name = {n.name: n for n in data.nets}
            archs = [by_name[name].arch for name in nets.loc[missing, "name"]]
            block_sum[missing] = self._block_members(archs)[0].sum(axis=1)
        return nets["measured_ms"].to_numpy(dtype=float) - block_sum, nets["r"].to_numpy(dtype=float)

    def _block_members(self, archs: list[Arch]) -> np.ndarray:
        """``(M, n_nets, max_blocks)`` member predictions of every block of ``archs`` (0-padded)."""
        pairs: list[tuple[Any, Any]] = []
        owners: list[int] = []
        for i, arch in enumerate(archs):
            ns = build_netspec(self.space, arch)
            pairs.extend((b, ns) for b in ns.blocks)
            owners.extend([i] * len(ns.blocks))
        owner = np.asarray(owners)
        members = self.model.predict_members(featurize(pairs, self.hw))
        out = np.zeros((members.shape[0], len(archs), int(np.bincount(owner).max())))
        slot = np.concatenate([np.arange(c) for c in np.bincount(owner, minlength=len(archs))])
        out[:, owner, slot] = members
        return out

    def _calibrate(self, data: TrainingSet) -> float:
        """The smallest ``s ≥ 1`` giving unit mean squared out-of-bag z-score over measured nets."""
        target = self.target if self.target in self.overheads else "profile"
        nets = data.net_frame(target)
        if nets.empty or self.model.in_bag_.shape[0] < 2:
            return 1.0
        by_name = {n.name: n for n in data.nets}
        archs = [by_name[name].arch for name in nets["name"]]
        members = self._block_members(archs)  # (M, n, B)
        group_pos = {g: i for i, g in enumerate(self.model.group_ids_)}
        overhead = self.overheads[target]
        errs, spread_var, floor_var = [], [], []
        for j, name in enumerate(nets["name"]):
            gi = group_pos.get("net:" + name)
            oob = np.arange(1, members.shape[0])
            if gi is not None:
                oob = oob[~self.model.in_bag_[1:, gi]]
            if len(oob) == 0:
                continue
            r = float(nets["r"].iloc[j])
            pred = members[oob, j].sum(axis=1).mean() + float(overhead(r))
            errs.append(float(nets["measured_ms"].iloc[j]) - pred)
            blocks = members[:, j]
            spread_var.append(float(np.sum(member_spread(blocks) ** 2)))
            floor_var.append(float(np.sum((self.noise_rel * blocks[0]) ** 2)) + overhead.var)
        if not errs:
            return 1.0
        e2, V, F = np.square(errs), np.asarray(spread_var), np.asarray(floor_var)

        def msz(s: float) -> float:
            return float(np.mean(e2 / np.maximum(s * s * V + F, 1e-18)))

        if msz(1.0) <= 1.0:
            return 1.0
        lo, hi = 1.0, 2.0
        while msz(hi) > 1.0 and hi < 1e4:
            lo, hi = hi, hi * 2
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if msz(mid) > 1.0 else (lo, mid)
        return hi

    # -------------------------------------------------------------- compile
    def compile(self, space: SearchSpace | None = None, target: str | None = None) -> BlockTable:
        """The dense :class:`BlockTable` (means and variances) of ``target`` latency over the space.

        Cells the DPU cannot compile are ``inf`` (so is every arch holding one).
        """
        space = self._check_space(space)
        target = self._check_target(target)
        if target in self._tables:
            return self._tables[target]
        cells = all_cells(space)
        members = self.model.predict_members(featurize(cells, self.hw))
        mean = members[0]
        var = (self.scale * member_spread(members)) ** 2 + (self.noise_rel * mean) ** 2
        check = self._compile_fn()
        if check is not None:
            bad = np.array([not check(b, ns) for b, ns in cells])
            mean = np.where(bad, np.inf, mean)
            var = np.where(bad, np.inf, var)
        if isinstance(space, ResNetSpace):
            table = _term_table(space, cells, mean, var, self.overheads[target])
            self._tables[target] = table
            return table
        r_of, n_fixed = cell_layout(space)
        nr = len(space.resolutions)
        shape = (nr, space.n_blocks, len(space.ks_list), len(space.expand_list))
        overhead = self.overheads[target]
        res = np.asarray(space.resolutions, dtype=float)
        fixed = np.bincount(r_of, weights=mean[:n_fixed], minlength=nr) + overhead(res)
        var_fixed = np.bincount(r_of, weights=var[:n_fixed], minlength=nr) + overhead.var
        table = BlockTable(
            space, fixed, mean[n_fixed:].reshape(shape), var_fixed, var[n_fixed:].reshape(shape)
        )
        self._tables[target] = table
        return table

    def _compile_fn(self) -> CompileCheck | None:
        if self._compile_check is not None:
            return self._compile_check
        if self.dpu is None:
            return None
        from ofa_hw.lut import dpu_compile_check

        return dpu_compile_check(self.dpu)

    # -------------------------------------------------------------- predict
    def predict_encoded(self, genes: np.ndarray, target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mean_ms, std_ms)`` of encoded archs ``(N, n_genes)`` via the compiled table (inf = cannot compile)."""
        return self.compile(target=target).evaluate_with_std(genes)

    def predict(
        self, archs: Iterable[Arch] | Arch, target: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean_ms, std_ms)`` of arch dicts (batched; one dict also accepted)."""
        archs = [archs] if isinstance(archs, dict) else list(archs)
        return self.predict_encoded(self.space.encode(archs), target=target)

    def predict_direct(
        self, archs: Iterable[Arch], target: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Same as :meth:`predict` but through the block model itself (no table; no compile check).

        Useful for checking a compiled table and for archs whose blocks lie outside the table.
        """
        target = self._check_target(target)
        archs = [self.space.validate(a) for a in archs]
        members = self._block_members(archs)
        mean = members[0].sum(axis=1)
        spread = np.stack([member_spread(members[:, j]) for j in range(len(archs))])
        var = ((self.scale * spread) ** 2 + (self.noise_rel * members[0]) ** 2).sum(axis=1)
        overhead = self.overheads[target]
        r = np.array([a["r"] for a in archs], dtype=float)
        return mean + overhead(r), np.sqrt(var + overhead.var)

    def min_latency_ms(self, k_sigma: float = 0.0, target: str | None = None) -> float:
        """The smallest (``mean + k_sigma·std`` bound) latency any compilable subnet of the space reaches."""
        return self.compile(target=target).min_total(k_sigma)

    # --------------------------------------------------------------- checks
    def _check_space(self, space: SearchSpace | None) -> SearchSpace:
        if space is not None and space != self.space:
            raise PredictorError(f"predictor was built for space '{self.space.name}', not '{space.name}'")
        return self.space

    def _check_target(self, target: str | None) -> str:
        target = self.target if target is None else target
        if not self.fitted:
            raise PredictorError("predictor is not fitted")
        if target not in self.overheads:
            raise PredictorError(
                f"predictor has no '{target}' latency: its training data held no whole-network {target} "
                f"times (available: {sorted(self.overheads)})"
            )
        return target

    # ---------------------------------------------------------- persistence
    def save(self, path: Any, extra: dict[str, Any] | None = None) -> Any:
        """Write the predictor as one integrity-checked JSON file (see :mod:`ofa_hw.predictor.persist`)."""
        from ofa_hw.predictor.persist import save_predictor

        return save_predictor(self, path, extra=extra)

    @classmethod
    def load(cls, path: Any, space: SearchSpace, dpu: Any = None, **kwargs: Any) -> LatencyPredictor:
        """Read a predictor file, checking integrity, space and DPU fingerprint."""
        from ofa_hw.predictor.persist import load_predictor

        return load_predictor(path, space, dpu, **kwargs)


def make_model(name: str, **params: Any) -> BlockModel:
    """A block model by registry name (``lut``, ``roofline``, ``rf``, ``gbdt``, ``xgb``, ``mlp``)."""
    if name not in MODELS:
        raise PredictorError(f"unknown predictor model '{name}'; known: {sorted(MODELS)}")
    return MODELS[name](**params)


def _term_table(space: ResNetSpace, cells: list, mean: np.ndarray, var: np.ndarray, overhead: Any) -> Any:
    """ResNet-50's compiled form: a :class:`~ofa_hw.termtable.TermTable` of the per-key predictions, the
    overhead (a function of the resolution) added to the stem conv's term, which every arch has."""
    from ofa_hw.termtable import TermTable

    by_key = {b.key: (float(m), float(v)) for (b, _), m, v in zip(cells, mean, var, strict=True)}
    table = TermTable.from_block_fn(space, lambda block, _ns: by_key[block.key])
    res = np.asarray(space.resolutions, dtype=float)
    means, variances = list(table.means), list(table.variances or [np.zeros_like(m) for m in table.means])
    means[0] = means[0] + overhead(res)[None, :]
    variances[0] = variances[0] + overhead.var
    return TermTable(space, table.terms, tuple(means), tuple(variances))
