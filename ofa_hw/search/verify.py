"""Deploy and measure the searched candidates; refine the search with what was measured.

:func:`search_and_verify` runs the constrained search, deploys the top-K candidates that differ as
networks to the DPU (:func:`top_networks`: subnets that only reorder the blocks of a stage are one network,
deployed once, and the report says how many subnets each deployment stands for) on the configured backend (through the store, so nothing is measured twice), and compares predicted with
measured latency: hit rate (share of candidates whose *measured* latency meets the budget) and slack
(``(budget − measured) / budget``). With refinement rounds, the measurements correct the predictor and
the search runs again, until the best measured candidate meets the budget within ``target_slack`` (and
the round's hit rate reaches ``target_hit_rate``) or the rounds run out.

The correction (:class:`MeasuredCorrection`) is what the measured candidates say about the predictor
*where the search operates*: a scale ``s`` (median measured / predicted) for the bias the predictor has
on subnets near the budget, and a relative spread ``τ`` of the remaining error (shrunk towards the
predictor's own relative σ with a small pseudo-count, so a handful of measurements cannot make it
overconfident). The corrected model predicts ``s·mean`` with σ ``τ·s·mean`` — so its constraint
``s·mean·(1 + k·τ) ≤ budget`` is a rescaling of the original table, and its floor stays exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ofa_hw.search.evolution import Candidate, EvolutionFinder, EvolutionParams, SearchResult
from ofa_hw.search.floor import Floor, table_floor
from ofa_hw.search.latency import InfeasibleBudgetError, LatencyConstraint, block_table_of
from ofa_hw.space import SearchSpace
from ofa_hw.space_resnet import ResNetSpace


@dataclass(frozen=True)
class Measurement:
    """One deployed candidate.

    Attributes:
        candidate: The searched subnet and its predictions (of the model used in that round).
        round: Refinement round that produced it (0 = first search).
        net_name: Name it was compiled and profiled under.
        measured_ms: Measured latency (``None`` when deployment failed).
        error: Why deployment failed.
        stands_for: How many distinct searched subnets this deployed one stands for.
    """

    candidate: Candidate
    round: int
    net_name: str
    measured_ms: float | None
    error: str | None = None
    #: Distinct subnets of the search that are this same network to the DPU (see :func:`top_networks`).
    stands_for: int = 1

    @property
    def ok(self) -> bool:
        return self.measured_ms is not None and np.isfinite(self.measured_ms)

    @property
    def ms(self) -> float:
        """The measured latency (NaN when the deployment failed)."""
        return float(self.measured_ms) if self.measured_ms is not None else float("nan")

    def meets(self, budget_ms: float) -> bool:
        return self.ok and self.ms <= budget_ms


def network_keys(space: SearchSpace | ResNetSpace, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(network id, subnet id)`` per encoded arch: equal network ids = the same network to the DPU.

    Within a stage every block after the first has the same input and output shape, so reordering
    those blocks gives the same multiset of operations: the same compiled layers and the same latency
    (the simulator's times agree to rounding, see ``tests/test_search_verify.py``). Such subnets differ only
    in accuracy. The network id is the subnet with, per stage, the first block kept and the others
    sorted; the subnet id ignores inactive blocks only (the space's ``arch_id``).
    """
    g = np.atleast_2d(np.asarray(genes)).astype(np.int32)
    if not isinstance(space, ResNetSpace) and not _mbconv_layout(space, g):
        return _network_keys_generic(space, g)  # a layout without a vectorised form: through the archs
    nb = space.n_blocks
    if isinstance(space, ResNetSpace):  # expand | depth | width | r; a skipped stem: any d[0] < max
        pair, tail, n_stages = g[:, :nb].copy(), g[:, nb:].copy(), len(space.stage_max_blocks)
        tail[:, 0] = np.where(tail[:, 0] == len(space.depth_list) - 1, tail[:, 0], 0)
    else:
        pair, tail, n_stages = (
            g[:, :nb] * len(space.expand_list) + g[:, nb : 2 * nb],
            g[:, 2 * nb :],
            space.n_stages,
        )
    pair[~space.active_mask(g)] = -1
    exact = np.concatenate([pair, tail], axis=1)
    parts = []
    for stage in range(n_stages):  # per stage: the first block as is, the later ones as a multiset
        blocks = list(space.stage_blocks(stage))
        parts.append(pair[:, blocks[:1]])
        if len(blocks) > 1:
            rest = pair[:, blocks[1:]]
            parts.append(np.sort(np.where(rest < 0, np.iinfo(np.int32).max, rest), axis=1))
    canon = np.concatenate([*parts, tail], axis=1)
    _, net = np.unique(canon, axis=0, return_inverse=True)
    _, sub = np.unique(exact, axis=0, return_inverse=True)
    return net.ravel(), sub.ravel()


