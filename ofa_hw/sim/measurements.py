"""Calibration inputs: measured files (DNNDK profile, vaitrace summary, CSV) + the networks they measured.

A *network reference* names the network a measurement belongs to, in one of four forms:

* an OFA-MobileNetV3 block name (``ResidualBlock-in_96x14x14-out_136-k_7-e_6-s_1-act_h_swish-use_se_True``,
  ``Conv_in-3x224x224_out-24_k-3_act-relu``; :mod:`ofa_hw.frontends.mbv3_blocks`);
* ``<space>:<arch>``: a named arch of one of the package's spaces (``proxyless_w05:proxyless_mobile_05``)
  or ``<space>:{"ks": …}`` as JSON;
* a path to an ``.onnx`` file (:mod:`ofa_hw.frontends.onnx`);
* ``package.module:callable`` returning a ``torch.nn.Module`` (called with the source's ``args``;
  traced at its ``input_shape``), or a list of :class:`~ofa_hw.frontends.ops.Op` whose names are the
  node names the tools print (``ofa_hw.frontends.fcn8:fcn8_ops``: FCN8 with its DNNDK node names).

File formats (``format: auto`` picks by extension and content):

* ``csv``: one row per measured network; a network column (``network`` or ``block``) and a hardware-time
  column (``hw_rt_ms``, ``runtime_ms`` or ``time_ms``; or ``time_column``); rows with the same
  optional ``group`` weigh as one network in the fit (nodes of one profile measured as single layers). An ``avg_ms`` column (software
  time) also yields the per-task overhead (software minus hardware time). The Ultra96 file is one.
* ``vaitrace``: a ``vaitrace --txt`` DPU summary of any version; one row per DPU subgraph (rows of
  several cores for the same subgraph are averaged); paired with the source's ``network``.
* ``dnndk``: an N2Cube profile-mode log; paired with the source's ``network``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ofa_hw.dpu.config import DPUConfig
from ofa_hw.errors import UserError
from ofa_hw.frontends.ops import Op
from ofa_hw.sim.calibrate import Measurement
from ofa_hw.sim.compiler import CompiledNet, compile_net, compile_ops

TIME_COLUMNS = ("hw_rt_ms", "runtime_ms", "time_ms")
NETWORK_COLUMNS = ("network", "block")


class CalibrationInputError(UserError, ValueError):
    """A calibration input that cannot be used: says which file (and line, row or network) and why."""


@dataclass(frozen=True)
class Source:
    """One measured file and how to read it (the ``calibrate.measurements`` entries).

    Attributes:
        file: Path (relative paths: the working directory, then the package's ``ofa_hw/data``).
        format: ``auto`` | ``csv`` | ``vaitrace`` | ``dnndk``.
        network: Network reference for a vaitrace/DNNDK file (and CSV rows without a network column).
        input_shape: ``(C, H, W)`` at which a torch-module network is traced.
        args: Keyword arguments of a ``module:callable`` network.
        time_column: CSV column with the hardware time (default: the first of :data:`TIME_COLUMNS`).
        kernel: DPU kernel of a DNNDK log holding several (default: the log's first).
    """

    file: str
    format: str = "auto"
    network: str = ""
    input_shape: tuple[int, ...] = ()
    args: dict = field(default_factory=dict)
    time_column: str = ""
    kernel: str = ""


@dataclass(frozen=True)
class Loaded:
    """What a set of sources yields: the measurements and, where measured, per-task overheads (µs)."""

    measurements: list[Measurement]
    task_overheads_us: list[float]
    files: list[str]


def resolve_file(path: str, data_dir: Path | None = None) -> Path:
    """``path`` in the working directory, else in the package data; a one-line error naming it otherwise."""
    from ofa_hw.data import DATA_DIR

    data_dir = data_dir or DATA_DIR
    p = Path(path).expanduser()
    if p.exists():
        return p
    if not p.is_absolute() and (data_dir / p).exists():
        return data_dir / p
    raise CalibrationInputError(f"{path}: no such file (looked in the working directory and {data_dir})")


def read_text(path: Path) -> str:
    """The text of ``path``; a one-line error naming the file if it is a directory, unreadable or binary."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CalibrationInputError(f"{path}: is a directory, not a measurement file") from None
    except OSError as exc:
        raise CalibrationInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\0" in data:
        raise CalibrationInputError(f"{path}: binary file, not a measurement (text) file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CalibrationInputError(f"{path}:{line}: not UTF-8 text (binary file?)") from None


def detect_format(path: Path, text: str) -> str:
    """``csv``, ``vaitrace`` or ``dnndk`` from the extension and the content."""
    if path.suffix.lower() == ".csv":
        return "csv"
    if "DPU Summary" in text or "DPU SubGraph" in text or "| SubGraph" in text:
        return "vaitrace"
    if "Performance profile" in text or "RunTime(ms)" in text:
        return "dnndk"
    first = text.splitlines()[0] if text.splitlines() else ""
    if "," in first and any(c in first for c in TIME_COLUMNS):
        return "csv"
    raise CalibrationInputError(
        f"{path}: neither a CSV with a time column ({', '.join(TIME_COLUMNS)}), a vaitrace DPU summary nor a "
        "DNNDK profile; set format: csv|vaitrace|dnndk"
    )


def resolve_network(
    ref: str,
    dpu: DPUConfig,
    input_shape: Sequence[int] = (),
    args: dict | None = None,
    name: str | None = None,
) -> CompiledNet:
    """Compile the network ``ref`` names (see the module docstring) for ``dpu``.

    Raises:
        CalibrationInputError: the reference names nothing usable (says which form was tried and why).
        CompileError: the network violates a compile limit of ``dpu``.
    """
    from ofa_hw.frontends.mbv3_blocks import block_ops, parse_block

    ref = str(ref).strip()
    if not ref:
        raise CalibrationInputError("empty network reference")
    label = name or _net_name(ref)
    if ref.startswith(("ResidualBlock-", "Conv_in-")):
        try:
            block = parse_block(ref)
        except ValueError as exc:
            raise CalibrationInputError(str(exc)) from None
        return compile_ops(block_ops(block), dpu, label, block.input_shape)
    if ref.lower().endswith(".onnx"):
        from ofa_hw.frontends.onnx import OnnxError, onnx_ops

        path = resolve_file(ref)
        try:
            ops, shape = onnx_ops(path)
        except OnnxError as exc:
            raise CalibrationInputError(str(exc)) from None
        return compile_ops(ops, dpu, label, shape)
    head, sep, tail = ref.partition(":")
    if not sep or not tail:
        raise CalibrationInputError(
            f"network {ref!r}: not an OFA-MobileNetV3 block name, an .onnx file, <space>:<arch> or module:callable"
        )
    from ofa_hw.space import PRESETS, ArchError, get_space

    if head in PRESETS:
        from ofa_hw.netspec import build_netspec

        space = get_space(head)
        try:
            arch = json.loads(tail) if tail.lstrip().startswith("{") else space.named_arch(tail)
            ns = build_netspec(space, arch, name=label)
        except (ArchError, KeyError, ValueError) as exc:
            raise CalibrationInputError(f"network {ref!r}: {exc}") from None
        return compile_net(ns, dpu)
    try:
        module = importlib.import_module(head)
    except ImportError as exc:
        raise CalibrationInputError(f"network {ref!r}: cannot import module {head!r} ({exc})") from None
    fn = getattr(module, tail, None)
    if not callable(fn):
        raise CalibrationInputError(f"network {ref!r}: module {head!r} has no callable {tail!r}")
    try:
        model = fn(**(args or {}))
    except Exception as exc:  # the user's factory: report it in one line with its name
        raise CalibrationInputError(
            f"network {ref!r}: calling {tail}(**{args or {}}) failed: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(model, (list, tuple)) and model and all(isinstance(o, Op) for o in model):
        # A front end's op list named as the real tools name the nodes (no net-name prefix).
        first = model[0]
        return compile_ops(list(model), dpu, "", (first.in_c, first.in_h, first.in_w))
    if not input_shape:
        raise CalibrationInputError(f"network {ref!r}: a torch module needs input_shape: [C, H, W]")
    return compile_net(model, dpu, name=label, input_shape=tuple(int(s) for s in input_shape))


def _net_name(ref: str) -> str:
    """A kernel-style name for a network reference (letters and digits)."""
    stem = Path(ref).stem if ref.lower().endswith(".onnx") else ref.rsplit(":", 1)[-1]
    return "".join(ch for ch in stem if ch.isalnum()).lower()[:40] or "net"


def load_sources(sources: Sequence[Source], dpu: DPUConfig) -> Loaded:
    """Read every source and pair it with its network(s), compiled for ``dpu``.

    Raises:
        CalibrationInputError: a file is missing, binary, unreadable or malformed, a network reference is
            unusable, or a network does not compile for ``dpu`` — one line naming the file and the cause.
    """
    from ofa_hw.dpu.errors import CompileError
    from ofa_hw.formats.errors import ParseError

    out, overheads, files = [], [], []
    for src in sources:
        path = resolve_file(src.file)
        text = read_text(path)
        fmt = src.format if src.format != "auto" else detect_format(path, text)
        files.append(str(path))
        try:
            if fmt == "csv":
                ms, ov = _from_csv(path, text, src, dpu)
                out += ms
                overheads += ov
            elif fmt in ("vaitrace", "dnndk"):
                if not src.network:
                    raise CalibrationInputError(
                        f"{path}: a {fmt} file needs network: <the network it measured>"
                    )
                net = resolve_network(src.network, dpu, src.input_shape, src.args)
                if fmt == "vaitrace":
                    m, ov = _from_vaitrace(path, text, net)
                else:
                    m, ov = _from_dnndk(path, text, net, src.kernel or None)
                out.append(m)
                overheads += ov
            else:
                raise CalibrationInputError(
                    f"{path}: unknown format {fmt!r}; choose auto, csv, vaitrace or dnndk"
                )
        except CalibrationInputError as exc:
            msg = str(exc)
            raise CalibrationInputError(msg if str(path) in msg else f"{path}: {msg}") from None
        except ParseError as exc:
            raise CalibrationInputError(str(exc) if exc.source else f"{path}: {exc}") from None
        except CompileError as exc:
            raise CalibrationInputError(
                f"{path}: the measured network does not compile for this DPU: {exc}"
            ) from None
        except ValueError as exc:
            raise CalibrationInputError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not out:
        raise CalibrationInputError(f"no measurements in {', '.join(files) or 'calibrate.measurements'}")
    return Loaded(out, overheads, files)


def _from_csv(path: Path, text: str, src: Source, dpu: DPUConfig) -> tuple[list[Measurement], list[float]]:
    import io

    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CalibrationInputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    time_col = src.time_column or next((c for c in TIME_COLUMNS if c in df.columns), "")
    if time_col not in df.columns:
        raise CalibrationInputError(
            f"{path}: no time column ({src.time_column or ', '.join(TIME_COLUMNS)}); columns: {list(df.columns)}"
        )
    net_col = next((c for c in NETWORK_COLUMNS if c in df.columns), "")
    if not net_col and not src.network:
        raise CalibrationInputError(
            f"{path}: no network column ({', '.join(NETWORK_COLUMNS)}) and no network: given"
        )
    out, overheads = [], []
    for i, row in df.iterrows():
        line = int(i) + 2  # header is line 1
        ref = str(row[net_col]) if net_col else src.network
        try:
            t = float(row[time_col])
        except (TypeError, ValueError):
            raise CalibrationInputError(
                f"{path}:{line}: {time_col} {row[time_col]!r} is not a number"
            ) from None
        if not np.isfinite(t) or t <= 0:
            raise CalibrationInputError(f"{path}:{line}: {time_col} {row[time_col]!r} is not a positive time")
        try:
            net = resolve_network(ref, dpu, src.input_shape, src.args)
        except CalibrationInputError as exc:
            raise CalibrationInputError(f"{path}:{line}: {exc}") from None
        group = str(row["group"]) if "group" in df.columns and pd.notna(row["group"]) else ""
        out.append(Measurement.whole(net, t, ref, "CSV " + path.name, group))
        if "avg_ms" in df.columns and np.isfinite(float(row["avg_ms"])):
            overheads.append(1000.0 * (float(row["avg_ms"]) - t))
    return out, overheads


def _from_vaitrace(path: Path, text: str, net: CompiledNet) -> tuple[Measurement, list[float]]:
    from ofa_hw.formats.vaitrace import parse_vaitrace_summary

    df = parse_vaitrace_summary(text, source=str(path))
    order = list(dict.fromkeys(df["subgraph"]))
    mean = df.groupby("subgraph", sort=False)["runtime_ms"].mean()
    times = [(sg, float(mean[sg])) for sg in order]
    m = Measurement.subgraphs(net, times, f"{path.name}", f"vaitrace {df['version'].iloc[0]}")
    sw = df.groupby("subgraph", sort=False)["sw_runtime_ms"].mean()
    overheads = [1000.0 * float(sw[sg] - mean[sg]) for sg in order if np.isfinite(sw[sg])]
    return m, overheads


def _from_dnndk(
    path: Path, text: str, net: CompiledNet, kernel: str | None = None
) -> tuple[Measurement, list[float]]:
    from ofa_hw.formats.dnndk import parse_dnndk_profile

    prof = parse_dnndk_profile(text, source=str(path), kernel=kernel)
    return Measurement.from_profile(net, prof, label=str(path)), []


def sources_from_config(items: Sequence[Any]) -> list[Source]:
    """:class:`Source` objects from the ``calibrate.measurements`` list (dicts or DictConfigs)."""
    from omegaconf import OmegaConf

    out = []
    for k, item in enumerate(items):
        raw = OmegaConf.to_container(item, resolve=True) if OmegaConf.is_config(item) else dict(item)
        if not isinstance(raw, dict):
            raise CalibrationInputError(f"calibrate.measurements[{k}]: expected a mapping with file:")
        d: dict[str, Any] = {str(key): value for key, value in raw.items()}
        if not d.get("file"):
            raise CalibrationInputError(f"calibrate.measurements[{k}]: missing file:")
        out.append(
            Source(
                file=str(d["file"]),
                format=str(d.get("format") or "auto"),
                network=str(d.get("network") or ""),
                input_shape=tuple(int(s) for s in (d.get("input_shape") or ())),
                args=dict(d.get("args") or {}),
                time_column=str(d.get("time_column") or ""),
                kernel=str(d.get("kernel") or ""),
            )
        )
    return out
