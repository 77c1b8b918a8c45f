"""The OFA ProxylessNAS search space: presets, architecture validation, sampling and encoding.

An architecture is OFA's own config dict ``{'ks': [21], 'e': [21], 'd': [6], 'r': int}`` so that
archs move freely between this package and OFA's tools. Blocks are numbered 0..20: five elastic
stages of ``max(depth_list)`` blocks each, then the last stage's single block. Entries of ``ks``/``e``
for blocks beyond a stage's depth are kept (OFA keeps them too) but ignored everywhere.

For vectorised search a batch of archs is encoded as an ``int8`` gene matrix of shape ``(N, 48)``:
21 kernel indices, 21 expand indices, 5 depth indices (the last stage is fixed) and 1 resolution index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arch = dict[str, Any]

#: Base widths of ProxylessNAS: stem, first block, six stages, feature mix.
BASE_WIDTHS: tuple[int, ...] = (32, 16, 24, 40, 80, 96, 192, 320, 1280)
#: Stride of the first block of each of the six stages.
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2, 1)


class ArchError(ValueError):
    """An architecture dict that does not belong to the search space."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90 % of it.

    This is the channel rounding of MobileNetV2/ProxylessNAS/OFA, so widths match the published nets.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class SearchSpace:
    """A ProxylessNAS-style elastic space, parametrised as OFA parametrises it.

    Attributes:
        name: Preset or user name; recorded with every measurement and LUT.
        width_mult: Channel multiplier applied to :data:`BASE_WIDTHS`.
        ks_list: Depthwise kernel choices.
        expand_list: Expand-ratio choices.
        depth_list: Blocks-per-stage choices for the five elastic stages.
        resolutions: Input resolutions (square) the space covers.
        keep_head_width: ProxylessNAS keeps the feature-mix width at 1280 when ``width_mult <= 1``.
        n_classes: Classifier outputs.
        named_archs: Named members of the space (e.g. the seed's deployed net).
    """

    name: str
    width_mult: float
    ks_list: tuple[int, ...] = (3, 5, 7)
    expand_list: tuple[int, ...] = (3, 4, 6)
    depth_list: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = tuple(range(128, 225, 4))
    keep_head_width: bool = True
    n_classes: int = 1000
    named_archs: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    # ---------------------------------------------------------------- structure
    @property
    def max_depth(self) -> int:
        return max(self.depth_list)

    @property
    def n_stages(self) -> int:
        return len(STAGE_STRIDES)

    @property
    def n_blocks(self) -> int:
        return (self.n_stages - 1) * self.max_depth + 1

    @property
    def n_genes(self) -> int:
        return 2 * self.n_blocks + (self.n_stages - 1) + 1

    @property
    def widths(self) -> tuple[int, ...]:
        """Channel widths: stem, first block, six stages, feature mix."""
        widths = [make_divisible(w * self.width_mult, 8) for w in BASE_WIDTHS]
        if self.keep_head_width and self.width_mult <= 1.0:
            widths[-1] = BASE_WIDTHS[-1]
        return tuple(widths)

    def stage_blocks(self, stage: int) -> range:
        """Block indices (0..20) of ``stage`` (0..5)."""
        start = stage * self.max_depth
        return range(start, start + (1 if stage == self.n_stages - 1 else self.max_depth))

    @property
    def gene_cardinality(self) -> np.ndarray:
        """Number of choices of every gene, shape ``(n_genes,)``."""
        nb = self.n_blocks
        return np.array(
            [len(self.ks_list)] * nb
            + [len(self.expand_list)] * nb
            + [len(self.depth_list)] * (self.n_stages - 1)
            + [len(self.resolutions)],
            dtype=np.int64,
        )

    # --------------------------------------------------------------- validation
    def validate(self, arch: Arch) -> Arch:
        """Check an arch dict and return its canonical form.

        Accepts OFA's ``image_size`` for ``r`` and a ``d`` list of 5 or 6 entries (OFA's sampler draws a
        depth for the last stage too; that stage always has one block, so the canonical ``d[5]`` is 1).

        Raises:
            ArchError: naming the offending field and position.
        """
        if not isinstance(arch, dict):
            raise ArchError(f"arch must be a dict with keys ks, e, d, r; got {type(arch).__name__}")
        unknown = set(arch) - {"ks", "e", "d", "r", "image_size"}
        if unknown:
            raise ArchError(f"arch has unknown field(s) {sorted(unknown)}; expected ks, e, d, r")
        if "r" in arch and "image_size" in arch and arch["r"] != arch["image_size"]:
            raise ArchError(f"arch gives both r={arch['r']} and image_size={arch['image_size']}")
        for key in ("ks", "e", "d"):
            if key not in arch:
                raise ArchError(f"arch is missing field '{key}'")
        r = arch.get("r", arch.get("image_size"))
        if r is None:
            raise ArchError("arch is missing field 'r' (or its alias 'image_size')")
        ks = self._int_list(arch["ks"], "ks", (self.n_blocks,), self.ks_list)
        e = self._int_list(arch["e"], "e", (self.n_blocks,), self.expand_list)
        d = self._int_list(
            arch["d"], "d", (self.n_stages - 1, self.n_stages), self.depth_list, last_free=True
        )
        d = d[: self.n_stages - 1] + [1]
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise ArchError(f"field 'r' must be an int, got {r!r}")
        if int(r) not in self.resolutions:
            raise ArchError(
                f"field 'r' = {r} is not a resolution of space '{self.name}' "
                f"({self.resolutions[0]}..{self.resolutions[-1]}, {len(self.resolutions)} values)"
            )
        return {"ks": ks, "e": e, "d": d, "r": int(r)}

    def _int_list(
        self,
        value: Any,
        key: str,
        lengths: tuple[int, ...],
        choices: tuple[int, ...],
        last_free: bool = False,
    ) -> list[int]:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise ArchError(f"field '{key}' must be a list, got {type(value).__name__}")
        if len(value) not in lengths:
            want = " or ".join(str(n) for n in lengths)
            raise ArchError(f"field '{key}' must have {want} entries, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ArchError(f"field '{key}'[{i}] must be an int, got {v!r}")
            allowed = choices + ((1,) if last_free and i == self.n_stages - 1 else ())
            if int(v) not in allowed:
                raise ArchError(f"field '{key}'[{i}] = {v} is not one of {list(allowed)}")
            out.append(int(v))
        return out

    # ------------------------------------------------------------ arch helpers
    def active_blocks(self, arch: Arch) -> list[int]:
        """Indices of the blocks that exist under ``arch['d']``."""
        blocks = []
        for stage in range(self.n_stages):
            depth = 1 if stage == self.n_stages - 1 else arch["d"][stage]
            blocks.extend(list(self.stage_blocks(stage))[:depth])
        return blocks

    def arch_id(self, arch: Arch) -> str:
        """A stable string naming the network ``arch`` builds (inactive entries are ignored)."""
        arch = self.validate(arch)
        active = self.active_blocks(arch)
        body = {
            "r": arch["r"],
            "d": arch["d"][: self.n_stages - 1],
            "ks": [arch["ks"][b] if b in active else 0 for b in range(self.n_blocks)],
            "e": [arch["e"][b] if b in active else 0 for b in range(self.n_blocks)],
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    def named_arch(self, name: str) -> Arch:
        """A named member of this space, e.g. ``proxyless_mobile_05`` of ``proxyless_w05``."""
        table = dict(self.named_archs)
        if name not in table:
            raise KeyError(f"space '{self.name}' has no named arch '{name}'; known: {sorted(table)}")
        return self.validate(json.loads(table[name]))

    # ----------------------------------------------------------- random moves
    def sample(self, rng: np.random.Generator, n: int | None = None) -> Arch | list[Arch]:
        """Uniformly random arch(s), as OFA's ``sample_active_subnet`` draws them."""
        if n is not None:
            return [self.sample(rng) for _ in range(n)]
        return {
            "ks": [int(x) for x in rng.choice(self.ks_list, self.n_blocks)],
            "e": [int(x) for x in rng.choice(self.expand_list, self.n_blocks)],
            "d": [int(x) for x in rng.choice(self.depth_list, self.n_stages - 1)] + [1],
            "r": int(rng.choice(self.resolutions)),
        }

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float = 0.1, r_prob: float = 0.5) -> Arch:
        """OFA's mutation: resample the resolution with ``r_prob``, each block's (k, e) and each depth with ``prob``."""
        arch = self.validate(arch)
        new = {"ks": list(arch["ks"]), "e": list(arch["e"]), "d": list(arch["d"]), "r": arch["r"]}
        if rng.random() < r_prob:
            new["r"] = int(rng.choice(self.resolutions))
        for b in range(self.n_blocks):
            if rng.random() < prob:  # one coin per block resamples kernel and expand together, as OFA does
                new["ks"][b] = int(rng.choice(self.ks_list))
                new["e"][b] = int(rng.choice(self.expand_list))
        for s in range(self.n_stages - 1):
            if rng.random() < prob:
                new["d"][s] = int(rng.choice(self.depth_list))
        return new

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """OFA's crossover: every gene (and the resolution) comes from either parent with p = 0.5."""
        a, b = self.validate(a), self.validate(b)
        pick = lambda x, y: x if rng.random() < 0.5 else y  # noqa: E731 - one coin per gene
        return {
            "ks": [pick(x, y) for x, y in zip(a["ks"], b["ks"])],
            "e": [pick(x, y) for x, y in zip(a["e"], b["e"])],
            "d": [pick(x, y) for x, y in zip(a["d"], b["d"])],
            "r": pick(a["r"], b["r"]),
        }

    # --------------------------------------------------------------- encoding
    def encode(self, archs: list[Arch]) -> np.ndarray:
        """Encode archs as an ``int8`` gene matrix ``(N, n_genes)`` of choice indices."""
        nb, ns = self.n_blocks, self.n_stages - 1
        genes = np.empty((len(archs), self.n_genes), dtype=np.int8)
        k_pos = {k: i for i, k in enumerate(self.ks_list)}
        e_pos = {e: i for i, e in enumerate(self.expand_list)}
        d_pos = {d: i for i, d in enumerate(self.depth_list)}
        r_pos = {r: i for i, r in enumerate(self.resolutions)}
        for row, arch in enumerate(archs):
            arch = self.validate(arch)
            genes[row, :nb] = [k_pos[k] for k in arch["ks"]]
            genes[row, nb : 2 * nb] = [e_pos[e] for e in arch["e"]]
            genes[row, 2 * nb : 2 * nb + ns] = [d_pos[d] for d in arch["d"][:ns]]
            genes[row, -1] = r_pos[arch["r"]]
        return genes

    def decode(self, genes: np.ndarray) -> list[Arch]:
        """Inverse of :meth:`encode`."""
        genes = np.atleast_2d(np.asarray(genes))
        if genes.shape[1] != self.n_genes:
            raise ArchError(f"gene matrix must have {self.n_genes} columns, got {genes.shape[1]}")
        if (genes < 0).any() or (genes >= self.gene_cardinality).any():
            raise ArchError("gene matrix holds indices outside the space's choices")
        nb, ns = self.n_blocks, self.n_stages - 1
        ks, es, ds, rs = map(np.asarray, (self.ks_list, self.expand_list, self.depth_list, self.resolutions))
        return [
            {
                "ks": ks[g[:nb]].tolist(),
                "e": es[g[nb : 2 * nb]].tolist(),
                "d": ds[g[2 * nb : 2 * nb + ns]].tolist() + [1],
                "r": int(rs[g[-1]]),
            }
            for g in genes
        ]

    def active_mask(self, genes: np.ndarray) -> np.ndarray:
        """Boolean ``(N, n_blocks)``: which blocks exist for each encoded arch (vectorised)."""
        genes = np.atleast_2d(genes)
        nb, ns = self.n_blocks, self.n_stages - 1
        # depth_index → number of blocks; compare each elastic position with its stage's depth.
        depth_of = np.asarray(self.depth_list, dtype=np.int8)[genes[:, 2 * nb : 2 * nb + ns]]  # (N, 5)
        mask = np.ones((genes.shape[0], nb), dtype=bool)
        mask[:, : nb - 1] = np.repeat(depth_of, self.max_depth, axis=1) > self._pos_in_stage
        return mask

    @property
    def _pos_in_stage(self) -> np.ndarray:
        return np.tile(np.arange(self.max_depth, dtype=np.int8), self.n_stages - 1)


_MOBILE_05 = {
    # The seed's deployed ProxylessNAS-Mobile 0.5 (see ofa_hw/data/zcu102_b4096/README.md).
    # Stage 1 has depth 2: its blocks 2 and 3 are inactive and hold the smallest choice.
    "ks": [5, 3, 3, 3, 7, 3, 5, 5, 7, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7],
    "e": [3, 3, 3, 3, 3, 3, 3, 3, 6, 3, 3, 3, 6, 3, 3, 3, 6, 6, 3, 3, 6],
    "d": [2, 4, 4, 4, 4, 1],
    "r": 224,
}

PRESETS: dict[str, SearchSpace] = {
    "ofa_proxyless_w13": SearchSpace(name="ofa_proxyless_w13", width_mult=1.3),
    "proxyless_w05": SearchSpace(
        name="proxyless_w05",
        width_mult=0.5,
        named_archs=(("proxyless_mobile_05", json.dumps(_MOBILE_05)),),
    ),
}


def get_space(name: str) -> SearchSpace:
    """A preset space by name."""
    if name not in PRESETS:
        raise KeyError(f"unknown search space '{name}'; presets: {sorted(PRESETS)}")
    return PRESETS[name]


def space_from_config(cfg: Any) -> SearchSpace:
    """Build a space from a ``space`` config group node (preset name plus optional overrides)."""
    base = PRESETS.get(cfg["name"])
    fields = {
        "name": cfg["name"],
        "width_mult": float(cfg["width_mult"]),
        "ks_list": tuple(int(x) for x in cfg["ks_list"]),
        "expand_list": tuple(int(x) for x in cfg["expand_list"]),
        "depth_list": tuple(int(x) for x in cfg["depth_list"]),
        "resolutions": tuple(int(x) for x in cfg["resolutions"]),
        "keep_head_width": bool(cfg["keep_head_width"]),
    }
    named = base.named_archs if base is not None else ()
    space = SearchSpace(**fields, named_archs=named)
    if not space.resolutions or any(r <= 0 or r % 4 for r in space.resolutions):
        raise ValueError(f"space '{space.name}': resolutions must be positive multiples of 4")
    return space
