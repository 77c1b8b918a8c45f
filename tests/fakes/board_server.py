"""A loopback "board": a real asyncssh SSH server on 127.0.0.1 running commands in a sandbox directory.

It behaves like a ZCU102 as far as ofa_hw can see: key authentication against an authorized key, a
host key the client must know, ``/bin/sh`` commands with a board environment (``g++`` and a fake
``libn2cube`` + ``dnndk/n2cube.h`` with the real library's shape on the compiler and library paths, a
fake ``vaitrace``/``vaitrace_py`` and ``xir``/``vart`` modules), and SFTP. Everything ofa_hw sends is
executed for real: its ELFs are turned into ``libdpumodel<kernel>.so`` by ``g++``, its C++ profiler is
compiled with ``g++`` against the fake N2Cube (C++ linkage, as the real one) and run; only the DPU
itself (the printed profile, in N2Cube's real layout) is replayed.

Knobs (:attr:`FakeBoard.behaviour`, environment of the board commands): ``FAKE_N2CUBE_SLEEP_MS``,
``FAKE_N2CUBE_GARBAGE``, ``FAKE_N2CUBE_FAIL``, ``FAKE_VAITRACE_VERSION``; :meth:`FakeBoard.disappear`
drops the board mid-batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import asyncssh

BOARD_SRC = Path(__file__).resolve().parent / "board"


def build_board_root(root: Path) -> Path:
    """Lay out the board's file system: fake N2Cube (built with g++), headers, tools, Python modules."""
    (root / "usr" / "lib").mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    shutil.copytree(BOARD_SRC / "include", root / "usr" / "include", dirs_exist_ok=True)
    subprocess.run(
        [
            "g++",
            "-shared",
            "-fPIC",
            "-O1",
            "-I",
            str(BOARD_SRC / "include"),
            "-o",
            str(root / "usr" / "lib" / "libn2cube.so"),
            str(BOARD_SRC / "n2cube.cpp"),
            "-ldl",
        ],
        check=True,
    )
    for name, target in (("python3", None), ("vaitrace", BOARD_SRC / "vaitrace")):
        script = root / "bin" / name
        args = f'"{target}", ' if target else ""
        script.write_text(
            f"#!{sys.executable}\nimport os, sys\nos.execv({sys.executable!r}, [{sys.executable!r}, {args}*sys.argv[1:]])\n"
        )
        script.chmod(0o755)
    return root


class FakeBoard:
    """The SSH server and its sandbox. Start with :meth:`start`, stop with :meth:`stop`.

    Attributes:
        root: The board's file system root (``tmp/`` is its remote_tmp).
        client_key: Private key file the client authenticates with.
        known_hosts: known_hosts file holding this board's host key.
        commands: Every command line the board executed, in order.
        behaviour: Extra environment of the board's commands (failure injection).
    """

    def __init__(self, root: Path, keys: Path, passphrase: str | None = None) -> None:
        self.root = root
        self.keys = keys
        self.commands: list[str] = []
        self.behaviour: dict[str, str] = {}
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fake-board")
        self._server: asyncssh.SSHAcceptor | None = None
        self._conns: set = set()
        self._procs: set = set()
        keys.mkdir(parents=True, exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        client = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = keys / "id_board"
        # PKCS#8 (PBKDF2 + AES) encrypts without bcrypt, which OpenSSH-format encryption would need.
        client.write_private_key(
            self.client_key, format_name="pkcs8-pem", passphrase=passphrase, cipher_name="aes256-cbc"
        )
        self.client_key.chmod(0o600)
        client.write_public_key(keys / "authorized_keys")
        self.known_hosts = keys / "known_hosts"
        self.n2cube_log = keys / "n2cube.log"

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> FakeBoard:
        if not self._thread.is_alive():
            self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(port), self._loop).result(10)
        line = f"[127.0.0.1]:{self.port} " + self.host_key.export_public_key().decode().strip()
        self.known_hosts.write_text(line + "\n")
        return self

    async def _start(self, port: int) -> None:
        board = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn):
                board._conns.add(conn)

            def connection_lost(self, exc):
                board._conns.discard(self)

        self._server = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            port,
            server_host_keys=[self.host_key],
            authorized_client_keys=str(self.keys / "authorized_keys"),
            process_factory=self._handle,
            sftp_factory=True,
            allow_scp=False,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def disappear(self) -> None:
        """The board goes away: listener closed, live connections aborted, its processes killed."""
        asyncio.run_coroutine_threadsafe(self._disappear(), self._loop).result(10)

    async def _disappear(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for proc in list(self._procs):
            _kill(proc)
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()

    def stop(self) -> None:
        self.disappear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # ------------------------------------------------------------------ commands
    def env(self) -> dict[str, str]:
        r = self.root
        return {
            "HOME": str(r / "home"),
            "PATH": os.pathsep.join([str(r / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
            "CPATH": str(r / "usr" / "include"),
            "LIBRARY_PATH": str(r / "usr" / "lib"),
            "LD_LIBRARY_PATH": str(r / "usr" / "lib"),
            "PYTHONPATH": os.pathsep.join(
                [str(BOARD_SRC / "pylib"), str(Path(__file__).resolve().parents[2])]
            ),
            "FAKE_N2CUBE_LOG": str(self.n2cube_log),
            "FAKE_N2CUBE_SYSROOT": str(r),
            "LANG": "C",
            **self.behaviour,
        }

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        self.commands.append(command)
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=str(self.root / "home"),
            env=self.env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._procs.add(proc)
        proc.stdin.close()  # ofa_hw sends no input

        async def pump(reader, writer) -> None:
            while chunk := await reader.read(65536):
                writer.write(chunk.decode("utf-8", errors="replace"))

        try:
            finished = asyncio.ensure_future(
                asyncio.gather(
                    pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr), proc.wait()
                )
            )
            closed = asyncio.ensure_future(process.channel.wait_closed())
            await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not finished.done():  # the client hung up (timeout): kill the command like sshd does
                _kill(proc)
                finished.cancel()
                with contextlib.suppress(BaseException):
                    await finished
                return
            closed.cancel()
            process.exit(finished.result()[2])
        except (OSError, asyncssh.Error):
            _kill(proc)
        finally:
            self._procs.discard(proc)


def _kill(proc) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
