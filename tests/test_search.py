"""The evolutionary finder: constraint, feasibility floor, compile limits, reproducibility, Pareto mode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ofa_hw.accuracy.flops import FlopsProxy
from ofa_hw.blocktable import BlockTable
from ofa_hw.search import (
    EvolutionFinder,
    EvolutionParams,
    GeneOps,
    InfeasibleBudgetError,
    LatencyConstraint,
    TableLatency,
    table_floor,
)
from ofa_hw.search.pareto import ParetoFinder, front_mask, nondominated_ranks
from ofa_hw.space import PRESETS, SearchSpace, get_space

SPACE = get_space("ofa_proxyless_w13")
FAST = EvolutionParams(generations=60)


@pytest.fixture(scope="module")
def accuracy() -> FlopsProxy:
    return FlopsProxy(SPACE)


def synthetic_table(accuracy: FlopsProxy, seed: int = 1, rel_sigma: float = 0.05) -> BlockTable:
    """A latency table shaped like a DPU's: MAC-driven with per-cell noise and a per-block floor."""
    rng = np.random.default_rng(seed)
    macs = accuracy.macs_table
    blocks = macs.blocks / 3e8 * rng.uniform(0.7, 1.5, macs.blocks.shape) + 0.03
    fixed = macs.fixed / 3e8 + 0.3
    return BlockTable(SPACE, fixed, blocks, (0.02 * fixed) ** 2, (rel_sigma * blocks) ** 2)


@pytest.fixture(scope="module")
def table(accuracy: FlopsProxy) -> BlockTable:
    return synthetic_table(accuracy)


def finder(table, accuracy, k_sigma=1.0, seed=0, params=FAST, cls=EvolutionFinder):
    return cls(SPACE, TableLatency(table), accuracy, params=params, k_sigma=k_sigma, seed=seed)


# ---------------------------------------------------------------- operators
def test_operators_follow_ofa_semantics() -> None:
    ops = GeneOps(SPACE)
    rng = np.random.default_rng(0)
    pop = ops.sample(rng, 4000)
    card = SPACE.gene_cardinality
    assert pop.dtype == np.int8 and (pop >= 0).all() and (pop < card).all()
    assert all(len(np.unique(pop[:, g])) == card[g] for g in range(SPACE.n_genes))  # every choice drawn
    assert np.array_equal(ops.mutate(pop, rng, 0.0, 0.0), pop)

    child = ops.mutate(pop, rng, 0.1, 0.5)
    nb = SPACE.n_blocks
    changed_k, changed_e = child[:, :nb] != pop[:, :nb], child[:, nb : 2 * nb] != pop[:, nb : 2 * nb]
    # one coin per block: a block whose expand changed was hit, and P(hit) = 0.1 → P(k changes) = 0.1·2/3
    assert abs(changed_k.mean() - 0.1 * 2 / 3) < 0.01
    assert abs((child[:, -1] != pop[:, -1]).mean() - 0.5 * 24 / 25) < 0.03
    both = (changed_k & changed_e).mean()
    assert both > 0.1 * (2 / 3) ** 2 * 0.8  # correlated: independent coins would give ~0.0044

    other = ops.sample(rng, 4000)
    cross = ops.crossover(pop, other, rng)
    assert ((cross == pop) | (cross == other)).all()
    differs = pop != other
    assert abs((cross == pop)[differs].mean() - 0.5) < 0.01


def test_canonical_keys_ignore_inactive_blocks() -> None:
    ops = GeneOps(SPACE)
    arch = SPACE.sample(np.random.default_rng(3))
    arch["d"][0] = 2  # blocks 2 and 3 inactive
    twin = {**arch, "ks": list(arch["ks"]), "e": list(arch["e"])}
    twin["ks"][2] = 7 if arch["ks"][2] != 7 else 3
    twin["e"][3] = 6 if arch["e"][3] != 6 else 3
    genes = SPACE.encode([arch, twin, SPACE.sample(np.random.default_rng(4))])
    keys = ops.keys(genes)
    assert keys[0] == keys[1] and keys[0] != keys[2]
    assert list(ops.unique_first(genes)) == [0, 2]


