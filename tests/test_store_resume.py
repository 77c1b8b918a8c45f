"""A LUT build killed with SIGKILL part way resumes to exactly the planned measurements, no duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

from ofa_hw.backends import SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut.manage import ensure_lut
from ofa_hw.space import get_space
from ofa_hw.store import Store

RESOLUTIONS = [128, 160, 192, 224]
RUNS = 3


def _lut_cfg(ws: Path) -> SimpleNamespace:
    return SimpleNamespace(
        resolutions=RESOLUTIONS,
        path=None,
        dir=str(ws / "lut"),
        shipped_dir=str(ws / "no_shipped"),
        reuse=True,
        regenerate=True,
        coverage=1,
        validation_subnets=6,
        seed=0,
        retry_failed=False,
    )


BUILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_store_resume import _lut_cfg, RUNS
    from ofa_hw.backends import SimBackend
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut.manage import ensure_lut
    from ofa_hw.space import get_space
    from ofa_hw.store import Store

    ws = Path(sys.argv[1])
    dpu = DPUConfig.from_preset("zcu102_b4096")
    ensure_lut(get_space("ofa_proxyless_w13"), dpu, _lut_cfg(ws), backend=lambda: SimBackend(dpu),
               store=lambda: Store(ws / "store.sqlite"), runs=RUNS)
    """
)


class CountingSim(SimBackend):
    def __init__(self, dpu):
        super().__init__(dpu)
        self.ran = 0

    def profile(self, job):
        self.ran += 1
        return super().profile(job)


def _stored_runs(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def test_sigkill_midway_then_resume(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    db = ws / "store.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(ws), str(Path(__file__).parent)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _stored_runs(db) < 10:
        assert child.poll() is None, f"build ended before it could be killed: {child.stderr.read()}"
        assert time.monotonic() < deadline, "build made no progress"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    before = _stored_runs(db)
    assert not (ws / "lut").exists() or not list((ws / "lut").glob("*.csv")), (
        "the build finished before the kill"
    )

    dpu = DPUConfig.from_preset("zcu102_b4096")
    sim = CountingSim(dpu)
    result = ensure_lut(
        get_space("ofa_proxyless_w13"),
        dpu,
        _lut_cfg(ws),
        backend=lambda: sim,
        store=lambda: Store(db),
        runs=RUNS,
    )
    planned = len(result.plan.probes) + len(result.plan.validation)
    assert planned == 9 * len(RESOLUTIONS) + 6
    # The kill may land inside a transaction: that run is simply not there and is redone.
    assert 10 <= before < planned
    assert sim.ran == planned - before
    store = Store(db)
    runs = store.runs(status=None)
    assert len(runs) == planned and len({r.job_key for r in runs}) == planned
    assert all(r.status == "ok" and r.attempts == 1 for r in runs)
    # No half-written run: every run has its aggregate table and RUNS per-run tables, nothing orphaned.
    with sqlite3.connect(db) as con:
        orphans = con.execute(
            "SELECT COUNT(*) FROM nodes WHERE run_id NOT IN (SELECT id FROM runs)"
        ).fetchone()[0]
        per_run = dict(
            con.execute("SELECT run_id, COUNT(DISTINCT run) FROM nodes GROUP BY run_id").fetchall()
        )
    assert orphans == 0
    assert per_run == {r.id: RUNS + 1 for r in runs}
    assert result.coverage["fraction"] == 1.0 and result.table.meta.profiled_subnets == 9 * len(RESOLUTIONS)
