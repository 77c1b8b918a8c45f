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
from ofa_hw.lut.table import CSV_COLUMNS, LatencyTable, LutError, LutMeta
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import compile_net, layer_times_ms
from ofa_hw.space import SearchSpace
from ofa_hw.store import dpu_config_dict


def check_dpu_only(space: SearchSpace, dpu: DPUConfig) -> None:
    """Refuse a space whose networks the DPU's toolchain splits between DPU and CPU.

    A LUT holds per-block DPU times (what a DPU profile reports); when the compiler leaves operators to
    the CPU (MobileNetV3's h-swish and squeeze-excite under the ``dnndk`` toolchain, which has no hard
    activations) the CPU parts and extra subgraph launches would be missing from every key.

    Raises:
        LutError: one line naming the space, the DPU and the operators on the CPU.
    """
    if not isinstance(space, SearchSpace):  # ResNet-50: the largest arch has every operator kind
        arch = {"d": [space.max_depth] * 5, "e": [max(space.expand_list)] * space.n_blocks}
        ns = build_netspec(
            space, arch | {"w": [len(space.width_mult_list) - 1] * 6, "r": max(space.resolutions)}
        )
    else:
        ns = build_netspec(
            space,
            {
                "ks": [min(space.ks_list)] * space.n_blocks,
                "e": [min(space.expand_list)] * space.n_blocks,
                "d": space.max_depth_d,
                "r": max(space.resolutions),
            },
        )
    cn = compile_net(ns, dpu)
    cpu = cn.cpu_parts
    if cpu:
        kinds = sorted({(cn.ops[i].act or cn.ops[i].kind) for part in cpu for i in part.ops})
        raise LutError(
            f"space '{space.name}' on dpu '{dpu.name}': the {dpu.tools.name} toolchain runs {', '.join(kinds)} on "
            f"the CPU ({len(cpu)} CPU subgraphs per network), so a per-block DPU LUT cannot hold its latency; "
            "use a DPU with hard activations (DPU IP v4.x, XIR toolchain, e.g. dpu=ultra96_b2304)"
        )


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
        # the nodes the compiled network has: a profile of another network is refused, not stretched
        starts = [node.layers[0] for node in compile_net(ns, dpu).nodes if node.layers]
        tables = list(outcome.measured.runs) or [outcome.measured.nodes]
        for table in tables:
            bt = block_times(ns, table, layer_ms, starts)
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
