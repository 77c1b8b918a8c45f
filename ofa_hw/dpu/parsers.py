"""Parsers for the DPU tools' text output; any malformed input raises :class:`ParseError` with a line number.

* :func:`parse_dnndk_profile` — N2Cube's per-node profile (one table, or a log with one table per run).
* :func:`parse_kernel_info` — VAI_C's kernel list (``vai_c_* ... -e "{'mode': 'debug'}"``).
* :func:`parse_dexplorer` — ``dexplorer -w``.
* :func:`ofa_hw.dpu.vaitrace.parse_vaitrace_summary` (its own module) — vaitrace's DPU summary.

The parsers are strict on purpose: a board log that lost a line or a field must fail loudly, never
yield a shorter table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from ofa_hw.dpu.errors import ParseError
from ofa_hw.dpu.profile import COLUMNS, HEADER_TOKENS, TOTAL_COLUMNS, Profile, make_table

_TITLE_RE = re.compile(r'^\s*\[DNNDK\] Performance profile - DPU Kernel "([^"]*)" DPU Task "([^"]*)"\s*$')
_RULE_RE = re.compile(r"^\s*={20,}\s*$")
_ROW_START_RE = re.compile(r"^\s*\d+\s+\S+\s+[-+.\d]")


def _lines(text: str | bytes, source: str | None) -> list[str]:
    """Split into lines, rejecting binary content (NUL, control characters, undecodable bytes)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            raise ParseError("binary data (not UTF-8 text)", line=line, source=source) from exc
    if not text.strip():
        raise ParseError("empty input", line=1 if text == "" else None, source=source)
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        line = line[:-1] if line.endswith("\r") else line
        lines[i - 1] = line
        bad = next((c for c in line if (ord(c) < 32 and c != "\t") or ord(c) == 127 or c == "\ufffd"), None)
        if bad is not None:
            raise ParseError(f"binary data (control character {ord(bad):#04x})", line=i, source=source)
    return lines


def _float(token: str, what: str, line: int, source: str | None) -> float:
    try:
        value = float(token)
    except ValueError:
        raise ParseError(f"{what}: {token!r} is not a number", line=line, source=source) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ParseError(f"{what}: {token!r} is not a finite number", line=line, source=source)
    return value


def _values(tokens: list[str], line: int, source: str | None) -> list[float]:
    """The six numeric columns (workload … MB/S); utilization must end with '%'."""
    names = TOTAL_COLUMNS
    out = []
    for name, tok in zip(names, tokens):
        if name == "utilization":
            if not tok.endswith("%"):
                raise ParseError(f"utilization: {tok!r} lacks the '%' sign", line=line, source=source)
            out.append(float("%.1f" % _float(tok[:-1], name, line, source)) / 100.0)
        else:
            out.append(_float(tok, name, line, source))
    return out


