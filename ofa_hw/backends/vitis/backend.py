"""The Vitis-AI backends (``vitis_dnndk``, ``vitis_vart``): compile on the host, profile on a board farm.

Same interface as the simulator (:class:`~ofa_hw.backends.base.Backend`): ``profile(job)`` and
``profile_many(jobs)`` return :class:`~ofa_hw.backends.base.ProfileOutcome` objects whose profiles come
from the simulator's own parsers, so nothing downstream can tell the two apart. Any failure of a job —
compile error, unreachable board, timeout, unparsable output — becomes a ``failed`` outcome carrying
the cause; the batch goes on. What makes every job fail the same way (no container, no reachable board,
a toolchain that does not fit the flow) is a one-line :class:`~ofa_hw.errors.UserError` instead: from
:meth:`VitisBackend.preflight` before any job is planned, or from the first compile.

The farm (``profile_many``) is two pools and no scheduler: a thread pool compiles ``compile_jobs``
networks at a time on the host, and one worker thread per board takes compiled networks from a queue,
one at a time. A board that becomes unreachable fails the job it held and leaves the farm; the other
boards take the remaining jobs (when none is left, they fail with a clear message).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from ofa_hw.backends.base import ProfileJob, ProfileOutcome
from ofa_hw.backends.vitis.board import (
    ENV_FILE,
    Board,
    BoardClient,
    BoardError,
    BoardUnreachable,
    board_lock,
    env_script,
)
from ofa_hw.backends.vitis.flows import CaffeFlow, Compiled, CompileFailed, XmodelFlow
from ofa_hw.backends.vitis.preflight import Target, preflight
from ofa_hw.backends.vitis.profilers import DnndkProfiler, VartProfiler, check_toolchain
from ofa_hw.backends.vitis.toolchain import ToolRunner
from ofa_hw.backends.vitis.versions import vaitrace_options
from ofa_hw.dpu import DPUConfig
from ofa_hw.errors import UserError
from ofa_hw.formats import ParseError
from ofa_hw.schemas.vitis import VitisConfig

log = logging.getLogger(__name__)


def vitis_settings(node: Any) -> VitisConfig:
    """The ``backend.vitis`` node validated against :class:`VitisConfig` (typos and types fail here).

    Raises:
        ValueError: for an unknown flow, no or duplicate boards.
        ToolchainVersionError: when the toolchain's version does not fit the flow (DNNDK ends with
            Vitis-AI 1.2; the VART flow needs vaitrace's ``--txt`` summary, Vitis-AI >= 1.4).
    """
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)  # resolves ${workspace} against the root config
    merged = OmegaConf.merge(OmegaConf.structured(VitisConfig), node if node is not None else {})
    settings = cast(VitisConfig, OmegaConf.to_object(merged))
    if settings.flow not in FLOWS:
        raise ValueError(f"backend.vitis.flow: {settings.flow!r} is not one of {sorted(FLOWS)}")
    if not settings.boards:
        raise ValueError("backend.vitis.boards: no board configured (add at least one host)")
    names = [b.name for b in settings.boards]
    if len(set(names)) != len(names):
        raise ValueError(f"backend.vitis.boards: duplicate board names {names}")
    version = check_toolchain(settings.flow, settings.toolchain)
    if settings.fine_grained and settings.flow == "vart":
        vaitrace_options(version, "check", fine=True, debug_xmodel=True)  # refuses 3.5 and later here
    return settings


def exec_user(value: str) -> str:
    """``docker exec -u`` of ``backend.vitis.exec_user``: ``auto`` = this host user's ``UID:GID``."""
    return f"{os.getuid()}:{os.getgid()}" if value == "auto" else value


#: flow name -> (host flow, board profiler)
FLOWS: dict[str, tuple[type, type]] = {
    "dnndk": (CaffeFlow, DnndkProfiler),
    "vart": (XmodelFlow, VartProfiler),
}


