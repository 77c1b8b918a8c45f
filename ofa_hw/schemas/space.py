"""Schema of the ``space`` group: an OFA MBConv search space (ProxylessNAS or MobileNetV3)."""

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class SpaceConfig:
    """Attributes mirror :class:`ofa_hw.space.SearchSpace`."""

    name: str = MISSING
    width_mult: float = MISSING
    ks_list: list[int] = field(default_factory=lambda: [3, 5, 7])
    expand_list: list[int] = field(default_factory=lambda: [3, 4, 6])
    depth_list: list[int] = field(default_factory=lambda: [2, 3, 4])
    resolutions: list[int] = field(default_factory=lambda: list(range(128, 225, 4)))
    keep_head_width: bool = True
    family: str = "proxyless"
