"""Failed runs and sweeps: every job of a sweep runs, a failed job says why in its own ``results.json``.

A job that fails (bad settings, requested work that failed, a bug) records ``failed`` in the
``results.json`` of its run directory (:func:`record_failure`) and returns, so Hydra goes on with the
next job. :class:`SweepSummary`, a Hydra callback registered in ``config.yaml``, reads every job's
``results.json`` when the sweep ends and prints which jobs failed and why; the CLI then exits non-zero
(:func:`sweep_exit_status`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: ``failed.kind`` of a job: bad input or failed work (exit 2), a bug (exit 1), Ctrl-C (exit 130).
EXIT_STATUS = {"user error": 2, "bug": 1, "interrupted": 130}


def record_failure(outdir: Path, kind: str, message: str) -> Path:
    """Add ``failed`` (``kind``, ``error``, ``exit_status``) to ``outdir/results.json`` (kept if present)."""
    from ofa_hw.tasks import write_results

    path = Path(outdir) / "results.json"
    results: dict[str, Any] = {}
    if path.is_file():
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            results = {}
    results["failed"] = {"kind": kind, "error": message, "exit_status": EXIT_STATUS[kind]}
    return write_results(results, outdir)


@dataclass
class JobOutcome:
    """What one job of a sweep left in its run directory."""

    num: int
    overrides: str
    failure: dict[str, Any] | None

    def line(self) -> str:
        label = f"job {self.num}" + (f" ({self.overrides})" if self.overrides else "")
        if self.failure is None:
            return f"  {label}: ok"
        return f"  {label}: FAILED ({self.failure.get('kind')}): {self.failure.get('error')}"


@dataclass
class SweepState:
    """The sweep of this process: when it started and what its jobs left (filled by :class:`SweepSummary`)."""

    started: float | None = None
    jobs: list[JobOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[JobOutcome]:
        return [j for j in self.jobs if j.failure is not None]


#: The sweep run by this process (the CLI reads it when Hydra returns).
STATE = SweepState()


def _job_outcome(jobdir: Path, num: int) -> JobOutcome:
    overrides_file = jobdir / ".hydra" / "overrides.yaml"
    overrides = ""
    if overrides_file.is_file():
        from omegaconf import OmegaConf

        overrides = " ".join(str(o) for o in OmegaConf.load(overrides_file))  # type: ignore[union-attr]
    results = jobdir / "results.json"
    if not results.is_file():
        failure = {"kind": "bug", "error": "the job ended without writing results.json (killed?)"}
        return JobOutcome(num, overrides, failure)
    try:
        failure = json.loads(results.read_text()).get("failed")
    except (OSError, json.JSONDecodeError) as exc:
        failure = {"kind": "bug", "error": f"unreadable results.json ({exc})"}
    return JobOutcome(num, overrides, failure)


def collect(sweep_dir: Path, since: float) -> list[JobOutcome]:
    """The jobs of the sweep in ``sweep_dir`` started at or after ``since`` (a ``time.time()``)."""
    jobs: list[JobOutcome] = []
    for hydra_dir in sorted(Path(sweep_dir).rglob(".hydra")):
        config = hydra_dir / "hydra.yaml"
        if not config.is_file() or config.stat().st_mtime < since - 1.0:
            continue  # a job of an earlier sweep into the same directory
        from omegaconf import OmegaConf

        num = OmegaConf.load(config).hydra.job.get("num", len(jobs))  # type: ignore[union-attr]
        jobs.append(_job_outcome(hydra_dir.parent, int(num)))
    return sorted(jobs, key=lambda j: j.num)


def summary(jobs: list[JobOutcome], sweep_dir: Path) -> str:
    """The end-of-sweep summary: one line per job, failures with their error."""
    failed = [j for j in jobs if j.failure is not None]
    head = f"sweep: {len(jobs)} job(s), {len(jobs) - len(failed)} ok, {len(failed)} failed ({sweep_dir})"
    return "\n".join([head, *(j.line() for j in jobs)])


def sweep_exit_status(state: SweepState = STATE) -> int:
    """0 when every job of the sweep succeeded; else 130 if one was interrupted, 1 if one hit a bug, 2."""
    kinds = {str(j.failure.get("kind")) for j in state.failed if j.failure is not None}
    if not kinds:
        return 0
    for kind in ("interrupted", "bug"):
        if kind in kinds:
            return EXIT_STATUS[kind]
    return EXIT_STATUS["user error"]


class SweepSummary(Callback):
    """Hydra callback: notes the sweep's start, prints the summary of its jobs at its end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        STATE.started = time.time()
        STATE.jobs = []

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        STATE.jobs = collect(sweep_dir, STATE.started or 0.0)
        print(summary(STATE.jobs, sweep_dir), flush=True)
