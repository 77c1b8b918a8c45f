"""The error of a network the DPU compiler refuses (both backends raise it)."""

from __future__ import annotations


class CompileError(ValueError):
    """A layer violates a limit of the DPU compiler (VAI_C would refuse the network).

    Attributes:
        layer: Name of the offending layer (``conv_42``).
        limit: The violated limit, in words (``"k_w*k_h*ceil(Cin/ICP)=2058 > bank depth 2048"``).
    """

    def __init__(self, layer: str, limit: str) -> None:
        self.layer = layer
        self.limit = limit
        super().__init__(f"layer {layer}: {limit}")

    def __reduce__(self):
        return (type(self), (self.layer, self.limit))
