"""Boards over SSH (asyncssh): connect with retries, run quoted commands with timeouts, upload, clean up.

Security rules this module keeps:

* host keys are verified against a known_hosts file unless the board explicitly opts out
  (``insecure_no_host_key_check``, logged as a warning on every connection);
* key authentication only; a key passphrase comes from an environment variable and is never logged;
* every remote command is built from :func:`shlex.quote`-d words, so names, paths and config values
  reach the board as data, never as shell code;
* each job works in its own ``mktemp -d`` directory, removed afterwards (also after failures).

A board runs one job at a time: :func:`board_lock` holds the board's exclusive lock, an advisory lock in
the shared PostgreSQL store when there is one (every host), else an ``flock`` per board (this host).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# asyncssh still imports cryptography's DSA classes, which warn at import time; DSA keys are never used
# here, and eight lines of that warning on every Vitis run hide the one line a user must read.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh(\..*)?$")
import asyncssh  # noqa: E402

from ofa_hw.schemas.vitis import BoardConfig  # noqa: E402

log = logging.getLogger(__name__)

_TMP_RE = re.compile(r"^/[A-Za-z0-9_./-]*/ofa_hw\.[A-Za-z0-9]+$")


class BoardError(RuntimeError):
    """A step on a board failed; the message names the board and the step."""

    def __init__(self, board: str, step: str, message: str) -> None:
        super().__init__(f"board {board}: {step}: {message}")
        self.board = board
        self.step = step


class BoardUnreachable(BoardError):
    """The board cannot be reached (connection refused/lost after retries): the farm drops it."""


class HostKeyError(BoardError):
    """The board's host key is unknown or does not match known_hosts (never retried)."""


@dataclass(frozen=True)
class Board:
    """Connection settings of one board (see :class:`~ofa_hw.schemas.vitis.BoardConfig`)."""

    name: str
    host: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    passphrase_env: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    insecure_no_host_key_check: bool = False
    remote_tmp: str = "/tmp"
    cxx: str = "g++"
    python: str = "python3"
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, cfg: BoardConfig) -> Board:
        for key in cfg.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"board {cfg.name}: env name {key!r} is not a valid variable name")
        return cls(
            name=cfg.name,
            host=cfg.host,
            port=int(cfg.port),
            user=cfg.user,
            key_file=cfg.key_file,
            passphrase_env=cfg.passphrase_env,
            known_hosts=cfg.known_hosts,
            insecure_no_host_key_check=bool(cfg.insecure_no_host_key_check),
            remote_tmp=cfg.remote_tmp.rstrip("/") or "/",
            cxx=cfg.cxx,
            python=cfg.python,
            env=tuple(sorted((str(k), str(v)) for k, v in cfg.env.items())),
        )

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


#: File in a job's directory exporting the board's ``env`` (sourced, so values never appear on a
#: command line, which SSH libraries and servers log).
ENV_FILE = "ofa_hw_env.sh"


def quote_cmd(argv: Sequence[str], cwd: str | None = None, source_env: bool = False) -> str:
    """A POSIX shell command line running ``argv`` (in ``cwd``, after sourcing :data:`ENV_FILE`), quoted."""
    line = " ".join(shlex.quote(a) for a in argv)
    if source_env:
        line = f". ./{ENV_FILE} && {line}"
    return f"cd {shlex.quote(cwd)} && {line}" if cwd else line


