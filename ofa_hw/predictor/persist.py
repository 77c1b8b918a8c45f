"""Portable, integrity-checked predictor files: one JSON document, never a pickle.

Layout::

    {"sha256": "<hex>", "meta": {...}, "payload": {...}}

``meta`` holds the format version, model name, latency target, the feature list, the space (name and
a fingerprint of its definition), the DPU (name, fingerprint, the hardware figures the features
used), the LUT id, package versions and training info. ``payload`` holds the fitted block model
(tree arrays, XGBoost's JSON model or base64 float32 tensors of a torch ``state_dict``; see
:mod:`ofa_hw.predictor.models`), the overheads and the uncertainty calibration. ``sha256`` covers the
canonical JSON of ``meta`` and ``payload``, so an edited or truncated file is rejected; loading
checks the space and DPU fingerprints, so a predictor is never used for hardware it did not learn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ofa_hw.predictor.features import FEATURES, HwParams
from ofa_hw.predictor.models import BlockModel
from ofa_hw.space import SearchSpace

if TYPE_CHECKING:
    from ofa_hw.predictor.predictor import LatencyPredictor

FORMAT = "ofa_hw.latency_predictor"
VERSION = 1
_PACKAGES = ("ofa_hw", "numpy", "scikit-learn", "xgboost", "torch", "scipy")


class PredictorFileError(ValueError):
    """A predictor file that is corrupt, tampered with, or made for another space/DPU/version."""


def space_fingerprint(space: SearchSpace) -> str:
    """12 hex chars identifying the space's definition (choices, widths, resolutions)."""
    fields = {f.name: getattr(space, f.name) for f in dataclasses.fields(space) if f.name != "named_archs"}
    text = json.dumps(fields, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def save_predictor(
    pred: LatencyPredictor, path: str | os.PathLike, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``pred`` to ``path`` atomically; returns the path."""
    if not pred.fitted:
        raise PredictorFileError("cannot save an unfitted predictor")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": pred.name,
        "target": pred.target,
        "features": list(FEATURES),
        "space": {"name": pred.space.name, "fingerprint": space_fingerprint(pred.space)},
        "dpu": {
            "name": getattr(pred.dpu, "name", None),
            "fingerprint": pred.dpu_fingerprint,
            "hw": dataclasses.asdict(pred.hw),
        },
        "lut_id": pred.lut_id,
        "packages": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "info": pred.info,
        "extra": extra or {},
    }
    payload = {
        "model": pred.model.to_state(),
        "overheads": {t: dataclasses.asdict(o) for t, o in pred.overheads.items()},
        "scale": pred.scale,
        "noise_rel": pred.noise_rel,
    }
    body = {"meta": meta, "payload": payload}
    doc = {"sha256": hashlib.sha256(_canonical(body)).hexdigest(), **body}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of this process's own: concurrent jobs of a sweep may save the same predictor.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    tmp.replace(path)
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PredictorFileError(f"predictor file {path} does not exist")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PredictorFileError(f"predictor file {path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not {"sha256", "meta", "payload"} <= set(doc):
        raise PredictorFileError(f"predictor file {path} lacks 'sha256', 'meta' or 'payload'")
    body = {"meta": doc["meta"], "payload": doc["payload"]}
    if hashlib.sha256(_canonical(body)).hexdigest() != doc["sha256"]:
        raise PredictorFileError(
            f"predictor file {path} failed its sha256 check: it was modified or corrupted"
        )
    meta = doc["meta"]
    if meta.get("format") != FORMAT:
        raise PredictorFileError(f"{path} is not an ofa_hw latency predictor (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise PredictorFileError(
            f"predictor file {path} has format version {meta.get('version')}, this ofa_hw reads {VERSION}"
        )
    if meta.get("features") != list(FEATURES):
        raise PredictorFileError(f"predictor file {path} was trained on another feature list; retrain it")
    return doc


def load_predictor(
    path: str | os.PathLike, space: SearchSpace, dpu: Any = None, allow_other_dpu: bool = False
) -> LatencyPredictor:
    """Read a predictor for ``space`` on ``dpu``.

    Raises:
        PredictorFileError: bad JSON, failed sha256, other format/version/features, other space, or
            (unless ``allow_other_dpu``) another DPU fingerprint.
    """
    from ofa_hw.predictor.predictor import LatencyPredictor, Overhead

    path = Path(path)
    doc = _read(path)
    meta, payload = doc["meta"], doc["payload"]
    want_space = {"name": space.name, "fingerprint": space_fingerprint(space)}
    if meta["space"] != want_space:
        raise PredictorFileError(
            f"predictor {path} was trained for space '{meta['space']['name']}' "
            f"({meta['space']['fingerprint']}), not '{space.name}' ({want_space['fingerprint']})"
        )
    fp = dpu.fingerprint() if dpu is not None and hasattr(dpu, "fingerprint") else None
    saved_fp = meta["dpu"]["fingerprint"]
    if not allow_other_dpu and saved_fp != fp:
        raise PredictorFileError(
            f"predictor {path} was trained for DPU {meta['dpu']['name']} (fingerprint {saved_fp}); the "
            f"configured DPU {getattr(dpu, 'name', None)} has fingerprint {fp}. Retrain it (ofa-hw task=train)."
        )
    hw = HwParams(**meta["dpu"]["hw"])
    if HwParams.from_dpu(dpu) != hw and not allow_other_dpu:
        raise PredictorFileError(f"predictor {path}: DPU parallelism/clock differ from the configured DPU")
    try:
        model = BlockModel.from_state(payload["model"])
        pred = LatencyPredictor(model, space, dpu, target=meta["target"])
        pred.hw = hw
        pred.overheads = {
            t: Overhead(tuple(o["coef"]), float(o["var"]), int(o["n_nets"]))
            for t, o in payload["overheads"].items()
        }
        pred.scale = float(payload["scale"])
        pred.noise_rel = float(payload["noise_rel"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PredictorFileError(f"predictor file {path}: malformed payload ({exc})") from exc
    pred.lut_id = meta.get("lut_id")
    pred.info = dict(meta.get("info", {}))
    return pred
