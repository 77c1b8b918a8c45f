"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temporary cluster, a random port.

The server runs as an unprivileged user (``postgres`` when the tests run as root, since PostgreSQL refuses
to run as root), listens on 127.0.0.1 only, and requires a password over TCP (SCRAM), so the tests use
a real DSN with a secret in it. Set ``OFA_HW_TEST_PG_DSN`` to test against a server of your own instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why (tests skip with it)."""


def _bindir() -> Path:
    for candidate in [os.environ.get("OFA_HW_TEST_PG_BINDIR", "")] + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True
    ):
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    raise PgUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql (.ci/run does)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """Start with :meth:`start`, use :attr:`dsn`, end with :meth:`stop`."""

    def __init__(self, fsync: bool = False) -> None:
        self.fsync = fsync
        self.bindir = _bindir()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable(
                    "running as root and there is no 'postgres' user to run the server as"
                ) from None
            if not shutil.which("runuser"):
                raise PgUnavailable(
                    "running as root and runuser is missing (needed to start the server as postgres)"
                )
            self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="ofa_hw_pg_"))
        self.port = _free_port()
        self.password = secrets.token_urlsafe(12)
        self.dsn = f"postgresql://ofa:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        cmd = list(argv)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise PgUnavailable(f"{Path(argv[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def start(self) -> PgServer:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.root / "data"), "-U", "ofa", f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        # fsync off for tests: they kill clients, never the server, so durability across power loss is not
        # tested; benchmarks keep PostgreSQL's default (on).
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'} -c max_connections=60"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(PgUnavailable):
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)
