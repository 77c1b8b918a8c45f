"""Measurement store: round trip, idempotent job keys, failures and retries, bad files, concurrent writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from ofa_hw.backends import ProfileJob, ProfileOutcome, SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats.dnndk import parse_dnndk_profile
from ofa_hw.space import get_space
from ofa_hw.store import Store, StoreError, job_key, profile_jobs

SPACE = get_space("proxyless_w05")


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend(DPUConfig.from_preset("zcu102_b4096"))


@pytest.fixture(scope="module")
def seed_text(seed_dir) -> str:
    return (seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text()


def _job(name: str = "mobile05", **changes) -> ProfileJob:
    arch = SPACE.named_arch("proxyless_mobile_05")
    arch.update(changes)
    return ProfileJob.create(SPACE, arch, name, runs=1, seed=0)


def test_round_trip_keeps_raw_text_and_profile(tmp_path, backend, seed_text):
    prof = parse_dnndk_profile(seed_text)
    store = Store(tmp_path / "store.sqlite")
    outcome = ProfileOutcome(_job(), "ok", profile=prof, raw_text=seed_text, timings={"run_s": 1.5})
    run_id = store.record(outcome, backend)
    assert store.has(_job(), backend)
    assert store.raw_text(run_id) == seed_text  # verbatim, byte for byte
    assert store.profile(run_id) == prof
    run = store.get(_job(), backend)
    assert run.status == "ok" and run.total_ms == pytest.approx(3.279) and run.timings == {"run_s": 1.5}
    assert run.dpu_fingerprint == backend.dpu.fingerprint() and run.toolchain == backend.toolchain
    assert run.arch == _job().arch and run.attempts == 1
    nodes = store.nodes([run_id])
    assert len(nodes) == 42 and nodes["runtime_ms"].sum() == pytest.approx(3.279, abs=2e-3)
    # The same store reopened by another connection sees the run.
    store.close()
    assert Store(tmp_path / "store.sqlite").count() == 1


def test_job_key_ignores_net_name_and_inactive_choices(backend):
    arch = SPACE.named_arch("proxyless_mobile_05")
    other = dict(arch, ks=list(arch["ks"]))
    other["ks"][2] = 7  # block 2 is inactive (stage 0 has depth 2)
    assert job_key(_job("a"), backend) == job_key(ProfileJob.create(SPACE, other, "b"), backend)
    assert job_key(_job(), backend) != job_key(_job(r=160), backend)
    assert job_key(_job(), backend) != job_key(ProfileJob.create(SPACE, arch, "mobile05", runs=2), backend)
    faster = SimBackend(backend.dpu.replace(freq_mhz=200.0))
    assert job_key(_job(), backend) != job_key(_job(), faster)


class CountingSim(SimBackend):
    """The simulator, counting how many jobs it really ran (to prove the store skips work)."""

    def __init__(self, dpu, fail_names=()):
        super().__init__(dpu)
        self.ran: list[str] = []
        self.fail_names = set(fail_names)

    def profile(self, job):
        self.ran.append(job.net_name)
        if job.net_name in self.fail_names:
            return ProfileOutcome(job, "failed", error="board went away")
        return super().profile(job)


def test_runner_skips_done_work_and_retries_failures_on_request(tmp_path, backend):
    store = Store(tmp_path / "store.sqlite")
    jobs = [_job(f"n{i}", r=r) for i, r in enumerate((160, 192, 224))] + [_job("dup", r=160)]
    sim = CountingSim(backend.dpu, fail_names={"n1"})
    out = profile_jobs(sim, store, jobs, progress=False)
    assert sim.ran == ["n0", "n1", "n2"]  # the duplicate ran once
    assert [o.status for o in out] == ["ok", "failed", "ok", "ok"]
    assert out[3].job.net_name == "dup" and out[3].profile == out[0].profile
    assert store.get(jobs[1], sim).error == "board went away"

    again = CountingSim(backend.dpu)
    out2 = profile_jobs(again, store, jobs, progress=False)
    assert again.ran == []  # failed jobs are not retried unless asked
    assert out2[0].profile == out[0].profile and out2[0].raw_text == out[0].raw_text
    assert out2[1].status == "failed"

    out3 = profile_jobs(again, store, jobs, retry_failed=True, progress=False)
    assert again.ran == ["n1"] and out3[1].ok
    run = store.get(jobs[1], again)
    assert run.status == "ok" and run.attempts == 2 and run.error is None
    assert store.count() == 3 and store.count(status=None) == 3


def test_ok_measurement_is_never_overwritten(tmp_path, backend):
    store = Store(tmp_path / "store.sqlite")
    first = backend.profile(_job())
    run_id = store.record(first, backend)
    assert store.record(ProfileOutcome(_job(), "failed", error="late failure"), backend) == run_id
    assert store.get(_job(), backend).status == "ok"


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "store.sqlite"
    bad.write_bytes(b"this is not a database at all\n" * 10)
    with pytest.raises(StoreError, match=r"store\.sqlite is not an SQLite database"):
        Store(bad)


def test_truncated_store_is_a_clear_error(tmp_path, backend):
    path = tmp_path / "store.sqlite"
    store = Store(path)
    for r in (128, 160, 192, 224):
        store.record(backend.profile(_job(f"n{r}", r=r)), backend)
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"store\.sqlite is (truncated|corrupt)"):
        Store(path)


def test_foreign_sqlite_and_directory_are_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="other.sqlite is an SQLite file of another application"):
        Store(other)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)


WRITER = textwrap.dedent(
    """
    import sys
    from ofa_hw.backends import ProfileJob, SimBackend
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.space import get_space
    from ofa_hw.store import Store, profile_jobs

    path, worker = sys.argv[1], int(sys.argv[2])
    space = get_space("proxyless_w05")
    backend = SimBackend(DPUConfig.from_preset("zcu102_b4096"))
    store = Store(path, timeout_s=60)
    base = space.named_arch("proxyless_mobile_05")
    # Each worker profiles its own 6 resolutions plus 2 shared ones that every worker also runs.
    mine = [128 + 4 * (6 * worker + i) for i in range(6)]
    jobs = [ProfileJob.create(space, dict(base, r=r), f"w{worker}_{i}", 2, seed=worker) for i, r in enumerate(mine)]
    jobs += [ProfileJob.create(space, dict(base, r=r), f"shared_{r}", 2, 0) for r in (200, 204)]
    out = profile_jobs(backend, store, jobs, progress=False)
    assert all(o.ok for o in out), [o.error for o in out if not o.ok]
    """
)


def test_four_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "store.sqlite"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)], stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    store = Store(path)
    runs = store.runs()
    # 4 workers x 6 own jobs (distinct by resolution or seed) + 2 shared jobs stored once.
    assert len(runs) == 4 * 6 + 2
    assert len({r.job_key for r in runs}) == len(runs)
    nodes = store.nodes([r.id for r in runs], per_run=True)
    per_run = nodes.groupby("run_id").size()
    assert set(per_run.index) == {r.id for r in runs}
    assert all(per_run[r.id] == 2 * len(store.nodes([r.id])) for r in runs)  # 2 runs' tables each
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_corrupt_page_is_a_clear_error(tmp_path, backend):
    path = tmp_path / "store.sqlite"
    store = Store(path)
    for r in (128, 160, 192, 224):
        store.record(backend.profile(_job(f"n{r}", r=r)), backend)
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    data[2 * 4096 : 3 * 4096 : 7] = b"\xab" * len(range(2 * 4096, 3 * 4096, 7))
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"store\.sqlite is corrupt"):
        Store(path)
