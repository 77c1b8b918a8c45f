"""Surgery on the ``deploy.prototxt`` that ``vai_q_caffe`` writes: remove redundant input declarations.

Works on the prototxt text rather than on a parsed message, so that fields outside our ``caffe.proto``
(Xilinx's quantization parameters) survive untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_SCAN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:]|[^\s{}:#"\']+')


@dataclass(frozen=True)
class _Entry:
    """A top-level entry of a prototxt: ``key: value`` or ``key { body }``, with its text span."""

    key: str
    value: str | None  # scalar value (quotes stripped), None for a message
    body: str | None  # text between the braces of a message entry
    start: int
    end: int


def _entries(text: str, source: str) -> list[_Entry]:
    """Split prototxt ``text`` into its top-level entries (strings and comments respected)."""
    tokens = [
        (m.group(), m.start(), m.end())
        for m in _SCAN.finditer(text)
        if not m.group().isspace() and not m.group().startswith("#")
    ]
    entries: list[_Entry] = []
    i = 0
    while i < len(tokens):
        key, start, _ = tokens[i]
        if i + 1 >= len(tokens):
            raise ValueError(f"{source}: dangling token {key!r} at offset {start}")
        nxt = tokens[i + 1][0]
        if nxt == ":" and i + 2 < len(tokens) and tokens[i + 2][0] != "{":
            value, _, end = tokens[i + 2]
            entries.append(_Entry(key, value.strip("\"'"), None, start, end))
            i += 3
            continue
        j = i + 2 if nxt == ":" else i + 1
        if tokens[j][0] != "{":
            raise ValueError(
                f"{source}: expected '{{' after {key!r} at line {text.count(chr(10), 0, start) + 1}"
            )
        depth, k = 0, j
        while k < len(tokens):
            depth += {"{": 1, "}": -1}.get(tokens[k][0], 0)
            if depth == 0:
                break
            k += 1
        if depth:
            raise ValueError(
                f"{source}: unbalanced braces in {key!r} at line {text.count(chr(10), 0, start) + 1}"
            )
        entries.append(_Entry(key, None, text[tokens[j][2] : tokens[k][1]], start, tokens[k][2]))
        i = k + 1
    return entries


def remove_redundant_input(path: str | Path) -> list[str]:
    """Remove the redundant input declarations ``vai_q_caffe`` may leave in ``deploy.prototxt``.

    The quantizer's deploy file can declare the input twice (legacy top-level ``input:`` fields next to
    an ``Input`` layer, or two input layers for one blob), or keep an input layer nothing reads; VAI_C
    then fails or compiles a second boundary tensor. Kept: one ``Input`` layer per consumed blob (the
    first), preferred over top-level ``input`` fields. Works on the text, so fields outside
    ``caffe.proto`` (Xilinx's quantization parameters) survive untouched. A changed file's original is
    kept as ``<name>.orig``.

    Returns:
        Descriptions of what was removed (empty when the file was already clean).
    """
    path = Path(path)
    text = path.read_text()
    entries = _entries(text, str(path))
    layers = []
    for entry in (e for e in entries if e.key in ("layer", "layers")):
        fields = _entries(entry.body or "", f"{path} (layer at offset {entry.start})")
        layers.append((entry, {f.key: f.value for f in fields if f.value is not None}, fields))

    def tops(fields: list[_Entry], key: str) -> list[str]:
        return [f.value for f in fields if f.key == key and f.value is not None]

    input_types = {"Input", "ImageData", "Data"}
    consumed = {
        b
        for _, scalars, fields in layers
        if scalars.get("type") not in input_types
        for b in tops(fields, "bottom")
    }
    remove: list[tuple[_Entry, str]] = []
    declared: set[str] = set()
    for entry, scalars, fields in layers:
        if scalars.get("type") not in input_types:
            continue
        layer_tops = tops(fields, "top")
        name = scalars.get("name", "?")
        if any(t in declared for t in layer_tops):
            remove.append((entry, f"layer {name!r}: second declaration of input blob {layer_tops[0]!r}"))
        elif not any(t in consumed for t in layer_tops):
            remove.append((entry, f"layer {name!r}: input blob {layer_tops[0]!r} is read by no layer"))
        else:
            declared.update(layer_tops)
    legacy = [e for e in entries if e.key in ("input", "input_shape", "input_dim")]
    legacy_blobs = {e.value for e in legacy if e.key == "input" and e.value is not None}
    if legacy and legacy_blobs <= declared:
        remove.extend((e, f"top-level {e.key} (blob already declared by an Input layer)") for e in legacy)
    elif legacy:
        declared |= legacy_blobs
    if not declared or not remove:
        # No input is read by any layer: not a file to guess about; VAI_C will name the problem.
        return []
    path.with_name(path.name + ".orig").write_text(text)
    for entry, _ in sorted(remove, key=lambda r: r[0].start, reverse=True):
        end = entry.end + (1 if text[entry.end : entry.end + 1] == "\n" else 0)
        text = text[: entry.start] + text[end:]
    path.write_text(text)
    return [why for _, why in sorted(remove, key=lambda r: r[0].start)]