# ------------------------------------------------------------- the constraint
@pytest.mark.parametrize("k_sigma", [0.0, 1.0, 3.0])
def test_constraint_always_respected_on_predicted_values(table, accuracy, k_sigma) -> None:
    lat = TableLatency(table)
    floor = table_floor(table, k_sigma).bound_ms
    for frac in (0.001, 0.05, 0.3, 0.8):
        budget = floor + frac * 3.0
        res = finder(table, accuracy, k_sigma).run(budget)
        ev = res.evaluated
        assert len(ev) >= FAST.population * (FAST.generations + 1)
        assert (ev.bound_ms <= budget).all()
        mean, std = lat.predict_encoded(ev.genes)  # recomputed independently of the finder's bookkeeping
        assert np.allclose(mean, ev.mean_ms) and (mean + k_sigma * std <= budget + 1e-12).all()
        for cand in res.top(10):
            m, s = lat.predict_encoded(SPACE.encode([cand.arch]))
            assert m[0] + k_sigma * s[0] <= budget + 1e-12
        assert np.all(np.diff(res.best_history) >= 0)  # elitist: the best never gets worse


def test_search_beats_random_sampling(table, accuracy) -> None:
    budget = 2.5
    res = finder(table, accuracy, params=EvolutionParams()).run(budget)
    pop = GeneOps(SPACE).sample(np.random.default_rng(0), res.evaluations)
    mean, std = table.evaluate_with_std(pop)
    ok = mean + std <= budget
    assert res.best.accuracy > accuracy.predict_encoded(pop[ok]).max()
    assert res.best.bound_ms > 0.97 * budget  # a monotone proxy pushes the best against the budget


def test_infeasible_budget_fails_at_once_with_the_floor(table, accuracy) -> None:
    floor = table_floor(table, 1.0)
    f = finder(table, accuracy, params=EvolutionParams())
    with pytest.raises(InfeasibleBudgetError, match=f"{floor.bound_ms:.4g} ms") as err:
        f.run(floor.bound_ms * 0.999)
    assert f._n_lat == 0  # refused before any search work, not after a fruitless one
    assert err.value.floor.bound_ms == floor.bound_ms
    with pytest.raises(InfeasibleBudgetError):
        f.run(0.01)
    # just above the floor the search terminates (bounded rejection) and finds the floor arch
    res = finder(table, accuracy).run(floor.bound_ms * 1.0001)
    assert res.best.bound_ms <= floor.bound_ms * 1.0001
    assert res.best.bound_ms == pytest.approx(floor.bound_ms, rel=1e-3)


def test_floor_is_exact_against_brute_force() -> None:
    """On a space small enough to enumerate, the floor of mean + k·σ equals the brute-force minimum."""
    tiny = SearchSpace(
        name="tiny",
        width_mult=0.5,
        ks_list=(3, 5),
        expand_list=(3,),
        depth_list=(1, 2),
        resolutions=(128, 160),
    )
    rng = np.random.default_rng(7)
    nb = tiny.n_blocks  # 11
    blocks = rng.uniform(0.05, 0.5, (2, nb, 2, 1))
    var_blocks = rng.uniform(0.0, 0.05, blocks.shape) ** 2 * rng.choice([1, 30], blocks.shape)
    table = BlockTable(tiny, rng.uniform(0.5, 1.0, 2), blocks, rng.uniform(0, 0.01, 2), var_blocks)
    rows = [
        list(k) + [0] * nb + list(d) + [r]
        for k in itertools.product(range(2), repeat=nb)
        for d in itertools.product(range(2), repeat=5)
        for r in range(2)
    ]
    genes = np.asarray(rows, dtype=np.int8)
    mean, std = table.evaluate_with_std(genes)
    for k in (0.0, 0.5, 2.0, 10.0):
        floor = table_floor(table, k)
        assert floor.bound_ms == pytest.approx((mean + k * std).min(), rel=1e-12)
        m, s = table.evaluate_with_std(floor.genes[None, :])
        assert m[0] + k * s[0] == pytest.approx(floor.bound_ms, rel=1e-12)


