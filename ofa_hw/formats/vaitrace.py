"""Parser for the DPU summary that ``vaitrace --txt`` prints (Vitis-AI 1.4 and later).

The table changed with nearly every Vitis-AI release; the headers below are the ones Xilinx's txt writer
(``vaitrace/writer/txt``) prints, recorded in ``tests/data/real_tool_outputs/`` (see its README):

=========  ==========================================================================================
version    header (cells separated by ``|``, no outer pipes)
=========  ==========================================================================================
1.4        ``DPU | Batch | SubGraph | Workload(GOP) | RunTime(ms) | Perf(GOP/s) | Mem(MB) | MB/s``
2.0        ``DPU Id | Bat | SubGraph | WL | RT | Perf | LdWB | LdFM | StFM | AvgBw``
2.5        as 2.0 with ``DPU SubGraph``
3.x        ``DPU Id | Bat | DPU SubGraph | WL | SW_RT | HW_RT | Effic | LdWB | LdFM | StFM | AvgBw``
=========  ==========================================================================================

A value in (0, 0.001) prints as ``~0``; it is read as 0.0005 (the middle of that range), because
0 would turn a real, tiny workload into "no work" downstream. Vitis-AI 1.3's vaitrace has no text
summary at all (no ``--txt``), so there is nothing of it to parse here.

Every version is returned in one frame, so that callers never branch on the version:

* ``runtime_ms`` is the DPU's **hardware** time: ``HW_RT`` in 3.x, ``RunTime(ms)``/``RT`` before
  (those versions time the subgraph from the hardware counter only);
* ``sw_runtime_ms`` is 3.x's software-side time (NaN before);
* ``mem_mb`` is external-memory traffic: ``Mem(MB)`` in 1.4, ``LdWB + LdFM + StFM`` later; ``mb_s`` is
  ``MB/s`` in 1.4, ``AvgBw`` later; the split columns are NaN in 1.4;
* ``perf_gops`` is printed by 1.4–2.5 and derived as ``WL / HW_RT`` in 3.x;
* ``efficiency`` is 3.x's ``Effic`` as a fraction (printed in %), NaN before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ofa_hw.formats.dnndk import _float, _lines
from ofa_hw.formats.errors import ParseError

#: Printed in (0, 0.001): read as the middle of that interval.
NEAR_ZERO = 0.0005


@dataclass(frozen=True)
class _Layout:
    """One vaitrace version's summary header: printed cell names -> our column keys."""

    version: str
    cells: tuple[str, ...]
    keys: tuple[str, ...]


LAYOUTS: tuple[_Layout, ...] = (
    _Layout(
        "1.4",
        ("DPU", "Batch", "SubGraph", "Workload(GOP)", "RunTime(ms)", "Perf(GOP/s)", "Mem(MB)", "MB/s"),
        ("dpu_id", "batch", "subgraph", "workload_gop", "runtime_ms", "perf_gops", "mem_mb", "mb_s"),
    ),
    _Layout(
        "2.0",
        ("DPU Id", "Bat", "SubGraph", "WL", "RT", "Perf", "LdWB", "LdFM", "StFM", "AvgBw"),
        (
            "dpu_id",
            "batch",
            "subgraph",
            "workload_gop",
            "runtime_ms",
            "perf_gops",
            "load_weight_mb",
            "load_fm_mb",
            "store_fm_mb",
            "avg_bw_mbs",
        ),
    ),
    _Layout(
        "2.5",
        ("DPU Id", "Bat", "DPU SubGraph", "WL", "RT", "Perf", "LdWB", "LdFM", "StFM", "AvgBw"),
        (
            "dpu_id",
            "batch",
            "subgraph",
            "workload_gop",
            "runtime_ms",
            "perf_gops",
            "load_weight_mb",
            "load_fm_mb",
            "store_fm_mb",
            "avg_bw_mbs",
        ),
    ),
    _Layout(
        "3.x",
        ("DPU Id", "Bat", "DPU SubGraph", "WL", "SW_RT", "HW_RT", "Effic", "LdWB", "LdFM", "StFM", "AvgBw"),
        (
            "dpu_id",
            "batch",
            "subgraph",
            "workload_gop",
            "sw_runtime_ms",
            "runtime_ms",
            "efficiency",
            "load_weight_mb",
            "load_fm_mb",
            "store_fm_mb",
            "avg_bw_mbs",
        ),
    ),
)

