"""The ``ofa-hw`` console script: a Hydra app whose ``task`` group selects the entry point.

Exit status: 0 = the task produced what it was asked for; 2 = a user error (bad input, or requested
work that failed, e.g. a network that does not compile) reported in one line ``ofa-hw: error: …`` (bad
settings: one such line per problem, every problem of the run at once, before any work);
130 = interrupted (Ctrl-C / SIGINT: 128 + signal 2, what shells report for a job killed by SIGINT, so a
sweep or script can tell "stopped by the user" from "failed"), with one line saying how to resume; any
other failure is a bug of ours and keeps its traceback (Hydra's exit status 1).

A failed run writes its failure into its own ``results.json`` (``failed.kind``, ``failed.error``). In a
sweep (``-m``) a failed job does not stop the others: every job runs, the sweep ends with a summary of
the jobs that failed and why, and the exit status is that of the worst failure (130 > 1 > 2 > 0).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from typing import NoReturn

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig

from ofa_hw.schemas import register

log = logging.getLogger("ofa_hw")

#: Exit status of a run stopped by SIGINT (128 + 2, the shell convention).
EXIT_INTERRUPTED = 130
#: Exit status of a user error (bad input or requested work that failed).
EXIT_USER_ERROR = 2

register()


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is wrong": reported in one line, exit code 2.

    Imported lazily so that ``ofa-hw --help`` stays fast and the CLI does not pull every stage in.
    """
    from ofa_hw.errors import UserError
    from ofa_hw.space import ArchError

    return (UserError, ArchError)


def one_line(err: BaseException) -> str:
    """The error's message on one line (multi-line messages are joined with ``; ``)."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def measurements_kept(cfg: DictConfig) -> int | None:
    """Successful measurements the workspace's store holds (what a rerun reuses); ``None`` if unknown."""
    try:
        from ofa_hw.store import open_store

        with open_store(cfg) as store:
            return store.count(status="ok")
    except Exception:  # noqa: BLE001 - the count is a courtesy; never mask the interrupt with a new error
        return None


def announce_shadowed_presets(cfg: DictConfig) -> None:
    """Say so when the selected DPU preset is a workspace preset shadowing a packaged one of that name."""
    from hydra.core.hydra_config import HydraConfig

    from ofa_hw.schemas.searchpath import shadowed_presets

    choice = HydraConfig.get().runtime.choices.get("dpu") if HydraConfig.initialized() else None
    path = shadowed_presets("dpu").get(str(choice))
    if path is not None:
        provenance = cfg.dpu.get("calibrated_on") or "no provenance recorded"
        log.warning(
            "dpu=%s: using the workspace's preset %s (%s); it shadows the packaged preset of that name",
            choice,
            path,
            provenance,
        )


