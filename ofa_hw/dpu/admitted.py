"""Share of a search space each toolchain generation admits on one DPU (sampled estimate).

The compile limits belong to the toolchain (:mod:`ofa_hw.dpu.toolchain`): VAI_C 1.x (``dnndk``) refuses
wide large-kernel depthwise convs that the XIR compiler runs, so the same DPU admits more of the
space under ``xir``. The share is estimated on ``n`` subnets drawn uniformly as OFA samples them
(the search's own sampler), with a 95 % binomial confidence half-width.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ofa_hw.dpu.compiler import is_compilable
from ofa_hw.dpu.config import DPUConfig
from ofa_hw.dpu.toolchain import TOOLCHAINS

#: Default sample size: ±2.2 % (95 %) at worst, about 1 s per toolchain for the OFA spaces.
DEFAULT_SAMPLES = 2000


def admitted_share(space: Any, dpu: DPUConfig, n: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Estimated share of ``space`` that compiles on ``dpu``'s hardware under each toolchain generation.

    Args:
        space: A :class:`~ofa_hw.space.SearchSpace`.
        dpu: The DPU (its ``toolchain`` is reported as the configured one; every generation is tried).
        n: Subnets sampled (the same ones for every generation).
        seed: Seed of the sampler.

    Returns:
        ``{"space", "dpu", "toolchain", "samples", "seed", "share": {generation: fraction},
        "ci95": {generation: half-width}}``.
    """
    from ofa_hw.netspec import build_netspec

    if n < 1:
        raise ValueError(f"admitted_share: n must be >= 1, got {n}")
    archs = space.sample(np.random.default_rng(seed), n)
    nets = [build_netspec(space, a) for a in archs]
    share, ci = {}, {}
    for name in TOOLCHAINS:
        d = dpu.replace(toolchain=name)
        p = sum(is_compilable(ns, d) for ns in nets) / n
        share[name] = p
        ci[name] = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
    return {"space": space.name, "dpu": dpu.name, "toolchain": dpu.toolchain, "samples": n, "seed": seed, "share": share, "ci95": ci}


def admitted_line(info: dict[str, Any]) -> str:
    """One sentence for reports: the configured generation and what each generation admits."""
    parts = ", ".join(f"{k} {100 * v:.1f} %" for k, v in info["share"].items())
    return (
        f"Compile limits: DPU {info['dpu']} with the {info['toolchain']} toolchain "
        f"({TOOLCHAINS[info['toolchain']].flow}); share of space {info['space']} that compiles: {parts} "
        f"(estimated on {info['samples']} uniformly sampled subnets, ±{100 * max(info['ci95'].values()):.1f} % at 95 %)."
    )
