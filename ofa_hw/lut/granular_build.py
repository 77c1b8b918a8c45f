"""Build a LUT at ``lut.granularity=block`` or ``network``, under the full or the budget plan.

What is measured (through the store, so a killed build resumes):

* ``block`` + ``full``: every compilable key's own network (the keys the full plan's probes cover),
  plus the plan's validation subnets whole (the overhead and the check).
* ``block`` + ``budget``: about ``lut.max_subnets`` networks: ``lut.overhead_subnets`` shallow subnets
  whole with every key of theirs (the overhead needs their LUT sums), then keys of ``lut.max_subnets``
  balanced max-depth subnets (the budget plan's seed probes), spread over block positions, each as its
  own network, up to the budget (the predictor covers the other keys).
* ``network`` + ``full``: ``lut.validation_subnets`` random subnets whole.
* ``network`` + ``budget``: the budget plan's active loop over whole subnets; after each batch the
  simulator is re-fitted to them and the predictor refitted on the calibrated simulator's LUT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.lut.active import active_settings, run_active
from ofa_hw.lut.blocks import key_jobs
from ofa_hw.lut.coarse import block_table, network_table, whole_check
from ofa_hw.lut.cost import CostEstimate, MeteredBackend, announce, estimate
from ofa_hw.lut.plan import dpu_compile_check, plan_probes, plan_seed_probes, uncompilable_cells
from ofa_hw.lut.table import LatencyTable, LutError
from ofa_hw.space import Arch, SearchSpace
from ofa_hw.store import profile_jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """The networks a coarse build measures: key networks and whole subnets."""

    keys: tuple[ProfileJob, ...]
    whole: tuple[ProfileJob, ...]
    upper_bound: bool
    subnets: int = 0


def plan(
    space: SearchSpace,
    backend: Backend,
    lut_cfg: Any,
    resolutions: Sequence[int],
    runs: int,
    granularity: str,
    plan_kind: str,
) -> Planned:
    """The key networks and whole subnets of a ``block``/``network`` build (network+budget: the seed batch)."""
    check = dpu_compile_check(backend.dpu)
    seed = int(lut_cfg.seed)

    def whole(archs: Sequence[Arch], prefix: str) -> tuple[ProfileJob, ...]:
        return tuple(ProfileJob.create(space, a, f"{prefix}{i}", runs, seed) for i, a in enumerate(archs))

    if plan_kind == "budget":
        n = int(lut_cfg.max_subnets)
        archs = plan_seed_probes(space, check, resolutions, n, seed)
        if granularity == "network":
            return Planned((), whole(archs, "probe_n"), True)
        # The budget counts networks. The overhead subnets (shallowest depth: fewest keys) need every
        # key of theirs measured; the rest of the budget spreads keys over positions and subnets.
        shallow = [space.validate({**a, "d": [min(space.depth_list)] * len(a["d"])}) for a in archs]
        n_whole = max(1, min(int(lut_cfg.overhead_subnets), len(shallow)))
        covered = key_jobs(space, shallow[:n_whole], runs, seed)
        keys = key_jobs(space, archs, runs, seed, limit=max(n - n_whole, len(covered)), after=covered)
        return Planned(tuple(keys), whole(shallow[:n_whole], "probe_w"), True, len(archs))
    full = plan_probes(
        space,
        check,
        resolutions=resolutions,
        coverage=1,
        validation_subnets=int(lut_cfg.validation_subnets),
        seed=seed,
    )
    if granularity == "network":
        return Planned((), whole(full.validation, "val_"), False)
    keys = key_jobs(space, full.probes, runs, seed)
    return Planned(
        tuple(keys), whole(full.validation, "val_"), False, len(full.probes) + len(full.validation)
    )


def planned_cost(
    space: SearchSpace,
    backend: Backend,
    store: Any,
    lut_cfg: Any,
    resolutions: Sequence[int],
    runs: int,
    granularity: str,
    plan_kind: str,
) -> CostEstimate:
    """The cost line of a coarse build: subnets, networks (keys + whole subnets), compiles and board runs."""
    p = plan(space, backend, lut_cfg, resolutions, runs, granularity, plan_kind)
    if granularity == "network" and plan_kind == "budget":
        n = int(lut_cfg.max_subnets)
        return estimate(backend, store, n, upper_bound=True, granularity=granularity)
    networks = len(p.keys) + len(p.whole)
    subnets = p.subnets if granularity == "block" else len(p.whole)
    return estimate(
        backend, store, subnets, upper_bound=p.upper_bound, granularity=granularity, networks=networks
    )


def build(
    space: SearchSpace,
    backend: Backend,
    store: Any,
    lut_cfg: Any,
    resolutions: Sequence[int],
    runs: int,
    granularity: str,
    plan_kind: str,
    new_predictor: Callable[[], Any] | None = None,
) -> tuple[LatencyTable, dict[str, Any], CostEstimate, dict[str, float]]:
    """Measure and build: ``(table with its validation, validation figures, announced cost, timings)``."""
    timings: dict[str, float] = {}
    retry = bool(lut_cfg.retry_failed)
    cost = planned_cost(space, backend, store, lut_cfg, resolutions, runs, granularity, plan_kind)
    announce(plan_kind, cost)
    provenance = getattr(backend, "provenance", f"{backend.name} measurements")
    check = dpu_compile_check(backend.dpu)
    uncompilable = sorted(set(uncompilable_cells(space, resolutions, check)[0].values()))
    t = time.perf_counter()
    active: dict[str, Any] | None = None
    with MeteredBackend(backend, cost, desc=f"LUT {granularity} {backend.dpu.name}") as metered:
        if granularity == "network" and plan_kind == "budget":
            outcomes, active = _network_budget(
                space, metered, store, lut_cfg, resolutions, runs, new_predictor
            )
            keys: list[ProfileOutcome] = []
        else:
            p = plan(space, backend, lut_cfg, resolutions, runs, granularity, plan_kind)
            proxy = cast(Backend, metered)  # delegates the backend's identity and profile_many
            keys = profile_jobs(proxy, store, list(p.keys), retry_failed=retry, progress=False)
            outcomes = profile_jobs(proxy, store, list(p.whole), retry_failed=retry, progress=False)
    timings["profile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if granularity == "block":
        table = block_table(space, backend, keys, resolutions, uncompilable, provenance)
    else:
        table, _fit = network_table(space, backend, outcomes, resolutions, provenance)
    check_figures = whole_check(table, space, outcomes)
    failed = [o for o in list(keys) + list(outcomes) if not o.ok]
    if failed:
        log.warning("%d network(s) failed, e.g. %s: %s", len(failed), failed[0].job.net_name, failed[0].error)
    if not any(o.ok for o in outcomes):
        raise LutError(f"none of the whole subnets could be timed on {backend.name}: no overhead, no check")
    validation = {k: v for k, v in check_figures.items() if k != "rows"}
    validation.update(
        plan=plan_kind,
        granularity=granularity,
        check="LUT sum + overhead vs whole subnets timed in normal mode",
    )
    if active is not None:
        validation["active"] = active
    table = LatencyTable(
        table.frame, replace(table.meta, validation=validation, profiled_subnets=sum(o.ok for o in outcomes))
    )
    timings["build_s"] = time.perf_counter() - t
    return table, check_figures, cost, timings


def _network_budget(
    space, backend, store, lut_cfg, resolutions, runs, new_predictor
) -> tuple[list[ProfileOutcome], dict]:
    """The active loop over whole subnets; the predictor is refitted on the re-calibrated simulator's LUT."""
    from ofa_hw.predictor import TrainingSet

    settings = active_settings(lut_cfg)
    seed, retry = int(lut_cfg.seed), bool(lut_cfg.retry_failed)
    check = dpu_compile_check(backend.dpu)

    def measure(archs: list, names: list[str]) -> list:
        jobs = [ProfileJob.create(space, a, n, runs, seed) for a, n in zip(archs, names)]
        return profile_jobs(backend, store, jobs, retry_failed=retry, progress=False)

    def fit(outcomes: list[ProfileOutcome]) -> Any:
        ok = [o for o in outcomes if o.ok]
        if not ok or new_predictor is None:
            return None
        table, _ = network_table(space, backend, ok, resolutions, "network fit")
        nets = TrainingSet.from_outcomes(space, backend.dpu, ok, with_blocks=False).nets
        return new_predictor().fit(TrainingSet.from_lut(table, space, nets))

    result = run_active(space, backend.dpu, check, resolutions, measure, new_predictor, settings, fit=fit)
    return list(result.outcomes), result.to_dict()