def env_script(env: Sequence[tuple[str, str]]) -> str:
    """The text of :data:`ENV_FILE`: one quoted ``export`` per variable."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env)


@dataclass(frozen=True)
class RemoteResult:
    """What a remote command returned."""

    exit_status: int
    stdout: str
    stderr: str


class BoardClient:
    """One SSH connection to a board, used as ``async with BoardClient(board, …) as client``.

    Args:
        board: Connection settings.
        connect_timeout_s: Timeout of one connection attempt.
        step_timeout_s: Default time limit of one step (command or upload).
        retries: Further attempts after a connection error, with exponential backoff.
        backoff_s: First backoff delay (doubles each attempt).
    """

    def __init__(
        self,
        board: Board,
        connect_timeout_s: float = 15.0,
        step_timeout_s: float = 300.0,
        retries: int = 3,
        backoff_s: float = 2.0,
    ) -> None:
        self.board = board
        self.connect_timeout_s = connect_timeout_s
        self.step_timeout_s = step_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._conn: asyncssh.SSHClientConnection | None = None

    def _options(self) -> dict:
        b = self.board
        opts: dict = {
            "port": b.port,
            "username": b.user,
            "connect_timeout": self.connect_timeout_s,
            "config": [],  # settings come from our config only: reproducible, no surprises from ~/.ssh/config
        }
        if b.insecure_no_host_key_check:
            log.warning("board %s: host key NOT verified (insecure_no_host_key_check is set)", b.name)
            opts["known_hosts"] = None
        else:
            known = Path(b.known_hosts).expanduser()
            if not known.is_file():
                raise HostKeyError(
                    b.name,
                    "connect",
                    f"known_hosts file {known} does not exist (add the board's host key, e.g. with ssh-keyscan)",
                )
            opts["known_hosts"] = str(known)
        if b.key_file:
            opts["client_keys"] = [str(Path(b.key_file).expanduser())]
            opts["agent_path"] = None
        if b.passphrase_env:
            secret = os.environ.get(b.passphrase_env)
            if secret is None:
                raise BoardError(
                    b.name, "connect", f"environment variable {b.passphrase_env} (key passphrase) is not set"
                )
            opts["passphrase"] = secret
        return opts

    async def __aenter__(self) -> BoardClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, retrying connection errors with backoff; host-key and auth errors fail at once."""
        b = self.board
        opts = self._options()
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                self._conn = await asyncssh.connect(b.host, **opts)
                return
            except asyncssh.HostKeyNotVerifiable as exc:
                raise HostKeyError(
                    b.name,
                    "connect",
                    f"host key of {b.host}:{b.port} not verified against {b.known_hosts}: {exc.reason}",
                ) from None
            except asyncssh.PermissionDenied as exc:
                raise BoardError(
                    b.name, "connect", f"authentication as {b.user} failed: {exc.reason}"
                ) from None
            except asyncssh.KeyImportError as exc:
                # str(exc) never holds the passphrase; it says whether the key or passphrase is bad
                raise BoardError(b.name, "connect", f"cannot load key {b.key_file}: {exc}") from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
                if attempt == self.retries:
                    raise BoardUnreachable(
                        b.name, "connect", f"{b.address} unreachable after {attempt + 1} attempts: {reason}"
                    ) from None
                log.info(
                    "board %s: connection attempt %d failed (%s); retrying in %.1f s",
                    b.name,
                    attempt + 1,
                    reason,
                    delay,
                )
                await asyncio.sleep(delay)
                delay *= 2

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.wait_closed(), 5.0)
            self._conn = None

    def _need(self, step: str) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise BoardError(self.board.name, step, "not connected")
        return self._conn

    async def run(
        self, command: str, step: str, timeout_s: float | None = None, check: bool = True
    ) -> RemoteResult:
        """Run a shell ``command`` (build it with :func:`quote_cmd`) within ``timeout_s``.

        Raises:
            BoardError: on timeout (the remote process is killed) or, with ``check``, a non-zero exit.
            BoardUnreachable: when the connection drops during the step.
        """
        conn = self._need(step)
        timeout_s = self.step_timeout_s if timeout_s is None else timeout_s
        log.debug("board %s: %s: %s", self.board.name, step, command)
        try:
            process = await conn.create_process(command, encoding="utf-8", errors="replace")
        except (OSError, asyncssh.Error) as exc:
            raise BoardUnreachable(self.board.name, step, f"connection lost: {exc}") from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(Exception):
                process.send_signal("KILL")
            process.close()
            raise BoardError(self.board.name, step, f"timed out after {timeout_s:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            raise BoardUnreachable(self.board.name, step, f"connection lost: {exc}") from None
        status = process.exit_status
        if status is None:  # channel closed without an exit status: the board went away mid-step
            raise BoardUnreachable(self.board.name, step, "connection closed before the command finished")
        result = RemoteResult(status, stdout or "", stderr or "")
        if check and status != 0:
            tail = "\n".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-10:])
            raise BoardError(self.board.name, step, f"exit status {status}\n{tail}")
        return result

    async def put(self, local: Path, remote: str, step: str) -> None:
        """Upload ``local`` to the path ``remote`` over SFTP."""
        await self.put_many([(local, remote)], step)

    async def put_many(self, files: Sequence[tuple[Path, str]], step: str) -> None:
        """Upload each ``(local, remote)`` pair, in one SFTP session."""
        conn = self._need(step)
        with self._upload_errors(step, f"upload of {', '.join(Path(f[0]).name for f in files)}"):
            async with conn.start_sftp_client() as sftp:
                for local, remote in files:
                    await asyncio.wait_for(sftp.put(str(local), remote), self.step_timeout_s)

    @contextlib.contextmanager
    def _upload_errors(self, step: str, what: str) -> Iterator[None]:
        """Translate SFTP failures: a timeout or an SFTP refusal fails the job, a dropped link the board."""
        try:
            yield
        except TimeoutError:
            raise BoardError(
                self.board.name, step, f"upload timed out after {self.step_timeout_s:g} s"
            ) from None
        except asyncssh.SFTPError as exc:
            raise BoardError(self.board.name, step, f"{what} failed: {exc.reason}") from None
        except (OSError, asyncssh.Error) as exc:
            raise BoardUnreachable(self.board.name, step, f"connection lost: {exc}") from None

    async def write_text(self, remote: str, text: str, step: str) -> None:
        """Create the file ``remote`` (mode 0600) holding ``text``, over SFTP."""
        conn = self._need(step)
        with self._upload_errors(step, f"writing {remote}"):
            async with conn.start_sftp_client() as sftp:
                attrs = asyncssh.SFTPAttrs(permissions=0o600)
                async with sftp.open(remote, "w", attrs) as f:
                    await asyncio.wait_for(f.write(text), self.step_timeout_s)

    async def read(self, remote: str, step: str) -> str | None:
        """The text of the file ``remote`` (``None`` when it does not exist)."""
        conn = self._need(step)
        try:
            async with conn.start_sftp_client() as sftp:
                if not await sftp.exists(remote):
                    return None
                async with sftp.open(remote, "rb") as f:
                    data = await asyncio.wait_for(f.read(), self.step_timeout_s)
        except TimeoutError:
            raise BoardError(
                self.board.name, step, f"download timed out after {self.step_timeout_s:g} s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise BoardUnreachable(self.board.name, step, f"connection lost: {exc}") from None
        # opened in binary mode: bytes (asyncssh types read() as str | bytes)
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)

    async def mkdtemp(self) -> str:
        """A fresh private directory under the board's ``remote_tmp``."""
        template = f"{self.board.remote_tmp}/ofa_hw.XXXXXXXX"
        result = await self.run(
            quote_cmd(["mktemp", "-d", template]), "mktemp", timeout_s=min(60.0, self.step_timeout_s)
        )
        path = result.stdout.strip()
        if not _TMP_RE.match(path) or not path.startswith(self.board.remote_tmp + "/"):
            raise BoardError(self.board.name, "mktemp", f"unexpected temporary directory {path!r}")
        return path

    async def rmtree(self, path: str) -> None:
        """Remove a directory made by :meth:`mkdtemp` (refuses any other path)."""
        if not _TMP_RE.match(path):
            raise BoardError(self.board.name, "cleanup", f"refusing to remove {path!r}")
        await self.run(
            quote_cmd(["rm", "-rf", "--", path]), "cleanup", timeout_s=min(60.0, self.step_timeout_s)
        )


@contextlib.contextmanager
def board_lock(
    board: Board,
    lock_dir: str | Path,
    timeout_s: float = 3600.0,
    poll_s: float = 0.2,
    store: dict | None = None,
) -> Iterator[None]:
    """Hold the board's exclusive lock: one job per board across every process sharing the lock.

    With a server-backed ``store`` (``store=postgres``) the lock is an advisory lock in that database, so
    jobs on different hosts never drive one board together; otherwise an ``flock`` in ``lock_dir``
    serialises the threads and processes of this host (see :mod:`ofa_hw.store.locks`).

    Raises:
        BoardError: when the lock is not free within ``timeout_s``.
    """
    from ofa_hw.store.locks import LockTimeout, named_lock

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(named_lock(f"{board.host}_{board.port}", store, lock_dir, timeout_s, poll_s))
        except LockTimeout as exc:
            raise BoardError(board.name, "lock", str(exc)) from None
        yield
