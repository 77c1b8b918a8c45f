"""DPU configuration: the DPUCZDX8G architecture, clock, features and the timing model's constants.

A :class:`DPUConfig` fully describes one simulated (or real) DPU: the hardware as ``dexplorer -w``
reports it plus the handful of physical constants of :mod:`ofa_hw.sim.timing`. Presets live as Hydra
configs in ``ofa_hw/conf/dpu/<name>.yaml`` (and ``<workspace>/conf/dpu/`` for calibrated ones), so a
preset, a command-line override (``dpu.freq_mhz=200``) and :meth:`DPUConfig.replace` all describe
the same object. :meth:`DPUConfig.fingerprint` hashes every field that changes latency.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ofa_hw.dpu.generations import Toolchain, get_toolchain

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "dpu"


@dataclass(frozen=True)
class ArchSpec:
    """Parallelism of one DPUCZDX8G size (PG338): peak ops/cycle = 2·PP·ICP·OCP."""

    pp: int
    icp: int
    ocp: int

    @property
    def ops_per_cycle(self) -> int:
        return 2 * self.pp * self.icp * self.ocp


ARCHS: dict[str, ArchSpec] = {
    "B512": ArchSpec(4, 8, 8),
    "B800": ArchSpec(4, 10, 10),
    "B1024": ArchSpec(8, 8, 8),
    "B1152": ArchSpec(4, 12, 12),
    "B1600": ArchSpec(8, 10, 10),
    "B2304": ArchSpec(8, 12, 12),
    "B3136": ArchSpec(8, 14, 14),
    "B4096": ArchSpec(8, 16, 16),
}

#: Depth (words) of one on-chip bank; VAI_C's weight limit ``k_w·k_h·ceil(Cin/ICP) ≤ depth`` comes from it.
BANK_DEPTH = 2048

#: Fields that describe the config but do not change latency (excluded from the fingerprint).
NON_LATENCY_FIELDS = ("name", "calibrated_on")
#: Fields added after the first shipped fingerprints; they enter the hash only when they differ from
#: their default (which reproduces the earlier model exactly), so existing presets and LUTs stay valid.
LATER_FIELDS = (
    "toolchain",
    "weight_bw_ratio",
    "fm_keep_fraction",
    "hard_act_passes",
    "node_overhead_us_per_mb",
    "node_overhead_knee_kb",
    "weight_burst_bytes",
    "scatter_burst_bytes",
)
#: Significant digits of every float constant in a saved preset and in the fingerprint: a refit that
#: differs from the shipped preset in the 7th digit (float noise of the optimiser) is the same preset.
SIGNIFICANT_DIGITS = 5


def round_sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (``6.2005378 → 6.2005``; below 1e-9: 0)."""
    return float(f"{round(float(value), 9):.{digits}g}")


