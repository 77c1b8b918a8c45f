"""Checks a Vitis-AI backend runs before any probe is planned: the container, its tools, the DPU's
arch file, and every board (reachable over SSH, with the compiler or tracer the flow needs).

A real-board LUT plans hundreds of probes; each would otherwise fail on its own after minutes of
export, with the same cause. Each problem is one line naming what is missing and the fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from ofa_hw.backends.vitis.board import Board, BoardClient, BoardError, BoardUnreachable, quote_cmd
from ofa_hw.backends.vitis.flows import missing_arch_message
from ofa_hw.backends.vitis.toolchain import ToolError, ToolRunner
from ofa_hw.backends.vitis.versions import vai_version
from ofa_hw.dpu import DPUConfig
from ofa_hw.errors import UserError
from ofa_hw.schemas.vitis import VitisConfig

log = logging.getLogger(__name__)

#: Where the Vitis-AI images install conda (``/opt/vitis_ai/conda``); on PATH only via ``~/.bashrc``.
IMAGE_CONDA = "/opt/vitis_ai/conda/bin/conda"


@dataclass(frozen=True)
class Target:
    """What the preflight checks, handed over explicitly by the backend.

    Attributes:
        settings: The validated ``backend.vitis`` settings.
        runner: How the tools are run (container, conda, user).
        workdir: The host work directory (mounted in the container at the same path).
        arch_json: The arch file the compiler will be given.
        dpu: The configured DPU.
        boards: The farm.
    """

    settings: VitisConfig
    runner: ToolRunner
    workdir: Path
    arch_json: str
    dpu: DPUConfig
    boards: tuple[Board, ...]


#: Time limit of one check (a ``docker exec``, an SSH command).
CHECK_TIMEOUT_S = 120.0


class BackendUnavailable(UserError):
    """The container, its tools, the arch file or the boards cannot serve the configured backend."""


def preflight(backend: Target) -> list[Board]:
    """Run every check; returns the boards that are reachable (the others leave the farm).

    Raises:
        BackendUnavailable: for the first problem found, in one line.
    """
    check_tools(backend)
    return check_boards(backend)


def check_tools(backend: Target) -> None:
    """The container runs, the workdir is mounted in it, the conda env and the arch file exist."""
    s, arch = backend.settings, backend.arch_json
    where = f"container {s.container!r}" if s.container else "this host"
    backend.workdir.mkdir(parents=True, exist_ok=True)
    bare = dataclasses.replace(backend.runner, conda_env="")
    try:
        bare.run(["test", "-f", arch], backend.workdir, CHECK_TIMEOUT_S)
    except ToolError as exc:
        raise BackendUnavailable(_tool_problem(exc, s, backend, where, arch)) from None
    if s.conda_env:
        try:
            backend.runner.run(["true"], backend.workdir, CHECK_TIMEOUT_S)
        except ToolError as exc:
            if _conda_not_found(exc, s.conda):
                fix = (
                    f"set backend.vitis.conda={IMAGE_CONDA}"
                    if s.conda != IMAGE_CONDA
                    else f"set backend.vitis.conda to conda's path in your image (docker exec {s.container} "
                    "bash -lc 'command -v conda')"
                )
                raise BackendUnavailable(
                    f"conda {s.conda!r} is not found in {where}: the Vitis-AI images put conda on PATH only "
                    f"in ~/.bashrc and login scripts, which `docker exec` does not read; {fix}"
                ) from None
            if "EnvironmentLocationNotFound" in exc.output or "Not a conda environment" in exc.output:
                raise BackendUnavailable(
                    f"conda environment {s.conda_env!r} does not exist in {where} (backend.vitis.conda_env)"
                ) from None
            raise BackendUnavailable(
                f"{where}: `conda run -n {s.conda_env} true` failed: {_first_line(exc)}"
            ) from None
    if s.flow == "vart":
        _check_xir_target(bare, backend, arch, where)


def _conda_not_found(exc: ToolError, conda: str) -> bool:
    """``docker exec`` (or the host) could not start conda itself (not: conda failed)."""
    out = exc.output
    return (exc.returncode is None and "cannot start" in str(exc)) or (
        "executable file not found" in out and Path(conda).name in out
    )


def _tool_problem(exc: ToolError, s, backend: Target, where: str, arch: str) -> str:
    out = exc.output
    if exc.returncode is None and "cannot start" in str(exc):
        fix = (
            "install Docker or set backend.vitis.docker" if s.container else "install the tools on this host"
        )
        return f"cannot run {shlex.quote(str(exc).split(': ', 1)[-1])}: {fix} (or backend.vitis.container='' for host tools)"
    if (
        "Cannot connect to the Docker daemon" in out
        or "permission denied while trying to connect to the Docker daemon" in out
    ):
        return (
            f"Docker is not usable here ({_first_line(exc)}): start the Docker daemon (or get access to it), "
            "or run the Vitis-AI tools on this host with backend.vitis.container=''"
        )
    if "No such container" in out or "is not running" in out:
        return (
            f"container {s.container!r} does not exist or is not running: start the Vitis-AI container with "
            f"the workdir mounted at the same path (docker run -v {backend.workdir}:{backend.workdir} ...) or "
            "set backend.vitis.container"
        )
    if "chdir" in out or "OCI runtime exec failed" in out:
        return (
            f"workdir {backend.workdir} is not mounted in {where} at the same path "
            f"(docker run -v {backend.workdir}:{backend.workdir} ...)"
        )
    if exc.returncode == 1 and not out.strip():
        return missing_arch_message(arch, backend.dpu, f"in {where}")
    return f"{where}: checking the arch file {arch} failed: {_first_line(exc)}"


def _check_xir_target(bare, backend: Target, arch: str, where: str) -> None:
    """An XIR arch.json names its DPU target (``DPUCZDX8G_ISA0_B4096_MAX_BG2``): it must be this DPU's size."""
    try:
        text = bare.run(["cat", arch], backend.workdir, CHECK_TIMEOUT_S).output
        target = str(json.loads(text).get("target", ""))
    except (ToolError, ValueError, AttributeError):
        return  # unreadable here; vai_c_xir reports it with its own words
    size = backend.dpu.arch
    if target and size not in target.split("_"):
        raise BackendUnavailable(
            f"arch file {arch} in {where} targets {target}, but DPU preset {backend.dpu.name} is a {size}: "
            "give the arch file of your DPU (backend.vitis.arch_json)"
        )


