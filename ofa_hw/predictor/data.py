"""Training data of the latency predictors: measured subnets and/or LUT keys, as block rows.

Two sources feed a predictor:

* profiled subnets (:class:`NetMeasurement`): per-block times from the DPU node profile (nodes
  attributed to blocks by :mod:`ofa_hw.lut.mapping`), the profile-mode total and, on the simulator,
  the end-to-end time. Each subnet is one bootstrap group.
* a LUT (:class:`KeyMeasurement` rows of a :class:`~ofa_hw.lut.LatencyTable`): per-key mean, std and
  count. Each key is one bootstrap group.

Subnets with only a whole-network time (e.g. a LUT's validation subnets) still serve to fit the
per-network overhead and to calibrate the uncertainty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ofa_hw.blocktable import space_blocks
from ofa_hw.netspec import Block, NetSpec, build_netspec
from ofa_hw.predictor.features import HwParams, featurize
from ofa_hw.space import Arch, SearchSpace
from ofa_hw.space_resnet import ResNetSpace

if TYPE_CHECKING:
    from ofa_hw.backends.base import ProfileOutcome
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut import LatencyTable

#: Latency kinds a predictor can be asked for.
TARGETS = ("profile", "e2e")


@dataclass(frozen=True)
class NetMeasurement:
    """One measured subnet.

    Attributes:
        name: Net name (unique within a training set; the bootstrap group of its blocks).
        arch: Canonical arch dict.
        total_ms: Profile-mode latency (sum of the DPU nodes), mean over runs.
        e2e_ms: End-to-end latency outside profile mode, when the backend reports it.
        block_ms: Per-block time of each block of the netspec (in ``netspec.blocks`` order), or empty.
        block_std_ms: Run-to-run std of each block time (same order), or empty.
    """

    name: str
    arch: Arch
    total_ms: float | None = None
    e2e_ms: float | None = None
    block_ms: tuple[float, ...] = ()
    block_std_ms: tuple[float, ...] = ()

    def latency(self, target: str) -> float | None:
        return self.total_ms if target == "profile" else self.e2e_ms


@dataclass(frozen=True)
class KeyMeasurement:
    """One LUT row: statistics (ms) of one OFA key."""

    key: str
    mean_ms: float
    std_ms: float = 0.0
    count: int = 1


@dataclass(frozen=True)
class TrainingSet:
    """Everything a predictor is fitted on.

    Attributes:
        space: The search space the measurements belong to.
        nets: Measured subnets (with block times: training rows; all of them: overhead, calibration).
        keys: LUT rows (training rows).
        lut_id: Identity of the LUT the keys come from (its file stem), recorded with the predictor.
    """

    space: SearchSpace
    nets: tuple[NetMeasurement, ...] = ()
    keys: tuple[KeyMeasurement, ...] = ()
    lut_id: str | None = None

    def __post_init__(self) -> None:
        names = [n.name for n in self.nets]
        if len(set(names)) != len(names):
            raise ValueError("TrainingSet: net names must be unique")

    # ------------------------------------------------------------ builders
    @classmethod
    def from_outcomes(
        cls, space: SearchSpace, dpu: DPUConfig, outcomes: Iterable[ProfileOutcome], with_blocks: bool = True
    ) -> TrainingSet:
        """Measured subnets from backend outcomes (failed ones skipped).

        Args:
            with_blocks: Attribute node times to blocks (training rows); ``False`` keeps only the
                whole-network times (for overhead / calibration / evaluation).
        """
        nets = [
            net_measurement(space, dpu, o, with_blocks)
            for o in outcomes
            if o.status == "ok" and o.profile is not None
        ]
        return cls(space, tuple(_unique_names(nets)))

    @classmethod
    def from_lut(
        cls, table: LatencyTable, space: SearchSpace, nets: Sequence[NetMeasurement] = ()
    ) -> TrainingSet:
        """LUT keys as training rows, plus optional whole-network measurements."""
        table.check_space(space)
        f = table.frame
        keys = tuple(
            KeyMeasurement(str(k), float(m), float(s), int(c))
            for k, m, s, c in zip(f["key"], f["mean_ms"], f["std_ms"], f["count"])
        )
        return cls(space, tuple(nets), keys, lut_id=table.stem)

    def merged(self, other: TrainingSet) -> TrainingSet:
        """Both sets' nets and keys (same space)."""
        if other.space != self.space:
            raise ValueError(
                f"cannot merge training sets of spaces '{self.space.name}' and '{other.space.name}'"
            )
        return TrainingSet(
            self.space, self.nets + other.nets, self.keys + other.keys, self.lut_id or other.lut_id
        )

    # --------------------------------------------------------------- views
    def block_rows(self, hw: HwParams) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        """Training rows: ``(features, y_ms, y_std_ms, groups)``.

        Net rows are grouped by net name, key rows by key (the bootstrap units).

        Raises:
            ValueError: no block-level measurement at all, or a LUT key not of this space.
        """
        pairs: list[tuple[Block, NetSpec]] = []
        y, s, g = [], [], []
        for net in self.nets:
            if not net.block_ms:
                continue
            ns = build_netspec(self.space, net.arch, name=net.name)
            if len(net.block_ms) != len(ns.blocks):
                raise ValueError(
                    f"net {net.name}: {len(net.block_ms)} block times for {len(ns.blocks)} blocks"
                )
            std = net.block_std_ms or (0.0,) * len(ns.blocks)
            for block, ms, sd in zip(ns.blocks, net.block_ms, std):
                pairs.append((block, ns))
                y.append(ms)
                s.append(sd)
                g.append("net:" + net.name)
        if self.keys:
            where = key_blocks(self.space)
            unknown = [k.key for k in self.keys if k.key not in where]
            if unknown:
                raise ValueError(
                    f"LUT {self.lut_id}: {len(unknown)} key(s) are not keys of space "
                    f"'{self.space.name}', e.g. {unknown[0]}"
                )
            for k in self.keys:
                pairs.append(where[k.key])
                y.append(k.mean_ms)
                s.append(k.std_ms)
                g.append("key:" + k.key)
        if not pairs:
            raise ValueError("training set has no block-level measurement (no LUT keys, no node profiles)")
        return featurize(pairs, hw), np.asarray(y, float), np.asarray(s, float), np.asarray(g, dtype=object)

    def net_frame(self, target: str) -> pd.DataFrame:
        """Nets with a measured ``target`` latency: columns ``name, r, measured_ms, block_sum_ms``."""
        rows = []
        for net in self.nets:
            value = net.latency(target)
            if value is None or not np.isfinite(value):
                continue
            rows.append(
                {
                    "name": net.name,
                    "r": net.arch["r"],
                    "measured_ms": float(value),
                    "block_sum_ms": float(sum(net.block_ms)) if net.block_ms else np.nan,
                }
            )
        return pd.DataFrame(rows, columns=["name", "r", "measured_ms", "block_sum_ms"])


