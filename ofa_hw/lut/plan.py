"""Probe planning: the fewest profiled subnets that measure every key of a space at least r times.

At one resolution a block position's key depends only on its own (kernel, expand) choice, and every
position exists in a max-depth subnet. So max-depth probes with a *balanced* assignment — position p
of probe j takes choice ``perm_p[j mod n_p]`` of its ``n_p`` compilable choices — cover every key of
every position ``floor(n / n_p)`` times with ``n`` probes. The first block of each stage has a shape of
its own, so its ``|ks|·|expand|`` keys (9 in the default space) need 9 probes per resolution for r = 1:
the plan is minimal. The per-position permutations mix the choices so that probes differ in more
than one position, which keeps the context of each measured block varied.

Keys the DPU compiler rejects (wide depthwise convs) are left out of every probe and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ofa_hw.blocktable import space_blocks
from ofa_hw.dpu.config import DPUConfig
from ofa_hw.lut.plan_resnet import resnet_coverage_rows, resnet_probes, resnet_uncompilable
from ofa_hw.netspec import Block, NetSpec, build_netspec, space_keys
from ofa_hw.sim.compiler import layer_violation
from ofa_hw.space import Arch, SearchSpace
from ofa_hw.space_resnet import ResNetSpace

#: ``compilable(block, netspec) -> bool``: can the DPU run this block (in this network)?
CompileCheck = Callable[[Block, NetSpec], bool]


@dataclass(frozen=True)
class ProbePlan:
    """The subnets to profile for a LUT.

    Attributes:
        space: The search space.
        resolutions: Resolutions covered.
        coverage: Target number of measurements per key.
        probes: Max-depth probe archs (canonical dicts).
        validation: Random archs whose whole-network times check the LUT sums.
        keys: Compilable keys the probes must cover (sorted).
        uncompilable: Keys the DPU cannot compile (sorted); no probe holds one.
    """

    space: SearchSpace
    resolutions: tuple[int, ...]
    coverage: int
    probes: tuple[Arch, ...]
    validation: tuple[Arch, ...]
    keys: tuple[str, ...]
    uncompilable: tuple[str, ...] = field(default=())

    def probe_names(self) -> list[str]:
        """Net names of the probes: ``probe_r<res>_<j>`` (``j`` counts within a resolution)."""
        names: list[str] = []
        seen: dict[int, int] = {}
        for arch in self.probes:
            j = seen.get(arch["r"], 0)
            seen[arch["r"]] = j + 1
            names.append(f"probe_r{arch['r']}_{j}")
        return names

    def validation_names(self) -> list[str]:
        return [f"val_{i}" for i in range(len(self.validation))]

    def planned_counts(self) -> dict[str, int]:
        """How many block measurements the probes give each key (occurrences over all probes)."""
        return key_counts(self.space, self.probes)

    def coverage_frame(self, measured: dict[str, int] | None = None) -> pd.DataFrame:
        """:func:`coverage_frame` of this plan (``planned`` = occurrences over the probes)."""
        return coverage_frame(
            self.space, self.resolutions, self.uncompilable, self.planned_counts(), measured
        )


def coverage_frame(
    space: SearchSpace,
    resolutions: Iterable[int],
    uncompilable: Iterable[str],
    planned: dict[str, int] | None = None,
    measured: dict[str, int] | None = None,
) -> pd.DataFrame:
    """One row per cell of the space at ``resolutions`` — (resolution, position, kernel, expand) — with its key.

    Positions are ``Conv`` (stem), ``expanded_conv`` (first block), ``b0``…``b20``, ``Conv_1``, ``Logits``
    (``kernel``/``expand`` are 0 for the fixed ones). A key shared by several cells (e.g. the 2nd…4th
    block of a stage) appears on each, with the key's counts.

    Columns: ``resolution, position, kernel, expand, key, kind, compilable`` then ``planned`` and/or
    ``measured`` counts.
    """
    bad = set(uncompilable)
    rows = []
    if isinstance(space, ResNetSpace):
        rows = resnet_coverage_rows(space, resolutions)
        resolutions = ()
    else:
        sb = space_blocks(space)
    for r in resolutions:
        ri = space.resolutions.index(r)
        for block, _ in sb.fixed(ri):
            rows.append((r, _position_label(block), 0, 0, block.key))
        for pos in range(space.n_blocks):
            for ki, k in enumerate(space.ks_list):
                for ei, e in enumerate(space.expand_list):
                    block, _ = sb.cell(ri, pos, ki, ei)
                    rows.append((r, _position_label(block), k, e, block.key))
    frame = pd.DataFrame(rows, columns=["resolution", "position", "kernel", "expand", "key"])
    frame["kind"] = frame["key"].str.split("-", n=1).str[0]
    frame["compilable"] = ~frame["key"].isin(bad)
    frame["order"] = [_position_order(p) for p in frame["position"]]
    frame = frame.sort_values(["resolution", "order", "kernel", "expand"], ignore_index=True).drop(
        columns="order"
    )
    if planned is not None:
        frame["planned"] = [planned.get(k, 0) for k in frame["key"]]
    if measured is not None:
        frame["measured"] = [measured.get(k, 0) for k in frame["key"]]
    return frame


def _position_order(label: str) -> int:
    fixed = {"Conv": -5, "ResConv": -4, "MaxPool": -2, "expanded_conv": -1, "Conv_1": 100, "AvgPool2D": 101}
    fixed |= {"Conv_2": 102, "Logits": 103}  # ResNet's Conv_1 is its 3rd stem conv: shown after the blocks
    return fixed[label] if label in fixed else int(label[1:])


#: Lowest mean count a coverage cell shows in colour (a cell whose keys were measured at all is above it).
_COVERAGE_VMIN = 0.01


def plot_coverage(frame: pd.DataFrame, path: str | Path, title: str = "LUT coverage") -> Path:
    """Heat map resolution × block position of the measurements of the keys there.

    One cell per (resolution, position): the mean count over its compilable (kernel, expand) choices
    (not the minimum: a budget plan leaves keys unmeasured on purpose, and its LUT must not look
    broken). A red cell is one where no compilable key was measured. An ``x`` marks a cell where some
    choices cannot compile (skipped on purpose), grey one where none can. Uses the ``measured`` column
    when present, else ``planned``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = "measured" if "measured" in frame.columns else "planned"
    positions = sorted(frame["position"].unique(), key=_position_order)
    resolutions = sorted(frame["resolution"].unique())
    counts = np.full((len(resolutions), len(positions)), np.nan)
    some_bad = np.zeros_like(counts, dtype=bool)
    for (r, pos), group in frame.groupby(["resolution", "position"]):
        i, j = resolutions.index(r), positions.index(pos)
        ok = group[group["compilable"]]
        some_bad[i, j] = len(ok) < len(group)
        if not ok.empty:
            mean = float(ok[column].mean())
            counts[i, j] = mean if mean > 0 else 0.5 * _COVERAGE_VMIN  # below vmin: drawn red
    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(
        figsize=(max(6.0, 0.32 * len(positions) + 2.5), max(3.0, 0.22 * len(resolutions) + 1.6))
    )
    cmap = plt.get_cmap("viridis").with_extremes(under="tab:red", bad="lightgrey")
    vmax = max(2.0, np.nanmax(counts) if np.isfinite(counts).any() else 2.0)
    im = ax.imshow(
        counts, aspect="auto", cmap=cmap, norm=LogNorm(vmin=_COVERAGE_VMIN, vmax=vmax), origin="lower"
    )
    for i, j in zip(*np.nonzero(some_bad)):
        ax.text(j, i, "x", ha="center", va="center", fontsize=7, color="black")
    ax.set_xticks(
        range(len(positions)),
        [p.replace("expanded_conv", "blk0") for p in positions],
        rotation=90,
        fontsize=7,
    )
    ax.set_yticks(range(len(resolutions)), [str(r) for r in resolutions], fontsize=7)
    ax.set_xlabel("block position")
    ax.set_ylabel("resolution")
    keys = frame.drop_duplicates("key")
    covered = int(((keys[column] > 0) & keys["compilable"]).sum())
    total = int(keys["compilable"].sum())
    empty_cell = bool(np.nanmin(counts) < _COVERAGE_VMIN) if np.isfinite(counts).any() else False
    unmeasured = "red = no key measured (the colour bar's lower tip), " if empty_cell else ""
    ax.set_title(
        f"{title}\n{covered}/{total} compilable keys {column} (mean count per cell; {unmeasured}"
        "x = some choices uncompilable, grey = none compiles)",
        fontsize=8,
    )
    fig.colorbar(im, ax=ax, label=f"mean {column} count", extend="min")  # the tip shows the red of 0
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def dpu_compile_check(dpu: DPUConfig) -> CompileCheck:
    """A block compiles on ``dpu`` when none of its layers violates a VAI_C limit (the simulator's check)."""

    def compilable(block: Block, netspec: NetSpec) -> bool:
        return all(layer_violation(netspec.layers[i], dpu) is None for i in block.layers)

    return compilable


