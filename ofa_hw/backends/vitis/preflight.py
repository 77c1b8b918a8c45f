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
from typing import TYPE_CHECKING

from ofa_hw.backends.vitis.board import Board, BoardClient, BoardError, BoardUnreachable, quote_cmd
from ofa_hw.backends.vitis.flows import missing_arch_message
from ofa_hw.backends.vitis.profilers import vai_version
from ofa_hw.backends.vitis.toolchain import ToolError
from ofa_hw.errors import UserError

if TYPE_CHECKING:
    from ofa_hw.backends.vitis.backend import VitisBackend

log = logging.getLogger(__name__)

#: Time limit of one check (a ``docker exec``, an SSH command).
CHECK_TIMEOUT_S = 120.0


class BackendUnavailable(UserError):
    """The container, its tools, the arch file or the boards cannot serve the configured backend."""


def preflight(backend: VitisBackend) -> list[Board]:
    """Run every check; returns the boards that are reachable (the others leave the farm).

    Raises:
        BackendUnavailable: for the first problem found, in one line.
    """
    check_tools(backend)
    return check_boards(backend)


def check_tools(backend: VitisBackend) -> None:
    """The container runs, the workdir is mounted in it, the conda env and the arch file exist."""
    s, arch = backend.settings, backend.flow.arch_json
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
            if "EnvironmentLocationNotFound" in exc.output or "Not a conda environment" in exc.output:
                raise BackendUnavailable(
                    f"conda environment {s.conda_env!r} does not exist in {where} (backend.vitis.conda_env)"
                ) from None
            raise BackendUnavailable(
                f"{where}: `conda run -n {s.conda_env} true` failed: {_first_line(exc)}"
            ) from None
    if s.flow == "vart":
        _check_xir_target(bare, backend, arch, where)


def _tool_problem(exc: ToolError, s, backend: VitisBackend, where: str, arch: str) -> str:
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


def _check_xir_target(bare, backend: VitisBackend, arch: str, where: str) -> None:
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


def check_boards(backend: VitisBackend) -> list[Board]:
    """Connect to every board and look for the flow's board-side tool; returns the reachable boards."""
    results = asyncio.run(_check_all(backend))
    problems = [
        (b, r)
        for b, r in zip(backend.boards, results)
        if isinstance(r, BoardError) and not isinstance(r, BoardUnreachable)
    ]
    if problems:
        board, exc = problems[0]
        more = f" (and {len(problems) - 1} more board problem(s))" if len(problems) > 1 else ""
        raise BackendUnavailable(f"{str(exc).splitlines()[0]}{more}")
    alive = [b for b, r in zip(backend.boards, results) if r is None]
    gone = [(b, r) for b, r in zip(backend.boards, results) if isinstance(r, BoardUnreachable)]
    if not alive:
        raise BackendUnavailable(
            f"no board reachable: {str(gone[0][1]).splitlines()[0]} (check backend.vitis.boards and the network)"
        )
    for board, exc in gone:
        log.warning("%s; it leaves the farm", str(exc).splitlines()[0])
    return alive


async def _check_all(backend: VitisBackend) -> list[BaseException | None]:
    return list(
        await asyncio.gather(*(_check_board(backend, b) for b in backend.boards), return_exceptions=True)
    )


async def _check_board(backend: VitisBackend, board: Board) -> None:
    s = backend.settings
    if s.flow == "dnndk":
        need, what = ["command", "-v", board.cxx], f"{board.cxx} (N2Cube's profiler is built on the board)"
    elif vai_version(s.toolchain) >= (2, 0):
        need, what = [board.python, "-c", "import vaitrace_py"], f"{board.python} with vaitrace_py"
    else:
        need, what = ["command", "-v", s.vaitrace], s.vaitrace
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in board.env)
    client = BoardClient(
        board, s.connect_timeout_s, min(CHECK_TIMEOUT_S, s.step_timeout_s), s.retries, s.backoff_s
    )
    async with client:
        result = await client.run(exports + quote_cmd(need), "preflight", check=False)
    if result.exit_status != 0:
        raise BoardError(board.name, "preflight", f"{what} not found on the board")
    return None
