"""LUTs from coarser measurements than per-node profiles: ``lut.granularity=block`` and ``network``.

* :func:`block_table`: each key's own small network timed in normal mode is the key's LUT time; whole
  subnets timed in normal mode give the overhead (network latency = LUT sum + overhead) and the check.
* :func:`network_table`: only whole subnets timed in normal mode; the simulator's constants are fitted
  to them (:func:`ofa_hw.sim.calibrate.calibrate`, what ``task=calibrate`` does), and the LUT is the
  calibrated simulator's, profiled over the full coverage plan (milliseconds per subnet).

Both record the granularity, the overhead and the whole-subnet check in the table's ``validation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import pandas as pd

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.backends.sim import SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut.build import aggregate, build_lut
from ofa_hw.lut.plan import dpu_compile_check, plan_probes
from ofa_hw.lut.table import CSV_COLUMNS, LatencyTable, LutError, LutMeta
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import compile_net
from ofa_hw.sim.calibrate import Measurement, calibrate
from ofa_hw.space import SearchSpace
from ofa_hw.store import dpu_config_dict

#: Constants fitted to whole-network times (what a handful of totals can inform), pulled to the preset's.
NETWORK_FREE = ("ddr_bw_gbps", "node_overhead_us", "tile_overhead_cycles")
NETWORK_PRIOR = 0.3


def whole_check(
    table: LatencyTable, space: SearchSpace, outcomes: Sequence[ProfileOutcome]
) -> dict[str, Any]:
    """LUT sum (+ the mean overhead) vs the measured whole-subnet times of ``outcomes``.

    Returns:
        ``overhead_ms`` (mean measured − LUT sum), ``mape_sum`` (LUT sum alone), ``mape`` (with the
        overhead: in-sample on these subnets), ``subnets`` and per-subnet ``rows``.
    """
    rows = []
    for o in outcomes:
        if not o.ok or o.profile is None:
            continue
        rows.append(
            {
                "net": o.job.net_name,
                "measured_ms": float(o.profile.total_ms),
                "lut_sum_ms": table.predict(space, o.job.arch),
            }
        )
    if not rows:
        return {"subnets": 0, "overhead_ms": 0.0, "mape_sum": None, "mape": None, "rows": []}
    frame = pd.DataFrame(rows)
    overhead = float((frame["measured_ms"] - frame["lut_sum_ms"]).mean())
    frame["predicted_ms"] = frame["lut_sum_ms"] + overhead
    ape = (frame["predicted_ms"] - frame["measured_ms"]).abs() / frame["measured_ms"]
    ape_sum = (frame["lut_sum_ms"] - frame["measured_ms"]).abs() / frame["measured_ms"]
    frame["ape"] = ape
    return {
        "subnets": len(frame),
        "overhead_ms": overhead,
        "mape_sum": float(ape_sum.mean()),
        "mape": float(ape.mean()),
        "max_ape": float(ape.max()),
        "rows": frame.to_dict("records"),
    }


def block_table(
    space: SearchSpace,
    backend: Backend,
    key_outcomes: Sequence[ProfileOutcome],
    resolutions: Sequence[int],
    uncompilable: Sequence[str],
    provenance: str,
) -> LatencyTable:
    """The LUT of the keys' own networks: each key's time is its network's total (every run a sample)."""
    keys, times = [], []
    for o in key_outcomes:
        if not o.ok or o.profile is None:
            continue
        tables = list(o.profile.runs) or [o.profile.nodes]
        for t in tables:
            keys.append(o.job.key)  # type: ignore[attr-defined]  # a BlockJob
            times.append(float(t["runtime_ms"].sum()))
    if not keys:
        raise LutError(f"none of the {len(key_outcomes)} key networks could be profiled on {backend.name}")
    frame = aggregate(pd.DataFrame({"key": keys, "ms": times}))
    fingerprint = backend.dpu.fingerprint()
    frame["dpu_fingerprint"], frame["toolchain"], frame["backend"] = (
        fingerprint,
        backend.toolchain,
        backend.name,
    )
    meta = LutMeta(
        space=space.name,
        resolutions=tuple(int(r) for r in resolutions),
        dpu_name=str(backend.dpu.name),
        dpu_fingerprint=fingerprint,
        backend=backend.name,
        toolchain=backend.toolchain,
        runs=max(o.job.runs for o in key_outcomes if o.ok),
        provenance=provenance + " (per-key networks, normal mode)",
        dpu_config=dpu_config_dict(backend.dpu),
        uncompilable=tuple(sorted(uncompilable)),
        profiled_subnets=0,
    )
    return LatencyTable(frame[list(CSV_COLUMNS)], meta)


def fit_simulator(space: SearchSpace, dpu: DPUConfig, outcomes: Sequence[ProfileOutcome]) -> Any:
    """The simulator's constants fitted to the whole-subnet times of ``outcomes`` (a Calibration)."""
    data = []
    for o in outcomes:
        if not o.ok or o.profile is None:
            continue
        net = compile_net(build_netspec(space, o.job.arch, o.job.net_name), dpu)
        data.append(
            Measurement.whole(net, float(o.profile.total_ms), o.job.net_name, "normal-mode subnet time")
        )
    if not data:
        raise LutError("no whole subnet could be timed: nothing to fit the simulator to")
    # a constant per measured network at most (one network fixes one constant), always at least one
    free = list(NETWORK_FREE)[: max(1, min(len(NETWORK_FREE), len(data) - 1))]
    return calibrate(data, dpu, free=free, prior_weight=NETWORK_PRIOR, starts=2)


def network_table(
    space: SearchSpace,
    backend: Backend,
    outcomes: Sequence[ProfileOutcome],
    resolutions: Sequence[int],
    provenance: str,
) -> tuple[LatencyTable, Any]:
    """The calibrated simulator's LUT (full coverage plan), labelled as ``backend``'s: ``(table, calibration)``."""
    fit = fit_simulator(space, backend.dpu, outcomes)
    sim = SimBackend(fit.dpu)
    check = dpu_compile_check(backend.dpu)
    plan = plan_probes(space, check, resolutions=resolutions, coverage=1, validation_subnets=0, seed=0)
    jobs = [ProfileJob.create(space, a, n, 1, 0) for a, n in zip(plan.probes, plan.probe_names())]
    sim_outcomes = list(sim.profile_many(jobs))
    # the numbers are the calibrated simulator's; the table belongs to the configured backend and DPU
    table = build_lut(
        space,
        cast(Backend, _Identity(backend)),
        sim_outcomes,
        plan.resolutions,
        plan.uncompilable,
        provenance,
    )
    meta = replace(
        table.meta,
        provenance=f"{provenance}: simulator calibrated on {len(fit.table)} whole subnets "
        f"(MAPE {fit.node_mape:.2%}, constants {', '.join(f'{k}={v:.4g}' for k, v in fit.constants.items())})",
        profiled_subnets=sum(o.ok for o in outcomes),
    )
    return LatencyTable(table.frame, meta), fit


class _Identity:
    """A backend's identity (name, toolchain, DPU) for labelling a table measured otherwise."""

    def __init__(self, backend: Backend) -> None:
        self.name, self.toolchain, self.dpu = backend.name, backend.toolchain, backend.dpu
