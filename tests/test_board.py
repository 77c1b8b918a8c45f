"""Boards over SSH against the loopback board: profiling, host keys, failures, farm, security."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest
from fakes.board_server import FakeBoard
from fakes.fixtures import *  # noqa: F403 - pytest fixtures
from fakes.fixtures import make_settings, needs_gcc
from fakes.tools import as_printed, seed_profile_text, write_fake_elf

from ofa_hw.backends import ProfileJob
from ofa_hw.backends.vitis import VitisBackend
from ofa_hw.backends.vitis.board import (
    Board,
    BoardClient,
    BoardError,
    BoardUnreachable,
    HostKeyError,
    quote_cmd,
)
from ofa_hw.backends.vitis.flows import Compiled
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import parse_dnndk_profile
from ofa_hw.space import get_space

pytestmark = needs_gcc
SPACE = get_space("proxyless_w05")
DPU = DPUConfig.from_preset("zcu102_b4096")
KERNEL = "proxylessmobile05"


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> dict[str, Path]:
    """A network as the fake VAI_C compiles it, in debug and in normal mode (replaying the seed profile)."""
    root = tmp_path_factory.mktemp("elf")
    paths = {}
    for mode in ("debug", "normal"):
        (root / mode).mkdir()
        paths[mode] = root / mode / f"dpu_{KERNEL}.elf"
        write_fake_elf(paths[mode], as_printed(seed_profile_text()), mode)
    return paths


class PrecompiledFlow:
    """Stands in for the host flow (tested in test_vitis_toolchain): every job gets the same ELFs."""

    def __init__(self, elf: dict[str, Path]) -> None:
        self.elf = elf

    def build(self, job: ProfileJob) -> Compiled:
        return Compiled(
            job,
            KERNEL,
            self.elf["debug"],
            "kernel list",
            "log",
            {"compile_s": 0.0},
            deploy_artifact=self.elf["normal"],
        )


def _job(i: int = 0, runs: int = 2) -> ProfileJob:
    return ProfileJob.create(SPACE, SPACE.named_arch("proxyless_mobile_05"), KERNEL, runs=runs, seed=i)


def _backend(fake_tools, boards, tmp_path, elf, **overrides) -> VitisBackend:
    backend = VitisBackend(
        "vitis_dnndk", DPU, make_settings(fake_tools, boards, tmp_path / "work", **overrides), timeout_s=120
    )
    backend.flow = PrecompiledFlow(elf)
    return backend


def _board(fb: FakeBoard, **changes) -> Board:
    b = Board(
        name="b",
        host="127.0.0.1",
        port=fb.port,
        key_file=str(fb.client_key),
        known_hosts=str(fb.known_hosts),
        remote_tmp=str(fb.root / "tmp"),
    )
    return replace(b, **changes)


def _leftovers(fb: FakeBoard) -> list[str]:
    """Files a job left in the board's temp directory (the profiler cache is meant to stay)."""
    return [p.name for p in (fb.root / "tmp").iterdir() if p.name != "ofa_hw-cache"]


def test_profile_on_the_loopback_board(fake_tools, fake_board, tmp_path, elf):
    backend = _backend(fake_tools, [fake_board], tmp_path, elf)
    outcome = backend.profile(_job(runs=3))
    assert outcome.status == "ok", outcome.error
    replay = parse_dnndk_profile(seed_profile_text() * 3)
    assert outcome.profile == replay
    assert outcome.profile.total_ms == pytest.approx(3.279)
    assert outcome.profile.e2e_ms is not None and outcome.profile.kernel_info == "kernel list"
    # honest chain: our real command lines ran on the board; the profiler is C++, built with g++
    cmds = fake_board.commands
    for mode in ("debug", "normal"):
        assert any(
            f"(cd {mode} && g++ -nostdlib -fPIC -shared dpu_{KERNEL}.elf -o libdpumodel{KERNEL}.so)" in c
            for c in cmds
        )
    assert (
        sum("g++ -O2 -o ofa_hw_dpu_profile ofa_hw_dpu_profile.cpp -ln2cube -lpthread" in c for c in cmds) <= 1
    )
    assert any(re.search(rf"/normal && \S+/ofa_hw_dpu_profile-\w+ time {KERNEL} 3 1$", c) for c in cmds)
    assert any(re.search(rf"/debug && \S+/ofa_hw_dpu_profile-\w+ profile {KERNEL} 3 1$", c) for c in cmds)
    calls = fake_board.n2cube_log.read_text().splitlines()
    # e2e_ms: the normal-mode ELF, timed outside profile mode (warm-up + 3 timed runs)
    assert calls[:3] == ["dpuOpen", f"dpuLoadKernel {KERNEL}", f"dpuCreateTask {KERNEL} normal 0"]
    assert calls.count("dpuRunTask normal 0") == 1 + 3
    # per-node tables: the debug-mode ELF in profile mode (its warm-up run in normal mode, not reported)
    assert f"dpuCreateTask {KERNEL} debug 1" in calls
    assert calls.count("dpuRunTask debug 0") == 1 and calls.count("dpuRunTask debug 1") == 3
    assert not any(c.startswith("dpuRunTask normal 1") for c in calls)
    assert calls[-1] == "dpuClose" and calls.count("dpuOpen") == 2
    assert _leftovers(fake_board) == []  # remote temp files cleaned
    assert set(outcome.timings) >= {"lock_wait_s", "board_s"}
    # the profiler is built once per board and reused
    again = backend.profile(_job(1, runs=1))
    assert again.ok, again.error
    assert sum("g++ -O2 -o ofa_hw_dpu_profile" in c for c in fake_board.commands) <= 1


