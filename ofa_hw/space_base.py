"""What every OFA search space shares: the arch dict type, its error, and OFA's channel rounding."""

from __future__ import annotations

from typing import Any

Arch = dict[str, Any]


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
