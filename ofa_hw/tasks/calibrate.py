"""``ofa-hw task=calibrate``: fit the DPU timing model to measured times, write a preset.

Measurements: DNNDK profiles (``calibrate.profiles`` + ``calibrate.archs``) and/or
``calibrate.measurements`` entries (a CSV of per-network hardware times, a vaitrace summary of any
version or a DNNDK log, each with the network it measured: see :mod:`ofa_hw.sim.measurements`). The
board's hardware comes from the ``dpu`` group, ``calibrate.dexplorer`` (DNNDK boards),
``calibrate.xdputil`` (VART boards) and ``calibrate.overrides``.

Outputs (Hydra run dir): ``results.json`` (``calibration.node_mape``, ``calibration.total_error``,
``calibration.constants``, …; ``dpu.toolchain`` and ``dpu.admitted_share``: the share of the ``space``
each toolchain generation compiles), ``calibration_nodes.csv``, ``calibration_nodes.png`` and
``dpu/<name>.yaml``; the preset is also written to ``<workspace>/conf/dpu/<name>.yaml`` so that
``dpu=<name>`` selects it in later runs. Every input error is one line naming the file (exit status 2).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ofa_hw.formats.dnndk import dpu_from_dexplorer
from ofa_hw.tasks import make_dpu, make_space, output_dir, workspace, write_results

log = logging.getLogger(__name__)


def _base_dpu(cfg: DictConfig):
    """The board's hardware: the ``dpu`` group, then dexplorer / xdputil output, then ``overrides``."""
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.formats.errors import ParseError
    from ofa_hw.formats.xdputil import dpu_from_xdputil
    from ofa_hw.sim.measurements import CalibrationInputError, read_text, resolve_file

    c = cfg.calibrate
    base = make_dpu(cfg)
    try:
        if c.dexplorer:
            path = resolve_file(c.dexplorer)
            base = dpu_from_dexplorer(read_text(path), name=c.name, base=base)
        if c.xdputil:
            path = resolve_file(c.xdputil)
            base = dpu_from_xdputil(read_text(path), name=c.name, base=base, source=str(path))
    except ParseError as exc:
        msg = str(exc)
        raise CalibrationInputError(msg if str(path) in msg else f"{path}: {msg}") from None
    overrides = OmegaConf.to_container(c.overrides, resolve=True) if c.overrides else {}
    if not isinstance(overrides, dict):
        raise CalibrationInputError("calibrate.overrides: expected a mapping of DPU fields")
    try:
        dpu = DPUConfig.from_dict(
            {**base.to_dict(), **{str(k): v for k, v in overrides.items()}, "name": c.name}
        )
    except (TypeError, ValueError) as exc:
        raise CalibrationInputError(f"calibrate.overrides: {exc}") from None
    if not c.dexplorer and not c.xdputil:
        log.warning(assumed_dpu_warning(dpu, cfg.dpu.get("name", "?")))
    return dpu


def assumed_dpu_warning(dpu, preset: str) -> str:
    """The one-line warning for a calibration without the board's own description: which DPU is assumed."""
    return (
        f"calibrate: no calibrate.dexplorer or calibrate.xdputil output of the board; its measurements are "
        f"fitted as the DPU of dpu={preset}: {dpu.cores} x {dpu.arch} @ {dpu.freq_mhz:g} MHz, target "
        f"{dpu.target_version}, {dpu.toolchain} toolchain. If the board is another (e.g. an Ultra96 B2304 "
        f"with Vitis-AI >= 1.3), give its `xdputil query` (calibrate.xdputil=...) or dpu=<its preset>"
    )


def _dnndk_pairs(cfg: DictConfig, base):
    """Measurements of the ``profiles`` + ``archs`` lists (DNNDK profiles of archs of ``calibrate.space``)."""
    from ofa_hw.dpu.errors import CompileError
    from ofa_hw.formats import parse_dnndk_profile
    from ofa_hw.formats.errors import ParseError
    from ofa_hw.netspec import build_netspec
    from ofa_hw.sim import compile_net
    from ofa_hw.sim.calibrate import Measurement
    from ofa_hw.sim.measurements import CalibrationInputError, read_text, resolve_file
    from ofa_hw.space import ArchError, get_space

    c = cfg.calibrate
    profiles, archs = list(c.profiles), list(c.archs)
    if len(archs) != len(profiles):
        raise CalibrationInputError(
            f"calibrate: {len(profiles)} profiles but {len(archs)} archs (one arch per profile)"
        )
    if not profiles:
        return []
    try:
        space = get_space(c.space)
    except KeyError as exc:
        raise CalibrationInputError(f"calibrate.space: {exc.args[0]}") from None
    out = []
    for path_str, arch in zip(profiles, archs):
        path = resolve_file(path_str)
        try:
            prof = parse_dnndk_profile(read_text(path), source=str(path))
            arch_dict = json.loads(arch) if arch.strip().startswith("{") else space.named_arch(arch)
            ns = build_netspec(space, arch_dict, name=prof.kernel)
            out.append(Measurement.from_profile(compile_net(ns, base), prof, label=str(path)))
        except CalibrationInputError:
            raise
        except ParseError as exc:
            raise CalibrationInputError(str(exc)) from None
        except (ArchError, KeyError, json.JSONDecodeError) as exc:
            raise CalibrationInputError(f"{path}: arch {arch!r}: {exc}") from None
        except CompileError as exc:
            raise CalibrationInputError(
                f"{path}: the profiled network does not compile for this DPU: {exc}"
            ) from None
        except ValueError as exc:
            raise CalibrationInputError(f"{path}: {str(exc).splitlines()[0]}") from None
    return out