@dataclass(frozen=True)
class DPUConfig:
    """One DPU configuration (DPUCZDX8G) and the constants of its timing model.

    Hardware (what ``dexplorer -w`` shows):
        name: Preset name (``zcu102_b4096``); not part of the fingerprint.
        arch: ``B512`` … ``B4096`` (sets PP/ICP/OCP).
        target_version: DNNDK target version (``v1.4.0``) or DPU IP version (``v4.1.0``, ``xdputil query``).
            IP v4.x runs hard-swish, hard-sigmoid and the element-wise multiply of squeeze-excite.
        toolchain: Compiler generation, ``dnndk`` (VAI_C 1.x) or ``xir`` (``vai_c_xir``, Vitis-AI >= 1.3):
            sets the compile limits and whether tensors between nodes stay on chip (:mod:`ofa_hw.dpu.generations`).
        freq_mhz: DPU clock.
        cores: DPU cores on the board (one task runs on one core).
        ram_usage: ``low`` | ``high``; high doubles the feature-map bank depth (fewer spatial tiles).
        depthwise_conv, depthwise_relu6, conv_relu6, conv_leakyrelu, channel_augmentation, avg_pool,
        softmax: Optional features; an operator whose feature is off runs on the CPU.

    Timing-model constants (fitted by ``ofa-hw task=calibrate``; see ``experiments/calibration``):
        ddr_bw_gbps: Effective DDR bandwidth of one core for feature maps and code (GB/s).
        weight_bw_ratio: Bandwidth of weight loads as a multiple of ``ddr_bw_gbps`` (weights and feature
            maps take different load paths and burst sizes; 1: one bandwidth for all).
        node_overhead_us: Fixed cost of one DPU node: instruction fetch, DDR latency, sync (µs).
        tile_overhead_cycles: Pipeline fill/drain and weight-load handshake per output-channel tile (cycles).
        dw_row_cycles: Pipeline latency per depthwise output row and channel group (cycles).
        node_overhead_us_per_mb: Node overhead that grows with the node's DDR traffic (µs per MB): DMA
            descriptors and DDR page misses per transfer; the node overhead is ``a + b·MB``.
        node_overhead_knee_kb: The fixed node overhead shrinks for tiny nodes as
            ``1 − exp(−node kB / knee)`` (a few-kB node pays a few µs); 0: a constant floor.
        weight_burst_bytes: DDR latency of one weight-tile load, in bytes of transfer: many small weight
            tiles load below the weight bandwidth, large streamed ones (FC, 1×1 convs on a 1×1 map) near it.
        scatter_burst_bytes: Least DDR transfer per output pixel of a strided transposed conv (its
            sub-images are written interleaved, one pixel of ``Cout`` bytes at a time); 0: no penalty.
        fm_keep_fraction: Share of the on-chip feature-map buffer a tensor passed between two nodes of
            one subgraph may take and stay on chip (``xir``); a bigger one spills to DDR (written, read back).
        hard_act_passes: Cost of hard-swish / hard-sigmoid in element-wise passes over the output
            (``ICP`` channels × 1 pixel per cycle, as the element-wise add) on top of the op itself.
        mem_overlap: Fraction of the shorter of compute and DDR time hidden under the longer (0..1).
        engine_overlap: Fraction of the shorter engine's time hidden when a node uses several engines.
        task_overhead_us: Per-task cost outside profile mode (dpuRunTask call, cache flush, IRQ) (µs).
        cpu_gops: Throughput of the ARM cores for operators that fall back to the CPU (GOPS).
        jitter: Relative run-to-run standard deviation of one node's runtime.
        calibrated_on: Provenance of the constants (profiles they were fitted to); not fingerprinted.
    """

    name: str = "custom"
    arch: str = "B4096"
    target_version: str = "v1.4.0"
    toolchain: str = "dnndk"
    freq_mhz: float = 300.0
    cores: int = 1
    ram_usage: str = "low"
    depthwise_conv: bool = True
    depthwise_relu6: bool = True
    conv_relu6: bool = True
    conv_leakyrelu: bool = True
    channel_augmentation: bool = True
    avg_pool: bool = True
    softmax: bool = False
    ddr_bw_gbps: float = 6.2
    weight_bw_ratio: float = 1.0
    node_overhead_us: float = 17.0
    node_overhead_us_per_mb: float = 0.0
    node_overhead_knee_kb: float = 0.0
    weight_burst_bytes: float = 0.0
    scatter_burst_bytes: float = 0.0
    tile_overhead_cycles: float = 487.0
    dw_row_cycles: float = 8.4
    mem_overlap: float = 0.9
    engine_overlap: float = 0.0
    fm_keep_fraction: float = 0.5
    hard_act_passes: float = 1.0
    task_overhead_us: float = 250.0
    cpu_gops: float = 2.0
    jitter: float = 0.01
    calibrated_on: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"DPUConfig.arch: unknown DPU arch {self.arch!r}; choose one of {sorted(ARCHS)}")
        get_toolchain(self.toolchain)
        if self.ram_usage not in ("low", "high"):
            raise ValueError(f"DPUConfig.ram_usage: {self.ram_usage!r} is not 'low' or 'high'")
        for f in ("freq_mhz", "ddr_bw_gbps", "weight_bw_ratio", "cpu_gops"):
            if not getattr(self, f) > 0:
                raise ValueError(f"DPUConfig.{f}: must be > 0, got {getattr(self, f)!r}")
        if self.cores < 1:
            raise ValueError(f"DPUConfig.cores: must be >= 1, got {self.cores!r}")
        for f in (
            "node_overhead_us",
            "node_overhead_us_per_mb",
            "node_overhead_knee_kb",
            "weight_burst_bytes",
            "scatter_burst_bytes",
            "tile_overhead_cycles",
            "dw_row_cycles",
            "hard_act_passes",
            "task_overhead_us",
            "jitter",
        ):
            if getattr(self, f) < 0:
                raise ValueError(f"DPUConfig.{f}: must be >= 0, got {getattr(self, f)!r}")
        for f in ("mem_overlap", "engine_overlap", "fm_keep_fraction"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ValueError(f"DPUConfig.{f}: must be within [0, 1], got {getattr(self, f)!r}")

    # -- derived hardware figures -------------------------------------------------------------
    @property
    def spec(self) -> ArchSpec:
        return ARCHS[self.arch]

    @property
    def pp(self) -> int:
        return self.spec.pp

    @property
    def icp(self) -> int:
        return self.spec.icp

    @property
    def ocp(self) -> int:
        return self.spec.ocp

    @property
    def peak_gops(self) -> float:
        """Peak of one core as DNNDK computes it (the Utilization column's denominator)."""
        return self.freq_mhz * self.spec.ops_per_cycle / 1000.0

    @property
    def tools(self) -> Toolchain:
        """The toolchain generation's compiler behaviour (limits, on-chip tensors)."""
        return get_toolchain(self.toolchain)

    @property
    def ip_major(self) -> int:
        """Major version of ``target_version`` (1 for DNNDK targets, 3/4 for DPU IP versions)."""
        m = re.match(r"\s*v?(\d+)", self.target_version)
        return int(m.group(1)) if m else 0

    @property
    def hard_activations(self) -> bool:
        """Hard-swish, hard-sigmoid and element-wise multiply run on the DPU (IP v4.x; assumption: not
        before v4.0 — the Ultra96's IP v4.1 is the observation, PG338 v4.0 the first to list them)."""
        return self.ip_major >= 4

    @property
    def dw_pp(self) -> int:
        """Pixel parallelism of the depthwise engine: half the conv engine's (PG338)."""
        return max(1, self.pp // 2)

    @property
    def bank_depth(self) -> int:
        return BANK_DEPTH

    @property
    def fm_buffer_bytes(self) -> int:
        """On-chip feature-map memory: 2 bank groups × PP banks × ICP bytes × depth (×2 for high RAM)."""
        return 2 * self.pp * self.icp * BANK_DEPTH * (2 if self.ram_usage == "high" else 1)

    # -- construction -------------------------------------------------------------------------
    def replace(self, **changes: Any) -> DPUConfig:
        """A copy with ``changes`` applied (unknown field names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """All fields, as in the YAML presets and the ``dpu`` config group."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DPUConfig:
        """Build from a dict of fields (a composed ``dpu`` config); unknown keys are an error."""
        d = {k: v for k, v in dict(d).items() if k not in ("defaults", "_target_")}
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"DPUConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        casts = {"float": float, "int": int, "bool": bool, "str": str}
        out = {}
        for k, v in d.items():
            cast = casts.get(str(known[k].type))
            if v is not None and cast is not None:
                if cast is bool and not isinstance(v, bool):
                    raise ValueError(f"DPUConfig.{k}: expected a bool, got {v!r}")
                try:
                    v = cast(v)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"DPUConfig.{k}: cannot convert {v!r} to {cast.__name__}") from exc
            out[k] = v
        return cls(**out)

    @classmethod
    def from_yaml(cls, path: str | Path) -> DPUConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of DPUConfig fields")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_preset(cls, name: str, search_dirs: Iterable[str | Path] | None = None) -> DPUConfig:
        """Load preset ``name`` from ``search_dirs``, ``$OFA_HW_WORKSPACE/conf/dpu`` and the shipped presets."""
        for d in preset_dirs(search_dirs):
            path = Path(d) / f"{name}.yaml"
            if path.is_file():
                return cls.from_yaml(path)
        raise KeyError(f"unknown DPU preset {name!r}; available: {list_presets(search_dirs)}")

    # -- identity ------------------------------------------------------------------------------

    def latency_fields(self) -> dict[str, Any]:
        """Fields that change latency or compilability (what :meth:`fingerprint` hashes)."""
        defaults = {f.name: f.default for f in fields(self)}
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in NON_LATENCY_FIELDS and not (k in LATER_FIELDS and v == defaults[k])
        }

    def fingerprint(self) -> str:
        """12 hex chars hashing every latency-relevant field (stable across runs and platforms); floats
        enter at :data:`SIGNIFICANT_DIGITS` significant digits, as presets are saved."""
        canon = {k: (round_sig(v) if isinstance(v, float) else v) for k, v in self.latency_fields().items()}
        blob = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_yaml(self, header: str | None = None) -> str:
        """Preset YAML (with the ``dpu_schema`` defaults list) that ``dpu=<name>`` can select; floats
        rounded to :data:`SIGNIFICANT_DIGITS` significant digits (a refit reproduces the file byte for byte)."""
        lines = [f"# {line}" for line in (header or "").splitlines()]
        lines += ["defaults:", "  - dpu_schema", "  - _self_"]
        data = {k: (round_sig(v) if isinstance(v, float) else v) for k, v in self.to_dict().items()}
        body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=200)
        return "\n".join(lines) + "\n" + body


def preset_dirs(search_dirs: Iterable[str | Path] | None = None) -> list[Path]:
    """Where presets are looked up, first match wins: ``search_dirs``, the workspace's ``conf/dpu``, shipped.

    The workspace is ``$OFA_HW_WORKSPACE`` (default ``.ofa_hw``, as for the CLI), and its presets win over
    the shipped ones of the same name, exactly as ``dpu=<name>`` on the command line resolves them
    (:mod:`ofa_hw.schemas.searchpath`): a board calibrated under a shipped name is the one used.
    """
    dirs = [Path(d) for d in (search_dirs or [])]
    dirs.append(Path(os.environ.get("OFA_HW_WORKSPACE") or ".ofa_hw").expanduser() / "conf" / "dpu")
    dirs.append(CONF_DIR)
    return dirs


def list_presets(search_dirs: Iterable[str | Path] | None = None) -> list[str]:
    """Names of every preset in :func:`preset_dirs` (a workspace preset shadowing a shipped one counts once)."""
    names: set[str] = set()
    for d in preset_dirs(search_dirs):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)
