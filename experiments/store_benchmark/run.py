"""Store and launcher benchmark (issue 13): measurements per second into SQLite and PostgreSQL with 1, 4
and 8 writer processes, and the wall time of a 16-job simulator ``task=search`` sweep on the joblib,
submitit_local and Ray launchers.

    python experiments/store_benchmark/run.py                # both parts, ~6 min on 2 cores
    python experiments/store_benchmark/run.py --part stores  # only the write throughput

Needs Debian's PostgreSQL binaries (a throwaway server is started, fsync on, on 127.0.0.1) and the
``cluster`` extra. Writes ``results.json``, ``results.csv`` and ``store_benchmark.png`` next to this file.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

WRITERS = (1, 4, 8)
RECORDS_PER_WRITER = 150
BUDGETS = [round(2.5 + 0.5 * i, 1) for i in range(16)]
SEARCH = ["search.generations=40", "search.pareto_generations=20", "search.top_k=4", "search.refine_rounds=1"]
LAUNCHERS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=30"],
    "ray": ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2"],
}


def _outcomes():
    """16 distinct simulated profiles of proxyless_w05 subnets (runs=1: the aggregate and one run table, ~70 node rows per record)."""
    import numpy as np

    from ofa_hw.backends import ProfileJob, SimBackend
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.space import get_space

    space = get_space("proxyless_w05")
    backend = SimBackend(DPUConfig.from_preset("zcu102_b4096"))
    rng = np.random.default_rng(0)
    outs = []
    while len(outs) < 16:
        arch = space.sample(rng)
        arch["ks"] = [3] * len(arch["ks"])
        outcome = backend.profile(ProfileJob.create(space, arch, f"b{len(outs)}", runs=1, seed=0))
        if outcome.ok:
            outs.append(outcome)
    return backend, outs


def _writer(cfg: dict, worker: int, n: int, start_at: float, queue) -> None:
    from ofa_hw.store import open_store

    backend, outs = _outcomes()
    store = open_store(cfg)
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    for i in range(n):
        base = outs[i % len(outs)]
        job = dataclasses.replace(base.job, seed=worker * 100_000 + i)  # a distinct job key per record
        store.record(dataclasses.replace(base, job=job), backend)
    queue.put((t0, time.time()))
    store.close()


def bench_stores(pg_dsn: str, tmp: Path) -> list[dict]:
    rows = []
    ctx = mp.get_context("spawn")
    for kind in ("sqlite", "postgres"):
        for writers in WRITERS:
            tag = f"{kind}_{writers}"
            cfg = (
                {"_target_": "ofa_hw.store.SQLiteStore", "path": str(tmp / f"{tag}.sqlite")}
                if kind == "sqlite"
                else {"_target_": "ofa_hw.store.PostgresStore", "dsn": pg_dsn, "namespace": f"bench_{tag}"}
            )
            from ofa_hw.store import open_store

            open_store(cfg).close()  # schema created outside the timed part
            load = os.getloadavg()[0]  # other work on the machine, recorded with the figure
            queue = ctx.Queue()
            start_at = time.time() + 6.0 + writers  # every writer has imported and connected by then
            procs = [
                ctx.Process(target=_writer, args=(cfg, w, RECORDS_PER_WRITER, start_at, queue))
                for w in range(writers)
            ]
            for p in procs:
                p.start()
            spans = [queue.get(timeout=600) for _ in procs]
            for p in procs:
                p.join()
            with open_store(cfg) as store:
                counts = store.table_counts()
            total = writers * RECORDS_PER_WRITER
            assert counts["runs"] == total, (tag, counts)
            wall = max(e for _, e in spans) - min(s for s, _ in spans)
            rows.append(
                {
                    "part": "store",
                    "store": kind,
                    "writers": writers,
                    "records": total,
                    "load_1min": round(load, 1),
                    "node_rows": counts["nodes"],
                    "wall_s": round(wall, 3),
                    "records_per_s": round(total / wall, 1),
                }
            )
            print(rows[-1], flush=True)
    return rows


def bench_launchers(tmp: Path) -> list[dict]:
    rows = []
    for name, launcher in LAUNCHERS.items():
        ws = tmp / f"ws_{name}"
        log = tmp / f"measured_{name}.log"
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
            OFA_HW_WORKSPACE=str(ws),
            OFA_HW_TEST_MEASURE_LOG=str(log),
        )
        argv = [
            sys.executable,
            "-m",
            "ofa_hw.cli",
            "-m",
            "task=search",
            f"search.budget_ms={','.join(map(str, BUDGETS))}",
            *SEARCH,
            "backend._target_=sweep_backend.LoggingSim",
            *launcher,
            f"hydra.sweep.dir={tmp / ('multirun_' + name)}",
        ]
        load = os.getloadavg()[0]
        t0 = time.time()
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.time() - t0
        if done.returncode != 0:
            raise SystemExit(f"{name} sweep failed:\n{done.stderr[-3000:]}")
        results = list((tmp / f"multirun_{name}").rglob("results.json"))
        measured = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines())
        rows.append(
            {
                "part": "sweep",
                "launcher": name,
                "store": "sqlite",
                "jobs": len(results),
                "load_1min": round(load, 1),
                "wall_s": round(wall, 1),
                "measurements": sum(measured.values()),
                "distinct_subnets": len(measured),
                "measured_twice": sum(n > 1 for n in measured.values()),
            }
        )
        print(rows[-1], flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, marker in (("sqlite", "o"), ("postgres", "s")):
        pts = [r for r in rows if r["part"] == "store" and r["store"] == kind]
        if pts:
            a.plot([r["writers"] for r in pts], [r["records_per_s"] for r in pts], marker=marker, label=kind)
    a.set_xlabel("writer processes")
    a.set_ylabel("measurements recorded per second")
    a.set_xticks(WRITERS)
    a.set_ylim(bottom=0)
    a.set_title("store write throughput (1 run + ~70 node rows each)")
    a.grid(alpha=0.3)
    a.legend()
    sweeps = [r for r in rows if r["part"] == "sweep"]
    if sweeps:
        b.bar([r["launcher"] for r in sweeps], [r["wall_s"] for r in sweeps], color="tab:green")
        for i, r in enumerate(sweeps):
            b.annotate(f"{r['wall_s']:.0f} s", (i, r["wall_s"]), ha="center", va="bottom")
    b.set_ylabel("wall time (s)")
    b.set_ylim(0, 1.15 * max([r["wall_s"] for r in sweeps], default=1))
    b.set_title("16-job task=search sweep on the simulator, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "stores", "sweeps", "plot"], default="all")
    args = parser.parse_args()
    if args.part == "plot":  # redraw from the committed results
        plot(json.loads((HERE / "results.json").read_text())["rows"], HERE / "store_benchmark.png")
        return
    from pgserver import PgServer

    # A partial rerun keeps the other part's committed rows.
    previous = HERE / "results.json"
    kept = {"all": set(), "stores": {"sweep"}, "sweeps": {"store"}}[args.part]
    rows: list[dict] = (
        [r for r in json.loads(previous.read_text())["rows"] if r["part"] in kept]
        if previous.exists()
        else []
    )
    with tempfile.TemporaryDirectory(prefix="ofa_hw_store_bench_") as tmp_s:
        tmp = Path(tmp_s)
        if args.part in ("all", "stores"):
            server = PgServer(fsync=True).start()
            try:
                rows += bench_stores(server.dsn, tmp)
            finally:
                server.stop()
        if args.part in ("all", "sweeps"):
            rows += bench_launchers(tmp)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "records_per_writer": RECORDS_PER_WRITER,
        "budgets": BUDGETS,
        "search_overrides": SEARCH,
        "postgres": "Debian PostgreSQL server on 127.0.0.1, fsync on, synchronous_commit on (defaults)",
        "sqlite": "WAL, synchronous=NORMAL (the store's settings)",
        "launchers": LAUNCHERS,
    }
    (HERE / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    keys = sorted({k for r in rows for k in r})
    with open(HERE / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    plot(rows, HERE / "store_benchmark.png")


if __name__ == "__main__":
    main()