def _mbconv_layout(space: SearchSpace | ResNetSpace, genes: np.ndarray) -> bool:
    """Whether ``genes`` are ``[ks × n_blocks, e × n_blocks, …]`` of an MBConv space with an active mask
    (the vectorised path of :func:`network_keys`)."""
    needed = ("active_mask", "ks_list", "expand_list", "n_stages", "stage_blocks")
    return all(hasattr(space, n) for n in needed) and genes.shape[1] > 2 * space.n_blocks


def _stages(space: SearchSpace | ResNetSpace) -> int:
    if hasattr(space, "stage_max_blocks"):
        return len(space.stage_max_blocks)
    return int(space.n_stages)


def _network_keys_generic(
    space: SearchSpace | ResNetSpace, genes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`network_keys` through the arch dicts, for any space with ``stage_blocks``/``active_blocks``:
    per-block settings (lists with one entry per block) of a stage's later active blocks sorted."""
    uniq, back = np.unique(genes, axis=0, return_inverse=True)  # the search re-scores many subnets
    archs = space.decode(uniq)
    nb = space.n_blocks
    nets: dict[str, int] = {}
    subs: dict[str, int] = {}
    net_ids, sub_ids = [], []
    for arch in archs:
        per_block = sorted(k for k, v in arch.items() if isinstance(v, list) and len(v) == nb)
        active = set(space.active_blocks(arch))
        stages, exact = [], []
        for stage in range(_stages(space)):
            blocks = [tuple(arch[k][b] for k in per_block) for b in space.stage_blocks(stage) if b in active]
            stages.append([blocks[:1], sorted(blocks[1:])])
            exact.append(blocks)
        others = sorted((k, v) for k, v in arch.items() if k not in per_block)
        net_ids.append(nets.setdefault(repr((stages, others)), len(nets)))
        sub_ids.append(subs.setdefault(repr((exact, others)), len(subs)))  # inactive blocks ignored
    back = back.ravel()
    return np.asarray(net_ids)[back], np.asarray(sub_ids)[back]


def top_networks(space: SearchSpace, result: SearchResult, k: int) -> list[tuple[Candidate, int]]:
    """The ``k`` most accurate subnets that differ as networks to the DPU, each with the number of
    distinct searched (feasible) subnets it stands for; one deployment measures them all."""
    from ofa_hw.search.evolution import candidates

    ev = result.evaluated
    if not len(ev):
        return []
    net, sub = network_keys(space, ev.genes)
    order = np.argsort(-ev.accuracy, kind="stable")
    _, first = np.unique(net[order], return_index=True)
    picked = order[np.sort(first)][:k]  # the most accurate subnet of each network, best networks first
    pairs = np.unique(np.stack([net, sub], axis=1), axis=0)
    per_net = np.bincount(pairs[:, 0], minlength=int(net.max()) + 1)
    return list(zip(candidates(space, ev.take(picked)), (int(per_net[net[i]]) for i in picked)))


def net_name_for(arch_id: str, prefix: str = "srch") -> str:
    """A stable kernel-safe name per network (DNNDK kernel names must not contain underscores)."""
    return prefix + hashlib.sha1(arch_id.encode()).hexdigest()[:10]


class BackendMeasurer:
    """Measures candidates on a backend through the store (``profile_jobs``: resumable, no repeats).

    Args:
        space: The search space.
        backend: A :class:`~ofa_hw.backends.Backend`.
        store: The measurement store.
        runs: Profile-mode runs per candidate.
        seed: Seed of the runs (simulator jitter).
        target: ``profile`` (sum of DPU nodes, DNNDK's "All") or ``e2e`` — what the predictor predicts.
        progress: Show a progress bar.
    """

    def __init__(
        self,
        space: SearchSpace,
        backend: Any,
        store: Any,
        runs: int = 10,
        seed: int = 0,
        target: str = "profile",
        progress: bool = True,
    ) -> None:
        if target not in ("profile", "e2e"):
            raise ValueError(f"measurement target must be 'profile' or 'e2e', got {target!r}")
        self.space, self.backend, self.store = space, backend, store
        self.runs, self.seed, self.target, self.progress = int(runs), int(seed), target, progress

    def __call__(self, candidates: Sequence[Candidate], round_: int) -> list[Measurement]:
        from ofa_hw.backends import ProfileJob
        from ofa_hw.store import profile_jobs

        names = [net_name_for(c.arch_id) for c in candidates]
        jobs = [
            ProfileJob.create(self.space, c.arch, n, runs=self.runs, seed=self.seed)
            for c, n in zip(candidates, names)
        ]
        outcomes = profile_jobs(
            self.backend,
            self.store,
            jobs,
            desc=f"deploy top-{len(jobs)} (round {round_})",
            progress=self.progress,
        )
        out = []
        for cand, name, outcome in zip(candidates, names, outcomes):
            value = None
            if outcome.ok and outcome.profile is not None:
                value = outcome.profile.total_ms if self.target == "profile" else outcome.profile.e2e_ms
            error = (
                outcome.error
                if not outcome.ok
                else (None if value is not None else f"backend reports no {self.target} latency")
            )
            out.append(Measurement(cand, round_, name, None if value is None else float(value), error))
        return out


@dataclass(frozen=True)
class MeasuredCorrection:
    """``measured ≈ scale · predicted`` with relative residual spread ``rel_sigma`` (see module docstring).

    Attributes:
        scale: Median of measured / predicted.
        rel_sigma: Relative σ of the corrected prediction.
        n: Measurements it rests on.
    """

    scale: float
    rel_sigma: float
    n: int

    @classmethod
    def fit(
        cls, predicted: np.ndarray, measured: np.ndarray, prior_rel_sigma: float, prior_n: float = 2.0
    ) -> MeasuredCorrection:
        predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
        ok = np.isfinite(predicted) & np.isfinite(measured) & (predicted > 0) & (measured > 0)
        if not ok.any():
            return cls(1.0, float(prior_rel_sigma), 0)
        ratio = measured[ok] / predicted[ok]
        scale = float(np.median(ratio))
        resid = np.log(ratio / scale)
        dof = max(ok.sum() - 1, 0)  # one degree of freedom went into the scale
        rel = np.sqrt((prior_n * prior_rel_sigma**2 + float(np.sum(resid**2))) / (prior_n + dof))
        return cls(scale, float(rel), int(ok.sum()))


class CorrectedLatency:
    """A latency model rescaled by a :class:`MeasuredCorrection`: mean ``s·m``, σ ``τ·s·m``."""

    def __init__(self, base: Any, correction: MeasuredCorrection) -> None:
        self.base = base
        self.correction = correction
        self.name = f"{getattr(base, 'name', 'predictor')}+measured"

    def predict_encoded(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, _ = self.base.predict_encoded(genes)
        mean = self.correction.scale * np.asarray(mean, float)
        return mean, self.correction.rel_sigma * mean

    def latency_floor(self, k_sigma: float = 0.0) -> Floor:
        """Exact: the bound is a positive multiple of the base mean, so it is minimal where the base
        mean is (the base's ``k = 0`` floor)."""
        table = block_table_of(self.base)
        if table is None:
            raise TypeError(f"cannot correct {type(self.base).__name__}: it exposes no compiled BlockTable")
        base = table_floor(table, 0.0)
        mean = self.correction.scale * base.mean_ms
        std = self.correction.rel_sigma * mean
        return Floor(mean + k_sigma * std, mean, std, base.genes)


@dataclass(frozen=True)
class VerifyRound:
    """One search + deployment round."""

    round: int
    result: SearchResult
    measurements: tuple[Measurement, ...]
    correction: MeasuredCorrection | None  # the correction the round's search used (None = raw predictor)

    def hit_rate(self, budget_ms: float) -> float:
        return (
            float(np.mean([m.meets(budget_ms) for m in self.measurements]))
            if self.measurements
            else float("nan")
        )


@dataclass(frozen=True)
class Verified:
    """Outcome of :func:`search_and_verify`.

    Attributes:
        budget_ms: The budget.
        rounds: Every round, in order.
        best: The most accurate measured candidate meeting the budget over all rounds (else the
            fastest measured one; ``None`` when nothing was measured).
        stop_reason: Why the rounds ended (``target met``, ``round limit``, ``not measured``, or the
            corrected predictor's infeasibility message).
    """

    budget_ms: float
    rounds: tuple[VerifyRound, ...]
    best: Measurement | None
    stop_reason: str
    final: VerifyRound = field(repr=False)

    @property
    def hit_rate(self) -> float:
        """Hit rate of the final round's candidates."""
        return self.final.hit_rate(self.budget_ms)

    @property
    def measurements(self) -> list[Measurement]:
        return [m for r in self.rounds for m in r.measurements]


def pick_best(measurements: Sequence[Measurement], budget_ms: float) -> Measurement | None:
    """The most accurate measurement meeting the budget; failing that the fastest measured one."""
    meeting = [m for m in measurements if m.meets(budget_ms)]
    if meeting:
        return max(meeting, key=lambda m: (m.candidate.accuracy, -m.ms))
    measured = [m for m in measurements if m.ok]
    return min(measured, key=lambda m: m.ms) if measured else None


def search_and_verify(
    space: SearchSpace,
    latency: Any,
    accuracy: Any,
    budget_ms: float,
    measure: Callable[[Sequence[Candidate], int], list[Measurement]] | None,
    params: EvolutionParams | None = None,
    k_sigma: float = 1.0,
    seed: int = 0,
    top_k: int = 10,
    refine_rounds: int = 0,
    target_slack: float = 0.03,
    target_hit_rate: float = 0.95,
    where: str = "this DPU",
    progress: bool = False,
    refit: Callable[[Sequence[Measurement]], Any] | None = None,
) -> Verified:
    """Search under ``budget_ms``, deploy the top-K, refine (see the module docstring).

    Args:
        measure: ``measure(candidates, round) -> measurements`` (e.g. a :class:`BackendMeasurer`);
            ``None`` skips deployment (predicted figures only).
        refit: Called with every successful measurement so far before each refinement round; returns
            the refitted predictor (e.g. one whose calibration set adds the measured candidates).
            The measured correction is then fitted on top of it. ``None`` keeps the predictor.

    Raises:
        InfeasibleBudgetError: when the (raw) predictor says nothing can meet the budget.
    """
    rounds: list[VerifyRound] = []
    model: Any = latency
    correction: MeasuredCorrection | None = None
    reason = "not measured" if measure is None else "round limit"
    for rnd in range(1 + (refine_rounds if measure is not None else 0)):
        finder = EvolutionFinder(
            space, LatencyConstraint(model, k_sigma, where), accuracy, params=params, seed=seed + rnd
        )
        try:
            result = finder.run(budget_ms, progress=progress)
        except InfeasibleBudgetError as err:
            if rnd == 0:
                raise
            reason = f"measurements make the budget infeasible: {err}"
            break
        picked = top_networks(space, result, top_k)
        top = [c for c, _ in picked]
        measured = (
            tuple(replace(m, stands_for=n) for m, (_, n) in zip(measure(top, rnd), picked))
            if measure is not None
            else ()
        )
        rounds.append(VerifyRound(rnd, result, measured, correction))
        if measure is None:
            break
        all_meas = [m for r in rounds for m in r.measurements if m.ok]
        best = pick_best(all_meas, budget_ms)
        close = (
            best is not None and best.meets(budget_ms) and (budget_ms - best.ms) / budget_ms <= target_slack
        )
        if close and rounds[-1].hit_rate(budget_ms) >= target_hit_rate:
            reason = "target met"
            break
        if rnd == refine_rounds or not all_meas:
            break
        if refit is not None:
            latency = refit(all_meas)
        # correct the *uncorrected* predictor with every measurement so far (its own predictions)
        raw_mean, raw_std = latency.predict_encoded(np.stack([m.candidate.genes for m in all_meas]))
        prior = float(np.median(np.asarray(raw_std) / np.asarray(raw_mean)))
        correction = MeasuredCorrection.fit(raw_mean, np.array([m.measured_ms for m in all_meas]), prior)
        model = CorrectedLatency(latency, correction)
    all_measured = [m for r in rounds for m in r.measurements]
    return Verified(budget_ms, tuple(rounds), pick_best(all_measured, budget_ms), reason, rounds[-1])
