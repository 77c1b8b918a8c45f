"""Schema of the ``space`` group: an OFA search space (ProxylessNAS, MobileNetV3 or ResNet-50)."""

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class SpaceConfig:
    """Attributes mirror :class:`ofa_hw.space.SearchSpace` (``family: resnet``:
    :class:`ofa_hw.space_resnet.ResNetSpace`, which reads ``depth_list``, ``expand_list`` (floats),
    ``width_mult_list`` and ``resolutions``)."""

    name: str = MISSING
    width_mult: float = 1.0
    ks_list: list[int] = field(default_factory=lambda: [3, 5, 7])
    expand_list: list[float] = field(default_factory=lambda: [3, 4, 6])
    depth_list: list[int] = field(default_factory=lambda: [2, 3, 4])
    resolutions: list[int] = field(default_factory=lambda: list(range(128, 225, 4)))
    keep_head_width: bool = True
    family: str = "proxyless"
    width_mult_list: list[float] = field(default_factory=lambda: [0.65, 0.8, 1.0])