class VitisBackend:
    """Vitis-AI export/quantize/compile on the host (or container) + profiling on SSH boards.

    Attributes:
        name: ``vitis_dnndk`` or ``vitis_vart`` (from the config).
        toolchain: The configured toolchain label (``vitis-ai-1.0/dnndk-3.1``).
        dpu: The DPU configuration of the boards.
        boards: The farm.
    """

    def __init__(self, name: str, dpu: DPUConfig, settings: VitisConfig, timeout_s: float = 3600.0) -> None:
        self.name = name
        self.dpu = dpu
        self.settings = settings
        self.toolchain = settings.toolchain
        self.timeout_s = timeout_s
        self.workdir = Path(settings.workdir).expanduser().resolve()
        runner = ToolRunner(
            container=settings.container,
            docker=settings.docker,
            conda=settings.conda,
            conda_env=settings.conda_env,
            user=exec_user(settings.exec_user) if settings.container else "",
            home=str(self.workdir / ".container-home"),
        )
        flow_cls, profiler_cls = FLOWS[settings.flow]
        self.runner = runner
        self.flow = flow_cls(settings, runner, self.workdir, dpu)
        self.profiler = profiler_cls()
        self.boards = [Board.from_config(b) for b in settings.boards]

    @classmethod
    def from_config(cls, cfg: Any, dpu: DPUConfig) -> VitisBackend:
        """Build from a ``backend`` config node (``name``, ``timeout_s`` and the ``vitis`` settings)."""
        return cls(
            str(cfg.get("name")), dpu, vitis_settings(cfg.get("vitis")), float(cfg.get("timeout_s", 3600.0))
        )

    # ----------------------------------------------------------------------- steps
    def preflight(self) -> None:
        """Check the container, its tools and arch file, and every board before any probe is planned.

        Boards that cannot be reached leave the farm with a warning; none left is an error.

        Raises:
            BackendUnavailable: (a :class:`~ofa_hw.errors.UserError`) naming what is missing and the fix.
        """
        target = Target(
            self.settings, self.runner, self.workdir, self.flow.arch_json, self.dpu, tuple(self.boards)
        )
        self.boards = preflight(target)

    def compile(self, job: ProfileJob) -> Compiled | ProfileOutcome:
        """Export + quantize + compile ``job``; a failure is returned as a failed outcome.

        Raises:
            UserError: when the tools cannot serve this backend at all (e.g. an XIR-based
                ``vai_c_caffe`` in a DNNDK flow): every job would fail the same way.
        """
        start = time.monotonic()
        try:
            return self.flow.build(job)
        except UserError:
            raise
        except (CompileFailed, ValueError) as exc:
            log.warning("%s: compile failed: %s", job.net_name, str(exc).splitlines()[0])
            error = f"compile error: {exc}"
        except Exception as exc:  # an exporter bug must fail this job, not the batch
            log.exception("%s: export/compile crashed", job.net_name)
            error = f"compile error (internal): {exc!r}"
        return ProfileOutcome(
            job, "failed", raw_text=error, error=error, timings={"compile_s": time.monotonic() - start}
        )

    def run_on(self, board: Board, compiled: Compiled) -> ProfileOutcome:
        """Profile a compiled network on ``board`` (holding the board's lock)."""
        job, s = compiled.job, self.settings
        timings = dict(compiled.timings)
        start = time.monotonic()
        output = ""
        try:
            with board_lock(board, s.lock_dir, s.lock_timeout_s, store=s.lock_store):
                timings["lock_wait_s"] = time.monotonic() - start
                start = time.monotonic()
                output = asyncio.run(asyncio.wait_for(self._session(board, compiled), self.timeout_s))
            timings["board_s"] = time.monotonic() - start
            profile = self.profiler.parse(output, compiled, job.runs, self.dpu)
        except BoardUnreachable:
            raise
        except TimeoutError:
            return self._failed(
                job, board, f"board {board.name}: job timed out after {self.timeout_s:g} s", output, timings
            )
        except BoardError as exc:
            return self._failed(job, board, str(exc), output, timings)
        except ParseError as exc:
            return self._failed(
                job, board, f"board {board.name}: unreadable profiler output: {exc}", output, timings
            )
        return ProfileOutcome(job, "ok", profile=profile, raw_text=output, timings=timings)

    def _failed(
        self, job: ProfileJob, board: Board, error: str, output: str, timings: dict
    ) -> ProfileOutcome:
        log.warning("%s on %s failed: %s", job.net_name, board.name, error.splitlines()[0])
        return ProfileOutcome(job, "failed", raw_text=output, error=error, timings=timings)

    async def _session(self, board: Board, compiled: Compiled) -> str:
        s = self.settings
        client = BoardClient(board, s.connect_timeout_s, s.step_timeout_s, s.retries, s.backoff_s)
        async with client:
            tmp = await client.mkdtemp()
            try:
                await client.write_text(f"{tmp}/{ENV_FILE}", env_script(board.env), "upload environment")
                return await self.profiler.run(client, compiled, compiled.job.runs, s.warmup, s, tmp)
            finally:
                await self._cleanup(client, tmp)

    async def _cleanup(self, client: BoardClient, tmp: str) -> None:
        """Remove the job's directory; after a lost connection, reconnect once to do it."""
        try:
            await client.rmtree(tmp)
            return
        except BoardUnreachable:
            pass
        except BoardError as exc:
            log.warning("%s", exc)
            return
        try:
            retry = BoardClient(client.board, client.connect_timeout_s, 30.0, retries=0)
            async with retry:
                await retry.rmtree(tmp)
        except BoardError as exc:
            log.warning("board %s: could not remove %s: %s", client.board.name, tmp, exc)

    # ------------------------------------------------------------------- interface
    def profile(self, job: ProfileJob) -> ProfileOutcome:
        (outcome,) = list(self.profile_many([job]))
        return outcome

    def profile_many(self, jobs: Iterable[ProfileJob]) -> Iterator[ProfileOutcome]:
        """Compile in parallel on the host, profile one job per board at a time; yield as they finish."""
        jobs = list(jobs)
        if not jobs:
            return
        results: queue.Queue[ProfileOutcome | BaseException] = queue.Queue()
        compiled_q: queue.Queue[Compiled | None] = queue.Queue()
        alive = [len(self.boards)]
        lock = threading.Lock()

        def compiled_done(future) -> None:
            if future.cancelled():
                return
            if future.exception() is not None:
                results.put(future.exception())  # raised to the caller: the batch cannot go on
                return
            item = future.result()
            (results if isinstance(item, ProfileOutcome) else compiled_q).put(item)

        def worker(board: Board) -> None:
            dead = False
            while (item := compiled_q.get()) is not None:
                if dead:
                    results.put(
                        ProfileOutcome(
                            item.job,
                            "failed",
                            error="no board left: every board of the farm became unreachable",
                            timings=dict(item.timings),
                        )
                    )
                    continue
                try:
                    results.put(self.run_on(board, item))
                except BoardUnreachable as exc:
                    results.put(self._failed(item.job, board, str(exc), "", dict(item.timings)))
                    with lock:
                        alive[0] -= 1
                        last = alive[0] == 0
                    log.error("%s; it leaves the farm", exc)
                    if not last:
                        return  # the other boards take the remaining jobs
                    dead = True  # the last board drains the queue, failing each job clearly
                except Exception as exc:  # a bug must not hang the farm: report it as the job's failure
                    log.exception("board %s: unexpected error", board.name)
                    results.put(
                        self._failed(
                            item.job,
                            board,
                            f"board {board.name}: internal error: {exc!r}",
                            "",
                            dict(item.timings),
                        )
                    )

        threads = [
            threading.Thread(target=worker, args=(b,), name=f"board-{b.name}", daemon=True)
            for b in self.boards
        ]
        for t in threads:
            t.start()
        # Export holds the package's torch.fx lock (ofa_hw.frontends.torch_fx.FX_LOCK): safe at any compile_jobs.
        pool = ThreadPoolExecutor(
            max_workers=max(1, self.settings.compile_jobs), thread_name_prefix="compile"
        )
        try:
            for future in [pool.submit(self.compile, job) for job in jobs]:
                future.add_done_callback(compiled_done)
            failed = 0
            for _ in jobs:
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                failed += not item.ok
                yield item
            if failed:
                log.warning(
                    "%d of %d jobs failed (errors kept in the store, tool logs under %s); a rerun retries "
                    "them (lut.retry_failed / task.retry_failed, both true by default)",
                    failed,
                    len(jobs),
                    self.workdir,
                )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for _ in threads:
                compiled_q.put(None)  # also when the caller stops early: no worker is left waiting

    def __repr__(self) -> str:
        return f"VitisBackend({self.name}, flow={self.settings.flow}, boards={[b.name for b in self.boards]}, toolchain={self.toolchain})"
