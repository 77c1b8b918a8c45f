"""Parsers for the DPU tools' text output; any malformed input raises :class:`ParseError` with a line number.

* :func:`parse_dnndk_profile` — N2Cube's per-node profile (one table, or a log with one table per run).
* :func:`parse_kernel_info` — VAI_C's kernel list (``vai_c_* ... -e "{'mode': 'debug'}"``).
* :func:`parse_dexplorer` — ``dexplorer -w``.
* :func:`ofa_hw.formats.vaitrace.parse_vaitrace_summary` (its own module) — vaitrace's DPU summary.

The parsers are strict on purpose: a board log that lost a line or a field must fail loudly, never
yield a shorter table.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import pandas as pd

from ofa_hw.dpu.config import ARCHS, DPUConfig
from ofa_hw.formats.errors import ParseError
from ofa_hw.formats.profile import COLUMNS, HEADER_TOKENS, TOTAL_COLUMNS, Profile, make_table

_TITLE_RE = re.compile(r'^\s*\[DNNDK\] Performance profile - DPU Kernel "([^"]*)" DPU Task "([^"]*)"\s*$')
_RULE_RE = re.compile(r"^\s*={20,}\s*$")
#: N2Cube names the first DPU kernel of net ``n`` ``n_0`` in some releases; ``kernel="n"`` selects it too.
_KERNEL_SUFFIX_RE = re.compile(r"_\d+$")


def _lines(text: str | bytes, source: str | None) -> list[str]:
    """Split into lines, rejecting binary content (NUL, control characters, undecodable bytes)."""
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            at = raw[: exc.start].count(b"\n") + 1
            raise ParseError("binary data (not UTF-8 text)", line=at, source=source) from exc
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
        if out[-1] < 0:
            raise ParseError(f"{name}: negative value {tok!r}", line=line, source=source)
    return out


# --------------------------------------------------------------------------------------------------
# DNNDK profile
# --------------------------------------------------------------------------------------------------
def parse_dnndk_profile(text: str | bytes, source: str | None = None, kernel: str | None = None) -> Profile:
    """Parse N2Cube profile output: one table, or a board log with one table per profile-mode run.

    N2Cube prints each table title first, then a 101-``=`` rule, the header, the node rows, the
    ``All`` row and a closing rule. Any text around and between tables (the program's own prints, a
    rule left over from a previous run as in the seed's file) is skipped; a table itself must be
    complete. Printed zeros (``0.000``, or ``0.00`` of older releases) are values; negative ones are
    errors.

    Args:
        text: The log (str, or bytes decoded as UTF-8).
        source: File name used in error messages.
        kernel: The kernel whose runs to return when the log holds several kernels (``net`` also
            selects N2Cube's ``net_0``). ``None``: the log must hold exactly one kernel.

    Raises:
        ParseError: with the line, for a truncated or malformed table, a negative or non-numeric
            field, duplicate or non-consecutive node ids, runs of one kernel with different node lists,
            several kernels and no ``kernel`` (the message names them), empty or binary input.
    """
    lines = _lines(text, source)
    tables: list[tuple[str, str, pd.DataFrame, dict, int]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _TITLE_RE.match(line):
            table, i = _parse_table(lines, i, source)
            tables.append(table)
            continue
        stripped = line.strip()
        if stripped.split() == HEADER_TOKENS or stripped == "Total Nodes In Avg:":
            raise ParseError(
                "profile table line outside a table (missing '[DNNDK] Performance profile' title?)",
                line=i + 1,
                source=source,
            )
        i += 1
    if not tables:
        raise ParseError("no '[DNNDK] Performance profile' table found", source=source)
    kernels = list(dict.fromkeys(t[0] for t in tables))
    if kernel is not None:
        chosen = [t for t in tables if t[0] == kernel or _KERNEL_SUFFIX_RE.sub("", t[0]) == kernel]
        if not chosen:
            raise ParseError(
                f"no profile of kernel {kernel!r} (the log has {', '.join(kernels)})", source=source
            )
        tables = chosen
    elif len(kernels) > 1:
        raise ParseError(
            f"profiles of {len(kernels)} kernels ({', '.join(kernels)}); choose one with kernel=...",
            source=source,
        )
    name = tables[0][0]
    names = tables[0][2]["name"].tolist()
    for k, _task, run, _, start in tables[1:]:
        if k != name:
            raise ParseError(f"run of kernel {k!r} among runs of kernel {name!r}", line=start, source=source)
        if run["name"].tolist() != names:
            raise ParseError("run with a different node list than the first run", line=start, source=source)
    return Profile.from_runs(
        name,
        [t[2] for t in tables],
        [t[3] for t in tables],
        tasks=[t[1] for t in tables],
    )


def _parse_table(lines: list[str], i: int, source: str | None) -> tuple[tuple, int]:
    """Parse the table whose title is ``lines[i]``; returns the table and the index after it."""
    start = i + 1
    title = _TITLE_RE.match(lines[i])
    if title is None:  # callers pass the index of a title line
        raise ParseError(f"not a profile title: {lines[i]!r}", line=i + 1, source=source)
    kernel, task = title.groups()

    def need(j: int, what: str) -> str:
        if j >= len(lines) or (j == len(lines) - 1 and lines[j] == ""):
            raise ParseError(
                f"truncated profile table: expected {what}, got end of input", line=j + 1, source=source
            )
        return lines[j]

    if not _RULE_RE.match(need(i + 1, "the '=====' rule")):
        raise ParseError("expected the '=====' rule below the title", line=i + 2, source=source)
    header = need(i + 2, "the column header")
    if header.split() != HEADER_TOKENS:
        raise ParseError(
            f"bad column header (expected {' '.join(HEADER_TOKENS)!r})", line=i + 3, source=source
        )
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
            raise ParseError(
                f"node id {nid} out of sequence (expected {len(rows) + 1})", line=j + 1, source=source
            )
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
    run = make_table(
        [r[0] for r in rows],
        [r[1] for r in rows],
        {c: [r[k + 2] for r in rows] for k, c in enumerate(COLUMNS[2:])},
    )
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


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_KERNEL_LIST_RE = re.compile(r'^kernel list info for network "([^"]+)"\s*$')


def parse_kernel_info(text: str | bytes, source: str | None = None) -> KernelList:
    """Parse VAI_C's kernel list, alone or in ``vai_c_*``'s whole console output.

    The console's ANSI colour codes are dropped and whatever precedes the list (``[VAI_C][Warning]``
    lines, the ``Kernel topology …`` line, other tool output) is skipped. Every kernel announced in the
    ID table must be described. Line numbers in errors count lines of ``text``.
    """
    if isinstance(text, bytes):
        with contextlib.suppress(UnicodeDecodeError):  # _lines reports the line of the undecodable byte
            text = text.decode("utf-8")
    if isinstance(text, str):
        text = _ANSI_RE.sub("", text)
    lines = _lines(text, source)
    off = next((i for i, line in enumerate(lines) if _KERNEL_LIST_RE.match(line.strip())), None)
    if off is None:
        raise ParseError("expected 'kernel list info for network \"<name>\"'", line=1, source=source)
    try:
        return _parse_kernel_list(lines[off:], source)
    except ParseError as exc:
        raise ParseError(exc.msg, line=None if exc.line is None else exc.line + off, source=source) from None


def _parse_kernel_list(lines: list[str], source: str | None) -> KernelList:
    """The kernel list starting at ``lines[0]`` (its header line)."""
    m = re.match(r'^kernel list info for network "([^"]+)"\s*$', lines[0].strip())
    if not m:
        raise ParseError("expected 'kernel list info for network \"<name>\"'", line=1, source=source)
    network = m.group(1)
    if (
        len(lines) < 2
        or lines[1].split(":")[0].strip() != "Kernel ID"
        or lines[1].split(":")[-1].strip() != "Name"
    ):
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
                raise ParseError(
                    f"kernel {cur['name']!r} lacks 'Kernel Type'", line=cur["line"], source=source
                )
            kernels.append(
                KernelInfo(
                    name=cur["name"],
                    kernel_type=cur["fields"]["Kernel Type"],
                    fields=dict(cur["fields"]),
                    **{k: tuple(v) for k, v in cur["sections"].items()},
                )
            )

    first = j
    for j, line in enumerate(lines[first:], start=first):
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
            cur = {
                "name": value.strip(),
                "fields": {},
                "sections": {v: [] for v in _SECTIONS.values()},
                "line": j + 1,
            }
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
        raise ParseError(
            f"kernels described {[k.name for k in kernels]} differ from those listed {announced}",
            source=source,
        )
    return KernelList(network, tuple(kernels))


# --------------------------------------------------------------------------------------------------
# dexplorer -w
# --------------------------------------------------------------------------------------------------
#: The two printers of ``dexplorer -w``: configurable DPUs list ``[DPU Core Configuration List]`` with one
#: line per feature; fixed ones ``[DPU Core List]`` with ``DPU Target`` and a ``DPU Features`` line.
_CORE_SECTIONS = ("DPU Core Configuration List", "DPU Core List")


def parse_dexplorer(text: str | bytes, source: str | None = None) -> dict:
    """Parse ``dexplorer -w`` (either printer).

    Returns:
        ``{"ip": {...}, "cores": [{field: value}], "extensions": {name: bool}, "printer": section}``
        where ``printer`` is the core section's name.
    """
    lines = _lines(text, source)
    out: dict = {"ip": {}, "cores": [], "extensions": {}, "printer": None}
    section = None
    ext: str | None = None
    for i, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
            if section not in ("DPU IP Spec", "DPU Extension List", *_CORE_SECTIONS):
                raise ParseError(f"unknown section [{section}]", line=i, source=source)
            if section in _CORE_SECTIONS:
                if out["printer"] not in (None, section):
                    raise ParseError(f"both [{out['printer']}] and [{section}]", line=i, source=source)
                out["printer"] = section
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
        elif section in _CORE_SECTIONS:
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
        raise ParseError("no [DPU Core Configuration List] or [DPU Core List] entries", source=source)
    count = out["ip"].get("DPU Core Count")
    if count is not None and count.isdigit() and int(count) != len(out["cores"]):
        raise ParseError(
            f"'DPU Core Count' says {count} but {len(out['cores'])} cores are listed", source=source
        )
    for c in out["cores"]:
        for key in ("DPU Arch", "DPU Freqency"):
            if key not in c and not (key == "DPU Freqency" and "DPU Frequency" in c):
                raise ParseError(f"core {c['DPU Core']} lacks {key!r}", source=source)
    return out


def dpu_from_dexplorer(text: str, name: str = "dexplorer", base: DPUConfig | None = None) -> DPUConfig:
    """The DPU that ``dexplorer -w`` describes (model constants taken from ``base``, default: the defaults).

    Reads both printers: ``[DPU Core Configuration List]`` (one ``Enabled``/``Disabled`` line per
    feature, ``DPU Target Version``, ``Ram Usage``) and ``[DPU Core List]`` (``DPU Target`` and one
    ``DPU Features`` line such as ``Avg-Pooling, LeakyReLU/ReLU6, Depthwise Conv``; no RAM usage,
    taken from ``base``). An arch printed with a suffix (``B1152F``) is its size (``B1152``). Only
    enabled cores count; all of them must share one configuration (the simulator models one).
    """
    info = parse_dexplorer(text)
    cores = [c for c in info["cores"] if c.get("DPU Enabled", "Yes").lower() == "yes"]
    if not cores:
        raise ParseError("no enabled DPU core", source="dexplorer")
    first = cores[0]
    for c in cores[1:]:
        diff = sorted(k for k in set(first) | set(c) if k != "DPU Core" and first.get(k) != c.get(k))
        if diff:
            raise ParseError(
                f"DPU cores differ in {diff}; the simulator models identical cores", source="dexplorer"
            )
    freq = re.match(r"\s*([\d.]+)\s*MHz", first.get("DPU Freqency", first.get("DPU Frequency", "")))
    if freq is None:
        raise ParseError("missing or malformed 'DPU Freqency'", source="dexplorer")
    arch = re.match(r"\s*(B\d+)[A-Za-z]*\s*$", first.get("DPU Arch", ""))
    if arch is None or arch.group(1) not in ARCHS:
        raise ParseError(
            f"DPU Arch {first.get('DPU Arch')!r} is not one of {sorted(ARCHS)}", source="dexplorer"
        )
    base = base or DPUConfig()
    if "DPU Features" in first:  # the [DPU Core List] printer
        feats = [f.strip().lower() for f in first["DPU Features"].split(",")]
        has = lambda *words: any(all(w in f for w in words) for f in feats)  # noqa: E731
        dw, relu6 = has("depthwise"), has("relu6")
        features = dict(
            depthwise_conv=dw,
            depthwise_relu6=dw and relu6,
            conv_relu6=relu6,
            conv_leakyrelu=has("leakyrelu"),
            channel_augmentation=has("channel", "augmentation"),
            avg_pool=has("avg") or has("average"),
        )
    else:
        enabled = lambda key: first.get(key, "Disabled").lower() in ("enabled", "yes")  # noqa: E731
        features = dict(
            depthwise_conv=enabled("DepthwiseConv"),
            depthwise_relu6=enabled("DepthwiseConv+Relu6"),
            conv_relu6=enabled("Conv+Relu6"),
            conv_leakyrelu=enabled("Conv+Leakyrelu"),
            channel_augmentation=enabled("Channel Augmentation"),
            avg_pool=enabled("Average Pool"),
        )
    target = first.get("DPU Target Version", first.get("DPU Target", base.target_version))
    return base.replace(
        name=name,
        arch=arch.group(1),
        target_version=target.strip(),
        freq_mhz=float(freq.group(1)),
        cores=len(cores),
        ram_usage=first.get("Ram Usage", base.ram_usage).strip().lower(),
        softmax=info["extensions"].get("Softmax", False),
        **features,
    )
