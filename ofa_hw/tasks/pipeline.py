"""``ofa-hw`` (``task=pipeline``, the default): from nothing to a deployed, measured subnet.

Stages, each reusing what the workspace's store (and the shipped ``lut/``) already holds, so a second
run is fast:

1. **lut** — plan and profile probe subnets, build the LUT (or reuse a current one) and validate it;
2. **train** — fit the configured latency predictor, score it on measured held-out subnets;
3. **search** — evolutionary search under ``search.budget_ms`` (default: halfway through the space's
   predicted latency range), the Pareto front, then deploy and measure the top-K candidates on the
   configured backend, with refinement rounds if the measured best misses the budget;
4. **report** — ``report.md``, ``results.json`` and a summary table on the terminal.

Every artefact lands in Hydra's run directory: the LUT CSV/JSON + coverage plot, ``predictor.json`` +
scatter plot, ``candidates.csv``, ``pareto.csv`` + ``pareto.png``, ``pred_vs_measured.png``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ofa_hw.errors import FailedWorkError
from ofa_hw.report import summary_table, write_report
from ofa_hw.tasks import (
    job_label,
    make_dpu,
    measured_on,
    open_store,
    output_dir,
    outputs_line,
    write_results,
)

log = logging.getLogger(__name__)

STAGES = ("lut", "train", "search", "report")


class _StageClock:
    """Prints ``[i/n] stage …`` when a stage starts and its wall time when it ends."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def run(self, name: str, what: str, fn: Callable[[], Any]) -> Any:
        index = STAGES.index(name) + 1
        print(f"[{index}/{len(STAGES)}] {name}: {what}", flush=True)
        start = time.perf_counter()
        result = fn()
        self.timings[name] = time.perf_counter() - start
        print(f"[{index}/{len(STAGES)}] {name}: done in {self.timings[name]:.1f} s", flush=True)
        return result


def run(cfg: DictConfig) -> dict:
    from ofa_hw.search.settings import SearchSettings
    from ofa_hw.search.stage import run_search_stage
    from ofa_hw.tasks.lut import lut_for_config
    from ofa_hw.tasks.search import build_context, make_measurer
    from ofa_hw.tasks.train import train_for_config, write_artefacts

    settings = SearchSettings.from_config(cfg.search)  # every setting was checked by the CLI
    outdir = output_dir()
    clock = _StageClock()
    start = time.perf_counter()
    dpu = make_dpu(cfg)

    lut = clock.run(
        "lut",
        f"LUT of {cfg.space.name} on {dpu.name} ({cfg.backend.name})",
        lambda: lut_for_config(cfg, rundir=outdir),
    )
    trained = clock.run(
        "train", f"latency predictor '{cfg.predictor.name}'", lambda: train_for_config(cfg, lut=lut)
    )
    predictor_files = write_artefacts(trained, outdir, measured_on(str(cfg.backend.name)))

    def search() -> dict[str, Any]:
        ctx = build_context(cfg, trained.predictor)
        with open_store(cfg) as store:
            measure = make_measurer(cfg, ctx.space, ctx.dpu, ctx.predictor, store)
            return run_search_stage(
                settings,
                ctx.space,
                ctx.predictor,
                ctx.accuracy,
                measure,
                outdir,
                seed=int(cfg.seed),
                where=ctx.where,
                measured_on=measured_on(str(cfg.backend.name)),
                refit=lambda meas: (
                    train_for_config(
                        cfg, lut=lut, extra_calibration=[m.candidate.arch for m in meas]
                    ).predictor
                ),
            )

    search_section = clock.run(
        "search", "evolutionary search, then deploy and measure the top candidates", search
    )

    def report() -> dict[str, Any]:
        from ofa_hw.provenance import measurement_basis
        from ofa_hw.search.compilable import compile_limit_share
        from ofa_hw.tasks import make_backend, make_space

        results = {
            "dpu": {
                "preset": dpu.name,
                "fingerprint": dpu.fingerprint(),
                "arch": dpu.arch,
                "freq_mhz": dpu.freq_mhz,
                "cores": dpu.cores,
            },
            "backend": {"name": str(cfg.backend.name)},
            "space": {"name": str(cfg.space.name)},
            "lut": lut.summary(),
            "predictor": {**trained.section, **predictor_files},
            "search": search_section,
            "basis": measurement_basis(make_backend(cfg, dpu), dpu),
            "compile_limits": compile_limit_share(make_space(cfg), dpu, seed=int(cfg.seed)),
        }
        write_report(outdir / "report.md", results, outdir)
        return results

    results = clock.run("report", "report.md, results.json", report)
    results["timings_s"] = {**clock.timings, "total": time.perf_counter() - start}
    path = write_results(results, outdir)
    print(summary_table(results, job=job_label()))
    print(outputs_line(outdir, ["report.md", path.name, "candidates.csv", "pareto.csv", "predictor.json"]))
    best = search_section.get("best", {})
    if search_section.get("hit_rate") is not None and best.get("measured_ms") is None:
        raise FailedWorkError(
            f"no candidate could be measured on {cfg.backend.name} ({search_section['failed']} "
            f"deployment(s) failed; see candidates.csv in {outdir})"
        )
    return results


