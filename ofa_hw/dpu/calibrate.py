"""Fit the timing model's free constants to measured DNNDK profiles.

Least squares on the relative error of every node (plus one term for each profile's total, so the
sum stays right), with every constant bounded to a physically plausible range (:data:`BOUNDS`).
The result is a :class:`DPUConfig` carrying the fitted constants, ready to save as a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ofa_hw.dpu.compiler import CompiledNet, compile_net
from ofa_hw.dpu.config import DPUConfig
from ofa_hw.dpu.profile import Profile
from ofa_hw.dpu.timing import node_times_ms

#: Free constants and their physical ranges (see experiments/calibration/README.md for the reasoning).
BOUNDS: dict[str, tuple[float, float]] = {
    # ZCU102 DDR4-2133/2400, 64 bit: 17–19 GB/s peak shared by all masters; PG338 puts one B4096
    # core's need at 3–6.5 GB/s. Below 2 GB/s or above the DDR peak is not a DPU on this board.
    "ddr_bw_gbps": (2.0, 19.2),
    # Instruction fetch + DDR round trips + end-of-node sync: microseconds, not nanoseconds or ms.
    "node_overhead_us": (2.0, 40.0),
    # Pipeline fill/drain of a tile: at most a few thousand cycles (a few µs at 300 MHz).
    "tile_overhead_cycles": (0.0, 2000.0),
    # Line-buffer latency per depthwise row: up to about one kernel window (≤ 7·7 … 128 cycles).
    "dw_row_cycles": (0.0, 128.0),
    # The DPU double-buffers LOAD/SAVE against CONV (PG338): most of the shorter side is hidden.
    "mem_overlap": (0.9, 1.0),
    "engine_overlap": (0.0, 1.0),
}
FREE = tuple(BOUNDS)


@dataclass(frozen=True, eq=False)
class Calibration:
    """Result of :func:`calibrate`.

    Attributes:
        dpu: The input DPU with the fitted constants (name and provenance set).
        constants: Fitted value of each free constant.
        node_mape: Mean |sim/measured - 1| over all nodes of all profiles.
        total_error: Mean over profiles of (sim total / measured total - 1), signed.
        table: Per node: profile, name, measured_ms, simulated_ms, rel_error.
        before: The same figures with the starting constants (``node_mape``, ``total_error``).
    """

    dpu: DPUConfig
    constants: dict[str, float]
    node_mape: float
    total_error: float
    table: pd.DataFrame
    before: dict[str, float] = field(default_factory=dict)


def _match(cn: CompiledNet, prof: Profile, label: str) -> np.ndarray:
    """Positions of the measured nodes in the compiled net; the node lists must agree."""
    sim = [n.name for n in cn.nodes]
    meas = prof.nodes["name"].tolist()
    if sim != meas:
        missing = sorted(set(meas) - set(sim))[:5]
        extra = sorted(set(sim) - set(meas))[:5]
        raise ValueError(
            f"{label}: the compiled node list differs from the measured one "
            f"(measured only: {missing}, compiled only: {extra}); is the network/arch the one profiled?"
        )
    return prof.nodes["runtime_ms"].to_numpy(dtype=float)


def _figures(cns, measured, dpu) -> tuple[np.ndarray, np.ndarray, list[float]]:
    sims = [node_times_ms(cn, dpu) for cn in cns]
    rel = np.concatenate([s / m - 1.0 for s, m in zip(sims, measured)])
    totals = [float(s.sum() / m.sum() - 1.0) for s, m in zip(sims, measured)]
    return np.concatenate(sims), rel, totals


def calibrate(
    pairs: Sequence[tuple[Any, Profile]],
    base: DPUConfig,
    free: Sequence[str] = FREE,
    name: str | None = None,
    total_weight: float | None = None,
) -> Calibration:
    """Fit ``free`` constants of ``base`` so the simulator reproduces the measured profiles.

    Args:
        pairs: ``(netspec or compiled net, measured Profile)``; node names must match the compiled net's.
        base: Hardware description and starting constants (only ``free`` fields change).
        free: Names of the constants to fit (subset of :data:`BOUNDS`).
        name: Name of the resulting preset (default: ``base.name``).
        total_weight: Weight of each profile's total-error residual (default √nodes: the total counts
            as much as the nodes together).
    """
    unknown = sorted(set(free) - set(BOUNDS))
    if unknown:
        raise ValueError(f"calibrate: no bounds for {unknown}; free constants are {sorted(BOUNDS)}")
    if not pairs:
        raise ValueError("calibrate: no measured profiles")
    cns = [p if isinstance(p, CompiledNet) else compile_net(p, base) for p, _ in pairs]
    measured = [_match(cn, prof, f"profile {i} ({prof.kernel})") for i, (cn, (_, prof)) in enumerate(zip(cns, pairs))]
    n_nodes = sum(len(m) for m in measured)
    w_total = np.sqrt(n_nodes) if total_weight is None else total_weight
    lo = np.array([BOUNDS[k][0] for k in free])
    hi = np.array([BOUNDS[k][1] for k in free])
    x0 = np.clip(np.array([float(getattr(base, k)) for k in free]), lo, hi)

    def residuals(x: np.ndarray) -> np.ndarray:
        dpu = base.replace(**dict(zip(free, map(float, x))))
        _, rel, totals = _figures(cns, measured, dpu)
        return np.concatenate([rel, w_total * np.asarray(totals)])

    _, rel0, tot0 = _figures(cns, measured, base)
    # Several starts: the max() terms make the surface piecewise smooth with shallow local minima.
    best = None
    rng = np.random.default_rng(0)
    starts = [x0] + [lo + (hi - lo) * rng.uniform(0.1, 0.9, size=len(free)) for _ in range(5)]
    for start in starts:
        fit = least_squares(residuals, start, bounds=(lo, hi), x_scale=np.maximum(hi - lo, 1e-9) / 10)
        if best is None or fit.cost < best.cost:
            best = fit
    constants = {k: float(round(v, 6)) for k, v in zip(free, best.x)}
    sources = ", ".join(sorted({prof.kernel for _, prof in pairs}))
    dpu = base.replace(name=name or base.name, calibrated_on=f"DNNDK profiles: {sources}", **constants)
    sims, rel, totals = _figures(cns, measured, dpu)
    rows = []
    k = 0
    for i, ((_, prof), m) in enumerate(zip(pairs, measured)):
        for nm, mv in zip(prof.nodes["name"], m):
            rows.append({"profile": i, "kernel": prof.kernel, "name": nm, "measured_ms": mv, "simulated_ms": sims[k], "rel_error": rel[k]})
            k += 1
    return Calibration(
        dpu=dpu,
        constants=constants,
        node_mape=float(np.mean(np.abs(rel))),
        total_error=float(np.mean(totals)),
        table=pd.DataFrame(rows),
        before={"node_mape": float(np.mean(np.abs(rel0))), "total_error": float(np.mean(tot0))},
    )


def _single(op_kwargs: dict, dpu: DPUConfig):
    from ofa_hw.dpu.compiler import Op, compile_ops

    op = Op(index=0, name="conv_1", inputs=(-1,), **op_kwargs)
    return compile_ops([op], dpu, "probe", (op.in_c, op.in_h, op.in_w))


def sanity_figures(dpu: DPUConfig) -> dict[str, float]:
    """Utilisation / bandwidth of ordinary layers the model was *not* fitted on (plausibility checks).

    * ``conv3x3_c64_56_util``: 3×3 conv 64→64 at 56² (observed on ZCU102: ~92 %).
    * ``conv3x3_c128_28_util``, ``conv3x3_c256_14_util``: the same at 28² / 14² (observed ~80 %).
    * ``stem_3ch_util``: first layer 3×3 s2 3→32 at 224² (observed 16–19 %).
    * ``fc_1280x1000_gbs``, ``fc_4096x4096_gbs``: weight bytes / runtime of FC layers (observed 5–7 GB/s).
    """
    def conv(c_in, c_out, hw, k=3, s=1):
        out = -(-hw // s)
        return dict(kind="conv", in_h=hw, in_w=hw, in_c=c_in, out_h=out, out_w=out, out_c=c_out, kh=k, kw=k, stride=s, act="relu")

    def fc(c_in, c_out):
        return dict(kind="fc", in_h=1, in_w=1, in_c=c_in, out_h=1, out_w=1, out_c=c_out)

    out = {}
    for key, kw in {
        "conv3x3_c64_56_util": conv(64, 64, 56),
        "conv3x3_c128_28_util": conv(128, 128, 28),
        "conv3x3_c256_14_util": conv(256, 256, 14),
        "stem_3ch_util": conv(3, 32, 224, s=2),
    }.items():
        cn = _single(kw, dpu)
        t = float(node_times_ms(cn, dpu)[0])
        out[key] = cn.nodes[0].workload_mop / t / dpu.peak_gops
    for key, kw in {"fc_1280x1000_gbs": fc(1280, 1000), "fc_4096x4096_gbs": fc(4096, 4096)}.items():
        cn = _single(kw, dpu)
        t = float(node_times_ms(cn, dpu)[0])
        out[key] = cn.ops[0].weights / (t * 1e6)
    return out
