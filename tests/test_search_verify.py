"""Deploy-and-measure: measured corrections, refinement rounds, the store-backed measurer."""

from __future__ import annotations

import numpy as np
import pytest

from ofa_hw.accuracy.flops import FlopsProxy
from ofa_hw.blocktable import BlockTable
from ofa_hw.search import (
    EvolutionParams,
    GeneOps,
    InfeasibleBudgetError,
    LatencyConstraint,
    TableLatency,
    table_floor,
)
from ofa_hw.search.verify import (
    CorrectedLatency,
    MeasuredCorrection,
    Measurement,
    net_name_for,
    pick_best,
    search_and_verify,
)
from ofa_hw.space import get_space

SPACE = get_space("ofa_proxyless_w13")
PARAMS = EvolutionParams(generations=80)


@pytest.fixture(scope="module")
def accuracy() -> FlopsProxy:
    return FlopsProxy(SPACE)


@pytest.fixture(scope="module")
def truth(accuracy) -> BlockTable:
    """The 'hardware': a deterministic latency table. As on a DPU, the blocks after the first of a stage
    (equal shapes) cost the same per choice, so reordering them changes no latency."""
    rng = np.random.default_rng(1)
    macs = accuracy.macs_table
    factor = rng.uniform(0.7, 1.5, macs.blocks.shape)
    for stage in range(SPACE.n_stages - 1):
        later = list(SPACE.stage_blocks(stage))[1:]
        factor[:, later] = factor[:, later[:1]]
    blocks = macs.blocks / 3e8 * factor + 0.03
    return BlockTable(SPACE, macs.fixed / 3e8 + 0.3, blocks)


def biased(truth: BlockTable, factor: float, noise: float = 0.04, seed: int = 5) -> BlockTable:
    """A predictor of ``truth`` that is ``factor`` off with per-cell noise and a 5 % σ per cell."""
    rng = np.random.default_rng(seed)
    blocks = truth.blocks * factor * np.exp(rng.normal(0, noise, truth.blocks.shape))
    fixed = truth.fixed * factor
    return BlockTable(SPACE, fixed, blocks, (0.03 * fixed) ** 2, (0.05 * blocks) ** 2)


def measurer(truth: BlockTable):
    calls = []

    def measure(cands, rnd):
        calls.append(len(cands))
        measured = truth.evaluate(np.stack([c.genes for c in cands]))
        return [Measurement(c, rnd, net_name_for(c.arch_id), float(x)) for c, x in zip(cands, measured)]

    measure.calls = calls
    return measure


def test_correction_fit_recovers_scale_and_shrinks_spread() -> None:
    pred = np.linspace(2, 10, 40)
    meas = pred * 1.08 * np.exp(np.random.default_rng(0).normal(0, 0.01, 40))
    corr = MeasuredCorrection.fit(pred, meas, prior_rel_sigma=0.05)
    assert corr.scale == pytest.approx(1.08, rel=0.01)
    assert 0.008 < corr.rel_sigma < 0.02 and corr.n == 40
    few = MeasuredCorrection.fit(pred[:2], meas[:2], prior_rel_sigma=0.05)
    assert few.rel_sigma > 0.03  # two points cannot make the model confident
    assert MeasuredCorrection.fit(pred[:0], meas[:0], 0.05) == MeasuredCorrection(1.0, 0.05, 0)


def test_corrected_latency_floor_is_exact(truth) -> None:
    pred = TableLatency(biased(truth, 0.9))
    corrected = CorrectedLatency(pred, MeasuredCorrection(1.1, 0.02, 10))
    floor = LatencyConstraint(corrected, 2.0).floor()
    sample = GeneOps(SPACE).sample(np.random.default_rng(0), 20000)
    mean, std = corrected.predict_encoded(sample)
    assert floor.bound_ms <= np.nanmin(mean + 2 * std)
    m, s = corrected.predict_encoded(floor.genes[None, :])
    assert m[0] + 2 * s[0] == pytest.approx(floor.bound_ms)
    assert floor.mean_ms == pytest.approx(1.1 * table_floor(pred.block_table, 0.0).mean_ms)


def test_refinement_fixes_an_optimistic_predictor(truth, accuracy) -> None:
    """The predictor is 8 % optimistic: the first round misses, the corrected rounds hit."""
    pred = TableLatency(biased(truth, 0.92))
    budget = 4.0
    measure = measurer(truth)
    v = search_and_verify(
        SPACE, pred, accuracy, budget, measure, params=PARAMS, k_sigma=1.0, top_k=10, refine_rounds=3
    )
    assert v.rounds[0].hit_rate(budget) < 0.5  # the test can fail: the raw predictor misses
    assert len(v.rounds) >= 2 and v.rounds[1].correction is not None
    assert v.rounds[1].correction.scale == pytest.approx(1 / 0.92, rel=0.04)
    assert v.hit_rate >= 0.9
    assert v.best.meets(budget) and (budget - v.best.measured_ms) / budget <= 0.03
    assert v.stop_reason == "target met"
    assert measure.calls == [10] * len(v.rounds)


def test_no_refinement_without_rounds_or_measurements(truth, accuracy) -> None:
    pred = TableLatency(biased(truth, 0.92))
    v = search_and_verify(SPACE, pred, accuracy, 4.0, measurer(truth), params=PARAMS, refine_rounds=0)
    assert len(v.rounds) == 1 and v.stop_reason == "round limit"
    v = search_and_verify(SPACE, pred, accuracy, 4.0, None, params=PARAMS, refine_rounds=3)
    assert len(v.rounds) == 1 and v.best is None and v.stop_reason == "not measured"
    with pytest.raises(InfeasibleBudgetError):
        search_and_verify(SPACE, pred, accuracy, 0.5, measurer(truth), params=PARAMS)


def test_pick_best_prefers_accuracy_among_hits(truth, accuracy) -> None:
    pred = TableLatency(truth)
    v = search_and_verify(SPACE, pred, accuracy, 4.0, None, params=PARAMS)
    top = v.rounds[0].result.top(3)
    ms = [
        Measurement(top[0], 0, "a", 4.2),
        Measurement(top[1], 0, "b", 3.9),
        Measurement(top[2], 0, "c", 3.8),
    ]
    assert pick_best(ms, 4.0).net_name == "b"
    assert pick_best(ms, 3.0).net_name == "c"  # none meets: the fastest
    assert pick_best([Measurement(top[0], 0, "x", None, "compile error")], 4.0) is None
    assert net_name_for(top[0].arch_id).isalnum()  # DNNDK kernel names: no underscores


def test_refit_hook_runs_between_rounds(truth, accuracy) -> None:
    calls = []
    fixed = TableLatency(biased(truth, 1.0, noise=0.01))

    def refit(measurements):
        calls.append(len(measurements))  # every successful measurement so far
        return fixed

    v = search_and_verify(
        SPACE,
        TableLatency(biased(truth, 0.9)),
        accuracy,
        4.0,
        measurer(truth),
        params=PARAMS,
        k_sigma=1.0,
        refine_rounds=2,
        refit=refit,
    )
    assert len(calls) == len(v.rounds) - 1 >= 1
    assert calls[0] == len([m for m in v.rounds[0].measurements if m.ok])
    assert v.rounds[1].correction.scale == pytest.approx(1.0, abs=0.03)  # fitted on the refitted model
