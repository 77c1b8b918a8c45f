"""Issue 20, point 6: the top-K deploys candidates that differ as networks to the DPU, and says how many
searched subnets each deployed one stands for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ofa_hw.accuracy.flops import FlopsProxy
from ofa_hw.search import EvolutionParams, LatencyConstraint
from ofa_hw.search.evolution import EvolutionFinder
from ofa_hw.search.verify import network_keys, search_and_verify, top_networks
from ofa_hw.space import get_space

ROOT = Path(__file__).resolve().parents[1]
SPACE = get_space("ofa_proxyless_w13")


def _reordered(arch: dict) -> dict:
    """``arch`` with the blocks after the first of every stage in reverse order."""
    out = {**arch, "ks": list(arch["ks"]), "e": list(arch["e"])}
    for stage in range(SPACE.n_stages - 1):
        rest = list(SPACE.stage_blocks(stage))[1 : arch["d"][stage]]
        for i, j in zip(rest, reversed(rest)):
            out["ks"][i], out["e"][i] = arch["ks"][j], arch["e"][j]
    return SPACE.validate(out)


def _sim_ms(arch: dict) -> float:
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.netspec import build_netspec
    from ofa_hw.sim.compiler import compile_net
    from ofa_hw.sim.timing import node_times_ms

    dpu = DPUConfig.from_yaml(ROOT / "ofa_hw" / "conf" / "dpu" / "zcu102_b4096.yaml")
    times = node_times_ms(compile_net(build_netspec(SPACE, arch, name="n"), dpu), dpu)
    return float(np.sum(list(times.values()) if isinstance(times, dict) else times))


def test_reordered_blocks_are_one_network_with_one_latency():
    """Why the key is right: reordering a stage's later blocks changes the subnet, not the DPU network."""
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(40):
        a = SPACE.validate({**SPACE.sample(rng), "ks": [3] * SPACE.n_blocks})  # small kernels: compiles
        b = _reordered(a)
        if SPACE.arch_id(a) == SPACE.arch_id(b):
            continue
        net, sub = network_keys(SPACE, SPACE.encode([a, b]))
        assert net[0] == net[1] and sub[0] != sub[1]
        assert _sim_ms(a) == pytest.approx(_sim_ms(b), rel=1e-12)
        checked += 1
        if checked == 5:
            break
    assert checked == 5
    c = SPACE.validate({**a, "e": [6 if e == 3 else 3 for e in a["e"]]})  # other ops: another network
    assert len(set(network_keys(SPACE, SPACE.encode([a, c]))[0])) == 2


@pytest.fixture(scope="module")
def searched():
    """A search whose proxy ties reordered subnets (same MACs), on a table where they also tie in latency
    (per-choice block costs, as on the DPU), as in the issue's report (rows 0-2 identical)."""
    from ofa_hw.blocktable import BlockTable
    from ofa_hw.search import TableLatency

    accuracy = FlopsProxy(SPACE)
    macs = accuracy.macs_table
    table = BlockTable(SPACE, macs.fixed / 3e8 + 0.3, macs.blocks / 3e8 + 0.03)
    latency = TableLatency(table)
    finder = EvolutionFinder(
        SPACE,
        LatencyConstraint(latency, 0.0, "test"),
        accuracy,
        params=EvolutionParams(generations=80),
        seed=0,
    )
    return finder.run(4.0, progress=False), latency, accuracy, table


def _with_reorders(result, n: int = 3):
    """``result`` as if the search had also found a reordered twin of each of its ``n`` best subnets
    (same MACs: same proxy score, the ties behind the issue's identical report rows)."""
    from dataclasses import replace

    from ofa_hw.search.evolution import Evaluated

    best = result.top(n)
    twins = SPACE.encode([_reordered(c.arch) for c in best])
    extra = Evaluated(
        twins,
        np.array([c.accuracy for c in best]),
        np.array([c.predicted_ms for c in best]),
        np.array([c.std_ms for c in best]),
        np.array([c.bound_ms for c in best]),
    )
    return replace(result, evaluated=Evaluated.concat([result.evaluated, extra]))


def test_top_k_differs_as_networks_and_says_what_each_stands_for(searched):
    result = _with_reorders(searched[0])
    old = result.top(10)
    net_old, _ = network_keys(SPACE, np.stack([c.genes for c in old]))
    assert len(set(net_old)) < 10  # the problem: distinct subnets, but repeated networks

    picked = top_networks(SPACE, result, 10)
    assert len(picked) == 10
    nets, subs = network_keys(SPACE, np.stack([c.genes for c, _ in picked]))
    assert len(set(nets)) == 10 and len(set(subs)) == 10
    acc = [c.accuracy for c, _ in picked]
    assert acc == sorted(acc, reverse=True) and acc[0] == result.best.accuracy
    assert all(n >= 1 for _, n in picked) and any(n > 1 for _, n in picked)
    # stands_for counts the distinct searched subnets of that network
    all_net, all_sub = network_keys(SPACE, result.evaluated.genes)
    first_net = network_keys(SPACE, np.stack([picked[0][0].genes, *result.evaluated.genes]))[0]
    same = first_net[1:] == first_net[0]
    assert picked[0][1] == len(set(all_sub[same]))


def test_deployed_measurements_carry_stands_for(searched):
    from ofa_hw.search.verify import Measurement, net_name_for

    result, latency, accuracy, table = searched

    def measure(cands, rnd):
        times = table.evaluate(np.stack([c.genes for c in cands]))
        return [Measurement(c, rnd, net_name_for(c.arch_id), float(t)) for c, t in zip(cands, times)]

    v = search_and_verify(
        SPACE, latency, accuracy, 4.0, measure, params=EvolutionParams(generations=80), k_sigma=0.0, top_k=6
    )
    meas = v.rounds[0].measurements
    assert (
        len(meas) == 6 and len(set(network_keys(SPACE, np.stack([m.candidate.genes for m in meas]))[0])) == 6
    )
    expected = [n for _, n in top_networks(SPACE, v.rounds[0].result, 6)]
    assert [m.stands_for for m in meas] == expected