def net_measurement(
    space: SearchSpace, dpu: DPUConfig, outcome: ProfileOutcome, with_blocks: bool = True
) -> NetMeasurement:
    """A :class:`NetMeasurement` from one successful backend outcome."""
    arch = space.validate(outcome.job.arch)
    prof = outcome.measured
    block_ms: tuple[float, ...] = ()
    block_std: tuple[float, ...] = ()
    if with_blocks:
        from ofa_hw.lut.mapping import block_times
        from ofa_hw.sim import layer_times_ms

        ns = build_netspec(space, arch, name=outcome.job.net_name)
        layer_ms = np.asarray(layer_times_ms(ns, dpu), dtype=float)
        tables = list(prof.runs) or [prof.nodes]
        per_run = np.stack([block_times(ns, t, layer_ms) for t in tables])
        block_ms = tuple(float(x) for x in per_run.mean(axis=0))
        std = per_run.std(axis=0, ddof=1) if len(per_run) > 1 else np.zeros(per_run.shape[1])
        block_std = tuple(float(x) for x in std)
    e2e = getattr(prof, "e2e_ms", None)
    return NetMeasurement(
        name=outcome.job.net_name,
        arch=arch,
        total_ms=float(prof.total_ms),
        e2e_ms=float(e2e) if e2e is not None else None,
        block_ms=block_ms,
        block_std_ms=block_std,
    )


