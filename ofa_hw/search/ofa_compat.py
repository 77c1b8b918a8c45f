"""Our models behind the interfaces of OFA's own ``EvolutionFinder`` (for side-by-side benchmarks).

OFA's finder (``ofa.nas.search_algorithm.EvolutionFinder``) calls
``efficiency_predictor.get_efficiency(arch_dict)`` once per candidate and
``accuracy_predictor.predict_acc(list_of_arch_dicts)``; it draws, mutates and crosses archs through
``accuracy_predictor.arch_encoder`` (``random_sample_arch``, ``mutate_resolution``, ``mutate_arch``)
using Python's global ``random`` module. OFA's own encoder imports torchvision, so this module
provides an equivalent manager over a :class:`~ofa_hw.space.SearchSpace` (same draws, same per-block
mutation of kernel and expand together) and an accuracy wrapper around any accuracy model; the
efficiency side is :class:`ofa_hw.predictor.OFAEfficiencyAdapter`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from ofa_hw.space import Arch, SearchSpace
from ofa_hw.space_resnet import ResNetSpace


class OFAArchManager:
    """OFA's ``MobileNetArchEncoder`` sampling/mutation interface for a ProxylessNAS space (``mbv2``).

    Arch dicts carry ``image_size`` and six depths, as OFA's own manager produces them; the last
    stage's depth is drawn too but has no effect (that stage always holds one block).
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.n_stage = space.n_stages

    def random_sample_arch(self) -> Arch:
        sp = self.space
        return {
            "ks": random.choices(sp.ks_list, k=sp.n_blocks),
            "e": random.choices(sp.expand_list, k=sp.n_blocks),
            "d": random.choices(sp.depth_list, k=self.n_stage),
            "image_size": random.choice(sp.resolutions),
        }

    def mutate_resolution(self, arch: Arch, mutate_prob: float) -> Arch:
        if random.random() < mutate_prob:
            arch["image_size"] = random.choice(self.space.resolutions)
        return arch

    def mutate_arch(self, arch: Arch, mutate_prob: float) -> Arch:
        sp = self.space
        for i in range(sp.n_blocks):
            if random.random() < mutate_prob:
                arch["ks"][i] = random.choice(sp.ks_list)
                arch["e"][i] = random.choice(sp.expand_list)
        for i in range(self.n_stage):
            if random.random() < mutate_prob:
                arch["d"][i] = random.choice(sp.depth_list)
        return arch


class OFAResNetArchManager:
    """OFA's ``ResNetArchEncoder`` sampling/mutation interface for the ResNet-50 space (same draws: the
    stem's ``d[0]`` from ``{0, 2}``, then every depth, width and expand gene on its own coin)."""

    def __init__(self, space: ResNetSpace) -> None:
        self.space = space

    def random_sample_arch(self) -> Arch:
        sp = self.space
        return {
            "d": [random.choice([min(sp.depth_list), sp.max_depth])] + random.choices(sp.depth_list, k=4),
            "e": random.choices(sp.expand_list, k=sp.n_blocks),
            "w": random.choices(range(len(sp.width_mult_list)), k=6),
            "image_size": random.choice(sp.resolutions),
        }

    def mutate_resolution(self, arch: Arch, mutate_prob: float) -> Arch:
        if random.random() < mutate_prob:
            arch["image_size"] = random.choice(self.space.resolutions)
        return arch

    def mutate_arch(self, arch: Arch, mutate_prob: float) -> Arch:
        sp = self.space
        if random.random() < mutate_prob:
            arch["d"][0] = random.choice([min(sp.depth_list), sp.max_depth])
        for i in range(1, 5):
            if random.random() < mutate_prob:
                arch["d"][i] = random.choice(sp.depth_list)
        for i in range(6):
            if random.random() < mutate_prob:
                arch["w"][i] = random.choice(range(len(sp.width_mult_list)))
        for i in range(sp.n_blocks):
            if random.random() < mutate_prob:
                arch["e"][i] = random.choice(sp.expand_list)
        return arch


class OFAAccuracyAdapter:
    """``predict_acc(list_of_arch_dicts)`` + ``arch_encoder`` around one of our accuracy models."""

    def __init__(self, model: Any, space: SearchSpace | ResNetSpace) -> None:
        self.model = model
        self.space = space
        self.arch_encoder: OFAArchManager | OFAResNetArchManager = (
            OFAResNetArchManager(space) if isinstance(space, ResNetSpace) else OFAArchManager(space)
        )

    def predict_acc(self, archs: list[Arch]) -> np.ndarray:
        return np.asarray(self.model.predict_encoded(self.space.encode(archs)), dtype=np.float64)