# --------------------------------------------------------------------------------------------------
# DNNDK profile
# --------------------------------------------------------------------------------------------------
def parse_dnndk_profile(text: str | bytes, source: str | None = None) -> Profile:
    """Parse N2Cube profile output: one table or a log of several runs (each table one run).

    Text between tables (a program's own prints) is allowed; stray table lines outside a table,
    a truncated or malformed table, a non-numeric field, duplicate or non-consecutive node ids, runs
    of different kernels or node lists, empty or binary input raise :class:`ParseError`.

    Args:
        text: The log (str, or bytes decoded as UTF-8).
        source: File name used in error messages.
    """
    lines = _lines(text, source)
    tables: list[tuple[str, str, pd.DataFrame, dict, int]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _TITLE_RE.match(line):
            if not (i > 0 and _RULE_RE.match(lines[i - 1])):
                raise ParseError("profile title without the '=====' rule above it", line=i + 1, source=source)
            table, i = _parse_table(lines, i, source)
            tables.append(table)
            continue
        if _RULE_RE.match(line) and i + 1 < len(lines) and _TITLE_RE.match(lines[i + 1]):
            i += 1
            continue
        stripped = line.strip()
        if stripped.split()[:2] == HEADER_TOKENS[:2] or stripped.startswith("Total Nodes In Avg") or _ROW_START_RE.match(line):
            raise ParseError("profile table line outside a table (missing '[DNNDK] Performance profile' header?)", line=i + 1, source=source)
        if _RULE_RE.match(line) or (stripped.split()[:1] == ["All"] and len(stripped.split()) == 7):
            raise ParseError("profile table line outside a table (missing header?)", line=i + 1, source=source)
        i += 1
    if not tables:
        raise ParseError("no '[DNNDK] Performance profile' table found", source=source)
    kernel = tables[0][0]
    names = tables[0][2]["name"].tolist()
    for k, task, run, _, start in tables[1:]:
        if k != kernel:
            raise ParseError(f"run of kernel {k!r} in a log of kernel {kernel!r}", line=start, source=source)
        if run["name"].tolist() != names:
            raise ParseError("run with a different node list than the first run", line=start, source=source)
    return Profile.from_runs(
        kernel,
        [t[2] for t in tables],
        [t[3] for t in tables],
        tasks=[t[1] for t in tables],
    )


def _parse_table(lines: list[str], i: int, source: str | None) -> tuple[tuple, int]:
    """Parse the table whose title is ``lines[i]``; returns the table and the index after it."""
    start = i + 1
    kernel, task = _TITLE_RE.match(lines[i]).groups()

    def need(j: int, what: str) -> str:
        if j >= len(lines) or (j == len(lines) - 1 and lines[j] == ""):
            raise ParseError(f"truncated profile table: expected {what}, got end of input", line=j + 1, source=source)
        return lines[j]

    if not _RULE_RE.match(need(i + 1, "the '=====' rule")):
        raise ParseError("expected the '=====' rule below the title", line=i + 2, source=source)
    header = need(i + 2, "the column header")
    if header.split() != HEADER_TOKENS:
        raise ParseError(f"bad column header (expected {' '.join(HEADER_TOKENS)!r})", line=i + 3, source=source)
    j = i + 3
    rows: list[list] = []
    seen: set[int] = set()
    while True:
        line = need(j, "a node row or the blank line before the total")
        if not line.strip():
            break
        tok = line.split()
        if len(tok) != 8:
            raise ParseError(f"node row has {len(tok)} fields, expected 8", line=j + 1, source=source)
        try:
            nid = int(tok[0])
        except ValueError:
            raise ParseError(f"node id {tok[0]!r} is not an integer", line=j + 1, source=source) from None
        if nid in seen:
            raise ParseError(f"duplicate node id {nid}", line=j + 1, source=source)
        if nid != len(rows) + 1:
            raise ParseError(f"node id {nid} out of sequence (expected {len(rows) + 1})", line=j + 1, source=source)
        seen.add(nid)
        rows.append([nid, tok[1], *_values(tok[2:], j + 1, source)])
        j += 1
    if not rows:
        raise ParseError("profile table without node rows", line=j + 1, source=source)
    if need(j + 1, "'Total Nodes In Avg:'").strip() != "Total Nodes In Avg:":
        raise ParseError("expected 'Total Nodes In Avg:'", line=j + 2, source=source)
    tok = need(j + 2, "the 'All' row").split()
    if len(tok) != 7 or tok[0] != "All":
        raise ParseError("malformed 'All' row (expected 'All' and 6 values)", line=j + 3, source=source)
    total = dict(zip(TOTAL_COLUMNS, _values(tok[1:], j + 3, source)))
    if not _RULE_RE.match(need(j + 3, "the closing '=====' rule")):
        raise ParseError("expected the closing '=====' rule", line=j + 4, source=source)
    run = make_table([r[0] for r in rows], [r[1] for r in rows], {c: [r[k + 2] for r in rows] for k, c in enumerate(COLUMNS[2:])})
    return (kernel, task, run, total, start), j + 4


# --------------------------------------------------------------------------------------------------
# VAI_C kernel list
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelInfo:
    """One kernel of a VAI_C kernel list (sizes as printed, in MB / MOPS)."""

    name: str
    kernel_type: str
    fields: dict = field(default_factory=dict)
    input_tensors: tuple[tuple[str, str], ...] = ()
    output_tensors: tuple[tuple[str, str], ...] = ()
    input_nodes: tuple[tuple[str, str], ...] = ()
    output_nodes: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str:
        return self.fields[key]


@dataclass(frozen=True)
class KernelList:
    """What ``vai_c_*`` prints about a compiled network: its kernels (DPU and CPU)."""

    network: str
    kernels: tuple[KernelInfo, ...]

    @property
    def dpu_kernels(self) -> list[KernelInfo]:
        return [k for k in self.kernels if k.kernel_type == "DPUKernel"]


_KV_RE = re.compile(r"^\s*(.+?)\s+:\s?(.*)$")
_SECTIONS = {
    "Boundary Input Tensor(s)": "input_tensors",
    "Boundary Output Tensor(s)": "output_tensors",
    "Input Node(s)": "input_nodes",
    "Output Node(s)": "output_nodes",
}


def parse_kernel_info(text: str | bytes, source: str | None = None) -> KernelList:
    """Parse VAI_C's kernel list. Every kernel announced in the ID table must be described."""
    lines = _lines(text, source)
    m = re.match(r'^kernel list info for network "([^"]+)"\s*$', lines[0].strip())
    if not m:
        raise ParseError("expected 'kernel list info for network \"<name>\"'", line=1, source=source)
    network = m.group(1)
    if len(lines) < 2 or lines[1].split(":")[0].strip() != "Kernel ID" or lines[1].split(":")[-1].strip() != "Name":
        raise ParseError("expected the 'Kernel ID : Name' table", line=2, source=source)
    announced: list[str] = []
    j = 2
    while j < len(lines) and lines[j].strip():
        km = _KV_RE.match(lines[j])
        if not km or not km.group(1).strip().isdigit():
            raise ParseError("malformed 'Kernel ID : Name' row", line=j + 1, source=source)
        if int(km.group(1)) != len(announced):
            raise ParseError(f"kernel id {km.group(1)} out of sequence", line=j + 1, source=source)
        announced.append(km.group(2).strip())
        j += 1
    if not announced:
        raise ParseError("no kernels listed", line=j + 1, source=source)
    kernels: list[KernelInfo] = []
    cur: dict | None = None
    section: str | None = None

    def close() -> None:
        if cur is not None:
            if "Kernel Type" not in cur["fields"]:
                raise ParseError(f"kernel {cur['name']!r} lacks 'Kernel Type'", line=cur["line"], source=source)
            kernels.append(
                KernelInfo(
                    name=cur["name"],
                    kernel_type=cur["fields"]["Kernel Type"],
                    fields=dict(cur["fields"]),
                    **{k: tuple(v) for k, v in cur["sections"].items()},
                )
            )

    for j in range(j, len(lines)):
        line = lines[j]
        s = line.strip()
        if not s or set(s) <= {"-"} or s.startswith("*"):
            section = None if not s else section
            continue
        head = re.sub(r"\s+\(H\*W\*C\)$", "", s)
        if head in _SECTIONS:
            if cur is None:
                raise ParseError(f"{head!r} before any 'Kernel Name'", line=j + 1, source=source)
            section = _SECTIONS[head]
            continue
        km = _KV_RE.match(line)
        if not km:
            raise ParseError(f"unrecognised line {s!r}", line=j + 1, source=source)
        key, value = km.group(1).strip(), km.group(2)
        if key == "Kernel Name":
            close()
            cur = {"name": value.strip(), "fields": {}, "sections": {v: [] for v in _SECTIONS.values()}, "line": j + 1}
            section = None
        elif cur is None:
            raise ParseError(f"field {key!r} before any 'Kernel Name'", line=j + 1, source=source)
        elif section is not None:
            if not re.fullmatch(r"\d+\*\d+\*\d+", value.strip()):
                raise ParseError(f"tensor shape {value.strip()!r} is not H*W*C", line=j + 1, source=source)
            cur["sections"][section].append((key, value.strip()))
        else:
            cur["fields"][key] = value.rstrip() if key != "Mean Value" else value
    close()
    if [k.name for k in kernels] != announced:
        raise ParseError(f"kernels described {[k.name for k in kernels]} differ from those listed {announced}", source=source)
    return KernelList(network, tuple(kernels))


# --------------------------------------------------------------------------------------------------
# dexplorer -w
# --------------------------------------------------------------------------------------------------
def parse_dexplorer(text: str | bytes, source: str | None = None) -> dict:
    """Parse ``dexplorer -w``: ``{"ip": {...}, "cores": [{field: value}], "extensions": {name: bool}}``."""
    lines = _lines(text, source)
    out: dict = {"ip": {}, "cores": [], "extensions": {}}
    section = None
    ext: str | None = None
    for i, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
            if section not in ("DPU IP Spec", "DPU Core Configuration List", "DPU Extension List"):
                raise ParseError(f"unknown section [{section}]", line=i, source=source)
            continue
        if section is None:
            raise ParseError("text before the first [section]", line=i, source=source)
        if section == "DPU Extension List" and s.startswith("Extension "):
            ext = s[len("Extension ") :].strip()
            continue
        if ":" not in s:
            raise ParseError(f"expected 'key : value', got {s!r}", line=i, source=source)
        key, value = (p.strip() for p in s.split(":", 1))
        if section == "DPU IP Spec":
            out["ip"][key] = value
        elif section == "DPU Core Configuration List":
            if key == "DPU Core":
                out["cores"].append({"DPU Core": value})
            elif not out["cores"]:
                raise ParseError(f"field {key!r} before any 'DPU Core'", line=i, source=source)
            else:
                out["cores"][-1][key] = value
        else:
            if ext is None or key != "Enabled":
                raise ParseError(f"unexpected extension line {s!r}", line=i, source=source)
            out["extensions"][ext] = value.lower() in ("yes", "enabled")
            ext = None
    if not out["cores"]:
        raise ParseError("no [DPU Core Configuration List] entries", source=source)
    count = out["ip"].get("DPU Core Count")
    if count is not None and count.isdigit() and int(count) != len(out["cores"]):
        raise ParseError(f"'DPU Core Count' says {count} but {len(out['cores'])} cores are listed", source=source)
    for c in out["cores"]:
        for key in ("DPU Arch", "DPU Freqency"):
            if key not in c and not (key == "DPU Freqency" and "DPU Frequency" in c):
                raise ParseError(f"core {c['DPU Core']} lacks {key!r}", source=source)
    return out