#: Columns of the returned frame, in this order, for every version.
COLUMNS = (
    "dpu_id", "batch", "subgraph", "workload_gop", "runtime_ms", "sw_runtime_ms", "perf_gops", "efficiency",
    "mem_mb", "mb_s", "load_weight_mb", "load_fm_mb", "store_fm_mb", "avg_bw_mbs", "version",
)  # fmt: skip


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _find_header(lines: list[str], source: str | None) -> tuple[int, _Layout]:
    by_cells = {layout.cells: layout for layout in LAYOUTS}
    for i, line in enumerate(lines):
        if "|" in line and (layout := by_cells.get(tuple(_cells(line)))) is not None:
            return i, layout
    for i, line in enumerate(lines):  # a header of a version we do not know: say what we found
        cells = _cells(line)
        if "|" in line and cells and cells[0] in ("DPU", "DPU Id"):
            known = "; ".join(f"{lay.version}: {' | '.join(lay.cells)}" for lay in LAYOUTS)
            raise ParseError(
                f"unknown vaitrace DPU summary header {' | '.join(cells)!r} (known: {known})",
                line=i + 1,
                source=source,
            )
    raise ParseError(
        "no vaitrace DPU summary table (run vaitrace with --txt, Vitis-AI >= 1.4)", source=source
    )


def _number(cell: str, key: str, line: int, source: str | None) -> float:
    if cell == "~0":
        return NEAR_ZERO
    value = _float(cell, key, line, source)
    if value < 0:
        raise ParseError(f"{key}: {cell!r} is negative", line=line, source=source)
    return value


def parse_vaitrace_summary(text: str | bytes, source: str | None = None) -> pd.DataFrame:
    """Parse the DPU summary of ``vaitrace --txt``: one row per (DPU core, subgraph).

    Lines before the header and after the table are ignored (vaitrace prints its CPU-function summary
    and notes there); inside the table every row must be complete and numeric.

    Args:
        text: vaitrace's console output or its ``--txt`` report file.
        source: File name for error messages.

    Returns:
        A frame with :data:`COLUMNS` (see the module docstring for their meaning per version).

    Raises:
        ParseError: no or an unknown header, a short row, a non-numeric or negative value, an empty table.
    """
    lines = _lines(text, source)
    start, layout = _find_header(lines, source)
    rows: list[dict[str, Any]] = []
    for i in range(start + 1, len(lines)):
        s = lines[i].strip()
        if not s or set(s) <= set("-=+| "):
            if rows:  # the closing rule or a blank line ends the table
                break
            continue
        if "|" not in s:
            break
        cells = _cells(s)
        if len(cells) != len(layout.cells):
            raise ParseError(
                f"vaitrace row has {len(cells)} cells, expected {len(layout.cells)} ({layout.version} layout)",
                line=i + 1,
                source=source,
            )
        row: dict[str, Any] = {"version": layout.version}
        for key, cell in zip(layout.keys, cells):
            if key in ("dpu_id", "subgraph"):
                if not cell:
                    raise ParseError(f"{key}: empty cell", line=i + 1, source=source)
                row[key] = cell
            elif key == "batch":
                try:
                    row[key] = int(cell)
                except ValueError:
                    raise ParseError(
                        f"batch: {cell!r} is not an integer", line=i + 1, source=source
                    ) from None
            else:
                row[key] = _number(cell, key, i + 1, source)
        if "efficiency" in row:
            row["efficiency"] /= 100.0  # printed in %
        rows.append(row)
    if not rows:
        raise ParseError("vaitrace DPU summary without rows", line=start + 2, source=source)
    return fill_derived(pd.DataFrame(rows))[list(COLUMNS)]


def fill_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of :data:`COLUMNS`; the version-independent ones filled where a version
    (or a hand-made frame) lacks them: ``mem_mb`` = LdWB + LdFM + StFM, ``mb_s`` = AvgBw (else mem / time),
    ``perf_gops`` = WL / time.
    """
    out = frame.reindex(columns=[*frame.columns, *(c for c in COLUMNS if c not in frame)])
    runtime = out["runtime_ms"].where(out["runtime_ms"] > 0)
    out["mem_mb"] = out["mem_mb"].fillna(out["load_weight_mb"] + out["load_fm_mb"] + out["store_fm_mb"])
    out["mb_s"] = out["mb_s"].fillna(out["avg_bw_mbs"]).fillna(out["mem_mb"] / runtime * 1000.0)
    out["perf_gops"] = out["perf_gops"].fillna(out["workload_gop"] / runtime * 1000.0)
    return out
