"""Malformed tool output: the one error type of every parser."""

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
