"""Build a :class:`LatencyTable` from profiled subnets and check it against whole-network times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ofa_hw.backends.base import Backend, ProfileOutcome
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut.mapping import block_times
from ofa_hw.lut.table import CSV_COLUMNS, LatencyTable, LutMeta
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import layer_times_ms
from ofa_hw.space import SearchSpace
from ofa_hw.store import dpu_config_dict


def block_samples(space: SearchSpace, dpu: DPUConfig, outcomes: Sequence[ProfileOutcome]) -> pd.DataFrame:
    """Per-block time samples of the ok outcomes: one row per (subnet, run, block).

    Each profile-mode run's table is a sample (the aggregate table when a profile has no per-run
    tables), so a key's spread holds both run-to-run jitter and its different network contexts.

    Returns:
        Columns ``key, ms, net``.
    """
    keys: list[str] = []
    times: list[float] = []
    nets: list[str] = []
    for outcome in outcomes:
        if not outcome.ok:
            continue
        ns = build_netspec(space, outcome.job.arch, name=outcome.job.net_name)
        layer_ms = np.asarray(layer_times_ms(ns, dpu), dtype=float)
        tables = list(outcome.measured.runs) or [outcome.measured.nodes]
        for table in tables:
            bt = block_times(ns, table, layer_ms)
            keys.extend(b.key for b in ns.blocks)
            times.extend(bt.tolist())
            nets.extend([outcome.job.net_name] * len(ns.blocks))
    return pd.DataFrame({"key": keys, "ms": times, "net": nets})


def aggregate(samples: pd.DataFrame) -> pd.DataFrame:
    """Per-key ``count, mean_ms, std_ms, min_ms, median_ms`` (std is 0 for a single sample)."""
    grouped = samples.groupby("key", sort=True)["ms"]
    frame = pd.DataFrame(
        {
            "count": grouped.count(),
            "mean_ms": grouped.mean(),
            "std_ms": grouped.std(ddof=1).fillna(0.0),
            "min_ms": grouped.min(),
            "median_ms": grouped.median(),
        }
    )
    return frame.reset_index()


def build_lut(
    space: SearchSpace,
    backend: Backend,
    outcomes: Sequence[ProfileOutcome],
    resolutions: Sequence[int],
    uncompilable: Sequence[str] = (),
    provenance: str = "",
) -> LatencyTable:
    """Aggregate the profiles of ``outcomes`` (measured on ``backend``) into a LUT with provenance."""
    ok = [o for o in outcomes if o.ok]
    if not ok:
        raise ValueError(f"no successful profiles to build a LUT of space '{space.name}' from")
    frame = aggregate(block_samples(space, backend.dpu, ok))
    fingerprint = backend.dpu.fingerprint()
    frame["dpu_fingerprint"] = fingerprint
    frame["toolchain"] = backend.toolchain
    frame["backend"] = backend.name
    meta = LutMeta(
        space=space.name,
        resolutions=tuple(int(r) for r in resolutions),
        dpu_name=str(backend.dpu.name),
        dpu_fingerprint=fingerprint,
        backend=backend.name,
        toolchain=backend.toolchain,
        runs=max(o.job.runs for o in ok),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        provenance=provenance,
        dpu_config=dpu_config_dict(backend.dpu),
        uncompilable=tuple(sorted(uncompilable)),
        profiled_subnets=len({o.job.arch_id for o in ok}),
    )
    return LatencyTable(frame[list(CSV_COLUMNS)], meta)


def validate_lut(
    table: LatencyTable, space: SearchSpace, outcomes: Sequence[ProfileOutcome]
) -> dict[str, Any]:
    """LUT sum vs measured whole-network (profile-mode) time of the ok ``outcomes``.

    Returns:
        ``{'subnets', 'mape', 'max_ape', 'rows'}``: errors as fractions; ``rows`` has one dict per subnet
        (``net, measured_ms, predicted_ms, ape``). ``mape`` is ``None`` without validation subnets.
    """
    rows = []
    for outcome in outcomes:
        if not outcome.ok:
            continue
        measured = float(outcome.measured.total_ms)
        predicted = table.predict(space, outcome.job.arch)
        rows.append(
            {
                "net": outcome.job.net_name,
                "measured_ms": measured,
                "predicted_ms": predicted,
                "ape": abs(predicted - measured) / measured,
            }
        )
    apes = np.array([r["ape"] for r in rows])
    return {
        "subnets": len(rows),
        "mape": float(apes.mean()) if rows else None,
        "max_ape": float(apes.max()) if rows else None,
        "rows": rows,
    }
