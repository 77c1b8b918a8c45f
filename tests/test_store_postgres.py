"""The PostgreSQL store against a real server: same semantics as SQLite, shared migrations, copies both ways,
8 concurrent writer processes, a SIGKILLed writer, advisory board locks, and no password in any message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from conftest import compose

from ofa_hw.backends import ProfileJob, ProfileOutcome, SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats.dnndk import parse_dnndk_profile
from ofa_hw.space import get_space
from ofa_hw.store import (
    LockTimeout,
    PostgresStore,
    SQLiteStore,
    StoreError,
    migrations,
    open_store,
    profile_jobs,
)
from ofa_hw.store.copy import copy_runs
from ofa_hw.store.locks import named_lock

SPACE = get_space("proxyless_w05")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend(DPUConfig.from_preset("zcu102_b4096"))


def _job(name: str = "mobile05", runs: int = 1, seed: int = 0, **changes) -> ProfileJob:
    arch = SPACE.named_arch("proxyless_mobile_05")
    arch.update(changes)
    return ProfileJob.create(SPACE, arch, name, runs=runs, seed=seed)


@pytest.fixture(params=["sqlite", "postgres"])
def store_cfg(request, tmp_path):
    """A store config of each backend: every semantics test below runs on both."""
    if request.param == "sqlite":
        return {"_target_": "ofa_hw.store.SQLiteStore", "path": str(tmp_path / "store.sqlite")}
    return request.getfixturevalue("pg_store_cfg")


# ----------------------------------------------------------------------------- same semantics
def test_round_trip_keeps_raw_text_and_profile(store_cfg, backend, seed_dir):
    text = (seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text()
    prof = parse_dnndk_profile(text)
    with open_store(store_cfg) as store:
        run_id = store.record(
            ProfileOutcome(_job(), "ok", profile=prof, raw_text=text, timings={"run_s": 1.5}), backend
        )
        assert store.raw_text(run_id) == text and store.profile(run_id) == prof
        run = store.get(_job(), backend)
        assert run.status == "ok" and run.total_ms == pytest.approx(3.279) and run.timings == {"run_s": 1.5}
        assert run.arch == _job().arch and run.attempts == 1
        nodes = store.nodes([run_id])
        assert (
            len(nodes) == 42
            and str(nodes["runtime_ms"].dtype) == "float64"
            and str(nodes["id"].dtype) == "int64"
        )
    with open_store(store_cfg) as again:  # a second connection sees the committed run
        assert again.count() == 1


def test_runner_resumes_and_retries_failures_only_on_request(store_cfg, backend):
    class Counting(SimBackend):
        def __init__(self, dpu):
            super().__init__(dpu)
            self.ran: list[str] = []

        def profile(self, job):
            self.ran.append(job.net_name)
            if job.net_name == "n1" and len(self.ran) < 4:
                return ProfileOutcome(job, "failed", error="board went away")
            return super().profile(job)

    sim = Counting(backend.dpu)
    jobs = [_job(f"n{i}", r=r) for i, r in enumerate((160, 192, 224))] + [_job("dup", r=160)]
    with open_store(store_cfg) as store:
        out = profile_jobs(sim, store, jobs, progress=False)
        assert sim.ran == ["n0", "n1", "n2"] and [o.status for o in out] == ["ok", "failed", "ok", "ok"]
        assert profile_jobs(sim, store, jobs, progress=False)[0].profile == out[0].profile
        assert sim.ran == ["n0", "n1", "n2"]  # nothing measured twice, the failure not retried
        again = profile_jobs(sim, store, jobs, retry_failed=True, progress=False)
        assert sim.ran[-1] == "n1" and again[1].ok
        run = store.get(jobs[1], sim)
        assert run.attempts == 2 and run.error is None and store.count(status=None) == 3
        # An ok measurement is never overwritten by a later failure.
        assert (
            store.record(ProfileOutcome(jobs[0], "failed", error="late"), sim) == store.get(jobs[0], sim).id
        )
        assert store.get(jobs[0], sim).status == "ok"


def test_migrations_are_shared_ordered_and_applied_once(store_cfg, monkeypatch):
    with open_store(store_cfg) as store:
        pass
    step = migrations.Migration(
        2, "test: an index on arch ids", ("CREATE INDEX runs_arch ON runs (arch_id)",)
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    for _ in range(2):  # the second open finds version 2 recorded and applies nothing
        with open_store(store_cfg) as store:
            rows = store._fetch("SELECT version, description FROM schema_version ORDER BY version")
    assert rows == [(1, "runs and their node tables"), (2, "test: an index on arch ids")]
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    with pytest.raises(StoreError, match="has schema version 2; this ofa_hw reads version 1"):
        open_store(store_cfg)


def test_sqlite_store_from_before_shared_migrations_is_adopted(tmp_path, backend):
    import sqlite3

    path = tmp_path / "store.sqlite"
    with SQLiteStore(path) as store:
        store.record(backend.profile(_job()), backend)
    with sqlite3.connect(path) as con:  # the layout of stores written before schema_version existed
        con.execute("DROP TABLE schema_version")
    with SQLiteStore(path) as store:
        assert store.count() == 1
        assert store._fetch("SELECT version, description FROM schema_version") == [
            (1, "runs and their node tables (adopted)")
        ]


# ----------------------------------------------------------------------------- PostgreSQL only
def test_password_never_appears_in_messages(pg_dsn, pg_store_cfg):
    password = psycopg.conninfo.conninfo_to_dict(pg_dsn)["password"]
    with open_store(pg_store_cfg) as store:
        assert password not in repr(store) and password not in store.location
        assert "host=127.0.0.1" in store.location and "user=ofa" in store.location
    wrong = pg_dsn.replace(password, password + "x")
    with pytest.raises(StoreError) as err:
        PostgresStore(wrong, namespace=pg_store_cfg["namespace"])
    assert "password authentication failed" in str(err.value) and password not in str(err.value)
    port = psycopg.conninfo.conninfo_to_dict(pg_dsn)["port"]
    closed = pg_dsn.replace(f":{port}/", ":1/")
    with pytest.raises(StoreError, match="store postgresql host=127.0.0.1 port=1 .*: open failed") as err:
        PostgresStore(closed, connect_timeout_s=2)
    assert password not in str(err.value) and "\n" not in str(err.value)  # one line for the CLI


def test_dsn_from_environment_and_config_group(pg_dsn, pg_store_cfg, monkeypatch, workspace):
    monkeypatch.setenv("OFA_HW_PG_DSN", pg_dsn)
    cfg = compose(["store=postgres", f"store.namespace={pg_store_cfg['namespace']}"], workspace=workspace)
    assert cfg.store._target_ == "ofa_hw.store.PostgresStore" and cfg.store.dsn == pg_dsn
    with open_store(cfg) as store:
        assert isinstance(store, PostgresStore) and store.count() == 0
    with pytest.raises(Exception, match="namespac"):
        compose(["store=postgres", "store.namespac=x"])


def test_foreign_tables_are_refused(pg_dsn, pg_store_cfg):
    ns = pg_store_cfg["namespace"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{ns}"')
        conn.execute(f'CREATE TABLE "{ns}".songs (title TEXT)')
    with pytest.raises(StoreError, match=r"is a database of another application \(tables \['songs'\]\)"):
        PostgresStore(pg_dsn, namespace=ns)


WRITER = textwrap.dedent(
    """
    import json, sys, time
    from ofa_hw.backends import ProfileJob, SimBackend
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.space import get_space
    from ofa_hw.store import open_store, profile_jobs

    cfg, worker, mode = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    space = get_space("proxyless_w05")
    backend = SimBackend(DPUConfig.from_preset("zcu102_b4096"))
    base = space.named_arch("proxyless_mobile_05")
    store = open_store(cfg)
    if mode == "sweep":
        # 10 jobs of its own (distinct seeds) + 4 that every worker also runs.
        jobs = [ProfileJob.create(space, dict(base, r=128 + 4 * i), f"w{worker}_{i}", 1, seed=worker) for i in range(10)]
        jobs += [ProfileJob.create(space, dict(base, r=r), f"shared_{r}", 1, 0) for r in (200, 204, 208, 212)]
        out = profile_jobs(backend, store, jobs, progress=False)
        assert all(o.ok for o in out)
    elif mode == "claims":  # every worker wants the same 12 jobs, in its own order; a measurement takes 50 ms
        class Slow(SimBackend):
            def profile(self, job):
                with open(cfg["log"], "a") as fh:
                    fh.write(job.net_name + chr(10))
                time.sleep(0.05)
                return super().profile(job)

        jobs = [ProfileJob.create(space, dict(base, r=128 + 8 * i), f"j{i}", 1, 0) for i in range(12)]
        out = profile_jobs(Slow(backend.dpu), store, jobs[::-1] if worker % 2 else jobs, progress=False)
        assert all(o.ok for o in out) and len(out) == 12
    else:  # "hang": commit 3 runs, then die (SIGKILL from the test) inside the 4th transaction
        for i in range(4):
            outcome = backend.profile(ProfileJob.create(space, dict(base, r=160 + 4 * i), f"k{i}", 1, 0))
            if i == 3:
                insert = store._insert_nodes
                def hang(cur, run_id, rows):
                    insert(cur, run_id, rows)
                    print("IN_TX", flush=True)
                    time.sleep(120)
                store._insert_nodes = hang
            store.record(outcome, backend)
    """
)


def _writer(cfg: dict, worker: int, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, json.dumps(cfg), str(worker), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_eight_concurrent_writers_lose_and_duplicate_nothing(pg_store_cfg):
    procs = [_writer(pg_store_cfg, w, "sweep") for w in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    with open_store(pg_store_cfg) as store:
        runs = store.runs(status=None)
        assert len(runs) == 8 * 10 + 4 and len({r.job_key for r in runs}) == len(runs)
        assert all(r.status == "ok" and r.attempts == 1 for r in runs)
        nodes = store.nodes([r.id for r in runs], per_run=True)
        aggregate = store.nodes([r.id for r in runs])
        per_run, per_agg = nodes.groupby("run_id").size(), aggregate.groupby("run_id").size()
        assert all(per_run[r.id] == per_agg[r.id] > 0 for r in runs)  # one run's table each, no duplicates
        assert store.table_counts()["nodes"] == len(nodes) + len(aggregate)


def test_concurrent_runners_measure_each_job_once(store_cfg, tmp_path):
    cfg = dict(store_cfg, log=str(tmp_path / "measured.log"))
    procs = [_writer(cfg, w, "claims") for w in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    measured = (tmp_path / "measured.log").read_text().split()
    assert sorted(measured) == sorted(f"j{i}" for i in range(12))  # each job measured by exactly one process
    with open_store(store_cfg) as store:
        assert store.count() == 12


def test_killed_writer_loses_only_its_open_transaction(store_cfg, backend):
    proc = _writer(store_cfg, 0, "hang")
    line = proc.stdout.readline()
    assert line.strip() == "IN_TX", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with open_store(store_cfg) as store:
        runs = store.runs(status=None)
        assert sorted(r.net_name for r in runs) == ["k0", "k1", "k2"]  # the 3 committed runs, not the 4th
        counts = store.table_counts()
        assert counts["nodes"] == sum(len(store.nodes([r.id])) * 2 for r in runs)  # no orphan node rows
        # The dead writer holds no lock: the lost measurement is recorded at once.
        start = time.monotonic()
        store.record(backend.profile(_job("k3", r=172)), backend)
        assert time.monotonic() - start < 5 and store.count() == 4


# ----------------------------------------------------------------------------- copies
def _fill_sqlite(path: Path, backend) -> SQLiteStore:
    store = SQLiteStore(path)
    for i, r in enumerate((128, 160, 192, 224)):
        store.record(backend.profile(_job(f"n{i}", runs=2, r=r)), backend)
    # Raw text that must survive byte for byte: CRLF, trailing blanks, non-ASCII, a NUL-free control char.
    odd = ProfileOutcome(
        _job("odd", r=176),
        "failed",
        raw_text="línea 1\r\nµs  \t\n\x1b[31mred\x1b[0m\n  ",
        error="compile error: ü",
    )
    store.record(odd, backend)
    return store


def test_copy_sqlite_to_postgres_and_back_loses_nothing(tmp_path, pg_store_cfg, backend):
    src = _fill_sqlite(tmp_path / "a.sqlite", backend)
    with src, open_store(pg_store_cfg) as pg, SQLiteStore(tmp_path / "b.sqlite") as back:
        there = copy_runs(src, pg, batch=2, progress=False)
        assert there.verified and there.copied == 5 and there.target_counts == there.source_counts
        again = copy_runs(src, pg, progress=False)  # idempotent: nothing copied twice
        assert again.copied == 0 and again.kept == 5 and pg.table_counts() == src.table_counts()
        home = copy_runs(pg, back, progress=False)
        assert home.verified and back.table_counts() == src.table_counts()
        assert src.digests() == pg.digests() == back.digests()
        odd = back.runs(status="failed")[0]
        assert back.raw_text(odd.id) == "línea 1\r\nµs  \t\n\x1b[31mred\x1b[0m\n  "
        a, b = src.runs()[0], back.runs()[0]
        assert (a.created, a.timings, a.attempts) == (b.created, b.timings, b.attempts)
        assert src.profile(a.id) == back.profile(b.id)


def test_store_task_import_export_and_check(
    tmp_path, pg_dsn, pg_store_cfg, monkeypatch, workspace, backend, capsys
):
    from ofa_hw.tasks.store import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFA_HW_PG_DSN", pg_dsn)
    _fill_sqlite(workspace / "store.sqlite", backend).close()
    pg = ["store=postgres", f"store.namespace={pg_store_cfg['namespace']}"]
    res = run(compose(["task=store", "task.verb=import", *pg], workspace=workspace))
    assert (
        res["verified"]
        and res["copied"] == 5
        and res["target_counts"]["nodes"] == res["source_counts"]["nodes"] > 0
    )
    out = capsys.readouterr().out
    assert "verified" in out and pg_dsn not in out and "password" not in out
    back = tmp_path / "back.sqlite"
    res = run(compose(["task=store", "task.verb=export", f"task.sqlite={back}", *pg], workspace=workspace))
    assert res["verified"] and res["copied"] == 5
    info = run(compose(["task=store", "task.verb=info", *pg], workspace=workspace))
    assert info["counts"] == res["source_counts"] and info["kind"] == "postgres"
    # A run that arrives damaged is caught by the check (here: raw text altered in the target).
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            f"UPDATE \"{pg_store_cfg['namespace']}\".runs SET raw_text = raw_text || '!' WHERE net_name = %s",
            ("n0",),
        )
    with pytest.raises(StoreError, match=r"1 runs did not arrive intact .* differs in raw text"):
        run(compose(["task=store", "task.verb=import", *pg], workspace=workspace))
    with pytest.raises(StoreError, match="task.sqlite: .*missing.sqlite does not exist"):
        run(
            compose(
                ["task=store", "task.verb=import", f"task.sqlite={tmp_path / 'missing.sqlite'}", *pg],
                workspace=workspace,
            )
        )


# ----------------------------------------------------------------------------- board locks
HOLDER = textwrap.dedent(
    """
    import json, sys, time
    from ofa_hw.store.locks import named_lock
    with named_lock("zcu102_22", json.loads(sys.argv[1]), sys.argv[2], timeout_s=5):
        print("HELD", flush=True)
        time.sleep(120)
    """
)


def test_two_processes_cannot_hold_one_board(pg_store_cfg, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Each "host" has its own lock directory: only the shared store can keep them apart.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, json.dumps(pg_store_cfg), str(tmp_path / "host_a")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "HELD", holder.stderr.read()
        with (
            pytest.raises(
                LockTimeout, match="zcu102_22 busy for more than 0.5 s \\(advisory lock in postgresql host="
            ),
            named_lock("zcu102_22", pg_store_cfg, tmp_path / "host_b", timeout_s=0.5),
        ):
            pass
        with named_lock("zcu104_22", pg_store_cfg, tmp_path / "host_b", timeout_s=0.5):
            pass  # another board is free
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The holder died without unlocking: the server released its session's lock.
    with named_lock("zcu102_22", pg_store_cfg, tmp_path / "host_b", timeout_s=10):
        pass
    assert not list((tmp_path / "host_b").glob("*.lock"))  # no lock file was used on the way


def test_sqlite_store_keeps_the_host_flock(tmp_path):
    cfg = {"_target_": "ofa_hw.store.SQLiteStore", "path": str(tmp_path / "store.sqlite")}
    with named_lock("zcu102_22", cfg, tmp_path / "locks", timeout_s=1):
        assert (tmp_path / "locks" / "zcu102_22.lock").exists()
        with (
            pytest.raises(LockTimeout, match="zcu102_22 busy for more than 0.2 s \\(lock "),
            named_lock("zcu102_22", cfg, tmp_path / "locks", timeout_s=0.2),
        ):
            pass


BOARD_HOLDER = textwrap.dedent(
    """
    import json, sys, time
    from ofa_hw.backends.vitis.board import Board, board_lock
    with board_lock(Board("zcu102", "10.0.0.5"), sys.argv[2], timeout_s=5, store=json.loads(sys.argv[1])):
        print("HELD", flush=True)
        time.sleep(120)
    """
)


def test_vitis_board_lock_goes_through_the_shared_store(
    pg_dsn, pg_store_cfg, tmp_path, monkeypatch, workspace
):
    from ofa_hw.backends.vitis.backend import vitis_settings
    from ofa_hw.backends.vitis.board import Board, BoardError, board_lock

    # The shipped Vitis backends hand the run's store to the board lock.
    monkeypatch.setenv("OFA_HW_PG_DSN", pg_dsn)
    for backend_name in ("vitis_dnndk", "vitis_vart"):
        cfg = compose([f"backend={backend_name}", "store=postgres"], workspace=workspace)
        assert vitis_settings(cfg.backend.vitis).lock_store["_target_"] == "ofa_hw.store.PostgresStore"
    # Two "hosts" (separate processes, separate lock directories) cannot hold one board.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen(
        [sys.executable, "-c", BOARD_HOLDER, json.dumps(pg_store_cfg), str(tmp_path / "host_a")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "HELD", holder.stderr.read()
        with (
            pytest.raises(
                BoardError, match=r"board zcu102: lock: 10.0.0.5_22 busy for more than 0.3 s \(advisory lock"
            ),
            board_lock(Board("zcu102", "10.0.0.5"), tmp_path / "host_b", timeout_s=0.3, store=pg_store_cfg),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with board_lock(Board("zcu102", "10.0.0.5"), tmp_path / "host_b", timeout_s=10, store=pg_store_cfg):
        pass