def check_choices(cfg: DictConfig) -> None:
    """Refuse a group choice that names a schema (``predictor=predictor_schema``) and mandatory values
    left unset, before any work (the schemas compose, as the presets' defaults lists need them)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from ofa_hw.errors import UserError
    from ofa_hw.schemas.searchpath import SCHEMA_SUFFIX

    if HydraConfig.initialized():
        for group, choice in HydraConfig.get().runtime.choices.items():
            if isinstance(choice, str) and choice.endswith(SCHEMA_SUFFIX) and not group.startswith("hydra"):
                raise UserError(
                    f"{group}={choice} is the schema of group '{group}', not an option; "
                    f"`ofa-hw --help` lists the options"
                )
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(
            f"no value for {', '.join(missing)} (set it on the command line, e.g. {missing[0]}=...)"
        )


def _say(message: str) -> None:
    from ofa_hw.tasks import job_label

    label = job_label()
    print(f"ofa-hw: {label + ': ' if label else ''}{message}", file=sys.stderr, flush=True)


def _fail(status: int, message: str) -> NoReturn:
    _say(message)
    sys.exit(status)


def _error_lines(err: BaseException) -> list[str]:
    """``error: …`` lines of a user error: one per problem of a settings check, else one."""
    from ofa_hw.tasks.settings import SettingsError

    if isinstance(err, SettingsError):
        return [f"error: {line}" for line in err.problems]
    return [f"error: {one_line(err)}"]


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _failed(kind: str, lines: list[str]) -> dict:
    """Report a failed run: its lines on stderr, ``failed`` in its ``results.json``; exits unless in a sweep.

    In a sweep the job returns instead, so that Hydra runs the next one (the summary at the end of the
    sweep lists the failures and the CLI exits non-zero).
    """
    from ofa_hw.tasks import output_dir
    from ofa_hw.tasks.sweep import EXIT_STATUS, record_failure

    for line in lines:
        _say(line)
    with contextlib.suppress(OSError):  # an unwritable run directory: the lines above say what failed
        record_failure(output_dir(), kind, "; ".join(line.removeprefix("error: ") for line in lines))
    if not _in_sweep():
        sys.exit(EXIT_STATUS[kind])
    return {"failed": {"kind": kind, "error": lines}}


#: Set once a task function starts: a Hydra exit status 1 before that is a rejected command line.
_task_started = False


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> dict:
    global _task_started
    _task_started = True
    try:
        check_choices(cfg)
        from ofa_hw.tasks.settings import check_settings

        check_settings(cfg)  # every setting, before any work; every problem at once
        announce_shadowed_presets(cfg)
        return get_method(cfg.task._target_)(cfg)
    except user_errors() as err:
        log.debug("user error", exc_info=True)  # the run's log file keeps the traceback
        return _failed("user error", _error_lines(err))
    except KeyboardInterrupt:
        kept = measurements_kept(cfg)
        message = "interrupted; rerun to resume" + (f", {kept} measurements kept" if kept is not None else "")
        _failed("interrupted", [message])  # exits, outside a sweep
        raise  # in a sweep: stops it; main() says how to resume it
    except Exception as err:
        if not _in_sweep():
            raise  # a bug of ours: its traceback, Hydra's exit status 1
        log.exception("job failed")
        traceback.print_exc()
        return _failed("bug", [f"error: {type(err).__name__}: {one_line(err)} (a bug; traceback above)"])


def _stop_worker_pool() -> None:
    """Shut down joblib's worker pool (``hydra/launcher=joblib``) after Ctrl-C, so that its workers and
    their semaphores do not outlive the sweep."""
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None) if module is not None else None
    if executor is not None:
        try:
            executor.shutdown(wait=True)
        except Exception:  # noqa: BLE001 - best effort while exiting; the interrupt line matters more
            log.debug("joblib pool shutdown failed", exc_info=True)


def main() -> None:
    """Console entry point."""
    from ofa_hw.tasks.sweep import STATE, sweep_exit_status

    try:
        _main()
    except KeyboardInterrupt:  # before the task started, or a sweep stopped by Ctrl-C
        if STATE.started is not None:
            _stop_worker_pool()
            _fail(
                EXIT_INTERRUPTED,
                "sweep interrupted; rerun the same command to resume (measurements of finished and "
                "interrupted jobs are kept in the store)",
            )
        _fail(EXIT_INTERRUPTED, "interrupted before any work; nothing to resume")
    except SystemExit as exc:
        # Hydra reports a config it cannot compose (a typo, a wrong type, an unknown option) in a few
        # lines naming the key, then exits 1 like for a crash; that is a user error: status 2.
        if exc.code == 1 and not _task_started:
            sys.exit(EXIT_USER_ERROR)
        raise
    status = sweep_exit_status()
    if status:
        failed = STATE.failed
        _fail(
            status,
            f"error: {len(failed)} of {len(STATE.jobs)} sweep jobs failed "
            f"({', '.join(f'job {j.num}' for j in failed)}); see the summary above and their results.json",
        )


if __name__ == "__main__":
    main()
