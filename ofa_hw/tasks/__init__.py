"""Hydra task entry points (``ofa-hw task=<name>``) and the helpers they share.

Every task is ``run(cfg) -> dict``: it builds what it needs from the config with the ``make_*``
helpers below, writes its artefacts into Hydra's run directory and a ``results.json`` there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf


def output_dir() -> Path:
    """Hydra's run directory when inside a Hydra job, else ``./outputs/adhoc`` (library use, tests)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        path = Path(HydraConfig.get().runtime.output_dir)
    else:
        path = Path("outputs") / "adhoc"
    path.mkdir(parents=True, exist_ok=True)
    return path


def outputs_line(outdir: Path, files: list[str] | None = None) -> str:
    """``outputs: /abs/run/dir (results.json, …)``: the last line a task prints, the files it wrote there."""
    outdir = Path(outdir).resolve()
    names = [f for f in (files or []) if (outdir / f).exists()] or sorted(
        p.name for p in outdir.iterdir() if p.is_file()
    )
    return f"outputs: {outdir} ({', '.join(names)})"


def job_label() -> str:
    """``job 3 (search.budget_ms=4 dpu=zcu104_b4096)`` inside a multirun job, else ``""``.

    Every summary a task prints starts with it, so the lines of a sweep say which job they belong to.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return ""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return ""
    overrides = " ".join(hc.overrides.task)
    return f"job {hc.job.num}" + (f" ({overrides})" if overrides else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no inf/nan; null says "no value" explicitly
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(results: dict, outdir: Path | None = None) -> Path:
    """Write ``results.json`` (nested objects for dotted names; numpy scalars converted)."""
    outdir = output_dir() if outdir is None else Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(results), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a reader never sees a half-written file
    return path


def workspace(cfg: DictConfig) -> Path:
    path = Path(cfg.workspace).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_space(cfg: DictConfig):
    from ofa_hw.errors import config_field
    from ofa_hw.space import space_from_config

    with config_field("space"):
        return space_from_config(OmegaConf.to_container(cfg.space, resolve=True))


def make_dpu(cfg: DictConfig):
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.errors import config_field

    with config_field("dpu"):
        return DPUConfig.from_dict(OmegaConf.to_container(cfg.dpu, resolve=True))


def measured_on(backend_name: str) -> str:
    """Few words saying what measured a run's figures, for plots: the simulator is never a board."""
    if backend_name == "sim":
        return "measured on the DPU simulator"
    return f"measured on the board ({backend_name})"


def make_backend(cfg: DictConfig, dpu=None):
    from ofa_hw.backends import make_backend as _make_backend

    return _make_backend(cfg, make_dpu(cfg) if dpu is None else dpu)


def open_store(cfg: DictConfig):
    from ofa_hw.store import open_store as _open_store

    return _open_store(cfg, workspace(cfg))
