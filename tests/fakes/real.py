"""Where the real recorded tool outputs live (``tests/data/real_tool_outputs``, see its README)."""

from __future__ import annotations

from pathlib import Path

REAL_DIR = Path(__file__).resolve().parents[1] / "data" / "real_tool_outputs"


def real_text(name: str) -> str:
    """The text of one recorded file of :data:`REAL_DIR`."""
    return (REAL_DIR / name).read_text()