def test_hostile_strings_stay_data(fake_board, tmp_path):
    marker = tmp_path / "pwned"
    hostile = ["a;rm -rf ~", "$(id)", f"`touch {marker}`", f"x' ; touch {marker}; '", "$HOME"]

    async def go() -> str:
        async with BoardClient(_board(fake_board), retries=0) as client:
            return (
                await client.run(
                    quote_cmd(["printf", "%s\\n", *hostile], cwd=str(fake_board.root / "home")), "echo"
                )
            ).stdout

    assert asyncio.run(go()).splitlines() == hostile
    assert not marker.exists()


def test_hostile_config_values_fail_cleanly(fake_tools, fake_board, tmp_path, elf):
    marker = tmp_path / "pwned"
    backend = _backend(fake_tools, [fake_board], tmp_path, elf)
    backend.boards = [_board(fake_board, cxx=f"g++; touch {marker}")]
    outcome = backend.profile(_job())
    assert (
        outcome.status == "failed"
        and "ELF to shared library" in outcome.error
        and "not found" in outcome.error
    )
    backend.boards = [_board(fake_board, remote_tmp=f"{fake_board.root}/tmp/$(touch {marker})")]
    outcome = backend.profile(_job())
    assert outcome.status == "failed" and "mktemp" in outcome.error
    assert not marker.exists()
    with pytest.raises(ValueError, match="net_name"):
        ProfileJob.create(SPACE, SPACE.named_arch("proxyless_mobile_05"), "a;rm -rf ~")
    with pytest.raises(ValueError, match="net_name"):
        ProfileJob.create(SPACE, SPACE.named_arch("proxyless_mobile_05"), "$(id)")


def test_host_key_verification(fake_board, tmp_path, caplog):
    other = FakeBoard(fake_board.root, tmp_path / "other_keys")  # a different host key, never started
    other.port = fake_board.port
    other.known_hosts.write_text(
        f"[127.0.0.1]:{fake_board.port} " + other.host_key.export_public_key().decode()
    )

    async def connect(board: Board) -> None:
        async with BoardClient(board, retries=2, backoff_s=0.01) as client:
            await client.run("true", "noop")

    with pytest.raises(HostKeyError, match="host key of 127.0.0.1.*not verified"):
        asyncio.run(connect(_board(fake_board, known_hosts=str(other.known_hosts))))
    with pytest.raises(HostKeyError, match="does not exist"):
        asyncio.run(connect(_board(fake_board, known_hosts=str(tmp_path / "nope"))))
    with caplog.at_level(logging.WARNING, logger="ofa_hw.backends.vitis.board"):
        asyncio.run(
            connect(_board(fake_board, known_hosts=str(tmp_path / "nope"), insecure_no_host_key_check=True))
        )
    assert "NOT verified" in caplog.text


