"""Fit the timing model's free constants to measured times: DNNDK node profiles or vaitrace subgraph times.

A :class:`Measurement` is one compiled network and measured times of some of its parts: every node
(a DNNDK profile), every DPU subgraph (a vaitrace summary) or the whole network (a per-model time).
The fit is least squares on the relative error of every measured part, each network's parts weighted
so that every network counts as much as any other (plus one term for each network's total when it
has several parts, so the sum stays right), with every constant bounded to a
physically plausible range (:data:`BOUNDS`). The on-chip buffer share ``fm_keep_fraction`` is a
threshold (a tensor spills or not), so it is searched over the intervals the measured tensors
define, with the smooth constants fitted inside each. The result is a :class:`DPUConfig` carrying
the fitted constants, ready to save as a preset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ofa_hw.dpu.config import DPUConfig, round_sig
from ofa_hw.formats.profile import Profile
from ofa_hw.sim.compiler import CompiledNet, compile_net
from ofa_hw.sim.timing import NodeTerms, node_terms, node_times_ms, stack_terms, terms_times_ms

#: Free constants and their physical ranges (see experiments/calibration/README.md for the reasoning).
BOUNDS: dict[str, tuple[float, float]] = {
    # From an Ultra96's 32-bit LPDDR4 (one DPU port measured at ~1.8 GB/s) to the ZCU102's 64-bit DDR4
    # peak (17–19 GB/s shared by all masters; PG338 puts one B4096 core's need at 3–6.5 GB/s).
    "ddr_bw_gbps": (1.0, 19.2),
    # Weight loads: from a fifth to twice the feature-map bandwidth (own load path, other burst sizes).
    "weight_bw_ratio": (0.2, 2.0),
    # Instruction fetch + DDR round trips + end-of-node sync: microseconds, not nanoseconds or ms.
    "node_overhead_us": (2.0, 40.0),
    # DMA descriptors / DDR page misses per MB a node moves: at most a DDR-latency-bound 100 µs per MB.
    "node_overhead_us_per_mb": (0.0, 100.0),
    # Pipeline fill/drain of a tile: at most a few thousand cycles (a few µs at 300 MHz).
    "tile_overhead_cycles": (0.0, 2000.0),
    # Line-buffer latency per depthwise row: up to about one kernel window (≤ 7·7 … 128 cycles).
    "dw_row_cycles": (0.0, 128.0),
    # The DPU double-buffers LOAD/SAVE against CONV (PG338): most of the shorter side is hidden.
    "mem_overlap": (0.9, 1.0),
    "engine_overlap": (0.0, 1.0),
    # A tensor between two nodes may take a quarter to all of the feature-map buffer before it spills.
    "fm_keep_fraction": (0.25, 1.0),
    # Hard-swish / hard-sigmoid: free (fused into the save path) up to four element-wise passes.
    "hard_act_passes": (0.0, 4.0),
    # The node floor reaches 63 % at this many kB moved: "tiny" is a node whose whole traffic is a
    # few times its own instruction stream (1.7 kB); 0: no shrinking. Ordinary nodes (≥ 40 kB on the
    # seed) keep the full floor, so networks without tiny nodes cannot drag it elsewhere.
    "node_overhead_knee_kb": (0.0, 8.0),
    # DDR latency of one weight load in bytes of transfer: up to 1 µs at 8 GB/s.
    "weight_burst_bytes": (0.0, 8192.0),
    # Least DDR transfer per scattered output pixel: up to four 64-byte bursts.
    "scatter_burst_bytes": (0.0, 256.0),
}
FREE = tuple(BOUNDS)
#: Order in which constants are freed when ``free`` is not given: what dominates a block's time on any
#: board first (DDR bandwidth, per-node cost, the IP's hard-activation cost, the on-chip buffer), the
#: second-order pipeline terms last. See :func:`default_free`.
PRIORITY = (
    "ddr_bw_gbps", "node_overhead_us", "hard_act_passes", "fm_keep_fraction", "weight_bw_ratio",
    "node_overhead_us_per_mb", "tile_overhead_cycles", "dw_row_cycles", "mem_overlap", "engine_overlap",
    "weight_burst_bytes", "node_overhead_knee_kb", "scatter_burst_bytes",
)  # fmt: skip
#: The constants of the first (DNNDK, seed-profile) model: what ``calibrate=seed`` fits.
SEED_FREE = (
    "ddr_bw_gbps",
    "node_overhead_us",
    "tile_overhead_cycles",
    "dw_row_cycles",
    "mem_overlap",
    "engine_overlap",
)
#: A constant is fitted only if moving it across its bounds changes some measured part by more than this.
INFORMATIVE_RTOL = 1e-2
#: Constants fitted by searching intervals rather than by gradient (the model is a step in them).
THRESHOLDS = ("fm_keep_fraction",)


@dataclass(frozen=True, eq=False)
class Measurement:
    """Measured times of parts of one compiled network.

    Attributes:
        net: The network compiled for the measured DPU.
        label: Name of the measurement (profile kernel, CSV row, file).
        parts: Node positions (0-based) of each measured part.
        names: Name of each part (node, subgraph or network name).
        measured_ms: Measured time of each part (ms).
        source: What measured it (``DNNDK profile``, ``vaitrace``, ``CSV``) for provenance.
        group: Measurements of one group weigh as one network in the fit (default: each its own).
    """

    net: CompiledNet
    label: str
    parts: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    measured_ms: np.ndarray
    source: str
    group: str = ""

    @classmethod
    def from_profile(cls, net: CompiledNet, prof: Profile, label: str | None = None) -> Measurement:
        """Every node of a DNNDK profile (node names must match the compiled net's)."""
        times = _match(net, prof, label or f"profile {prof.kernel}")
        return cls(
            net,
            prof.kernel,
            tuple((i,) for i in range(len(times))),
            tuple(prof.nodes["name"]),
            times,
            "DNNDK profiles",
        )

    @classmethod
    def whole(cls, net: CompiledNet, time_ms: float, label: str, source: str, group: str = "") -> Measurement:
        """One time for all DPU nodes of ``net`` (a per-model or single-subgraph measurement)."""
        if not net.nodes:
            raise ValueError(f"{label}: the network has no DPU node to compare the measured time with")
        parts = (tuple(range(len(net.nodes))),)
        return cls(net, label, parts, (label,), np.array([float(time_ms)]), source, group)

    @classmethod
    def subgraphs(
        cls, net: CompiledNet, times: Sequence[tuple[str, float]], label: str, source: str
    ) -> Measurement:
        """Per-DPU-subgraph times in the order the tools list the subgraphs (vaitrace summary rows)."""
        parts = net.dpu_parts
        if len(parts) != len(times):
            raise ValueError(
                f"{label}: {len(times)} measured DPU subgraph(s) ({', '.join(n for n, _ in times)}) but the network "
                f"compiles into {len(parts)} ({', '.join(p.kernel for p in parts)}) for this DPU; is it the network measured?"
            )
        return cls(
            net,
            label,
            tuple(tuple(i - 1 for i in p.nodes) for p in parts),
            tuple(n for n, _ in times),
            np.array([float(t) for _, t in times]),
            source,
        )


@dataclass(frozen=True, eq=False)
class Calibration:
    """Result of :func:`calibrate`.

    Attributes:
        dpu: The input DPU with the fitted constants (name and provenance set).
        constants: Fitted value of each free constant.
        node_mape: Mean |sim/measured - 1| over all measured parts (nodes, subgraphs or networks).
        total_error: Mean over measurements of (sim total / measured total - 1), signed.
        table: Per measured part: profile, kernel, name, measured_ms, simulated_ms, rel_error.
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
    if len(sim) == len(meas) and all(_same_node(s, m) for s, m in zip(sim, meas)):
        return prof.nodes["runtime_ms"].to_numpy(dtype=float)
    if sim != meas:
        missing = sorted(set(meas) - set(sim))[:5]
        extra = sorted(set(sim) - set(meas))[:5]
        raise ValueError(
            f"{label}: the compiled node list differs from the measured one "
            f"(measured only: {missing}, compiled only: {extra}); is the network/arch the one profiled?"
        )
    return prof.nodes["runtime_ms"].to_numpy(dtype=float)


def _same_node(compiled: str, measured: str) -> bool:
    """Whether a measured node name is the compiled one: equal, or cut by N2Cube to a prefix + ``*``
    (``conv2d_transpose_2_*`` for ``conv2d_transpose_2_conv2d_transpose``)."""
    if measured.endswith("*"):
        return compiled.startswith(measured[:-1]) and len(compiled) >= len(measured)
    return compiled == measured


class _Problem:
    """All measurements stacked: one node-terms table and a (parts × nodes) summing matrix."""

    def __init__(self, data: Sequence[Measurement]) -> None:
        self.data = list(data)
        self.terms: NodeTerms = stack_terms([node_terms(m.net) for m in self.data])
        n_parts = sum(len(m.parts) for m in self.data)
        self.sum = np.zeros((n_parts, len(self.terms.node_bytes)))
        self.owner = np.zeros(n_parts, dtype=int)
        row = offset = 0
        for k, m in enumerate(self.data):
            for part in m.parts:
                self.sum[row, [offset + i for i in part]] = 1.0
                self.owner[row] = k
                row += 1
            offset += len(m.net.nodes)
        self.measured = np.concatenate([m.measured_ms for m in self.data])
        self.multi = [k for k, m in enumerate(self.data) if len(m.parts) > 1]
        # Each network's parts weigh as much together as any other network's (a 42-node profile does
        # not drown a 21-node one; 22 one-part blocks weigh one each): √(parts / (networks · own parts)).
        keys = [m.group or f"#{k}" for k, m in enumerate(self.data)]
        group = np.array([sorted(set(keys)).index(keys[k]) for k in self.owner], dtype=int)
        counts = np.bincount(group).astype(float)
        self.weight = np.sqrt(n_parts / (len(counts) * counts[group])) if n_parts else np.zeros(0)

    def figures(self, dpu: DPUConfig) -> tuple[np.ndarray, np.ndarray, list[float]]:
        sim = self.sum @ terms_times_ms(self.terms, dpu)
        rel = sim / self.measured - 1.0
        totals = [
            float(sim[self.owner == k].sum() / self.measured[self.owner == k].sum() - 1.0)
            for k in range(len(self.data))
        ]
        return sim, rel, totals

    def threshold_candidates(self, dpu: DPUConfig, lo: float, hi: float) -> list[float]:
        """One ``fm_keep_fraction`` per interval between the measured tensor sizes (its midpoint)."""
        sizes = np.unique(self.terms.tensor_bytes / dpu.fm_buffer_bytes)
        edges = np.unique(np.clip(np.concatenate([[lo, hi], sizes[(sizes > lo) & (sizes < hi)]]), lo, hi))
        return [float((a + b) / 2) for a, b in zip(edges[:-1], edges[1:])] or [
            float(np.clip(dpu.fm_keep_fraction, lo, hi))
        ]


def default_free(informative: Sequence[str], n_parts: int) -> list[str]:
    """The constants fitted when none are named: one per three measured parts (at least three), in
    :data:`PRIORITY` order, among those the measurements depend on. The rest keep the base DPU's values.

    On the 22 Ultra96 blocks this beats fitting everything for every training-set size (leave-one-out
    MAPE 9.3 % vs 9.6 %; fitted on 4 / 6 / 11 blocks: 17.9 / 12.1 / 10.6 % vs 22.7 / 17.5 / 12.7 % on the
    rest; ``experiments/calibration/ultra96_b2304``): a handful of blocks pins the dominant constants, not ten.
    """
    ordered = [k for k in PRIORITY if k in informative]
    return ordered[: max(3, n_parts // 3)]


def calibrate(
    data: Sequence[Measurement | tuple[Any, Profile]],
    base: DPUConfig,
    free: Sequence[str] | None = None,
    name: str | None = None,
    total_weight: float | None = None,
    starts: int = 6,
    prior_weight: float = 0.0,
) -> Calibration:
    """Fit ``free`` constants of ``base`` so the simulator reproduces the measurements.

    Args:
        data: :class:`Measurement` objects, or ``(netspec or compiled net, DNNDK Profile)`` pairs.
        base: Hardware description and starting constants (only ``free`` fields change).
        free: Names of the constants to fit (subset of :data:`BOUNDS`); None: :func:`default_free`.
        name: Name of the resulting preset (default: ``base.name``).
        total_weight: Weight of each multi-part measurement's total-error residual (default
            √(parts / such measurements): the totals count as much as the parts together).
        starts: Least-squares starts (the first at ``base``'s constants, the rest seeded random).
        prior_weight: Pull of each constant towards ``base``'s value, as the residual
            ``prior_weight · (x − base) / (bound width)``: keeps constants the data barely inform near
            the starting DPU's when only a few networks are measured (0: none).
    """
    unknown = sorted(set(free or ()) - set(BOUNDS))
    if unknown:
        raise ValueError(f"calibrate: no bounds for {unknown}; free constants are {sorted(BOUNDS)}")
    if not data:
        raise ValueError("calibrate: no measurements")
    measurements = [d if isinstance(d, Measurement) else _from_pair(d, base) for d in data]
    problem = _Problem(measurements)
    n_parts = len(problem.measured)
    w_total = np.sqrt(n_parts / max(len(problem.multi), 1)) if total_weight is None else total_weight
    informative = [k for k in (FREE if free is None else free) if _informative(problem, base, k)]
    free = default_free(informative, n_parts) if free is None else informative
    smooth = [k for k in free if k not in THRESHOLDS]
    thresholds = [k for k in free if k in THRESHOLDS]
    lo = np.array([BOUNDS[k][0] for k in smooth])
    hi = np.array([BOUNDS[k][1] for k in smooth])
    x0 = np.clip(np.array([float(getattr(base, k)) for k in smooth]), lo, hi)

    def residuals(x: np.ndarray, dpu0: DPUConfig) -> np.ndarray:
        dpu = dpu0.replace(**dict(zip(smooth, map(float, x))))
        _, rel, totals = problem.figures(dpu)
        parts = [problem.weight * rel, w_total * np.asarray([totals[k] for k in problem.multi])]
        if prior_weight:
            parts.append(prior_weight * (x - x0) / np.maximum(hi - lo, 1e-12))
        return np.concatenate(parts)

    _, rel0, tot0 = problem.figures(base)
    bases = [base]
    if thresholds and problem.terms.tensor_bytes.size:
        (key,) = thresholds
        bases = [base.replace(**{key: v}) for v in problem.threshold_candidates(base, *BOUNDS[key])]
    elif thresholds:
        thresholds = []  # no tensor between nodes of one subgraph in the data: nothing to learn it from
    # Several starts: the max() terms make the surface piecewise smooth with shallow local minima.
    rng = np.random.default_rng(0)
    points = [x0] + [
        lo + (hi - lo) * rng.uniform(0.1, 0.9, size=len(smooth)) for _ in range(max(starts, 1) - 1)
    ]
    scale = np.maximum(hi - lo, 1e-9) / 10

    def fit_from(b: DPUConfig, start: np.ndarray):
        return least_squares(residuals, start, args=(b,), bounds=(lo, hi), x_scale=scale)

    best, best_base = None, base
    if smooth:
        # Screen every threshold interval from the base constants, then search the best three fully.
        if len(bases) > 3:
            screened = sorted(bases, key=lambda b: fit_from(b, x0).cost)[:3]
            bases = [b for b in bases if b in screened]
        for b in bases:
            for start in points:
                fit = fit_from(b, start)
                if best is None or fit.cost < best.cost:
                    best, best_base = fit, b
    elif len(bases) > 1:
        best_base = min(bases, key=lambda b: float(np.sum(residuals(np.zeros(0), b) ** 2)))
    # Saved at a fixed number of significant digits (as the fingerprint hashes them): a refit on the
    # same data writes the same preset, byte for byte, whatever the optimiser's last-digit noise.
    fitted = best.x if best is not None else np.zeros(0)
    # A constant within 0.1 % of the range from a bound is at the bound (0, not 1.4e-06).
    fitted = np.where(
        fitted - lo < 1e-3 * (hi - lo), lo, np.where(hi - fitted < 1e-3 * (hi - lo), hi, fitted)
    )
    constants = {k: round_sig(v) for k, v in zip(smooth, fitted)}
    constants.update({k: round_sig(getattr(best_base, k)) for k in thresholds})
    dpu = base.replace(name=name or base.name, calibrated_on=provenance(measurements), **constants)
    sims, rel, totals = problem.figures(dpu)
    rows = []
    k = 0
    for i, m in enumerate(measurements):
        for nm, mv in zip(m.names, m.measured_ms):
            rows.append(
                {
                    "profile": i,
                    "group": m.group or m.label,
                    "kernel": m.label,
                    "name": nm,
                    "measured_ms": mv,
                    "simulated_ms": sims[k],
                    "rel_error": rel[k],
                }
            )
            k += 1
    return Calibration(
        dpu=dpu,
        constants={k: constants[k] for k in free if k in constants},
        node_mape=float(np.mean(np.abs(rel))),
        total_error=float(np.mean(totals)),
        table=pd.DataFrame(rows),
        before={"node_mape": float(np.mean(np.abs(rel0))), "total_error": float(np.mean(tot0))},
    )


def per_network_figures(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Fit figures per measured network (a :class:`Calibration` table's ``group``): parts, node MAPE,
    worst part and total error, so a short network's fit is not hidden in a long one's."""
    out = []
    for group, g in table.groupby("group", sort=False):
        ape = g["rel_error"].abs()
        worst = g.loc[ape.idxmax()]
        out.append(
            {
                "network": str(group),
                "parts": len(g),
                "node_mape": round(float(ape.mean()), 4),
                "total_error": round(float(g["simulated_ms"].sum() / g["measured_ms"].sum() - 1.0), 4),
                "worst": str(worst["name"]),
                "worst_error": round(float(worst["rel_error"]), 4),
            }
        )
    return out


def _informative(problem: _Problem, base: DPUConfig, key: str) -> bool:
    """Whether the measurements depend on constant ``key``: moving it across its bounds changes some
    measured part by more than :data:`INFORMATIVE_RTOL` (e.g. no hard-swish measured, or no node small
    enough for the tiny-node overhead: the constant stays at ``base``'s value rather than drifting
    along an almost flat direction that matters on networks the fit never saw)."""
    lo, hi = BOUNDS[key]
    probes = [problem.figures(base.replace(**{key: v}))[0] for v in (lo, (lo + hi) / 2, hi)]
    return any(not np.allclose(probes[0], p, rtol=INFORMATIVE_RTOL, atol=0.0) for p in probes[1:])


def _from_pair(pair: tuple[Any, Profile], base: DPUConfig) -> Measurement:
    net, prof = pair
    cn = net if isinstance(net, CompiledNet) else compile_net(net, base)
    return Measurement.from_profile(cn, prof)


def provenance(data: Sequence[Measurement]) -> str:
    """What the constants were fitted to, in one line: each source with its networks (or their count)."""
    sources: dict[str, list[str]] = {}
    for m in data:
        sources.setdefault(m.source, []).append(m.label)
    parts = []
    for src, labels in sources.items():
        labels = sorted(set(labels))
        parts.append(f"{src}: {', '.join(labels)}" if len(labels) <= 2 else f"{src} ({len(labels)} networks)")
    return "; ".join(parts)


def _single(op_kwargs: dict, dpu: DPUConfig):
    from ofa_hw.frontends.ops import Op
    from ofa_hw.sim.compiler import compile_ops

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
        return dict(
            kind="conv",
            in_h=hw,
            in_w=hw,
            in_c=c_in,
            out_h=out,
            out_w=out,
            out_c=c_out,
            kh=k,
            kw=k,
            stride=s,
            act="relu",
        )

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
