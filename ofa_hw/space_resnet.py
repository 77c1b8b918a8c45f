"""OFA's ResNet-50 space (``OFAResNets``, published ``ofa_resnet50``): presets, validation, sampling, encoding.

An architecture is OFA's own dict ``{'d': [5], 'e': [18], 'w': [6], 'r': int}``:

* ``d[0]`` — the input stem's skippable residual 3×3 conv is kept only when ``d[0] == max(depth_list)``
  (OFA samples ``d[0]`` from ``{min, max}``); ``d[1..4]`` — extra bottlenecks per stage on top of the
  base depths ``[2, 2, 4, 2]``, from ``depth_list`` ``(0, 1, 2)``;
* ``e`` — expand ratio of each of the 18 bottleneck positions (``(0.2, 0.25, 0.35)``; the middle width
  is ``make_divisible(round(out · e), 8)``), ignored beyond a stage's depth;
* ``w`` — indices into ``width_mult_list`` ``(0.65, 0.8, 1.0)``: ``w[0]`` the first two stem convs
  (``make_divisible(make_divisible(64·m, 8) // 2, 8)``), ``w[1]`` the third stem conv
  (``make_divisible(64·m, 8)``), ``w[2..5]`` the four stages (``make_divisible(base·m, 8)``, base widths
  ``[256, 512, 1024, 2048]``).

Gene layout (``int8``, one row per arch): 18 expand indices | 5 depth indices | 6 width indices | 1
resolution index. Unlike the MBConv spaces, a block's cost depends on its neighbours' widths, so the
compiled tables of the LUT, the predictors and the search are term tables (:class:`ofa_hw.termtable.TermTable`:
each term's cells indexed by the genes it depends on) rather than ``BlockTable`` objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from ofa_hw.space_base import Arch, ArchError, make_divisible

BASE_DEPTHS: tuple[int, ...] = (2, 2, 4, 2)
STAGE_WIDTHS: tuple[int, ...] = (256, 512, 1024, 2048)
STAGE_STRIDES: tuple[int, ...] = (1, 2, 2, 2)


@dataclass(frozen=True)
class ResNetSpace:
    """OFA's elastic ResNet-50 space, parametrised as ``OFAResNets`` is.

    Attributes:
        name: Preset name.
        depth_list: Extra blocks per stage (and the stem-skip choice).
        expand_list: Bottleneck expand ratios.
        width_mult_list: Width multipliers (``w`` holds indices into it).
        resolutions: Input resolutions.
        n_classes: Classifier outputs.
    """

    name: str
    depth_list: tuple[int, ...] = (0, 1, 2)
    expand_list: tuple[float, ...] = (0.2, 0.25, 0.35)
    width_mult_list: tuple[float, ...] = (0.65, 0.8, 1.0)
    resolutions: tuple[int, ...] = tuple(range(128, 225, 4))
    n_classes: int = 1000
    family: str = "resnet"

    # ---------------------------------------------------------------- structure
    @property
    def max_depth(self) -> int:
        return max(self.depth_list)

    @property
    def stage_max_blocks(self) -> tuple[int, ...]:
        return tuple(b + self.max_depth for b in BASE_DEPTHS)

    @property
    def n_blocks(self) -> int:
        return sum(self.stage_max_blocks)

    @property
    def n_genes(self) -> int:
        return self.n_blocks + 5 + 6 + 1

    @property
    def gene_cardinality(self) -> np.ndarray:
        return np.array(
            [len(self.expand_list)] * self.n_blocks
            + [len(self.depth_list)] * 5
            + [len(self.width_mult_list)] * 6
            + [len(self.resolutions)],
            dtype=np.int64,
        )

    def stage_blocks(self, stage: int) -> range:
        start = sum(self.stage_max_blocks[:stage])
        return range(start, start + self.stage_max_blocks[stage])

    def stem_widths(self, w: list[int]) -> tuple[int, int]:
        """Output widths of the first two stem convs (``w[0]``) and of the third (``w[1]``)."""
        full = [make_divisible(64 * m, 8) for m in self.width_mult_list]
        return make_divisible(full[w[0]] // 2, 8), full[w[1]]

    def stage_width(self, stage: int, w_index: int) -> int:
        return make_divisible(STAGE_WIDTHS[stage] * self.width_mult_list[w_index], 8)

    def mid_channels(self, out_c: int, expand: float) -> int:
        return make_divisible(round(out_c * expand), 8)

    def stem_skip(self, arch: Arch) -> bool:
        """OFA skips the stem's residual conv unless ``d[0]`` is the largest depth."""
        return arch["d"][0] != self.max_depth

    def active_blocks(self, arch: Arch) -> list[int]:
        blocks = []
        for stage in range(4):
            blocks.extend(list(self.stage_blocks(stage))[: BASE_DEPTHS[stage] + arch["d"][stage + 1]])
        return blocks

    def active_mask(self, genes: np.ndarray) -> np.ndarray:
        """Boolean ``(N, n_blocks)``: which bottlenecks exist for each encoded arch (vectorised)."""
        genes = np.atleast_2d(genes)
        nb = self.n_blocks
        extra = np.asarray(self.depth_list)[genes[:, nb + 1 : nb + 5].astype(np.intp)]  # (N, 4)
        pos = np.concatenate([np.arange(n) for n in self.stage_max_blocks])
        stage = np.repeat(np.arange(4), self.stage_max_blocks)
        return pos[None, :] < (np.asarray(BASE_DEPTHS)[stage][None, :] + extra[:, stage])

    # --------------------------------------------------------------- validation
    def validate(self, arch: Arch) -> Arch:
        """Check an arch dict and return its canonical form (``image_size`` accepted for ``r``).

        Raises:
            ArchError: naming the offending field and position.
        """
        if not isinstance(arch, dict):
            raise ArchError(f"arch must be a dict with keys d, e, w, r; got {type(arch).__name__}")
        unknown = set(arch) - {"d", "e", "w", "r", "image_size"}
        if unknown:
            raise ArchError(f"arch has unknown field(s) {sorted(unknown)}; expected d, e, w, r")
        for key in ("d", "e", "w"):
            if key not in arch:
                raise ArchError(f"arch is missing field '{key}'")
        r = arch.get("r", arch.get("image_size"))
        if r is None:
            raise ArchError("arch is missing field 'r' (or its alias 'image_size')")
        d = self._list(arch["d"], "d", 5, self.depth_list)
        e = [float(x) for x in self._list(arch["e"], "e", self.n_blocks, self.expand_list)]
        w = self._list(arch["w"], "w", 6, tuple(range(len(self.width_mult_list))))
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or int(r) not in self.resolutions:
            raise ArchError(f"field 'r' = {r!r} is not a resolution of space '{self.name}'")
        return {"d": [int(x) for x in d], "e": e, "w": [int(x) for x in w], "r": int(r)}

    @staticmethod
    def _list(value: Any, key: str, length: int, choices: tuple) -> list:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise ArchError(f"field '{key}' must be a list, got {type(value).__name__}")
        if len(value) != length:
            raise ArchError(f"field '{key}' must have {length} entries, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            # np.isclose's tolerance in plain Python (np.isclose per entry dominated netspec builds)
            match = None if isinstance(v, bool) else next((c for c in choices if _close(v, c)), None)
            if match is None:
                raise ArchError(f"field '{key}'[{i}] = {v!r} is not one of {list(choices)}")
            out.append(match)
        return out

    def arch_id(self, arch: Arch) -> str:
        """A stable string naming the network ``arch`` builds (inactive expands and a skipped stem ignored)."""
        arch = self.validate(arch)
        active = set(self.active_blocks(arch))
        body = {
            "r": arch["r"],
            "d": [int(self.stem_skip(arch))] + arch["d"][1:],
            "e": [arch["e"][b] if b in active else 0 for b in range(self.n_blocks)],
            "w": arch["w"],
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    # ----------------------------------------------------------- random moves
    @overload
    def sample(self, rng: np.random.Generator, n: None = None) -> Arch: ...

    @overload
    def sample(self, rng: np.random.Generator, n: int) -> list[Arch]: ...

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Arch | list[Arch]:
        """Random arch(s) as ``OFAResNets.sample_active_subnet`` draws them (stem ``d[0]`` from {min, max})."""
        if n is not None:
            return [self.sample(rng) for _ in range(n)]
        return {
            "d": [int(rng.choice([min(self.depth_list), self.max_depth]))]
            + [int(x) for x in rng.choice(self.depth_list, 4)],
            "e": [float(x) for x in rng.choice(self.expand_list, self.n_blocks)],
            "w": [int(x) for x in rng.integers(0, len(self.width_mult_list), 6)],
            "r": int(rng.choice(self.resolutions)),
        }

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float = 0.1, r_prob: float = 0.5) -> Arch:
        """Resample the resolution with ``r_prob`` and every other gene with ``prob``."""
        genes = self.encode([arch])[0]
        fresh = self.encode([self.sample(rng)])[0]
        hit = rng.random(self.n_genes) < prob
        hit[-1] = rng.random() < r_prob
        return self.decode(np.where(hit, fresh, genes)[None])[0]

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Every gene from either parent with p = 0.5."""
        ga, gb = self.encode([a, b])
        return self.decode(np.where(rng.random(self.n_genes) < 0.5, ga, gb)[None])[0]

    # --------------------------------------------------------------- encoding
    def encode(self, archs: list[Arch]) -> np.ndarray:
        nb = self.n_blocks
        genes = np.empty((len(archs), self.n_genes), dtype=np.int8)
        for row, arch in enumerate(archs):
            arch = self.validate(arch)
            genes[row, :nb] = [self.expand_list.index(e) for e in arch["e"]]
            genes[row, nb : nb + 5] = [self.depth_list.index(d) for d in arch["d"]]
            genes[row, nb + 5 : nb + 11] = arch["w"]
            genes[row, -1] = self.resolutions.index(arch["r"])
        return genes

    def decode(self, genes: np.ndarray) -> list[Arch]:
        genes = np.atleast_2d(np.asarray(genes))
        if genes.shape[1] != self.n_genes:
            raise ArchError(f"gene matrix must have {self.n_genes} columns, got {genes.shape[1]}")
        if (genes < 0).any() or (genes >= self.gene_cardinality).any():
            raise ArchError("gene matrix holds indices outside the space's choices")
        nb = self.n_blocks
        return [
            {
                "d": [self.depth_list[i] for i in g[nb : nb + 5]],
                "e": [self.expand_list[i] for i in g[:nb]],
                "w": [int(i) for i in g[nb + 5 : nb + 11]],
                "r": self.resolutions[int(g[-1])],
            }
            for g in genes
        ]


def _close(value: Any, choice: float) -> bool:
    """``np.isclose(value, choice)`` for scalars (``False`` for non-numbers)."""
    try:
        return abs(float(value) - choice) <= 1e-8 + 1e-5 * abs(choice)
    except (TypeError, ValueError):
        return False


RESNET_PRESETS: dict[str, ResNetSpace] = {"ofa_resnet50": ResNetSpace(name="ofa_resnet50")}
