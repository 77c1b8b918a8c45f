"""Probe planning and coverage cells of OFA's ResNet-50 space (``ofa_resnet50``).

A bottleneck's key depends on its expand, its stage's width and — when it opens a stage — the previous
stage's (stem's) width; the stem convs on the two stem width genes. Max-depth probes whose widths follow
``w[j] = (a + j·b) mod 3`` hold every pair of consecutive width genes with one of the 9 ``(a, b)``; with
each position cycling through the 3 expands (in its own random order) under every ``(a, b)``, 27 probes
per resolution measure every key of the space — the minimum, since a stage-opening bottleneck alone has
``3 · 3 · 3`` keys. The stem's residual conv is kept (``d[0]`` = max) so its key is measured too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ofa_hw.netspec import Block, NetSpec
from ofa_hw.space_base import Arch
from ofa_hw.space_resnet import ResNetSpace
from ofa_hw.termtable import resnet_cell, resnet_terms

CompileCheck = Callable[[Block, NetSpec], bool]


def resnet_cells(
    space: ResNetSpace, resolutions: Iterable[int]
) -> list[tuple[int, str, float, Block, NetSpec]]:
    """Every distinct cell at ``resolutions``: ``(r, position label, expand (0 if none), block, netspec)``."""
    card = space.gene_cardinality
    nb = space.n_blocks
    out = []
    for r in resolutions:
        ri = space.resolutions.index(r)
        for term in resnet_terms(space):
            free = [c for c in term.columns[:-1] if not nb <= c < nb + 5]  # depth genes: same block
            grids = np.array(np.meshgrid(*(range(int(card[c])) for c in free), indexing="ij")).reshape(
                len(free), -1
            )
            for values in grids.T:
                genes = dict(zip(free, (int(v) for v in values), strict=True))
                full = tuple(genes.get(c, 0) if c != term.columns[-1] else ri for c in term.columns)
                block, ns = resnet_cell(space, term, full)
                e = space.expand_list[genes[term.columns[0]]] if term.space_block >= 0 else 0.0
                out.append((int(r), term.name, e, block, ns))
    return out


def resnet_uncompilable(space: ResNetSpace, resolutions: Iterable[int], compilable: CompileCheck) -> set[str]:
    """Keys at ``resolutions`` the DPU cannot compile."""
    return {b.key for _, _, _, b, ns in resnet_cells(space, resolutions) if not compilable(b, ns)}


def resnet_probes(space: ResNetSpace, resolutions: Iterable[int], coverage: int, seed: int) -> list[Arch]:
    """``27 · coverage`` max-depth probes per resolution that measure every key ``coverage`` times."""
    rng = np.random.default_rng(seed)
    nw, ne = len(space.width_mult_list), len(space.expand_list)
    probes: list[Arch] = []
    for r in resolutions:
        perms = [rng.permutation(ne) for _ in range(space.n_blocks)]
        for j in range(coverage * nw * nw * ne):
            a, b = divmod((j // ne) % (nw * nw), nw)
            probes.append(
                {
                    "d": [space.max_depth] * 5,
                    "e": [space.expand_list[int(p[j % ne])] for p in perms],
                    "w": [(a + k * b) % nw for k in range(6)],
                    "r": int(r),
                }
            )
    return probes


def resnet_coverage_rows(space: ResNetSpace, resolutions: Iterable[int]) -> list[tuple[Any, ...]]:
    """Coverage-frame rows ``(resolution, position, kernel, expand, key)`` (kernel 0: ResNet has none)."""
    return [(r, label, 0, e, block.key) for r, label, e, block, _ in resnet_cells(space, resolutions)]