def key_counts(space: SearchSpace, archs: Iterable[Arch]) -> dict[str, int]:
    """Occurrences of every key over the netspecs of ``archs``."""
    counts: dict[str, int] = {}
    for arch in archs:
        for key in build_netspec(space, arch).keys:
            counts[key] = counts.get(key, 0) + 1
    return counts


def _position_label(block: Block) -> str:
    return f"b{block.space_block}" if block.space_block >= 0 else block.kind


def uncompilable_cells(
    space: SearchSpace, resolutions: Iterable[int], compilable: CompileCheck
) -> tuple[dict[tuple[int, int, int, int], str], set[str]]:
    """Cells ``(r, position, k_idx, e_idx)`` and fixed-block keys the DPU cannot compile.

    Returns:
        ``(cells, fixed_keys)``: bad elastic cells mapped to their key, and bad fixed-block keys
        (stem, first block, head) — a resolution with one of those cannot be profiled at all.
    """
    cells: dict[tuple[int, int, int, int], str] = {}
    fixed: set[str] = set()
    if isinstance(space, ResNetSpace):  # keyed (r, term index, cell index, 0): callers read the keys
        for i, key in enumerate(sorted(resnet_uncompilable(space, resolutions, compilable))):
            cells[(0, -1, i, 0)] = key
        return cells, fixed
    sb = space_blocks(space)
    for r in resolutions:
        ri = space.resolutions.index(r)
        for block, ns in sb.fixed(ri):
            if not compilable(block, ns):
                fixed.add(block.key)
        for pos in range(space.n_blocks):
            for ki in range(len(space.ks_list)):
                for ei in range(len(space.expand_list)):
                    block, ns = sb.cell(ri, pos, ki, ei)
                    if not compilable(block, ns):
                        cells[(r, pos, ki, ei)] = block.key
    return cells, fixed


