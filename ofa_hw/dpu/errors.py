"""The two error types of the DPU package: bad tool output and networks the DPU cannot compile."""

from __future__ import annotations


class ParseError(ValueError):
    """Malformed tool output (DNNDK profile, VAI_C kernel list, ``dexplorer -w``, vaitrace summary).

    Attributes:
        line: 1-based line number of the offending line (``None`` when the whole input is unusable).
        source: File name or other description of where the text came from.
    """

    def __init__(self, msg: str, line: int | None = None, source: str | None = None) -> None:
        self.msg = msg
        self.line = line
        self.source = source
        where = source or "<text>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {msg}")

    def __reduce__(self):  # keep the keyword fields through pickling (multiprocess backends)
        return (type(self), (self.msg, self.line, self.source))


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
