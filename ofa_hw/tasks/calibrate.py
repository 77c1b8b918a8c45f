"""``ofa-hw task=calibrate``: fit the DPU timing model to measured DNNDK profiles, write a preset.

Outputs (Hydra run dir): ``results.json`` (``calibration.node_mape``, ``calibration.total_error``,
``calibration.constants``, …), ``calibration_nodes.csv``, ``calibration_nodes.png`` and
``dpu/<name>.yaml``; the preset is also written to ``<workspace>/conf/dpu/<name>.yaml`` so that
``dpu=<name>`` selects it in later runs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ofa_hw.tasks import make_dpu, output_dir, workspace, write_results

log = logging.getLogger(__name__)


def _resolve(path: str) -> Path:
    from ofa_hw.data import DATA_DIR

    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.is_absolute() and (DATA_DIR / p).is_file():
        return DATA_DIR / p
    raise FileNotFoundError(f"calibrate.profiles: no file {path!r} (looked in the working directory and {DATA_DIR})")


def run(cfg: DictConfig) -> dict:
    from ofa_hw.dpu import DPUConfig, parse_dnndk_profile
    from ofa_hw.dpu.calibrate import FREE, calibrate, sanity_figures
    from ofa_hw.netspec import build_netspec
    from ofa_hw.space import get_space

    c = cfg.calibrate
    outdir = output_dir()
    base = make_dpu(cfg)
    if c.dexplorer:
        base = DPUConfig.from_dexplorer(_resolve(c.dexplorer).read_text(), name=c.name, base=base)
    profiles = list(c.profiles)
    archs = list(c.archs)
    if len(archs) != len(profiles):
        raise ValueError(f"calibrate: {len(profiles)} profiles but {len(archs)} archs (one arch per profile)")
    space = get_space(c.space)
    pairs = []
    for path, arch in zip(profiles, archs):
        file = _resolve(path)
        prof = parse_dnndk_profile(file.read_text(), source=str(file))
        arch_dict = json.loads(arch) if arch.strip().startswith("{") else space.named_arch(arch)
        pairs.append((build_netspec(space, arch_dict, name=prof.kernel), prof))
    free = list(c.free) or list(FREE)
    cal = calibrate(pairs, base, free=free, name=c.name)
    log.info("calibrated %s: node MAPE %.2f %%, total error %+.2f %%", c.name, 100 * cal.node_mape, 100 * cal.total_error)

    header = (
        f"DPU preset {c.name}: calibrated by `ofa-hw task=calibrate` on {', '.join(profiles)}\n"
        f"node MAPE {cal.node_mape:.4f}, total error {cal.total_error:+.4f}; fingerprint {cal.dpu.fingerprint()}"
    )
    text = cal.dpu.to_yaml(header)
    written = [outdir / "dpu" / f"{c.name}.yaml"]
    if c.write_workspace:
        written.append(workspace(cfg) / "conf" / "dpu" / f"{c.name}.yaml")
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    cal.table.to_csv(outdir / "calibration_nodes.csv", index=False)
    if c.plot:
        plot_nodes(cal.table, outdir / "calibration_nodes.png", title=f"{c.name}: node MAPE {100 * cal.node_mape:.1f} %, total {100 * cal.total_error:+.1f} %")
    results = {
        "calibration": {
            "node_mape": cal.node_mape,
            "total_error": cal.total_error,
            "max_node_error": float(cal.table["rel_error"].abs().max()),
            "constants": cal.constants,
            "before": cal.before,
            "nodes": len(cal.table),
            "profiles": profiles,
            "preset": c.name,
            "preset_paths": [str(p) for p in written],
            "fingerprint": cal.dpu.fingerprint(),
            "sanity": sanity_figures(cal.dpu),
        },
        "dpu": OmegaConf.to_container(OmegaConf.create(cal.dpu.to_dict())),
    }
    write_results(results, outdir)
    return results


def plot_nodes(table, path: Path, title: str = "") -> None:
    """Measured vs simulated runtime per node, and the relative error (one PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(table))
    fig, (a, b) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    a.bar(x - 0.2, table["measured_ms"], width=0.4, label="measured (ZCU102)", color="#4c72b0")
    a.bar(x + 0.2, table["simulated_ms"], width=0.4, label="simulated", color="#dd8452")
    a.set_ylabel("runtime (ms)")
    a.legend(loc="upper center")
    a.set_title(title)
    b.bar(x, 100 * table["rel_error"], color=np.where(table["rel_error"].abs() > 0.1, "#c44e52", "#55a868"))
    b.axhline(0, color="k", lw=0.6)
    b.set_ylabel("error (%)")
    labels = [n.split("_", 1)[-1] for n in table["name"]]
    b.set_xticks(x)
    b.set_xticklabels(labels, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