def test_unauthorised_key(fake_board, tmp_path):
    stranger = FakeBoard(fake_board.root, tmp_path / "stranger")  # its client key is not authorised
    with pytest.raises(BoardError, match="authentication as root failed"):
        asyncio.run(BoardClient(_board(fake_board, key_file=str(stranger.client_key)), retries=0).connect())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_retries_with_backoff(fake_board):
    board = _board(fake_board, port=_closed_port())
    start = time.monotonic()
    with pytest.raises(BoardUnreachable, match="unreachable after 3 attempts"):
        asyncio.run(BoardClient(board, retries=2, backoff_s=0.2).connect())
    assert time.monotonic() - start >= 0.2 + 0.4  # backoff doubled between attempts


def test_timeout_mid_run(fake_tools, fake_board, tmp_path, elf):
    fake_board.behaviour["FAKE_N2CUBE_SLEEP_MS"] = "5000"
    backend = _backend(fake_tools, [fake_board], tmp_path, elf, step_timeout_s=1.0)
    start = time.monotonic()
    outcome = backend.profile(_job())
    assert time.monotonic() - start < 4.5
    assert outcome.status == "failed" and outcome.error.startswith(
        "board board0: profile debug-mode ELF: timed out after 1 s"
    )
    assert _leftovers(fake_board) == []
    time.sleep(0.3)
    # the timing run finished; the profile run was killed, not finished
    assert fake_board.n2cube_log.read_text().splitlines().count("dpuClose") == 1


@pytest.mark.parametrize(
    "knob,expected",
    [
        (("FAKE_N2CUBE_FAIL", "run"), r"ELF: exit status 6[\s\S]*dpuRunTask failed"),
        (("FAKE_N2CUBE_FAIL", "load"), r"exit status 4[\s\S]*dpuLoadKernel\(proxylessmobile05\) failed"),
        (("FAKE_N2CUBE_GARBAGE", "1"), r"unreadable profiler output"),
    ],
)
def test_failed_runs_are_recorded_as_failed(fake_tools, fake_board, tmp_path, elf, knob, expected):
    from ofa_hw.store import Store

    fake_board.behaviour[knob[0]] = knob[1]
    backend = _backend(fake_tools, [fake_board], tmp_path, elf)
    outcome = backend.profile(_job())
    assert outcome.status == "failed"
    assert re.search(expected, outcome.error), outcome.error
    with Store(tmp_path / "store.sqlite") as store:
        store.record(outcome, backend)
        (run,) = store.runs(status="failed")
        assert run.status == "failed" and run.error == outcome.error
    assert _leftovers(fake_board) == []


def test_board_disappears_during_a_batch(fake_tools, board_root, tmp_path, elf):
    a = FakeBoard(board_root, tmp_path / "a").start()
    b = FakeBoard(board_root, tmp_path / "b").start()
    try:
        a.behaviour["FAKE_N2CUBE_SLEEP_MS"] = "3000"
        backend = _backend(fake_tools, [a, b], tmp_path, elf, retries=1, backoff_s=0.05)
        threading.Timer(1.5, a.disappear).start()
        outcomes = list(backend.profile_many([_job(i) for i in range(4)]))
    finally:
        a.stop()
        b.stop()
    assert sorted(o.job.seed for o in outcomes) == [0, 1, 2, 3]
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1 and failed[0].error.startswith("board board0:")
    assert "connection" in failed[0].error.lower()
    assert all(o.profile.total_ms == pytest.approx(3.279) for o in outcomes if o.ok)


def test_every_board_gone(fake_tools, fake_board, tmp_path, elf):
    backend = _backend(fake_tools, [fake_board], tmp_path, elf, retries=1, backoff_s=0.01)
    fake_board.disappear()
    outcomes = list(backend.profile_many([_job(i) for i in range(3)]))
    assert [o.status for o in outcomes] == ["failed"] * 3
    errors = sorted(o.error for o in outcomes)
    assert (
        "unreachable after 2 attempts" in errors[0]
        and errors[1:] == ["no board left: every board of the farm became unreachable"] * 2
    )


def test_board_lock_one_job_at_a_time(fake_tools, fake_board, tmp_path, elf):
    fake_board.behaviour["FAKE_N2CUBE_SLEEP_MS"] = "300"
    backend = _backend(fake_tools, [fake_board], tmp_path, elf)
    compiled = PrecompiledFlow(elf).build(_job())
    spans: list[tuple[float, float]] = []

    def one() -> None:
        start = time.monotonic()
        outcome = backend.run_on(backend.boards[0], compiled)
        assert outcome.ok, outcome.error
        spans.append((start + outcome.timings["lock_wait_s"], time.monotonic()))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (_, e1), (s2, _) = sorted(spans)
    assert s2 >= e1 - 0.05  # the second job started only after the first released the board