def _first_line(exc: Exception) -> str:
    text = getattr(exc, "output", "").strip() or str(exc)
    return text.splitlines()[-1] if text else type(exc).__name__


def check_boards(backend: Target) -> list[Board]:
    """Connect to every board and look for the flow's board-side tool; returns the reachable boards.

    A board whose check fails in any other way than "unreachable" (a missing tool, a refused key, an
    unexpected exception of the check itself) is a problem to fix, not a board to drop silently.
    """
    results = asyncio.run(_check_all(backend))
    problems = [
        (b, r)
        for b, r in zip(backend.boards, results)
        if isinstance(r, BaseException) and not isinstance(r, BoardUnreachable)
    ]
    if problems:
        board, exc = problems[0]
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, BoardError):
            text = f"board {board.name}: preflight check failed: {type(exc).__name__}: {text}"
        more = f" (and {len(problems) - 1} more board problem(s))" if len(problems) > 1 else ""
        raise BackendUnavailable(f"{text}{more}")
    alive = [b for b, r in zip(backend.boards, results) if r is None]
    gone = [(b, r) for b, r in zip(backend.boards, results) if isinstance(r, BoardUnreachable)]
    if not alive:
        first = str(gone[0][1]).splitlines()[0] if gone else "no board configured"
        raise BackendUnavailable(f"no board reachable: {first} (check backend.vitis.boards and the network)")
    for _board, exc in gone:
        log.warning("%s; it leaves the farm", str(exc).splitlines()[0])
    return alive


async def _check_all(backend: Target) -> list[BaseException | None]:
    return list(
        await asyncio.gather(*(_check_board(backend, b) for b in backend.boards), return_exceptions=True)
    )


async def _check_board(backend: Target, board: Board) -> None:
    s = backend.settings
    if s.flow == "dnndk":
        need, what = ["command", "-v", board.cxx], f"{board.cxx} (N2Cube's profiler is built on the board)"
        fix = (
            f"install g++ on the board image or set the board's cxx (backend.vitis.boards[{board.name}].cxx)"
        )
    elif vai_version(s.toolchain) >= (2, 0):
        need, what = [board.python, "-c", "import vaitrace_py"], f"{board.python} with vaitrace_py"
        fix = (
            "use the board image's Python (the board's python) or, if the board runs Vitis-AI 1.4-1.x, "
            "set backend.vitis.toolchain to that version (vaitrace_py exists from 2.0 on)"
        )
    else:
        need, what = ["command", "-v", s.vaitrace], s.vaitrace
        fix = "install Vitis-AI's vaitrace on the board or set backend.vitis.vaitrace to its path"
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in board.env)
    client = BoardClient(
        board, s.connect_timeout_s, min(CHECK_TIMEOUT_S, s.step_timeout_s), s.retries, s.backoff_s
    )
    async with client:
        result = await client.run(exports + quote_cmd(need), "preflight", check=False)
    if result.exit_status != 0:
        raise BoardError(board.name, "preflight", f"{what} not found on the board: {fix}")
    return None