def bench(cfg: DictConfig) -> dict:
    """``ofa-hw task=bench bench=pipeline``: wall time of the main job, per stage, cold and warm.

    Every run is a fresh ``ofa-hw`` process (import and Hydra start-up count) in a temporary workspace:
    ``cold`` starts from an empty workspace (the LUT shipped in ``lut/`` is reused when its fingerprint
    matches, as for a new user), ``warm`` repeats it on the filled store, ``cold_no_shipped_lut`` starts
    empty and ignores ``lut/`` (so probes are profiled and the LUT is built). Per-stage times come from
    each run's ``results.json``; ``bench.params.overrides`` are added to every run.
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = output_dir()
    overrides = [str(o) for o in cfg.bench.params.get("overrides", [])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ofa_hw_bench_") as tmp:
        no_luts = Path(tmp) / "no_shipped_luts"
        no_luts.mkdir()
        plan = [
            ("cold", "a", []),
            ("warm", "a", []),
            ("cold_no_shipped_lut", "b", [f"lut.shipped_dir={no_luts}"]),
        ]
        for label, workspace, extra in plan:
            rundir = Path(tmp) / f"run_{label}"
            cmd = [
                sys.executable,
                "-m",
                "ofa_hw.cli",
                f"hydra.run.dir={rundir}",
                f"seed={int(cfg.seed)}",
                *overrides,
                *extra,
            ]
            env = {**os.environ, "OFA_HW_WORKSPACE": str(Path(tmp) / workspace)}
            print(f"bench pipeline ({label}): ofa-hw {' '.join(cmd[3:])}", flush=True)
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(
                    f"pipeline run ({label}) failed with exit {proc.returncode}:\n{proc.stderr[-3000:]}"
                )
            run_results = json.loads((rundir / "results.json").read_text())
            stages = {k: v for k, v in run_results["timings_s"].items() if k != "total"}
            rows.append(
                {
                    "run": label,
                    "wall_s": wall,
                    **{f"{k}_s": v for k, v in stages.items()},
                    "lut_source": run_results["lut"]["source"],
                    "profiled_subnets": run_results["lut"]["profiled_subnets"],
                    "best_measured_ms": run_results["search"]["best"]["measured_ms"],
                }
            )
            print(f"  {label}: {wall:.1f} s wall ({', '.join(f'{k} {v:.1f} s' for k, v in stages.items())})")

    stage_names = [k[:-2] for k in rows[0] if k.endswith("_s") and k != "wall_s"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    left = [0.0] * len(rows)
    for stage in stage_names:
        widths = [row[f"{stage}_s"] for row in rows]
        ax.barh([row["run"] for row in rows], widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths)]
    for i, row in enumerate(rows):
        ax.text(row["wall_s"], i, f" {row['wall_s']:.1f} s wall", va="center", fontsize=8)
    ax.axvline(60, color="k", ls="--", lw=1, label="60 s budget")
    ax.set_xlabel("seconds (2 cores)")
    ax.set_title("ofa-hw main job: time per stage")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(outdir / "pipeline_stages.png", dpi=110)
    plt.close(fig)

    worst = max(row["wall_s"] for row in rows)
    results = {
        "pipeline": {
            "cold_s": rows[0]["wall_s"],
            "warm_s": rows[1]["wall_s"],
            "cold_no_shipped_lut_s": rows[2]["wall_s"],
            "budget_s": 60.0,
            "meets_budget": worst <= 60.0,
            "overrides": overrides,
        },
        "rows": rows,
    }
    write_results(results, outdir)
    return results
