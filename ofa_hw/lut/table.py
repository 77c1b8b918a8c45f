"""The latency lookup table: per-key statistics with provenance, its files, and OFA's YAML form.

Files: ``<space>-<dpu>-<fingerprint>.csv`` (one row per OFA key) next to a ``.json`` of metadata
(space, resolutions, DPU preset/fingerprint/config, backend, toolchain, runs, date, provenance,
keys the DPU cannot compile). Every CSV row repeats the fingerprint, toolchain and backend so a row
copied elsewhere still says where it came from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ofa_hw.blocktable import BlockTable
from ofa_hw.errors import UserError
from ofa_hw.netspec import build_netspec, space_keys
from ofa_hw.space import Arch, SearchSpace

#: Columns of a LUT CSV, in file order.
CSV_COLUMNS = (
    "key",
    "count",
    "mean_ms",
    "std_ms",
    "min_ms",
    "median_ms",
    "dpu_fingerprint",
    "toolchain",
    "backend",
)
_NUMERIC = ("count", "mean_ms", "std_ms", "min_ms", "median_ms")
_META_REQUIRED = ("space", "resolutions", "dpu_name", "dpu_fingerprint", "backend", "toolchain")


class LutError(UserError, ValueError):
    """A LUT file is malformed, or belongs to another space or DPU; the message names the file."""


class LutKeyError(KeyError):
    """A key is not in the LUT (not measured) or cannot run on the DPU."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def lut_filename(space_name: str, dpu_name: str, fingerprint: str, backend: str = "sim") -> str:
    """Stem of a LUT's files: ``<space>-<dpu>-<fingerprint>``.

    A board's numbers differ from the simulator's for the same DPU configuration (same fingerprint),
    so LUTs of other backends carry the backend in the DPU part: ``<space>-<dpu>.<backend>-<fingerprint>``.
    """
    return f"{space_name}-{dpu_label(dpu_name, backend)}-{fingerprint}"


def dpu_label(dpu_name: str, backend: str = "sim") -> str:
    """The DPU part of a LUT file name: the preset name, plus ``.<backend>`` unless simulated."""
    return dpu_name if backend == "sim" else f"{dpu_name}.{backend}"