def plan_probes(
    space: SearchSpace,
    compilable: CompileCheck,
    resolutions: Iterable[int] | None = None,
    coverage: int = 1,
    validation_subnets: int = 20,
    seed: int = 0,
) -> ProbePlan:
    """Plan max-depth probes covering every compilable key ``coverage`` times, plus validation subnets.

    Args:
        space: The search space.
        compilable: Per-block compile check (see :func:`ofa_hw.lut.dpu_compile_check`).
        resolutions: Resolutions to cover (default: all of the space's).
        coverage: Minimum measurements per key (r).
        validation_subnets: Random compilable subnets at those resolutions (any depth).
        seed: Seed of the assignment permutations and of the validation sample.

    Raises:
        ValueError: a resolution outside the space, ``coverage < 1``, or a resolution whose fixed blocks
            (stem/head) cannot compile.
    """
    res = tuple(sorted({int(r) for r in (resolutions if resolutions is not None else space.resolutions)}))
    bad = [r for r in res if r not in space.resolutions]
    if bad:
        raise ValueError(f"resolutions {bad} are not resolutions of space '{space.name}'")
    if coverage < 1:
        raise ValueError(f"coverage must be >= 1, got {coverage}")
    if isinstance(space, ResNetSpace):
        return _plan_resnet(space, compilable, res, coverage, validation_subnets, seed)
    cells, fixed_bad = uncompilable_cells(space, res, compilable)
    if fixed_bad:
        raise ValueError(
            f"space '{space.name}': fixed blocks cannot compile on this DPU: {sorted(fixed_bad)}"
        )
    rng = np.random.default_rng(seed)
    probes: list[Arch] = []
    for r in res:
        choices = _choices(space, cells, r)
        perms = [rng.permutation(len(c)) for c in choices]
        probes.extend(
            _max_depth_arch(space, choices, perms, j, r) for j in range(coverage * max(map(len, choices)))
        )
    bad_keys = set(cells.values())
    validation = _validation_archs(space, res, bad_keys, validation_subnets, rng)
    keys = sorted(set(space_keys(space, res)) - bad_keys)
    return ProbePlan(
        space, res, coverage, tuple(probes), tuple(validation), tuple(keys), tuple(sorted(bad_keys))
    )


