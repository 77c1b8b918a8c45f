"""OFA's MBConv search spaces (ProxylessNAS and MobileNetV3): presets, validation, sampling, encoding.

An architecture is OFA's own config dict so that archs move freely between this package and OFA's
tools: ProxylessNAS ``{'ks': [21], 'e': [21], 'd': [6], 'r': int}`` (five elastic stages of
``max(depth_list)`` blocks, then the last stage's single block) and MobileNetV3
``{'ks': [20], 'e': [20], 'd': [5], 'r': int}`` (five elastic stages). Entries of ``ks``/``e`` for
blocks beyond a stage's depth are kept (OFA keeps them too) but ignored everywhere.

For vectorised search a batch of archs is encoded as an ``int8`` gene matrix of shape
``(N, 2 * n_blocks + n_elastic_stages + 1)``: kernel indices, expand indices, one depth index per
elastic stage and one resolution index (48 columns for ProxylessNAS, 46 for MobileNetV3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from ofa_hw.space_base import Arch, ArchError, make_divisible
from ofa_hw.space_resnet import RESNET_PRESETS, ResNetSpace

#: Base widths of ProxylessNAS: stem, first block, six stages, feature mix.
BASE_WIDTHS: tuple[int, ...] = (32, 16, 24, 40, 80, 96, 192, 320, 1280)
#: Stride of the first block of each of the six stages.
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2, 1)


@dataclass(frozen=True)
class Family:
    """The fixed skeleton of an OFA MBConv space (what ``OFAProxylessNASNets``/``OFAMobileNetV3`` hard-code).

    Attributes:
        name: ``proxyless`` | ``mbv3``.
        base_widths: Stem, first block, one per stage, then the head widths (ProxylessNAS: feature mix;
            MobileNetV3: final expand and feature mix).
        stage_strides: Stride of the first block of each stage.
        fixed_last_stage: The last stage always has one block (ProxylessNAS) instead of an elastic depth.
        stage_acts: Activation of each stage's blocks (``relu6`` | ``relu`` | ``hswish``).
        stage_se: Squeeze-excite in each stage's blocks.
        stem_act: Activation of the stem conv; ``first_act`` of the fixed first block.
        first_shortcut: The first block has an identity shortcut when its widths match.
    """

    name: str
    base_widths: tuple[int, ...]
    stage_strides: tuple[int, ...]
    fixed_last_stage: bool
    stage_acts: tuple[str, ...]
    stage_se: tuple[bool, ...]
    stem_act: str
    first_act: str
    first_shortcut: bool


#: The OFA MBConv families (OFA's ``ofa_proxyless.py`` and ``ofa_mbv3.py``).
FAMILIES: dict[str, Family] = {
    "proxyless": Family(
        "proxyless", BASE_WIDTHS, STAGE_STRIDES, True, ("relu6",) * 6, (False,) * 6, "relu6", "relu6", False
    ),
    "mbv3": Family(
        "mbv3",
        (16, 16, 24, 40, 80, 112, 160, 960, 1280),
        (2, 2, 2, 1, 2),
        False,
        ("relu", "relu", "hswish", "hswish", "hswish"),
        (False, True, False, True, True),
        "hswish",
        "relu",
        True,
    ),
}


@dataclass(frozen=True)
class SearchSpace:
    """An OFA MBConv elastic space (ProxylessNAS or MobileNetV3), parametrised as OFA parametrises it.

    Attributes:
        name: Preset or user name; recorded with every measurement and LUT.
        width_mult: Channel multiplier applied to the family's base widths.
        ks_list: Depthwise kernel choices.
        expand_list: Expand-ratio choices.
        depth_list: Blocks-per-stage choices for the five elastic stages.
        resolutions: Input resolutions (square) the space covers.
        keep_head_width: ProxylessNAS keeps the feature-mix width at 1280 when ``width_mult <= 1``.
        n_classes: Classifier outputs.
        named_archs: Named members of the space (e.g. the seed's deployed net).
        family: Key of :data:`FAMILIES`: the network skeleton.
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
    family: str = "proxyless"

    # ---------------------------------------------------------------- structure
    @property
    def skeleton(self) -> Family:
        """The family's fixed skeleton."""
        return FAMILIES[self.family]

    @property
    def max_depth(self) -> int:
        return max(self.depth_list)

    @property
    def n_stages(self) -> int:
        return len(self.skeleton.stage_strides)

    @property
    def n_elastic_stages(self) -> int:
        """Stages with an elastic depth (all but ProxylessNAS's fixed last stage)."""
        return self.n_stages - int(self.skeleton.fixed_last_stage)

    @property
    def n_blocks(self) -> int:
        return self.n_elastic_stages * self.max_depth + int(self.skeleton.fixed_last_stage)

    @property
    def n_genes(self) -> int:
        return 2 * self.n_blocks + self.n_elastic_stages + 1

    @property
    def widths(self) -> tuple[int, ...]:
        """Channel widths: stem, first block, one per stage, head (feature mix; MBv3: final expand too)."""
        base = self.skeleton.base_widths
        widths = [make_divisible(w * self.width_mult, 8) for w in base]
        if self.family == "proxyless" and self.keep_head_width and self.width_mult <= 1.0:
            widths[-1] = base[-1]
        return tuple(widths)

    def stage_blocks(self, stage: int) -> range:
        """Block indices of ``stage``."""
        start = stage * self.max_depth
        fixed = self.skeleton.fixed_last_stage and stage == self.n_stages - 1
        return range(start, start + (1 if fixed else self.max_depth))

    def block_stage(self, block: int) -> int:
        """Stage index of elastic block ``block``."""
        return min(block // self.max_depth, self.n_stages - 1)

    def stage_depth_choices(self, stage: int) -> tuple[int, ...]:
        """Depths ``stage`` can take: ``depth_list``, or ``(1,)`` for a fixed last stage."""
        return self.depth_list if stage < self.n_elastic_stages else (1,)

    def full_d(self, elastic: Any) -> list[int]:
        """The canonical ``d`` list from the elastic stages' depths (appends the fixed stage's 1)."""
        d = [int(x) for x in list(elastic)[: self.n_elastic_stages]]
        return d + [1] * (self.n_stages - self.n_elastic_stages)

    @property
    def max_depth_d(self) -> list[int]:
        """``d`` of the deepest arch."""
        return self.full_d([self.max_depth] * self.n_elastic_stages)

    @property
    def gene_cardinality(self) -> np.ndarray:
        """Number of choices of every gene, shape ``(n_genes,)``."""
        nb = self.n_blocks
        return np.array(
            [len(self.ks_list)] * nb
            + [len(self.expand_list)] * nb
            + [len(self.depth_list)] * self.n_elastic_stages
            + [len(self.resolutions)],
            dtype=np.int64,
        )

    # --------------------------------------------------------------- validation
    def validate(self, arch: Arch) -> Arch:
        """Check an arch dict and return its canonical form.

        Accepts OFA's ``image_size`` for ``r``; for ProxylessNAS a ``d`` list of 5 or 6 entries (OFA's
        sampler draws a depth for the last stage too; that stage always has one block, so the canonical
        ``d[5]`` is 1).

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
        ne = self.n_elastic_stages
        lengths = (ne, self.n_stages) if ne < self.n_stages else (ne,)
        d = self.full_d(
            self._int_list(arch["d"], "d", lengths, self.depth_list, last_free=ne < self.n_stages)
        )
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
            allowed = choices + ((1,) if last_free and i == self.n_elastic_stages else ())
            if int(v) not in allowed:
                raise ArchError(f"field '{key}'[{i}] = {v} is not one of {list(allowed)}")
            out.append(int(v))
        return out

    # ------------------------------------------------------------ arch helpers
    def active_blocks(self, arch: Arch) -> list[int]:
        """Indices of the blocks that exist under ``arch['d']``."""
        blocks = []
        for stage in range(self.n_stages):
            blocks.extend(list(self.stage_blocks(stage))[: arch["d"][stage]])
        return blocks

    def arch_id(self, arch: Arch) -> str:
        """A stable string naming the network ``arch`` builds (inactive entries are ignored)."""
        arch = self.validate(arch)
        active = self.active_blocks(arch)
        body = {
            "r": arch["r"],
            "d": arch["d"][: self.n_elastic_stages],
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
    @overload
    def sample(self, rng: np.random.Generator, n: None = None) -> Arch: ...

    @overload
    def sample(self, rng: np.random.Generator, n: int) -> list[Arch]: ...

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Arch | list[Arch]:
        """Uniformly random arch(s), as OFA's ``sample_active_subnet`` draws them."""
        if n is not None:
            return [self.sample(rng) for _ in range(n)]
        return {
            "ks": [int(x) for x in rng.choice(self.ks_list, self.n_blocks)],
            "e": [int(x) for x in rng.choice(self.expand_list, self.n_blocks)],
            "d": self.full_d(rng.choice(self.depth_list, self.n_elastic_stages)),
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
        for s in range(self.n_elastic_stages):
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
        nb, ns = self.n_blocks, self.n_elastic_stages
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
        nb, ns = self.n_blocks, self.n_elastic_stages
        ks, es, ds, rs = map(np.asarray, (self.ks_list, self.expand_list, self.depth_list, self.resolutions))
        return [
            {
                "ks": ks[g[:nb]].tolist(),
                "e": es[g[nb : 2 * nb]].tolist(),
                "d": self.full_d(ds[g[2 * nb : 2 * nb + ns]].tolist()),
                "r": int(rs[g[-1]]),
            }
            for g in genes
        ]

    def active_mask(self, genes: np.ndarray) -> np.ndarray:
        """Boolean ``(N, n_blocks)``: which blocks exist for each encoded arch (vectorised)."""
        genes = np.atleast_2d(genes)
        nb, ns = self.n_blocks, self.n_elastic_stages
        # depth_index → number of blocks; compare each elastic position with its stage's depth.
        depth_of = np.asarray(self.depth_list, dtype=np.int8)[genes[:, 2 * nb : 2 * nb + ns]]  # (N, 5)
        mask = np.ones((genes.shape[0], nb), dtype=bool)
        mask[:, : ns * self.max_depth] = np.repeat(depth_of, self.max_depth, axis=1) > self._pos_in_stage
        return mask

    @property
    def _pos_in_stage(self) -> np.ndarray:
        return np.tile(np.arange(self.max_depth, dtype=np.int8), self.n_elastic_stages)


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
    # OFA's published ofa_mbv3_d234_e346_k357_w1.0 / w1.2 (OFAMobileNetV3).
    "ofa_mbv3_w10": SearchSpace(name="ofa_mbv3_w10", width_mult=1.0, keep_head_width=False, family="mbv3"),
    "ofa_mbv3_w12": SearchSpace(name="ofa_mbv3_w12", width_mult=1.2, keep_head_width=False, family="mbv3"),
}


def get_space(name: str) -> Any:
    """A preset space by name (a :class:`SearchSpace`, or a :class:`~ofa_hw.space_resnet.ResNetSpace`)."""
    if name in RESNET_PRESETS:
        return RESNET_PRESETS[name]
    if name not in PRESETS:
        raise KeyError(f"unknown search space '{name}'; presets: {sorted(PRESETS) + sorted(RESNET_PRESETS)}")
    return PRESETS[name]


def space_from_config(cfg: Any) -> Any:
    """Build a space from a ``space`` config group node (preset name plus optional overrides)."""
    if cfg.get("family") == "resnet":
        return _resnet_from_config(cfg)
    base = PRESETS.get(cfg["name"])
    fields = {
        "name": cfg["name"],
        "width_mult": float(cfg["width_mult"]),
        "ks_list": tuple(int(x) for x in cfg["ks_list"]),
        "expand_list": tuple(_whole(x, "expand_list") for x in cfg["expand_list"]),
        "depth_list": tuple(int(x) for x in cfg["depth_list"]),
        "resolutions": tuple(int(x) for x in cfg["resolutions"]),
        "keep_head_width": bool(cfg["keep_head_width"]),
        "family": str(cfg.get("family", base.family if base is not None else "proxyless")),
    }
    if fields["family"] not in FAMILIES:
        raise ValueError(
            f"space '{fields['name']}': family '{fields['family']}' is not one of {sorted(FAMILIES) + ['resnet']}"
        )
    named = base.named_archs if base is not None else ()
    space = SearchSpace(**fields, named_archs=named)
    if not space.resolutions or any(r <= 0 or r % 4 for r in space.resolutions):
        raise ValueError(f"space '{space.name}': resolutions must be positive multiples of 4")
    return space


def _resnet_from_config(cfg: Any) -> ResNetSpace:
    space = ResNetSpace(
        name=str(cfg["name"]),
        depth_list=tuple(int(x) for x in cfg["depth_list"]),
        expand_list=tuple(float(x) for x in cfg["expand_list"]),
        width_mult_list=tuple(float(x) for x in cfg["width_mult_list"]),
        resolutions=tuple(int(x) for x in cfg["resolutions"]),
    )
    if not space.resolutions or any(r <= 0 or r % 4 for r in space.resolutions):
        raise ValueError(f"space '{space.name}': resolutions must be positive multiples of 4")
    return space


def _whole(value: Any, field: str) -> int:
    """An integer choice of an MBConv space (the schema types ``expand_list`` as floats for ResNet-50)."""
    if float(value) != int(float(value)):
        raise ValueError(f"{field} = {value} is not a whole number (MBConv expand ratios are integers)")
    return int(float(value))