def test_compile_limit_filtering(table, accuracy) -> None:
    """Cells the DPU compiler rejects (inf) never appear, although the accuracy model wants them."""
    blocks = table.blocks.copy()
    k7 = SPACE.ks_list.index(7)
    blocks[:, 12:, k7, :] = np.inf  # e.g. 7x7 depthwise too wide for the DPU in the last stages
    limited = BlockTable(SPACE, table.fixed, blocks, table.var_fixed, table.var_blocks)
    budget = 4.0
    free = finder(table, accuracy).run(budget)
    res = finder(limited, accuracy).run(budget)
    mask_free = SPACE.active_mask(free.evaluated.genes)
    assert (free.evaluated.genes[:, 12:21][mask_free[:, 12:]] == k7).any()  # the test can fail
    genes = res.evaluated.genes
    active = SPACE.active_mask(genes)
    assert not (genes[:, 12:21][active[:, 12:]] == k7).any()
    assert np.isfinite(res.evaluated.bound_ms).all()
    # an infeasible floor accounts for the compile limits too
    assert table_floor(limited, 1.0).bound_ms >= table_floor(table, 1.0).bound_ms


def test_latency_model_without_table_needs_min_latency(table, accuracy) -> None:
    class Opaque:  # a predictor that is not a table but knows its minimum
        def predict_encoded(self, genes):
            return table.evaluate_with_std(genes)

        def min_latency_ms(self, k_sigma=0.0):
            return table_floor(table, k_sigma).bound_ms

    res = EvolutionFinder(SPACE, Opaque(), accuracy, params=FAST, k_sigma=1.0).run(3.0)
    assert (res.evaluated.bound_ms <= 3.0).all()
    with pytest.raises(InfeasibleBudgetError):
        EvolutionFinder(SPACE, Opaque(), accuracy, params=FAST, k_sigma=1.0).run(0.5)
    with pytest.raises(TypeError, match="min_latency_ms"):
        LatencyConstraint(type("NoFloor", (), {"predict_encoded": Opaque.predict_encoded})(), 1.0).floor()


def test_reproducible(table, accuracy) -> None:
    a = finder(table, accuracy, seed=5).run(3.0)
    b = finder(table, accuracy, seed=5).run(3.0)
    c = finder(table, accuracy, seed=6).run(3.0)
    assert np.array_equal(a.evaluated.genes, b.evaluated.genes)
    assert np.array_equal(a.best_history, b.best_history)
    assert [x.arch_id for x in a.top(5)] == [x.arch_id for x in b.top(5)]
    assert a.evaluations == b.evaluations
    assert not np.array_equal(a.evaluated.genes, c.evaluated.genes)


def test_top_candidates_are_distinct_and_sorted(table, accuracy) -> None:
    top = finder(table, accuracy).run(3.0).top(20)
    assert len({c.arch_id for c in top}) == 20
    assert all(x.accuracy >= y.accuracy for x, y in zip(top, top[1:]))


def test_default_run_keeps_ofa_population_sizes(table, accuracy) -> None:
    """Speed is measured by ``ofa-hw task=bench bench=search`` (experiments/search_benchmark), not here."""
    res = finder(table, accuracy, params=EvolutionParams()).run(3.0)
    assert res.population.genes.shape[0] == 125  # 25 parents + 100 children, as OFA
    assert res.accuracy_evaluations == 100 * (500 + 1)  # the first population, then 100 children a generation


# ------------------------------------------------------------------ Pareto
def test_front_helpers() -> None:
    acc = np.array([1.0, 2.0, 2.0, 3.0, 1.5, 3.0])
    lat = np.array([1.0, 2.0, 1.5, 3.0, 2.0, 3.0])
    assert front_mask(acc, lat).tolist() == [True, False, True, True, False, True]
    assert nondominated_ranks(acc, lat).tolist() == [0, 1, 0, 0, 2, 0]


def test_pareto_front_is_non_dominated(table, accuracy) -> None:
    res = finder(table, accuracy, cls=ParetoFinder, params=EvolutionParams(generations=300)).run(4.0)
    f = res.front
    assert len(f) > 20 and (f.bound_ms <= 4.0).all()
    dominated = (
        (f.accuracy[None, :] >= f.accuracy[:, None])
        & (f.mean_ms[None, :] <= f.mean_ms[:, None])
        & ((f.accuracy[None, :] > f.accuracy[:, None]) | (f.mean_ms[None, :] < f.mean_ms[:, None]))
    )
    assert not dominated.any()
    assert np.all(np.diff(f.mean_ms) >= 0) and np.all(np.diff(f.accuracy) > 0)
    # it spans the range and is competitive with the single-objective optimum at the budget
    best = finder(table, accuracy, params=EvolutionParams(generations=80)).run(4.0).best
    assert f.accuracy.max() >= best.accuracy - 1.0
    assert f.mean_ms.min() < table_floor(table, 1.0).bound_ms * 1.1


