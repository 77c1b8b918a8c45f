"""Every setting of a run checked before any work, in one place, every problem reported at once.

:func:`check_settings` is what ``ofa-hw`` calls once the config is composed and before the task runs.
Hydra's structured configs already refuse typos and wrong types at compose time; this module checks what
a type cannot say: ranges (``search.top_k >= 1``, ``backend.runs >= 1``, ``seed >= 0``), choices
(``lut.plan``, ``predictor.source``, ``calibrate.free``), files a task will need (``predictor.file`` and
its integrity, ``accuracy.table.dataset_dir``, ``accuracy.supernet.checkpoint``, ``lut.path``), the
workspace (a directory the task can write to, or read when it only reads), a clearly infeasible latency
budget and settings a task refuses (``accuracy=supernet`` in a search).

Each problem is one line that starts with the setting it is about; :class:`SettingsError` carries them
all and the CLI prints one ``ofa-hw: error: …`` line per problem (exit status 2).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ofa_hw.errors import UserError

#: Tasks that run the search stage (they need the search, accuracy and predictor settings).
SEARCH_TASKS = ("search", "pipeline")
#: Tasks that fit or load a latency predictor.
PREDICTOR_TASKS = ("train", "search", "pipeline")
#: ``calibrate.name``: a plain identifier (it becomes ``conf/dpu/<name>.yaml`` and ``dpu=<name>``).
PRESET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class SettingsError(UserError):
    """Several bad settings of one run; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Problems:
    """Collects problems; :meth:`field` turns a ``ValueError``/``KeyError``/``UserError`` into one."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        """Record one problem (a line starting with the setting's name)."""
        line = "; ".join(part.strip() for part in str(line).splitlines() if part.strip())
        if line and line not in self.lines:
            self.lines.append(line)

    @contextmanager
    def field(self, name: str) -> Iterator[None]:
        """Record an error raised while checking ``name`` (prefixed with it unless it already says it)."""
        try:
            yield
        except UserError as exc:
            for line in str(exc).splitlines():  # a multi-line UserError lists several problems
                self.add(line)
        except (ValueError, KeyError, OSError) as exc:
            text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            self.add(text if text.startswith(name) else f"{name}: {text}")

    def range(self, name: str, value: Any, low: float | None = None, high: float | None = None) -> bool:
        """Check ``low <= value <= high`` (``None`` = unbounded); record ``name must be …`` otherwise."""
        ok = value is not None and isinstance(value, (int, float)) and math.isfinite(float(value))
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            if low is not None and high is not None:
                want = f"between {low:g} and {high:g}"
            elif low is not None:
                want = f">= {low:g}"
            else:
                want = f"<= {high:g}"
            self.add(f"{name} must be {want}, got {value}")
        return ok


def task_name(cfg: DictConfig) -> str:
    """The selected task (``pipeline``, ``search``, ``lut`` …)."""
    return str(cfg.task.get("name") or "")


def check_settings(cfg: DictConfig) -> None:
    """Check every setting of the run ``cfg`` describes, before any work.

    Raises:
        SettingsError: one line per problem, all of them.
    """
    problems = Problems()
    for check in CHECKS:
        check(cfg, problems)
    if problems.lines:
        raise SettingsError(problems.lines)


# ------------------------------------------------------------------------------------------ run-wide
def _run_wide(cfg: DictConfig, p: Problems) -> None:
    p.range("seed", cfg.seed, 0)
    p.range("backend.runs", cfg.backend.runs, 1)
    p.range("backend.timeout_s", cfg.backend.timeout_s, 1e-9)
    _workspace(cfg, p)


def writes_workspace(cfg: DictConfig) -> bool:
    """False for the tasks that only read the workspace (``task=store task.verb=info`` / ``export``)."""
    return not (task_name(cfg) == "store" and str(cfg.task.get("verb")) in ("info", "export"))


def _writable(directory: Path) -> bool:
    """Whether a file can be created in ``directory`` (tried: permission bits do not bind root, and a
    read-only mount is read-only for everyone)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def _workspace(cfg: DictConfig, p: Problems) -> None:
    where = "workspace (OFA_HW_WORKSPACE or workspace=)"
    path = Path(str(cfg.workspace)).expanduser()
    if path.exists() and not path.is_dir():
        p.add(f"{where}: {path} is a file, not a directory")
        return
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        p.add(f"{where}: {existing} is a file, so {path} cannot be created")
        return
    if writes_workspace(cfg) and not _writable(existing):
        what = "is read-only" if existing == path else f"cannot be created ({existing} is read-only)"
        p.add(
            f"{where}: {path} {what}; task={task_name(cfg)} writes measurements there "
            "(a read-only store can still be read: ofa-hw task=store task.verb=info)"
        )
    elif not writes_workspace(cfg) and path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        p.add(f"{where}: {path} cannot be read")


# --------------------------------------------------------------------------------------------- space/DPU
def _space_and_dpu(cfg: DictConfig, p: Problems) -> None:
    from ofa_hw.tasks import make_dpu, make_space

    with p.field("space"):
        make_space(cfg)
    with p.field("dpu"):
        make_dpu(cfg)


def _built(cfg: DictConfig) -> tuple[Any, Any] | None:
    """``(space, dpu)`` when both settings are valid (checked by :func:`_space_and_dpu`), else ``None``."""
    from ofa_hw.tasks import make_dpu, make_space

    try:
        return make_space(cfg), make_dpu(cfg)
    except (UserError, ValueError, KeyError):
        return None


# ------------------------------------------------------------------------------------------------- LUT
def _lut(cfg: DictConfig, p: Problems) -> None:
    from ofa_hw.lut.manage import PLANS

    lut = cfg.lut
    if str(lut.plan) not in ("auto", *PLANS):
        p.add(f"lut.plan must be one of auto, {', '.join(PLANS)}; got {lut.plan!r}")
    p.range("lut.coverage", lut.coverage, 1)
    p.range("lut.validation_subnets", lut.validation_subnets, 0)
    p.range("lut.seed", lut.seed, 0)
    p.range("lut.max_subnets", lut.max_subnets, 1)
    p.range("lut.batch", lut.batch, 1)
    p.range("lut.target_mape", lut.target_mape, 1e-12)
    p.range("lut.pool", lut.pool, 1)
    if lut.path and not Path(str(lut.path)).expanduser().is_file():
        p.add(f"lut.path: {lut.path} does not exist")
    if lut.shipped_dir and Path(str(lut.shipped_dir)).expanduser().is_file():
        p.add(f"lut.shipped_dir: {lut.shipped_dir} is a file, not a directory of LUTs")
    built = _built(cfg)
    if built is not None and lut.resolutions is not None:
        space = built[0]
        bad = [int(r) for r in lut.resolutions if int(r) not in space.resolutions]
        if bad:
            p.add(f"lut.resolutions: {bad} are not resolutions of space {space.name}")


# ----------------------------------------------------------------------------------------------- predictor
def _predictor(cfg: DictConfig, p: Problems) -> None:
    pcfg = cfg.predictor
    if str(pcfg.source) not in ("lut", "store"):
        p.add(f"predictor.source must be 'lut' or 'store', got {pcfg.source!r}")
    if str(pcfg.target) not in ("profile", "e2e"):
        p.add(f"predictor.target must be 'profile' or 'e2e', got {pcfg.target!r}")
    p.range("predictor.eval_subnets", pcfg.eval_subnets, 0)
    p.range("predictor.calib_subnets", pcfg.calib_subnets, 0)
    if pcfg.file and task_name(cfg) in PREDICTOR_TASKS:
        from ofa_hw.predictor.persist import load_predictor

        built = _built(cfg)
        if built is None:
            with p.field("predictor.file"):
                from ofa_hw.predictor.persist import _read

                _read(Path(str(pcfg.file)).expanduser())
        else:
            with p.field("predictor.file"):
                load_predictor(Path(str(pcfg.file)).expanduser(), built[0], built[1])


# ------------------------------------------------------------------------------------------------ search
def _search(cfg: DictConfig, p: Problems) -> None:
    from ofa_hw.search.settings import SearchSettings

    with p.field("search"):
        SearchSettings.from_config(cfg.search)
    budget = cfg.search.budget_ms
    if task_name(cfg) in SEARCH_TASKS and budget is not None and budget > 0 and _built(cfg) is not None:
        # A budget below the fastest subnet by the LUT the run would use (cheap: no profiling).
        from ofa_hw.tasks.search import check_budget_against_lut

        with p.field("search.budget_ms"):
            check_budget_against_lut(cfg)


# ---------------------------------------------------------------------------------------------- accuracy
def _accuracy(cfg: DictConfig, p: Problems) -> None:
    if task_name(cfg) not in SEARCH_TASKS:
        return
    name = str(cfg.accuracy.name)
    if name == "supernet":
        p.add(
            f"accuracy=supernet: task={task_name(cfg)} refuses it: it validates every subnet the search "
            "scores (a 100 x 500 search: weeks on ImageNet); use accuracy=table (OFA's predictor, trained on "
            "supernet evaluations) or accuracy=flops"
        )
    elif name == "table":
        t = cfg.accuracy.table
        model_ok = bool(t.model_dir) and (Path(str(t.model_dir)).expanduser() / "meta.json").is_file()
        if t.dataset_dir:
            if not Path(str(t.dataset_dir)).expanduser().is_dir():
                p.add(f"accuracy.table.dataset_dir: {t.dataset_dir} is not a directory")
        elif not model_ok or t.retrain:
            p.add(
                "accuracy.table.dataset_dir: accuracy=table needs an OFA accuracy dataset "
                "(net_id.dict + src/<res>.dict)"
                + (f"; no trained model in {t.model_dir}" if t.model_dir else " or accuracy.table.model_dir")
            )
        if str(t.resolution_encoding) not in ("onehot", "interp"):
            p.add(
                f"accuracy.table.resolution_encoding must be 'onehot' or 'interp', got {t.resolution_encoding!r}"
            )
    elif name == "flops":
        p.range("accuracy.flops.resolution_weight", cfg.accuracy.flops.resolution_weight, 0)


# --------------------------------------------------------------------------------------------- calibrate
def _calibrate(cfg: DictConfig, p: Problems) -> None:
    c = cfg.get("calibrate")
    if c is None:
        return
    if not PRESET_NAME.fullmatch(str(c.name)):
        p.add(
            f"calibrate.name must be a plain identifier (letters, digits, _ and -, starting with a letter), "
            f"got {c.name!r}"
        )
    if c.free:
        from ofa_hw.sim.calibrate import BOUNDS

        unknown = [str(f) for f in c.free if str(f) not in BOUNDS]
        if unknown:
            p.add(f"calibrate.free: no such constant {', '.join(unknown)}; choose from {', '.join(BOUNDS)}")
    p.range("calibrate.admitted_samples", c.admitted_samples, 1)
    if task_name(cfg) == "calibrate":
        _no_simulated_input(c, p)


def _no_simulated_input(c: Any, p: Problems) -> None:
    """Refuse a profile ofa_hw's simulator wrote as calibration input: it is no board measurement."""
    from ofa_hw.tasks.deploy import is_simulated

    files = [("calibrate.profiles", str(f)) for f in c.profiles]
    files += [("calibrate.measurements", str(m.file)) for m in c.measurements if m.file]
    for name, file in files:
        path = Path(file).expanduser()
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                head = fh.read(256)
        except OSError:
            continue  # a missing file is reported by the task, with the places it looked
        if is_simulated(head):
            p.add(f"{name}: {file} was written by ofa_hw's DPU simulator, not measured on a board")


# ------------------------------------------------------------------------------------------------- tasks
def _task(cfg: DictConfig, p: Problems) -> None:
    name = task_name(cfg)
    if name == "store":
        from ofa_hw.tasks.store import VERBS

        if str(cfg.task.verb) not in VERBS:
            p.add(f"task.verb={cfg.task.verb!r}: choose one of {', '.join(VERBS)} (e.g. task.verb=import)")
        p.range("task.batch", cfg.task.batch, 1)
    elif name == "deploy" and cfg.task.get("runs") is not None:
        p.range("task.runs", cfg.task.runs, 1)


CHECKS: tuple[Callable[[DictConfig, Problems], None], ...] = (
    _run_wide,
    _space_and_dpu,
    _lut,
    _predictor,
    _search,
    _accuracy,
    _calibrate,
    _task,
)
