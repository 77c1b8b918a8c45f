"""The budget plan: profile few subnets, chosen where the latency predictor is least sure.

``lut.plan=budget`` (the default on the Vitis backends) spends at most ``lut.max_subnets`` board
measurements:

1. a **seed batch** of ``lut.batch`` max-depth probes over evenly spread resolutions with balanced
   block choices (:func:`ofa_hw.lut.plan.plan_seed_probes`);
2. after each batch, the predictor (the configured model) is **refitted** on every probe so far and
   predicts a pool of ``lut.pool`` random compilable max-depth subnets (every block position measured
   per board run); the next batch is the candidates with the largest relative σ (std / mean), at most
   one per resolution until every resolution has one;
3. **stopping rule** (:func:`stop_reason`): after batch *b* ≥ 2 has been measured, the predictor fitted
   on batches 1…*b*−1 — before *b* was used for training — is scored on batch *b*'s subnets; the
   plan stops when that held-out MAPE is ≤ ``lut.target_mape`` (``target``), or when ``max_subnets``
   subnets have been attempted (``budget``), or when the pool is exhausted (``pool``). On the
   simulator (``experiments/board_time``) the first scored batch overestimated the error on 1 000
   unseen random subnets ~2×, later batches underestimated it up to ~1.5× (max-depth subnets are
   easier than random ones of any depth): a target well above the predictor's floor is safe.

Every measurement goes through the store like any other probe (named ``probe_a<batch>_<i>``), and the
loop is deterministic for a seed, so an interrupted plan replays its batches from the store and
resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ofa_hw.backends.base import ProfileOutcome
from ofa_hw.lut.plan import CompileCheck, plan_seed_probes, sample_subnets
from ofa_hw.lut.table import LutError
from ofa_hw.schemas.lut import LutConfig
from ofa_hw.space import Arch, SearchSpace

log = logging.getLogger(__name__)

#: Net-name prefix of the budget plan's probes (``probe_`` marks LUT probes everywhere).
ACTIVE_PREFIX = "probe_a"

#: ``measure(archs, names) -> outcomes`` in the order given (through the store).
Measure = Callable[[list[Arch], list[str]], list[ProfileOutcome]]
#: ``new_predictor() -> LatencyPredictor`` (unfitted).
NewPredictor = Callable[[], Any]


@dataclass(frozen=True)
class ActiveSettings:
    """The budget plan's knobs: ``lut.max_subnets``, ``lut.batch``, ``lut.target_mape``, ``lut.pool``, ``lut.seed``
    (defaults: the ``lut`` schema's, their one source)."""

    max_subnets: int = LutConfig.max_subnets
    batch: int = LutConfig.batch
    target_mape: float = LutConfig.target_mape
    pool: int = LutConfig.pool
    seed: int = LutConfig.seed

    def __post_init__(self) -> None:
        if self.max_subnets < 1 or self.batch < 1 or self.pool < 1:
            raise ValueError(
                "lut.max_subnets, lut.batch and lut.pool must be >= 1, "
                f"got {self.max_subnets}, {self.batch}, {self.pool}"
            )
        if not self.target_mape >= 0:
            raise ValueError(f"lut.target_mape must be >= 0 (a fraction, 0.01 = 1 %), got {self.target_mape}")


@dataclass(frozen=True)
class Batch:
    """One measured batch.

    Attributes:
        index: 0 = the seed batch.
        names: Net names of its subnets.
        ok: How many profiled successfully.
        heldout_mape: MAPE on this batch of the predictor fitted on the earlier batches (``None`` for the
            seed batch, or when nothing of the batch profiled).
        heldout_max_ape: Worst relative error of the same.
        rel_sigma: Mean predicted σ/mean of the batch when it was chosen (``None`` for the seed batch).
    """

    index: int
    names: tuple[str, ...]
    ok: int
    heldout_mape: float | None = None
    heldout_max_ape: float | None = None
    rel_sigma: float | None = None


@dataclass(frozen=True)
class ActiveResult:
    """The probes of a budget plan and why it stopped (``target``, ``budget`` or ``pool``)."""

    outcomes: tuple[ProfileOutcome, ...]
    batches: tuple[Batch, ...]
    reason: str
    settings: ActiveSettings

    @property
    def subnets(self) -> int:
        """Subnets attempted (the budget counts these)."""
        return sum(len(b.names) for b in self.batches)

    @property
    def last_scored(self) -> Batch | None:
        """The newest batch with a held-out score."""
        return next((b for b in reversed(self.batches) if b.heldout_mape is not None), None)

    def to_dict(self) -> dict[str, Any]:
        """The ``lut.active`` section of ``results.json`` (also kept in the LUT's metadata)."""
        last = self.last_scored
        return {
            "subnets": self.subnets,
            "stopped": self.reason,
            "max_subnets": self.settings.max_subnets,
            "batch": self.settings.batch,
            "target_mape": self.settings.target_mape,
            "heldout_mape": last.heldout_mape if last else None,
            "heldout_max_ape": last.heldout_max_ape if last else None,
            "heldout_subnets": last.ok if last else 0,
            "batches": [
                {
                    "index": b.index,
                    "subnets": len(b.names),
                    "ok": b.ok,
                    "heldout_mape": b.heldout_mape,
                    "rel_sigma": b.rel_sigma,
                }
                for b in self.batches
            ],
        }


def active_settings(lut_cfg: Any) -> ActiveSettings:
    """The budget plan's settings from the ``lut`` config (schema defaults for missing keys)."""
    defaults = ActiveSettings()
    try:
        return ActiveSettings(
            max_subnets=int(getattr(lut_cfg, "max_subnets", defaults.max_subnets)),
            batch=int(getattr(lut_cfg, "batch", defaults.batch)),
            target_mape=float(getattr(lut_cfg, "target_mape", defaults.target_mape)),
            pool=int(getattr(lut_cfg, "pool", defaults.pool)),
            seed=int(getattr(lut_cfg, "seed", defaults.seed)),
        )
    except ValueError as exc:
        raise LutError(str(exc)) from exc


def default_predictor(space: SearchSpace, dpu: Any) -> Any:
    """The budget plan's refitted predictor when the caller names none: XGBoost per block, as ``predictor=xgb``."""
    from ofa_hw.predictor import LatencyPredictor, XGBModel

    return LatencyPredictor(XGBModel(n_members=6, random_state=0, n_jobs=1), space, dpu)


def stop_reason(batches: Sequence[Batch], settings: ActiveSettings) -> str | None:
    """Why the plan stops after ``batches``, or ``None`` to go on.

    ``target``: the newest batch's held-out MAPE (predictor fitted before the batch was) is at most
    ``settings.target_mape``. ``budget``: ``settings.max_subnets`` subnets attempted. The target is
    checked first: a batch that meets it ends the plan even on the last slot of the budget.
    """
    if not batches:
        return None
    last = batches[-1]
    if last.heldout_mape is not None and last.heldout_mape <= settings.target_mape:
        return "target"
    if sum(len(b.names) for b in batches) >= settings.max_subnets:
        return "budget"
    return None


def heldout_error(
    predictor: Any, outcomes: Sequence[ProfileOutcome]
) -> tuple[float | None, float | None, int]:
    """``(MAPE, max APE, n)`` of ``predictor`` on the ok ``outcomes`` (profile-mode totals)."""
    ok = [o for o in outcomes if o.ok]
    if predictor is None or not ok:
        return None, None, len(ok)
    mean, _ = predictor.predict([o.job.arch for o in ok], target="profile")
    measured = np.array([o.measured.total_ms for o in ok], dtype=np.float64)
    ape = np.abs(mean - measured) / measured
    return float(ape.mean()), float(ape.max()), len(ok)


def pick_uncertain(
    predictor: Any, pool: Sequence[Arch], n: int, exclude: set[str], space: SearchSpace
) -> tuple[list[Arch], float | None]:
    """The ``n`` pool archs with the largest predicted σ/mean, one per resolution before any repeats.

    Returns:
        ``(archs, mean σ/mean of them)``.
    """
    cands = [a for a in pool if space.arch_id(a) not in exclude]
    if not cands or n <= 0:
        return [], None
    mean, std = predictor.predict(cands, target="profile")
    score = np.where(np.isfinite(mean) & (mean > 0), std / np.where(mean > 0, mean, 1.0), -np.inf)
    order = [int(i) for i in np.argsort(-score, kind="stable") if np.isfinite(score[i])]
    chosen: list[int] = []
    used_r: set[int] = set()
    for sweep in (True, False):  # first one per resolution, then the best of the rest
        for i in order:
            if len(chosen) == n:
                break
            if i in chosen or (sweep and cands[i]["r"] in used_r):
                continue
            chosen.append(i)
            used_r.add(cands[i]["r"])
    picked_ids: set[str] = set()
    out = []
    for i in chosen:  # the pool may hold one network twice
        aid = space.arch_id(cands[i])
        if aid not in picked_ids:
            picked_ids.add(aid)
            out.append(cands[i])
    return out, float(np.mean(score[chosen])) if chosen else None


def fit_predictor(
    new_predictor: NewPredictor, space: SearchSpace, dpu: Any, outcomes: Sequence[ProfileOutcome]
) -> Any:
    """A predictor fitted on the ok ``outcomes`` (per-block times + totals), or ``None`` without any."""
    from ofa_hw.predictor import TrainingSet

    ok = [o for o in outcomes if o.ok]
    if not ok:
        return None
    return new_predictor().fit(TrainingSet.from_outcomes(space, dpu, ok))


def run_active(
    space: SearchSpace,
    dpu: Any,
    compilable: CompileCheck,
    resolutions: Sequence[int],
    measure: Measure,
    new_predictor: NewPredictor,
    settings: ActiveSettings,
    on_batch: Callable[[Batch], None] | None = None,
    fit: Callable[[list[ProfileOutcome]], Any] | None = None,
) -> ActiveResult:
    """Run the budget plan (module docstring): seed batch, then refit → most uncertain → measure.

    Args:
        space, dpu: Search space and DPU (the predictor's features).
        compilable: Per-block compile check; no probe holds a block the DPU cannot compile.
        resolutions: Resolutions the probes and the pool use.
        measure: Profiles a batch (through the store).
        new_predictor: Builds an unfitted predictor (the configured model).
        settings: Budget, batch size, target, pool size, seed.
        on_batch: Called with each measured batch (progress reporting).
        fit: Fits the predictor on the outcomes so far (default: :func:`fit_predictor`, from per-block
            times; ``lut.granularity=network`` fits it from the calibrated simulator's LUT instead).
    """
    rng = np.random.default_rng(settings.seed + 1)
    pool = sample_subnets(space, compilable, resolutions, settings.pool, rng, max_depth=True)
    archs = plan_seed_probes(
        space, compilable, resolutions, min(settings.batch, settings.max_subnets), settings.seed
    )
    outcomes: list[ProfileOutcome] = []
    batches: list[Batch] = []
    predictor, rel_sigma = None, None
    while True:
        index = len(batches)
        names = [f"{ACTIVE_PREFIX}{index}_{i}" for i in range(len(archs))]
        new = measure(archs, names)
        mape, max_ape, n_ok = heldout_error(predictor, new)
        batch = Batch(index, tuple(names), n_ok, mape, max_ape, rel_sigma)
        batches.append(batch)
        outcomes.extend(new)
        if on_batch is not None:
            on_batch(batch)
        if mape is not None:
            log.info(
                "budget plan: batch %d held-out MAPE %.2f%% (target %.2f%%)",
                index,
                100 * mape,
                100 * settings.target_mape,
            )
        reason = stop_reason(batches, settings)
        if reason is not None:
            break
        predictor = fit(outcomes) if fit is not None else fit_predictor(new_predictor, space, dpu, outcomes)
        n_next = min(settings.batch, settings.max_subnets - sum(len(b.names) for b in batches))
        measured = {space.arch_id(o.job.arch) for o in outcomes}
        if predictor is None:  # nothing profiled yet (all failed): spend the next batch on random candidates
            fresh = [a for a in pool if space.arch_id(a) not in measured]
            archs, rel_sigma = fresh[:n_next], None
        else:
            archs, rel_sigma = pick_uncertain(predictor, pool, n_next, measured, space)
        if not archs:
            reason = "pool"
            break
    return ActiveResult(tuple(outcomes), tuple(batches), reason, settings)
