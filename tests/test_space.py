"""Search space: presets, validation errors, random moves staying inside the space, encoding."""

from __future__ import annotations

import numpy as np
import pytest

from ofa_hw.space import ArchError, get_space, make_divisible

SPACES = ["ofa_proxyless_w13", "proxyless_w05"]


def test_preset_widths_match_the_published_nets():
    assert get_space("ofa_proxyless_w13").widths == (40, 24, 32, 56, 104, 128, 248, 416, 1664)
    assert get_space("proxyless_w05").widths == (16, 8, 16, 24, 40, 48, 96, 160, 1280)
    assert make_divisible(12) == 16 and make_divisible(20.8) == 24


@pytest.mark.parametrize("name", SPACES)
def test_shape_of_the_space(name):
    space = get_space(name)
    assert space.n_blocks == 21 and space.n_genes == 48
    assert space.resolutions == tuple(range(128, 225, 4))
    assert [len(space.stage_blocks(s)) for s in range(6)] == [4, 4, 4, 4, 4, 1]


def _arch(space, **changes):
    arch = {"ks": [3] * 21, "e": [3] * 21, "d": [2, 2, 2, 2, 2, 1], "r": 224}
    arch.update(changes)
    return arch


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"ks": [3] * 20}, "'ks' must have 21 entries, got 20"),
        ({"e": [3] * 20 + [5]}, "'e'[20] = 5 is not one of [3, 4, 6]"),
        ({"d": [2, 2, 9, 2, 2]}, "'d'[2] = 9"),
        ({"d": [2, 2]}, "'d' must have 5 or 6 entries"),
        ({"r": 225}, "'r' = 225 is not a resolution"),
        ({"r": "224"}, "'r' must be an int"),
        ({"ks": [3] * 20 + [3.0]}, "'ks'[20] must be an int"),
        ({"extra": 1}, "unknown field(s) ['extra']"),
    ],
)
def test_validation_names_field_and_position(changes, message):
    space = get_space("ofa_proxyless_w13")
    with pytest.raises(ArchError) as err:
        space.validate(_arch(space, **changes))
    assert message in str(err.value)


def test_missing_field_and_aliases():
    space = get_space("ofa_proxyless_w13")
    arch = _arch(space)
    del arch["ks"]
    with pytest.raises(ArchError, match="missing field 'ks'"):
        space.validate(arch)
    ofa_style = _arch(space, d=[2, 3, 4, 2, 3, 4])
    ofa_style["image_size"] = ofa_style.pop("r")
    canonical = space.validate(ofa_style)
    assert canonical["r"] == 224 and canonical["d"] == [2, 3, 4, 2, 3, 1]
    with pytest.raises(ArchError, match="both r=224 and image_size=160"):
        space.validate({**_arch(space), "image_size": 160})


@pytest.mark.parametrize("name", SPACES)
def test_random_moves_stay_inside_and_are_seeded(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    archs = space.sample(rng, 50)
    for a, b in zip(archs, archs[1:]):
        space.validate(space.mutate(a, rng))
        child = space.crossover(a, b, rng)
        space.validate(child)
        for key in ("ks", "e", "d"):
            assert all(c in (x, y) for c, x, y in zip(child[key], a[key], b[key]))
    again = space.sample(np.random.default_rng(0), 50)
    assert again == archs
    assert space.sample(np.random.default_rng(1), 50) != archs


def test_mutation_rates_follow_ofa():
    space = get_space("ofa_proxyless_w13")
    rng = np.random.default_rng(3)
    base = space.sample(rng)
    changed_r = changed_k = changed_ke = 0
    for _ in range(2000):
        child = space.mutate(base, rng, prob=0.1, r_prob=0.5)
        changed_r += child["r"] != base["r"]
        changed_k += sum(x != y for x, y in zip(child["ks"], base["ks"]))
        changed_ke += sum(
            (x, y) != (u, v) for x, y, u, v in zip(child["ks"], child["e"], base["ks"], base["e"])
        )
    # A resampled gene keeps its value with p = 1/#choices: expected change rates 0.5·24/25 for r,
    # 0.1·2/3 for k alone and 0.1·8/9 for the (k, e) pair (one coin per block resamples both).
    assert abs(changed_r / 2000 - 0.48) < 0.04
    assert abs(changed_k / (2000 * 21) - 0.0667) < 0.01
    assert abs(changed_ke / (2000 * 21) - 0.0889) < 0.01


@pytest.mark.parametrize("name", SPACES)
def test_encoding_round_trips_and_masks(name):
    space = get_space(name)
    archs = space.sample(np.random.default_rng(5), 200)
    genes = space.encode(archs)
    assert genes.dtype == np.int8 and genes.shape == (200, 48)
    assert (genes < space.gene_cardinality).all()
    assert space.decode(genes) == [space.validate(a) for a in archs]
    for arch, row in zip(archs, space.active_mask(genes)):
        assert list(np.flatnonzero(row)) == space.active_blocks(arch)
    with pytest.raises(ArchError, match="outside"):
        space.decode(np.full((1, 48), 9, dtype=np.int8))


def test_arch_id_ignores_inactive_blocks():
    space = get_space("ofa_proxyless_w13")
    a = _arch(space)
    b = _arch(space, ks=[3, 3, 7, 7] + [3] * 17)  # blocks 2, 3 are inactive at depth 2
    assert space.arch_id(a) == space.arch_id(b)
    assert space.arch_id(a) != space.arch_id(_arch(space, r=160))