def test_ceiling_is_the_slowest_compilable_subnet(table, accuracy) -> None:
    from ofa_hw.search.floor import table_ceiling

    blocks = table.blocks.copy()
    blocks[:, 12:, SPACE.ks_list.index(7), :] = np.inf
    limited = BlockTable(SPACE, table.fixed, blocks, table.var_fixed, table.var_blocks)
    for t in (table, limited):
        top = table_ceiling(t)
        sample = GeneOps(SPACE).sample(np.random.default_rng(0), 20000)
        mean = t.evaluate(sample)
        assert np.isfinite(top.mean_ms) and top.mean_ms >= mean[np.isfinite(mean)].max()
        assert t.evaluate(top.genes[None, :])[0] == pytest.approx(top.mean_ms)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_table_lookup_equals_the_masked_block_sum_on_every_space(name) -> None:
    """The search's table lookup (depth folded into the cell index, mean and variance in one gather)
    equals the plain definition: fixed[r] + Σ over active blocks of blocks[r, p, k, e]."""
    space = PRESETS[name]
    rng = np.random.default_rng(1)
    macs = FlopsProxy(space).macs_table
    var = rng.uniform(0.0, 1e-3, macs.blocks.shape)
    table = BlockTable(
        space, macs.fixed / 3e8, macs.blocks / 3e8 * rng.uniform(0.7, 1.5, macs.blocks.shape), None, None
    )
    with_var = BlockTable(space, table.fixed, table.blocks, np.full_like(table.fixed, 1e-4), var)
    genes = GeneOps(space).sample(rng, 3000)
    nb, r = space.n_blocks, genes[:, -1].astype(int)
    active = space.active_mask(genes)
    cells = (r[:, None], np.arange(nb), genes[:, :nb], genes[:, nb : 2 * nb])
    expected = table.fixed[r] + np.where(active, table.blocks[cells], 0.0).sum(axis=1)
    expected_var = 1e-4 + np.where(active, var[cells], 0.0).sum(axis=1)
    np.testing.assert_allclose(table.evaluate(genes), expected, rtol=1e-12)
    mean, std = with_var.evaluate_with_std(genes)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    np.testing.assert_allclose(std, np.sqrt(expected_var), rtol=1e-12)
    assert (~active).any()  # inactive blocks were drawn: the mask is exercised


def test_resnet50_table_lookup_equals_the_plain_block_sum() -> None:
    """ResNet-50 (cells depend on neighbouring widths and depth genes): the one-gather lookup of the
    TermTable, mean and variance, equals the plain sum over the netspec's blocks of per-key values."""
    from ofa_hw.netspec import build_netspec
    from ofa_hw.search.floor import table_ceiling, table_floor
    from ofa_hw.termtable import TermTable

    space = get_space("ofa_resnet50")
    rng = np.random.default_rng(3)
    values: dict[str, tuple[float, float]] = {}

    def cell(block, _ns):  # a random (mean, var) per key, the same wherever the key occurs
        return values.setdefault(block.key, (float(rng.uniform(0.1, 2.0)), float(rng.uniform(0, 1e-3))))

    table = TermTable.from_block_fn(space, cell)
    archs = space.sample(rng, 300)
    archs += [a | {"d": [1] + a["d"][1:]} for a in archs[:50]]  # d[0] = 1: OFA never samples it; a skip too
    blocks = [build_netspec(space, a).blocks for a in archs]
    mean, std = table.evaluate_with_std(space.encode(archs))
    np.testing.assert_allclose(mean, [sum(values[b.key][0] for b in bs) for bs in blocks], rtol=1e-12)
    np.testing.assert_allclose(std**2, [sum(values[b.key][1] for b in bs) for bs in blocks], rtol=1e-9)
    ops = GeneOps(space)
    floor = table_floor(table, 1.0)
    sample = ops.sample(rng, 20000)
    m, s = table.evaluate_with_std(sample)
    assert floor.bound_ms <= (m + s).min() + 1e-12
    assert table_ceiling(table).mean_ms >= m.max()