@dataclass(frozen=True)
class LutMeta:
    """Provenance of a LUT.

    Attributes:
        space: Search space name.
        resolutions: Resolutions the LUT was built for.
        dpu_name: DPU preset name (``zcu102_b4096``).
        dpu_fingerprint: :meth:`DPUConfig.fingerprint` the numbers belong to.
        backend: ``sim`` | ``vitis_dnndk`` | ``vitis_vart``.
        toolchain: Toolchain version string of the backend.
        runs: Profile-mode runs per measured subnet.
        created: ISO date-time of the build.
        provenance: Free text, e.g. ``calibrated simulator``.
        dpu_config: The full DPU configuration (to explain a fingerprint change).
        uncompilable: Keys the DPU compiler rejects (they are absent from the table on purpose).
        profiled_subnets: Subnets whose profiles the table aggregates.
        validation: Figures of the LUT-sum vs whole-network check (``mape``, ``subnets`` …).
    """

    space: str
    resolutions: tuple[int, ...]
    dpu_name: str
    dpu_fingerprint: str
    backend: str
    toolchain: str
    runs: int = 1
    created: str = ""
    provenance: str = ""
    dpu_config: dict[str, Any] = field(default_factory=dict)
    uncompilable: tuple[str, ...] = ()
    profiled_subnets: int = 0
    validation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "resolutions": list(self.resolutions),
            "dpu_name": self.dpu_name,
            "dpu_fingerprint": self.dpu_fingerprint,
            "backend": self.backend,
            "toolchain": self.toolchain,
            "runs": self.runs,
            "created": self.created,
            "provenance": self.provenance,
            "dpu_config": self.dpu_config,
            "uncompilable": sorted(self.uncompilable),
            "profiled_subnets": self.profiled_subnets,
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str) -> LutMeta:
        missing = [k for k in _META_REQUIRED if k not in data]
        if missing:
            raise LutError(f"LUT metadata {source}: missing field(s) {missing}")
        try:
            return cls(
                space=str(data["space"]),
                resolutions=tuple(int(r) for r in data["resolutions"]),
                dpu_name=str(data["dpu_name"]),
                dpu_fingerprint=str(data["dpu_fingerprint"]),
                backend=str(data["backend"]),
                toolchain=str(data["toolchain"]),
                runs=int(data.get("runs", 1)),
                created=str(data.get("created", "")),
                provenance=str(data.get("provenance", "")),
                dpu_config=dict(data.get("dpu_config") or {}),
                uncompilable=tuple(data.get("uncompilable") or ()),
                profiled_subnets=int(data.get("profiled_subnets", 0)),
                validation=dict(data.get("validation") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise LutError(f"LUT metadata {source}: bad value ({exc})") from exc


@dataclass(frozen=True, eq=False)
class LatencyTable:
    """Per-key latency statistics (ms) of one space on one DPU configuration.

    Attributes:
        frame: One row per key, columns :data:`CSV_COLUMNS` (indexed by nothing; ``key`` unique).
        meta: Provenance.
    """

    frame: pd.DataFrame
    meta: LutMeta

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {k: i for i, k in enumerate(self.frame["key"])})
        object.__setattr__(self, "_means", self.frame["mean_ms"].to_numpy(dtype=float))

    # -------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, key: object) -> bool:
        return key in self._index  # type: ignore[attr-defined]

    @property
    def keys(self) -> list[str]:
        return list(self.frame["key"])

    @property
    def stem(self) -> str:
        return lut_filename(self.meta.space, self.meta.dpu_name, self.meta.dpu_fingerprint, self.meta.backend)

    def lookup(self, key: str) -> dict[str, float]:
        """Statistics of one key: ``{'count', 'mean_ms', 'std_ms', 'min_ms', 'median_ms'}``.

        Raises:
            LutKeyError: the key was not measured, or the DPU cannot compile it.
        """
        i = self._index.get(key)  # type: ignore[attr-defined]
        if i is None:
            if key in self.meta.uncompilable:
                raise LutKeyError(f"key {key} cannot be compiled for DPU {self.meta.dpu_name}")
            raise LutKeyError(f"key {key} is not in LUT {self.stem}")
        row = self.frame.iloc[i]
        return {c: (int(row[c]) if c == "count" else float(row[c])) for c in _NUMERIC}

    def predict(self, space: SearchSpace, arch: Arch) -> float:
        """Network latency (ms) of ``arch`` = sum of its blocks' mean latencies (OFA's rule)."""
        self.check_space(space)
        ns = build_netspec(space, arch)
        return float(sum(self._means[self._position(key)] for key in ns.keys))  # type: ignore[attr-defined]

    def _position(self, key: str) -> int:
        i = self._index.get(key)  # type: ignore[attr-defined]
        if i is None:
            self.lookup(key)  # raises the informative error
        return int(i)

    def coverage(self, space: SearchSpace, resolutions: Iterable[int] | None = None) -> dict[str, Any]:
        """Coverage of the space's compilable keys at ``resolutions`` (default: the LUT's own).

        Returns:
            ``{'fraction', 'covered', 'compilable', 'uncompilable', 'missing'}`` (``missing`` = keys).
        """
        res = tuple(resolutions) if resolutions is not None else self.meta.resolutions
        wanted = set(space_keys(space, res)) - set(self.meta.uncompilable)
        covered = wanted & set(self._index)  # type: ignore[attr-defined]
        return {
            "fraction": len(covered) / len(wanted) if wanted else 1.0,
            "covered": len(covered),
            "compilable": len(wanted),
            "uncompilable": len(set(space_keys(space, res)) & set(self.meta.uncompilable)),
            "missing": sorted(wanted - covered),
        }

    def check_space(self, space: SearchSpace) -> None:
        if space.name != self.meta.space:
            raise LutError(f"LUT {self.stem} is for space '{self.meta.space}', not '{space.name}'")

    def to_block_table(self, space: SearchSpace) -> BlockTable:
        """The dense :class:`~ofa_hw.blocktable.BlockTable` form: mean per cell, variance = std².

        Cells whose key is uncompilable are ``inf``; cells not in the LUT (e.g. a resolution it was not
        built for) are ``nan``.
        """
        self.check_space(space)
        uncompilable = set(self.meta.uncompilable)
        stds = self.frame["std_ms"].to_numpy(dtype=float)

        def cell(block, _ns) -> tuple[float, float]:
            i = self._index.get(block.key)  # type: ignore[attr-defined]
            if i is not None:
                return float(self._means[i]), float(stds[i]) ** 2  # type: ignore[attr-defined]
            return (math.inf, 0.0) if block.key in uncompilable else (math.nan, 0.0)

        if not isinstance(space, SearchSpace):  # ResNet-50: cells over the genes each term depends on
            from ofa_hw.termtable import TermTable

            return TermTable.from_block_fn(space, cell)
        return BlockTable.from_block_fn(space, cell)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path) -> Path:
        """Write ``<dir>/<stem>.csv`` and ``.json``; returns the CSV path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path = directory / f"{self.stem}.csv"
        # Per-process temporary names: sweep jobs that build the same LUT at once must not rename each
        # other's half-written files (the last complete pair wins; both are the same table).
        tmp_csv = csv_path.with_name(f"{csv_path.name}.{os.getpid()}.tmp")
        tmp_json = csv_path.with_name(f"{csv_path.with_suffix('.json').name}.{os.getpid()}.tmp")
        self.frame.to_csv(tmp_csv, index=False, float_format="%.6g")
        tmp_json.write_text(json.dumps(self.meta.to_dict(), indent=1) + "\n")
        # Rename last so a crash never leaves a CSV without its metadata.
        tmp_json.replace(csv_path.with_suffix(".json"))
        tmp_csv.replace(csv_path)
        return csv_path

    @classmethod
    def load(
        cls,
        path: str | Path,
        space: SearchSpace | None = None,
        dpu_fingerprint: str | None = None,
    ) -> LatencyTable:
        """Read a LUT CSV and its ``.json`` metadata, checking both.

        Args:
            path: The CSV file.
            space: When given, the LUT must belong to it and hold only its keys.
            dpu_fingerprint: When given, the LUT must have been built for it.

        Raises:
            LutError: naming the file and the problem (missing column, NaN, bad count, duplicate key,
                metadata mismatch, another space or DPU).
        """
        path = Path(path)
        meta_path = path.with_suffix(".json")
        if not path.is_file():
            raise LutError(f"LUT {path} does not exist")
        if not meta_path.is_file():
            raise LutError(f"LUT {path}: its metadata file {meta_path.name} is missing")
        try:
            meta = LutMeta.from_dict(json.loads(meta_path.read_text()), meta_path)
        except json.JSONDecodeError as exc:
            raise LutError(f"LUT metadata {meta_path}: not valid JSON ({exc})") from exc
        try:
            frame = pd.read_csv(
                path, dtype={"key": str, "dpu_fingerprint": str, "toolchain": str, "backend": str}
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise LutError(f"LUT {path}: cannot parse CSV ({exc})") from exc
        frame = _check_frame(frame, path, meta)
        table = cls(frame, meta)
        if space is not None:
            _check_space_keys(table, space, path)
        if dpu_fingerprint is not None and meta.dpu_fingerprint != dpu_fingerprint:
            raise LutError(
                f"LUT {path} was built for DPU {meta.dpu_name} fingerprint {meta.dpu_fingerprint}, "
                f"but the configured DPU has fingerprint {dpu_fingerprint}"
            )
        return table

    # ------------------------------------------------------------------ OFA YAML
    def to_ofa_yaml(self, path: str | Path) -> Path:
        """Write OFA's latency-table YAML: ``key: {count, mean, std}`` (ms), loadable by OFA's tools."""
        path = Path(path)
        data = {
            row.key: {"count": int(row.count), "mean": float(row.mean_ms), "std": float(row.std_ms)}
            for row in self.frame.itertuples(index=False)
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
        return path

    @classmethod
    def from_ofa_yaml(cls, path: str | Path, space: SearchSpace, meta: LutMeta) -> LatencyTable:
        """Import an OFA YAML latency table of ``space`` (``meta`` gives the provenance OFA's format lacks).

        Raises:
            LutError: naming the file: not YAML, not a mapping, keys not of the space, entries without
                numeric ``count``/``mean``/``std``.
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise LutError(f"OFA LUT {path}: cannot read YAML ({exc})") from exc
        if not isinstance(data, dict) or not data:
            raise LutError(
                f"OFA LUT {path}: expected a mapping 'key: {{count, mean, std}}', got {type(data).__name__}"
            )
        known = set(space_keys(space))
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise LutError(
                f"OFA LUT {path}: {len(unknown)} key(s) are not keys of space '{space.name}', "
                f"e.g. {unknown[:3]}"
            )
        rows = []
        for key, entry in data.items():
            if not isinstance(entry, dict) or not {"count", "mean", "std"} <= set(entry):
                raise LutError(f"OFA LUT {path}: entry {key} must hold count, mean and std")
            try:
                count, mean, std = int(entry["count"]), float(entry["mean"]), float(entry["std"])
            except (TypeError, ValueError) as exc:
                raise LutError(f"OFA LUT {path}: entry {key} has a non-numeric value ({exc})") from exc
            rows.append((key, count, mean, std, math.nan, math.nan))
        frame = pd.DataFrame(rows, columns=["key", *_NUMERIC])
        # OFA's format has no min/median: use the mean so the table stays NaN-free and loadable.
        frame["min_ms"] = frame["mean_ms"]
        frame["median_ms"] = frame["mean_ms"]
        frame["dpu_fingerprint"] = meta.dpu_fingerprint
        frame["toolchain"] = meta.toolchain
        frame["backend"] = meta.backend
        frame = _check_frame(frame.sort_values("key", ignore_index=True), path, meta)
        return cls(frame, replace(meta, space=space.name))


def _check_frame(frame: pd.DataFrame, path: Path, meta: LutMeta) -> pd.DataFrame:
    """Validate a LUT frame (columns, NaNs, counts, duplicates, provenance columns) and order it."""
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise LutError(f"LUT {path}: missing column(s) {missing}; expected {list(CSV_COLUMNS)}")
    frame = frame[list(CSV_COLUMNS)].copy()
    for col in _NUMERIC:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based, after the header line
            raise LutError(
                f"LUT {path} line {line}: column '{col}' is NaN or not a number (key {frame['key'].iloc[line - 2]})"
            )
        frame[col] = values
    if frame["key"].isna().any():
        line = int(np.flatnonzero(frame["key"].isna().to_numpy())[0]) + 2
        raise LutError(f"LUT {path} line {line}: empty key")
    dup = frame["key"].duplicated()
    if dup.any():
        raise LutError(f"LUT {path}: duplicate key {frame['key'][dup].iloc[0]}")
    if (frame["count"] < 1).any() or (frame["mean_ms"] < 0).any() or (frame["std_ms"] < 0).any():
        raise LutError(f"LUT {path}: counts must be >= 1 and times >= 0")
    foreign = frame["dpu_fingerprint"] != meta.dpu_fingerprint
    if foreign.any():
        line = int(np.flatnonzero(foreign.to_numpy())[0]) + 2
        raise LutError(
            f"LUT {path} line {line}: row fingerprint {frame['dpu_fingerprint'].iloc[line - 2]} differs from "
            f"the metadata's {meta.dpu_fingerprint}"
        )
    frame["count"] = frame["count"].astype(int)
    return frame.reset_index(drop=True)


def _check_space_keys(table: LatencyTable, space: SearchSpace, path: Path) -> None:
    if table.meta.space != space.name:
        raise LutError(f"LUT {path} is for space '{table.meta.space}', not the configured '{space.name}'")
    foreign = sorted(set(table.keys) - set(space_keys(space, table.meta.resolutions)))
    if foreign:
        raise LutError(
            f"LUT {path}: {len(foreign)} key(s) do not belong to space '{space.name}' at its resolutions, "
            f"e.g. {foreign[:2]}"
        )