def test_compiles_in_parallel_and_profiles_on_every_board(fake_tools, board_root, tmp_path, elf):
    boards = [FakeBoard(board_root, tmp_path / f"k{i}").start() for i in range(2)]
    active, peak = [0], [0]
    guard = threading.Lock()

    class SlowFlow(PrecompiledFlow):
        def build(self, job: ProfileJob) -> Compiled:
            with guard:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.3)
            with guard:
                active[0] -= 1
            return super().build(job)

    try:
        backend = _backend(fake_tools, boards, tmp_path, elf, compile_jobs=2)
        backend.flow = SlowFlow(elf)
        outcomes = list(backend.profile_many([_job(i, runs=1) for i in range(4)]))
    finally:
        for b in boards:
            b.stop()
    assert all(o.ok for o in outcomes) and sorted(o.job.seed for o in outcomes) == [0, 1, 2, 3]
    assert peak[0] == 2  # two compile jobs at a time on the host
    assert all(any("ofa_hw_dpu_profile" in c for c in b.commands) for b in boards)  # both boards worked


def test_no_secrets_in_logs(fake_tools, board_root, tmp_path, elf, caplog, monkeypatch):
    secret = "correct horse battery staple"
    fb = FakeBoard(board_root, tmp_path / "keys", passphrase=secret).start()
    try:
        monkeypatch.setenv("OFA_HW_TEST_PASSPHRASE", secret)
        board = {
            "name": "locked",
            "host": "127.0.0.1",
            "port": fb.port,
            "key_file": str(fb.client_key),
            "known_hosts": str(fb.known_hosts),
            "remote_tmp": str(fb.root / "tmp"),
            "passphrase_env": "OFA_HW_TEST_PASSPHRASE",
            "env": {"DPU_TOKEN": "tok-7f3a9"},  # board env values never appear on a (logged) command line
        }
        backend = _backend(fake_tools, [board], tmp_path, elf)
        with caplog.at_level(logging.DEBUG):
            ok = backend.profile(_job())
            monkeypatch.setenv("OFA_HW_TEST_PASSPHRASE", "wrong " + secret)
            bad = backend.profile(_job(1))
    finally:
        fb.stop()
    assert ok.ok, ok.error
    assert bad.status == "failed" and "cannot load key" in bad.error
    for text in (
        caplog.text,
        bad.error,
        bad.raw_text,
        ok.raw_text,
        repr(backend.settings),
        repr(backend.boards),
    ):
        assert secret not in text
    assert "asyncssh" in caplog.text and "tok-7f3a9" not in caplog.text


def test_board_env_reaches_the_profiler(fake_tools, fake_board, tmp_path, elf):
    """``env`` of a board config is exported for the board-side commands (via a sourced file)."""
    board = {
        "name": "envb",
        "host": "127.0.0.1",
        "port": fake_board.port,
        "key_file": str(fake_board.client_key),
        "known_hosts": str(fake_board.known_hosts),
        "remote_tmp": str(fake_board.root / "tmp"),
        "env": {"FAKE_N2CUBE_FAIL": "load"},
    }
    outcome = _backend(fake_tools, [board], tmp_path, elf).profile(_job())
    assert outcome.status == "failed" and "dpuLoadKernel(proxylessmobile05) failed" in outcome.error
    assert not any("FAKE_N2CUBE_FAIL" in c for c in fake_board.commands)


def test_unknown_host_key_fails_the_job(fake_tools, fake_board, tmp_path, elf):
    stranger = tmp_path / "known_hosts"
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    stranger.write_text(f"[127.0.0.1]:{fake_board.port} {other_key}")  # someone else's host key
    board = {
        "name": "mitm",
        "host": "127.0.0.1",
        "port": fake_board.port,
        "key_file": str(fake_board.client_key),
        "known_hosts": str(stranger),
        "remote_tmp": str(fake_board.root / "tmp"),
    }
    outcome = _backend(fake_tools, [board], tmp_path, elf).profile(_job())
    assert outcome.status == "failed" and outcome.error.startswith(
        "board mitm: connect: host key of 127.0.0.1"
    )
    assert fake_board.commands == []  # nothing ran on a host we could not authenticate