def _unique_names(nets: list[NetMeasurement]) -> list[NetMeasurement]:
    # The same arch may be profiled under one name twice (re-runs); keep the last, drop exact repeats.
    by_name: dict[str, NetMeasurement] = {}
    for net in nets:
        by_name[net.name] = net
    return list(by_name.values())


def key_blocks(space: SearchSpace) -> dict[str, tuple[Block, NetSpec]]:
    """Every key of ``space`` (all resolutions) → a ``(block, netspec)`` holding it."""
    cached = _KEY_BLOCKS.get(space)
    if cached is None:
        cached = {}
        for block, ns in all_cells(space):
            cached.setdefault(block.key, (block, ns))
        _KEY_BLOCKS[space] = cached
    return cached


_KEY_BLOCKS: dict[SearchSpace, dict[str, tuple[Block, NetSpec]]] = {}


def all_cells(space: SearchSpace) -> list[tuple[Block, NetSpec]]:
    """The ``(block, netspec)`` of every fixed block and every table cell, in :func:`cell_layout` order."""
    if isinstance(space, ResNetSpace):  # every distinct cell of every term (:mod:`ofa_hw.termtable`)
        from ofa_hw.lut.plan_resnet import resnet_cells

        return [(b, ns) for _, _, _, b, ns in resnet_cells(space, space.resolutions)]
    sb = space_blocks(space)
    out: list[tuple[Block, NetSpec]] = []
    for ri in range(len(space.resolutions)):
        out.extend(sb.fixed(ri))
    for ri in range(len(space.resolutions)):
        for pos in range(space.n_blocks):
            for ki in range(len(space.ks_list)):
                for ei in range(len(space.expand_list)):
                    out.append(sb.cell(ri, pos, ki, ei))
    return out


def cell_layout(space: SearchSpace) -> tuple[np.ndarray, int]:
    """Resolution index of each fixed-block row of :func:`all_cells`, and the number of those rows.

    Rows after the fixed ones fill ``blocks[R, n_blocks, K, E]`` in C order.
    """
    sb = space_blocks(space)
    r_of = np.concatenate([np.full(len(sb.fixed(ri)), ri) for ri in range(len(space.resolutions))])
    return r_of, len(r_of)


def sample_compilable(
    space: SearchSpace,
    rng: np.random.Generator,
    n: int,
    compilable: Any = None,
    resolutions: Sequence[int] | None = None,
    max_tries: int = 1000,
) -> list[Arch]:
    """``n`` uniformly random archs at random ``resolutions`` whose every block compiles (rejection sampling).

    Args:
        compilable: ``(block, netspec) -> bool`` (e.g. :func:`ofa_hw.lut.dpu_compile_check`); ``None`` = all.
        resolutions: Allowed resolutions (default: all of the space's).
        max_tries: Give up after ``max_tries * n`` draws (a DPU on which almost nothing compiles).
    """
    res = list(resolutions) if resolutions is not None else list(space.resolutions)
    out: list[Arch] = []
    for _ in range(max_tries * max(n, 1)):
        if len(out) == n:
            break
        arch = space.validate(space.sample(rng))
        arch["r"] = int(rng.choice(res))
        ns = build_netspec(space, arch)
        if compilable is None or all(compilable(b, ns) for b in ns.blocks):
            out.append(space.validate(arch))
    if len(out) < n:
        raise ValueError(f"space '{space.name}': found only {len(out)} of {n} compilable random subnets")
    return out
