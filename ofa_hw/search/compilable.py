"""How much of the search space the DPU's compile limits remove, and by which rule.

The share is estimated by sampling: uniformly random subnets (OFA's sampling) are checked with the
same per-block compilability check the LUT planner and the predictor tables use
(:func:`ofa_hw.lut.plan.dpu_compile_check`, the simulator's VAI_C limits for this DPU config), compiled
once into a 0/∞ block table so tens of thousands of subnets cost one gather. The rule is stated from the check's
own message on the largest subnet of the space, so it follows whatever limits the configured
toolchain applies. The limits belong to the toolchain generation (:mod:`ofa_hw.dpu.generations`): the same
DPU admits more of the space under the XIR compiler than under VAI_C 1.x, so every generation's share
is estimated on the same sample (:func:`admitted_share`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ofa_hw.blocktable import BlockTable
from ofa_hw.dpu.generations import TOOLCHAINS
from ofa_hw.search.genes import GeneOps
from ofa_hw.space import SearchSpace
from ofa_hw.space_resnet import ResNetSpace
from ofa_hw.termtable import table_for

#: Subnets sampled by default; the standard error of the share is then at most 0.35 percentage points.
DEFAULT_SAMPLES = 20_000


def largest_arch(space: SearchSpace | ResNetSpace) -> dict[str, Any]:
    """Every choice at its maximum: the subnet most likely to hit a compile limit."""
    if isinstance(space, ResNetSpace):
        top = len(space.width_mult_list) - 1
        return {
            "d": [space.max_depth] * 5,
            "e": [max(space.expand_list)] * space.n_blocks,
            "w": [top] * 6,
        } | {"r": max(space.resolutions)}
    return {
        "ks": [max(space.ks_list)] * space.n_blocks,
        "e": [max(space.expand_list)] * space.n_blocks,
        "d": space.max_depth_d,
        "r": max(space.resolutions),
    }


def _uncompilable(space: SearchSpace, dpu: Any, genes: np.ndarray) -> tuple[np.ndarray, int]:
    """Per sampled subnet: does it violate a limit of ``dpu``? And how many block cells do."""
    from ofa_hw.lut.plan import dpu_compile_check

    check = dpu_compile_check(dpu)
    table = table_for(space, lambda block, ns: 0.0 if check(block, ns) else np.inf)
    cells = [table.blocks] if isinstance(table, BlockTable) else list(table.means)
    return ~np.isfinite(table.evaluate(genes)), int(sum((~np.isfinite(c)).sum() for c in cells))


def admitted_share(space: SearchSpace, dpu: Any, n: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Estimated share of ``space`` that compiles on ``dpu``'s hardware under each toolchain generation.

    Args:
        space: The search space.
        dpu: The DPU (its ``toolchain`` is reported as the configured one; every generation is tried).
        n: Subnets sampled uniformly as OFA samples them (the same ones for every generation).
        seed: Seed of the sampler.

    Returns:
        ``{"space", "dpu", "toolchain", "samples", "seed", "share": {generation: fraction},
        "ci95": {generation: 95 % binomial half-width}}``.
    """
    if n < 1:
        raise ValueError(f"admitted_share: n must be >= 1, got {n}")
    genes = GeneOps(space).sample(np.random.default_rng(seed), int(n))
    share, ci = {}, {}
    for name in TOOLCHAINS:
        p = 1.0 - float(np.mean(_uncompilable(space, dpu.replace(toolchain=name), genes)[0]))
        share[name] = p
        ci[name] = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
    return {
        "space": space.name,
        "dpu": dpu.name,
        "toolchain": dpu.toolchain,
        "samples": int(n),
        "seed": int(seed),
        "share": share,
        "ci95": ci,
    }


def admitted_line(info: dict[str, Any]) -> str:
    """One sentence: the configured generation and the share of the space each generation admits."""
    parts = ", ".join(f"{k} {100 * v:.1f} %" for k, v in info["share"].items())
    return (
        f"Compile limits: DPU {info['dpu']} with the {info['toolchain']} toolchain "
        f"({TOOLCHAINS[info['toolchain']].flow}); share of space {info['space']} that compiles: {parts} "
        f"(estimated on {info['samples']} uniformly sampled subnets, ±{100 * max(info['ci95'].values()):.1f} % at 95 %)."
    )


def compile_limit_share(
    space: SearchSpace, dpu: Any, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> dict[str, Any]:
    """The share of ``space`` that cannot compile on ``dpu``, by sampling, and the rule that removes it.

    Returns:
        ``{"rule": str | None, "example_layer": str | None, "samples": int, "seed": int,
        "removed_share": float, "uncompilable_cells": int, "check": str, "toolchain": str,
        "admitted_by_toolchain": {generation: fraction}}`` — ``rule`` is ``None`` when no layer of the
        space violates a limit.
    """
    from ofa_hw.netspec import build_netspec
    from ofa_hw.sim.compiler import layer_violation

    genes = GeneOps(space).sample(np.random.default_rng(seed), int(samples))
    removed, cells = _uncompilable(space, dpu, genes)
    rule = layer = None
    netspec = build_netspec(space, largest_arch(space))
    for index, spec in enumerate(netspec.layers):
        why = layer_violation(spec, dpu)
        if why:
            rule, layer = why, str(getattr(spec, "name", index))
            break
    by_generation = {
        name: 1.0 - float(np.mean(_uncompilable(space, dpu.replace(toolchain=name), genes)[0]))
        for name in TOOLCHAINS
    }
    return {
        "rule": rule,
        "example_layer": layer,
        "samples": int(samples),
        "seed": int(seed),
        "removed_share": float(np.mean(removed)),
        "uncompilable_cells": cells,
        "toolchain": dpu.toolchain,
        "admitted_by_toolchain": by_generation,
        "check": "ofa_hw.lut.plan.dpu_compile_check (the simulator's compile limits for this DPU config)",
    }
