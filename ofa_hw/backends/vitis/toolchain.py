"""Runs the Vitis-AI tools on the host or inside the Vitis-AI container (``docker exec``).

Every command is an argument vector handed to ``subprocess`` without a shell — inside the container
too (``docker exec -w DIR CONTAINER conda run -n ENV TOOL ARGS…``) — so names, paths and config
values can never be interpreted as shell code. Every call is logged to a file (command line + output)
next to the files it produced: a failure keeps the tool's own message.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ToolError(RuntimeError):
    """A tool failed (non-zero exit, timeout, missing executable); carries its output and log file."""

    def __init__(
        self,
        tool: str,
        message: str,
        output: str = "",
        log: Path | None = None,
        returncode: int | None = None,
    ) -> None:
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(
            f"{tool}: {message}" + (f" (log: {log})" if log else "") + (f"\n{tail}" if tail else "")
        )
        self.tool = tool
        self.output = output
        self.log = log
        self.returncode = returncode


@dataclass(frozen=True)
class ToolResult:
    """A finished tool call: its argument vector, exit status, merged stdout/stderr, wall time, log."""

    argv: tuple[str, ...]
    returncode: int
    output: str
    seconds: float
    log: Path | None


@dataclass(frozen=True)
class ToolRunner:
    """Where and how the tools run.

    Attributes:
        container: Running container to ``docker exec`` into; empty = run on the host.
        docker: The docker client.
        conda: conda executable (inside the container when one is used). The Vitis-AI images put conda
            on PATH only in ``~/.bashrc``/login scripts, which ``docker exec`` does not read: inside a
            container this must be the absolute path (``/opt/vitis_ai/conda/bin/conda``).
        conda_env: Environment to run the tools in (``conda run -n``); empty = none.
        user: ``docker exec -u`` value (``UID:GID``); empty = the container's default user (root in the
            Vitis-AI images, whose output folders the host user then cannot write into).
        home: ``HOME`` inside the container when ``user`` is set (an arbitrary UID has no home there).
        env: Extra environment variables (host runs only; ``docker exec`` gets them with ``-e``).
    """

    container: str = ""
    docker: str = "docker"
    conda: str = "conda"
    conda_env: str = ""
    user: str = ""
    home: str = ""
    env: tuple[tuple[str, str], ...] = ()

    def command(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """The full argument vector that runs ``argv`` in ``cwd`` (host or container)."""
        inner = [self.conda, "run", "-n", self.conda_env, *argv] if self.conda_env else list(argv)
        if not self.container:
            return inner
        env = list(self.env) + ([("HOME", self.home)] if self.user and self.home else [])
        env_args = [a for k, v in env for a in ("-e", f"{k}={v}")]
        user_args = ["-u", self.user] if self.user else []
        return [self.docker, "exec", *user_args, "-w", str(cwd), *env_args, self.container, *inner]

    def run(self, argv: Sequence[str], cwd: Path, timeout_s: float, log: Path | None = None) -> ToolResult:
        """Run ``argv`` in ``cwd``; raise :class:`ToolError` unless it exits 0 within ``timeout_s``.

        The tool runs in its own process group so that a timeout kills it with all its children.
        """
        tool = Path(argv[0]).name
        cmd = self.command(argv, cwd)
        if self.container and self.user and self.home:
            Path(self.home).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **dict(self.env)) if not self.container else None
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolError(tool, f"cannot start {cmd[0]!r}: {exc.strerror or exc}") from exc
        try:
            out, _ = proc.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            timed_out = True
        seconds = time.monotonic() - start
        output = out.decode("utf-8", errors="replace")
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(
                f"$ {shlex.join(cmd)}\n# cwd {cwd}\n# exit {proc.returncode} after {seconds:.1f} s\n{output}"
            )
        if timed_out:
            raise ToolError(tool, f"timed out after {timeout_s:g} s", output, log)
        if proc.returncode != 0:
            raise ToolError(tool, f"exited with status {proc.returncode}", output, log, proc.returncode)
        return ToolResult(tuple(cmd), proc.returncode, output, seconds, log)