def _plan_resnet(
    space: ResNetSpace, compilable: CompileCheck, res: tuple[int, ...], coverage: int, n_val: int, seed: int
) -> ProbePlan:
    """:func:`plan_probes` for ResNet-50 (:mod:`ofa_hw.lut.plan_resnet`; every key must compile)."""
    bad_keys = resnet_uncompilable(space, res, compilable)
    if bad_keys:
        raise ValueError(f"space '{space.name}': blocks cannot compile on this DPU: {sorted(bad_keys)[:3]}")
    probes = resnet_probes(space, res, coverage, seed)
    validation = _validation_archs(space, res, set(), n_val, np.random.default_rng(seed))  # type: ignore[arg-type]
    keys = tuple(space_keys(space, res))
    return ProbePlan(space, res, coverage, tuple(probes), tuple(validation), keys, ())  # type: ignore[arg-type]


def _resnet_seed_probes(
    space: ResNetSpace, compilable: CompileCheck, picked: list[int], seed: int, vary_depth: bool
) -> list[Arch]:
    """:func:`plan_seed_probes` for ResNet-50: probe ``j`` is probe ``j`` of the full plan at its resolution
    (balanced over widths and expands); ``vary_depth`` cycles every stage through the depths."""
    if resnet_uncompilable(space, sorted(set(picked)), compilable):
        raise ValueError(
            f"space '{space.name}': some blocks cannot compile on this DPU (budget plan needs all)"
        )
    out = []
    for j, r in enumerate(picked):
        arch = resnet_probes(space, [r], 1, seed)[
            j % (len(space.width_mult_list) ** 2 * len(space.expand_list))
        ]
        if vary_depth:
            arch["d"] = [space.depth_list[(j + s) % len(space.depth_list)] for s in range(5)]
        out.append(arch)
    return out


def _resnet_subnets(
    space: ResNetSpace,
    compilable: CompileCheck,
    res: list[int],
    n: int,
    rng: np.random.Generator,
    max_depth: bool,
) -> list[Arch]:
    """:func:`sample_subnets` for ResNet-50 (OFA's sampling; rejection of any arch holding an uncompilable key)."""
    bad = resnet_uncompilable(space, res, compilable)
    out: list[Arch] = []
    for _ in range(1000 * max(n, 1)):
        if len(out) == n:
            break
        arch = space.sample(rng) | {"r": int(rng.choice(res))}
        if max_depth:
            arch["d"] = [space.max_depth] * 5
        if not bad.intersection(build_netspec(space, arch).keys):
            out.append(space.validate(arch))
    if len(out) < n:
        raise ValueError(f"space '{space.name}': found only {len(out)} of {n} compilable random subnets")
    return out


def _choices(
    space: SearchSpace, cells: dict[tuple[int, int, int, int], str], r: int
) -> list[list[tuple[int, int]]]:
    """Per block position, the compilable ``(k_idx, e_idx)`` choices at resolution ``r``."""
    nk, ne = len(space.ks_list), len(space.expand_list)
    choices = [
        [(ki, ei) for ki in range(nk) for ei in range(ne) if (r, pos, ki, ei) not in cells]
        for pos in range(space.n_blocks)
    ]
    empty = [pos for pos, c in enumerate(choices) if not c]
    if empty:
        raise ValueError(f"space '{space.name}' at r={r}: no (kernel, expand) compiles at block(s) {empty}")
    return choices


def _max_depth_arch(
    space: SearchSpace, choices: list[list[tuple[int, int]]], perms: list[np.ndarray], j: int, r: int
) -> Arch:
    """Probe ``j`` of a balanced assignment: position ``p`` takes choice ``perms[p][j mod n_p]``."""
    ks, es = [], []
    for pos, c in enumerate(choices):
        ki, ei = c[perms[pos][j % len(c)]]
        ks.append(space.ks_list[ki])
        es.append(space.expand_list[ei])
    return {"ks": ks, "e": es, "d": space.max_depth_d, "r": int(r)}


