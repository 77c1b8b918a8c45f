"""How much of the search space the DPU's compile limits remove, and by which rule.

The share is estimated by sampling: uniformly random subnets (OFA's sampling) are checked with the
same per-block compilability check the LUT planner and the predictor tables use
(:func:`ofa_hw.lut.plan.dpu_compile_check`, the simulator's VAI_C limits for this DPU config), compiled
once into a 0/∞ block table so tens of thousands of subnets cost one gather. The rule is stated from the check's
own message on the largest subnet of the space, so it follows whatever limits the configured
toolchain applies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ofa_hw.blocktable import BlockTable
from ofa_hw.search.genes import GeneOps
from ofa_hw.space import SearchSpace

#: Subnets sampled by default; the standard error of the share is then at most 0.35 percentage points.
DEFAULT_SAMPLES = 20_000


def largest_arch(space: SearchSpace) -> dict[str, Any]:
    """Every choice at its maximum: the subnet most likely to hit a compile limit."""
    return {"ks": [max(space.ks_list)] * space.n_blocks, "e": [max(space.expand_list)] * space.n_blocks,
            "d": [max(space.depth_list)] * (space.n_stages - 1) + [1], "r": max(space.resolutions)}


def compile_limit_share(space: SearchSpace, dpu: Any, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """The share of ``space`` that cannot compile on ``dpu``, by sampling, and the rule that removes it.

    Returns:
        ``{"rule": str | None, "example_layer": str | None, "samples": int, "seed": int,
        "removed_share": float, "uncompilable_cells": int, "check": str}`` — ``rule`` is ``None`` when no
        layer of the space violates a limit.
    """
    from ofa_hw.dpu.compiler import layer_violation
    from ofa_hw.lut.plan import dpu_compile_check
    from ofa_hw.netspec import build_netspec

    check = dpu_compile_check(dpu)
    table = BlockTable.from_block_fn(space, lambda block, ns: 0.0 if check(block, ns) else np.inf)
    genes = GeneOps(space).sample(np.random.default_rng(seed), int(samples))
    removed = float(np.mean(~np.isfinite(table.evaluate(genes))))
    rule = layer = None
    netspec = build_netspec(space, largest_arch(space))
    for index, spec in enumerate(netspec.layers):
        why = layer_violation(spec, dpu)
        if why:
            rule, layer = why, str(getattr(spec, "name", index))
            break
    return {"rule": rule, "example_layer": layer, "samples": int(samples), "seed": int(seed),
            "removed_share": removed, "uncompilable_cells": int((~np.isfinite(table.blocks)).sum()),
            "check": "ofa_hw.lut.plan.dpu_compile_check (the simulator's VAI_C limits for this DPU config)"}
