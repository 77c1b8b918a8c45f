"""``ofa-hw task=lut``: the LUT of the configured space on the configured DPU, reused or (re)built.

Writes into Hydra's run directory: a copy of the LUT CSV + JSON, its OFA YAML export, the coverage
(``lut_coverage.csv``, ``lut_coverage.png``), the validation rows (``lut_validation.csv``) and
``results.json`` with ``lut.path``, ``lut.keys``, ``lut.coverage``, ``lut.profiled_subnets``,
``lut.validation_mape`` (fractions), ``dpu.*`` and ``timings_s``.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from ofa_hw.lut.manage import LutResult, ensure_lut
from ofa_hw.tasks import make_backend, make_dpu, make_space, open_store, output_dir, write_results

log = logging.getLogger(__name__)


def lut_for_config(cfg: DictConfig, rundir=None) -> LutResult:
    """The LUT of ``cfg``'s space and DPU (for other tasks, e.g. the pipeline), per ``cfg.lut``."""
    space, dpu = make_space(cfg), make_dpu(cfg)
    return ensure_lut(
        space,
        dpu,
        cfg.lut,
        backend=lambda: make_backend(cfg, dpu),
        store=lambda: open_store(cfg),
        runs=int(cfg.backend.runs),
        rundir=rundir,
        backend_name=str(cfg.backend.name),
    )


def run(cfg: DictConfig) -> dict:
    outdir = output_dir()
    result = lut_for_config(cfg, rundir=outdir)
    summary = result.summary()
    cov = result.coverage
    mape = summary["validation_mape"]
    print(
        f"LUT {result.source}: {result.path}\n"
        f"  keys {summary['keys']}, coverage {cov['fraction']:.1%} of {cov['compilable']} compilable keys "
        f"({cov['uncompilable']} uncompilable), {summary['profiled_subnets']} profiled subnets\n"
        f"  validation: LUT sum vs measured on {summary['validation_subnets']} subnets, MAPE "
        + (f"{mape:.2%}" if mape is not None else "n/a")
        + f"\n  wall time {result.timings_s['total_s']:.1f} s"
    )
    dpu = make_dpu(cfg)
    results = {
        "lut": summary,
        "dpu": {"preset": dpu.name, "fingerprint": dpu.fingerprint()},
        "timings_s": result.timings_s,
    }
    write_results(results, outdir)
    return results