def run(cfg: DictConfig) -> dict:
    from ofa_hw.search.compilable import admitted_line, admitted_share
    from ofa_hw.sim.calibrate import calibrate, per_network_figures, sanity_figures
    from ofa_hw.sim.measurements import CalibrationInputError, load_sources, sources_from_config

    c = cfg.calibrate
    outdir = output_dir()
    base = _base_dpu(cfg)
    data = _dnndk_pairs(cfg, base)
    loaded = load_sources(sources_from_config(c.measurements), base) if c.measurements else None
    if loaded is not None:
        data += loaded.measurements
    if not data:
        raise CalibrationInputError(
            "calibrate: no measurements (give calibrate.profiles + archs or calibrate.measurements, "
            "or a shipped set: calibrate=seed | calibrate=ultra96_b2304)"
        )
    cal = calibrate(data, base, free=list(c.free) or None, name=c.name)
    dpu = cal.dpu
    task_overhead = None
    if loaded is not None and loaded.task_overheads_us:
        # Software minus hardware time of each run (VART execute_async + wait): the per-task cost.
        task_overhead = float(round(np.median(loaded.task_overheads_us), 3))
        dpu = dpu.replace(task_overhead_us=task_overhead)
    log.info(
        "calibrated %s: MAPE %.2f %%, total error %+.2f %%",
        c.name,
        100 * cal.node_mape,
        100 * cal.total_error,
    )

    header = (
        f"DPU preset {c.name}: calibrated by `ofa-hw task=calibrate` on {dpu.calibrated_on}\n"
        f"MAPE {cal.node_mape:.4f} over {len(cal.table)} measured parts, total error {cal.total_error:+.4f}; "
        f"fingerprint {dpu.fingerprint()}"
    )
    text = dpu.to_yaml(header)
    written = [outdir / "dpu" / f"{c.name}.yaml"]
    if c.write_workspace:
        written.append(workspace(cfg) / "conf" / "dpu" / f"{c.name}.yaml")
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    cal.table.to_csv(outdir / "calibration_nodes.csv", index=False)
    if c.plot:
        plot_nodes(
            cal.table,
            outdir / "calibration_nodes.png",
            title=f"{c.name}: MAPE {100 * cal.node_mape:.1f} %, total {100 * cal.total_error:+.1f} %",
        )
    admitted = admitted_share(make_space(cfg), dpu, n=int(c.admitted_samples), seed=int(cfg.seed))
    rel = cal.table["rel_error"].abs()
    results = {
        "calibration": {
            "node_mape": cal.node_mape,
            "median_ape": float(rel.median()),
            "total_error": cal.total_error,
            "max_node_error": float(rel.max()),
            "worst": str(cal.table.loc[rel.idxmax(), "name"]),
            "constants": cal.constants,
            "task_overhead_us": task_overhead,
            "before": cal.before,
            "nodes": len(cal.table),
            "profiles": list(c.profiles),
            "measurements": loaded.files if loaded is not None else [],
            "preset": c.name,
            "preset_paths": [str(p) for p in written],
            "fingerprint": dpu.fingerprint(),
            "assumed_dpu": None
            if (c.dexplorer or c.xdputil)
            else f"{dpu.arch} @ {dpu.freq_mhz:g} MHz, {dpu.toolchain} (dpu={cfg.dpu.get('name', '?')})",
            "per_network": per_network_figures(cal.table),
            "sanity": sanity_figures(dpu),
        },
        "dpu": {**dpu.to_dict(), "admitted_share": admitted},
    }
    write_results(results, outdir)
    print(
        f"calibrated {c.name}: MAPE {100 * cal.node_mape:.2f} % over {len(cal.table)} measured parts "
        f"(before {100 * cal.before['node_mape']:.2f} %), total {100 * cal.total_error:+.2f} %"
    )
    print(admitted_line(admitted))
    print(f"preset: {', '.join(str(p) for p in written)} (select it with dpu={c.name})")
    print(
        f"run dir: {outdir} (results.json, calibration_nodes.csv{', calibration_nodes.png' if c.plot else ''})"
    )
    return results


def plot_nodes(table, path: Path, title: str = "") -> None:
    """Measured vs simulated runtime per measured part, and the relative error (one PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(table))
    fig, (a, b) = plt.subplots(
        2, 1, figsize=(max(11, 0.3 * len(table)), 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    a.bar(x - 0.2, table["measured_ms"], width=0.4, label="measured", color="#4c72b0")
    a.bar(x + 0.2, table["simulated_ms"], width=0.4, label="simulated (calibrated)", color="#dd8452")
    a.set_ylabel("runtime (ms)")
    a.legend(loc="upper left", framealpha=0.9)
    a.set_title(title)
    b.bar(x, 100 * table["rel_error"], color=np.where(table["rel_error"].abs() > 0.1, "#c44e52", "#55a868"))
    b.axhline(0, color="k", lw=0.6)
    b.set_ylabel("error (%)")
    labels = [_short_label(n) for n in table["name"]]
    b.set_xticks(x)
    b.set_xticklabels(labels, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _short_label(name: str) -> str:
    """Axis label: node names without the net prefix, block names without the ``ResidualBlock-`` prefix."""
    if name.startswith("ResidualBlock-"):
        return (
            name[len("ResidualBlock-") :]
            .replace("-act_h_swish", "-hs")
            .replace("-act_relu", "-re")
            .replace("-use_se_True", "-se")
            .replace("-use_se_False", "")
        )
    return name.split("_", 1)[-1] if "_" in name and not name.startswith("Conv_in") else name