def spread_resolutions(resolutions: Iterable[int], n: int) -> list[int]:
    """``n`` resolutions evenly spread over ``resolutions`` (both ends first), cycling when ``n`` exceeds them."""
    res = sorted({int(r) for r in resolutions})
    if n <= 0:
        return []
    if n >= len(res):
        return [res[i % len(res)] for i in range(n)]
    return [res[int(i)] for i in np.round(np.linspace(0, len(res) - 1, n)).astype(int)]


def plan_seed_probes(
    space: SearchSpace,
    compilable: CompileCheck,
    resolutions: Iterable[int],
    n: int,
    seed: int = 0,
    vary_depth: bool = False,
) -> list[Arch]:
    """The first batch of the budget plan: ``n`` probes over evenly spread resolutions, balanced choices.

    Position ``p`` cycles through its compilable ``(kernel, expand)`` choices in a random order of its
    own (the balanced assignment of :func:`plan_probes`); every probe has the maximum depth, so every
    block position is measured in each (with ``vary_depth`` each stage cycles through the space's
    depths instead). So ``n`` probes measure ``min(n, n_p)`` distinct shapes at every position, across
    the smallest, largest and intermediate resolutions: what a per-block predictor needs to
    interpolate over the space. On the simulator, max-depth seeds and candidates predicted 1 000 random
    subnets better than depth-varied ones (0.19 % vs 0.21-0.22 % MAPE at 10 subnets; ``experiments/board_time``).

    Raises:
        ValueError: fixed blocks or a whole position cannot compile at one of the resolutions.
    """
    picked = spread_resolutions(resolutions, n)
    if isinstance(space, ResNetSpace):
        return _resnet_seed_probes(space, compilable, picked, seed, vary_depth)
    cells, fixed_bad = uncompilable_cells(space, sorted(set(picked)), compilable)
    if fixed_bad:
        raise ValueError(
            f"space '{space.name}': fixed blocks cannot compile on this DPU: {sorted(fixed_bad)}"
        )
    rng = np.random.default_rng(seed)
    choices = {r: _choices(space, cells, r) for r in set(picked)}
    perms = [rng.permutation(len(c)) for c in choices[picked[0]]] if picked else []
    depth_perms = [rng.permutation(len(space.depth_list)) for _ in range(space.n_elastic_stages)]
    out = []
    for j, r in enumerate(picked):
        # Same permutation for every resolution; a choice uncompilable at r maps onto r's own list.
        c = choices[r]
        arch = _max_depth_arch(space, c, [p % len(cp) for p, cp in zip(perms, c)], j, r)
        if vary_depth:  # every depth of every stage, balanced like the block choices
            arch["d"] = space.full_d([int(space.depth_list[p[j % len(p)]]) for p in depth_perms])
        out.append(arch)
    return out


def sample_subnets(
    space: SearchSpace,
    compilable: CompileCheck,
    resolutions: Iterable[int],
    n: int,
    rng: np.random.Generator,
    max_depth: bool = False,
) -> list[Arch]:
    """``n`` random subnets at random ``resolutions`` whose every block compiles (drawn from compilable cells).

    Kernel and expand of each position are uniform over its compilable choices and depths uniform
    over the space's (or the maximum with ``max_depth``), so no rejection sampling is needed.
    """
    res = sorted({int(r) for r in resolutions})
    if isinstance(space, ResNetSpace):
        return _resnet_subnets(space, compilable, res, n, rng, max_depth)
    cells, _ = uncompilable_cells(space, res, compilable)
    choices = {r: _choices(space, cells, r) for r in res}
    out = []
    for _ in range(n):
        r = int(rng.choice(res))
        picks = [np.array([rng.integers(len(c))]) for c in choices[r]]
        arch = _max_depth_arch(space, choices[r], picks, 0, r)
        if not max_depth:
            arch["d"] = space.full_d(rng.choice(space.depth_list, space.n_elastic_stages))
        out.append(space.validate(arch))
    return out


def _validation_archs(
    space: SearchSpace, resolutions: tuple[int, ...], bad_keys: set[str], n: int, rng: np.random.Generator
) -> list[Arch]:
    """``n`` uniformly random archs at ``resolutions`` holding no uncompilable key (rejection sampling)."""
    out: list[Arch] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 1000 * max(n, 1):
            raise ValueError(f"space '{space.name}': cannot sample compilable validation subnets")
        arch = space.validate(space.sample(rng))
        arch["r"] = int(rng.choice(resolutions))
        if not bad_keys.intersection(build_netspec(space, arch).keys):
            out.append(space.validate(arch))
    return out
