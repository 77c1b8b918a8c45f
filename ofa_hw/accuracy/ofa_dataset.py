"""OFA's accuracy-dataset format: read, validate and write it.

OFA stores the measured top-1 of sampled subnets in a directory::

    <root>/net_id.dict        JSON list; each entry is a subnet config ``{"ks", "e", "d"}`` serialised
                              as a JSON *string* (OFA writes ``json.dumps(config)``); plain objects are
                              accepted too.
    <root>/src/<res>.dict     JSON object per input resolution: key = ``json.dumps({**config,
                              "image_size": res})``, value = top-1 in percent.

(``acc.dict``, OFA's merge of the ``src`` files, is derived data and is not read.) The reader is
strict about content and precise about where a problem is: every error names the file and the entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofa_hw.space import Arch, ArchError, SearchSpace

NET_ID_FILE = "net_id.dict"
SRC_DIR = "src"
_SRC_NAME = re.compile(r"^(\d+)\.dict$")


class DatasetError(ValueError):
    """A malformed OFA accuracy dataset; the message names the file and the entry."""


@dataclass(frozen=True)
class AccuracySample:
    """One measured subnet.

    Attributes:
        arch: Canonical arch dict of the space (``r`` holds the resolution).
        top1: Top-1 accuracy in percent.
        net: Index of the subnet config in :attr:`AccuracyDataset.nets` (one config, many resolutions).
        source: ``src/<res>.dict`` file the value came from.
    """

    arch: Arch
    top1: float
    net: int
    source: str


@dataclass(frozen=True)
class AccuracyDataset:
    """The content of an OFA accuracy dataset directory.

    Attributes:
        root: Dataset directory.
        nets: Canonical config ids (``space.arch_id`` without resolution) of the distinct subnets, in
            ``net_id.dict`` order followed by configs only found in ``src`` files.
        samples: Every (config, resolution) measurement.
        n_listed: Number of configs listed in ``net_id.dict``.
        fingerprint: SHA-256 over the files read, so a trained model can tell it is stale.
    """

    root: Path
    nets: tuple[str, ...]
    samples: tuple[AccuracySample, ...]
    n_listed: int
    fingerprint: str

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted({s.arch["r"] for s in self.samples}))

    def __len__(self) -> int:
        return len(self.samples)


def _config_id(space: SearchSpace, arch: Arch) -> str:
    """Identity of a subnet config regardless of resolution (inactive blocks ignored)."""
    body = json.loads(space.arch_id(arch))
    body.pop("r")
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_ofa_accuracy_dataset(root: str | Path, space: SearchSpace) -> AccuracyDataset:
    """Read and validate an OFA accuracy dataset against ``space``.

    Args:
        root: Directory holding ``net_id.dict`` and ``src/<res>.dict``.
        space: Search space every config must belong to.

    Raises:
        DatasetError: naming the file and the entry for a missing file, invalid JSON, a config outside the
            space, a resolution that disagrees with its file name, or a top-1 that is not a number in
            [0, 100].
    """
    root = Path(root)
    net_id_path = root / NET_ID_FILE
    if not net_id_path.is_file():
        raise DatasetError(
            f"{net_id_path}: not found (an OFA accuracy dataset needs {NET_ID_FILE} and {SRC_DIR}/)"
        )
    digest = hashlib.sha256()
    digest.update(net_id_path.read_bytes())

    listed = _read_json(net_id_path)
    if not isinstance(listed, list):
        raise DatasetError(
            f"{net_id_path}: expected a JSON list of subnet configs, got {type(listed).__name__}"
        )
    nets: dict[str, int] = {}
    for i, entry in enumerate(listed):
        config = _parse_config(entry, f"{net_id_path} entry {i}")
        probe = {**config, "r": config.get("image_size", space.resolutions[0])}
        probe.pop("image_size", None)
        try:
            arch = space.validate(probe)
        except ArchError as exc:
            raise DatasetError(f"{net_id_path} entry {i}: {exc}") from exc
        nets.setdefault(_config_id(space, arch), len(nets))
    n_listed = len(nets)

    src_dir = root / SRC_DIR
    files = sorted(src_dir.glob("*.dict")) if src_dir.is_dir() else []
    if not files:
        raise DatasetError(f"{src_dir}: no <resolution>.dict files found")
    samples: list[AccuracySample] = []
    for path in files:
        match = _SRC_NAME.match(path.name)
        if match is None:
            raise DatasetError(f"{path}: file name must be <resolution>.dict, e.g. 224.dict")
        res = int(match.group(1))
        if res not in space.resolutions:
            raise DatasetError(
                f"{path}: resolution {res} is not in space '{space.name}' {list(space.resolutions)}"
            )
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
        table = _read_json(path)
        if not isinstance(table, dict):
            raise DatasetError(f"{path}: expected a JSON object config -> top-1, got {type(table).__name__}")
        for i, (key, value) in enumerate(table.items()):
            where = f"{path} entry {i} ({_short(key)})"
            config = _parse_config(key, where)
            size = config.pop("image_size", config.pop("r", None))
            if size != res:
                raise DatasetError(f"{where}: image_size {size!r} does not match the file's resolution {res}")
            try:
                arch = space.validate({**config, "r": res})
            except ArchError as exc:
                raise DatasetError(f"{where}: {exc}") from exc
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DatasetError(f"{where}: top-1 must be a number, got {value!r}")
            if not 0.0 <= value <= 100.0:
                raise DatasetError(f"{where}: top-1 {value} is outside [0, 100] (OFA stores percent)")
            net = nets.setdefault(_config_id(space, arch), len(nets))
            samples.append(
                AccuracySample(arch=arch, top1=float(value), net=net, source=f"{SRC_DIR}/{path.name}")
            )
    if not samples:
        raise DatasetError(f"{src_dir}: the .dict files hold no entries")
    return AccuracyDataset(
        root=root, nets=tuple(nets), samples=tuple(samples), n_listed=n_listed, fingerprint=digest.hexdigest()
    )


def _parse_config(entry: Any, where: str) -> dict[str, Any]:
    """A config dict from a ``net_id.dict`` entry or a ``src`` key (JSON string or object)."""
    if isinstance(entry, str):
        try:
            entry = json.loads(entry)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not a JSON subnet config ({exc.msg})") from exc
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: a subnet config must be a JSON object, got {type(entry).__name__}")
    return dict(entry)


def ofa_config_key(arch: Arch) -> str:
    """The ``src/<res>.dict`` key OFA writes for ``arch``: ``json.dumps({ks, e, d, image_size})``."""
    return json.dumps(
        {"ks": list(arch["ks"]), "e": list(arch["e"]), "d": list(arch["d"]), "image_size": arch["r"]}
    )


def write_ofa_accuracy_dataset(root: str | Path, entries: Iterable[tuple[Arch, float]]) -> Path:
    """Write (or extend) an OFA accuracy dataset from ``(canonical arch, top-1 %)`` pairs.

    Existing entries are kept (a new value for the same key replaces the old one), so a dataset can be
    built incrementally, as OFA's ``build_acc_dataset`` does.

    Returns:
        The dataset root.
    """
    root = Path(root)
    (root / SRC_DIR).mkdir(parents=True, exist_ok=True)
    net_id_path = root / NET_ID_FILE
    existing = _read_json(net_id_path) if net_id_path.is_file() else []
    if not isinstance(existing, list):
        raise DatasetError(
            f"{net_id_path}: expected a JSON list of subnet configs, got {type(existing).__name__}"
        )
    # OFA writes JSON strings; objects written by hand are kept, as strings
    net_ids = [e if isinstance(e, str) else json.dumps(e) for e in existing]
    known = set(net_ids)
    by_res: dict[int, dict[str, float]] = {}
    for arch, top1 in entries:
        net_id = json.dumps({"ks": list(arch["ks"]), "e": list(arch["e"]), "d": list(arch["d"])})
        if net_id not in known:
            known.add(net_id)
            net_ids.append(net_id)
        by_res.setdefault(int(arch["r"]), {})[ofa_config_key(arch)] = float(top1)
    net_id_path.write_text(json.dumps(net_ids, indent=4))
    for res, table in by_res.items():
        path = root / SRC_DIR / f"{res}.dict"
        merged = {**(_read_json(path) if path.is_file() else {}), **table}
        path.write_text(json.dumps(merged, indent=4))
    return root
