"""Per-block features of a netspec on a DPU, and the analytic roofline every learned model corrects.

A block (the unit of OFA's LUT) is described by its shapes, its MACs, the MACs the DPU engines really
execute once channels and pixels are padded to the engines' parallelism (PP pixels x ICP x OCP for
the conv engine; PP/2 pixels x ICP channels for the depthwise engine), the bytes of feature maps and
weights it moves, and a roofline time ``sum over layers max(compute, memory) + nodes x overhead``.

The roofline is deliberately *independent of the simulator*: it uses only the DPU's parallelism,
clock and a nominal bandwidth, so a model trained to predict ``log(measured / roofline)`` learns the
hardware's deviations (small feature maps, large kernels, per-node floors) rather than re-learning
arithmetic, and carries over to resolutions it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ofa_hw.netspec import Block, Layer, NetSpec

#: Block kinds in a stable order (a numeric code is a feature; MobileNetV3's head kinds are appended).
BLOCK_KINDS: tuple[str, ...] = (
    *("Conv", "first", "expanded_conv", "Conv_1", "Logits", "AvgPool2D", "Conv_2"),
    *("ResConv", "MaxPool", "bottleneck"),  # ResNet-50 (appended: the MBConv codes stay)
)

#: The numeric feature columns, in the order the models see them (saved with every predictor).
FEATURES: tuple[str, ...] = (
    "kind",
    "in_hw",
    "in_c",
    "out_hw",
    "out_c",
    "mid_c",
    "expand",
    "kernel",
    "stride",
    "idskip",
    "macs_conv",
    "macs_dw",
    "macs_fc",
    "pad_eff_conv",
    "pad_eff_dw",
    "pix_eff",
    "dw_limit_ratio",
    "fm_kib",
    "w_kib",
    "spatial_tiles",
    "oc_tiles",
    "dw_rows",
    "t_conv_ms",
    "t_dw_ms",
    "t_misc_ms",
    "t_tile_ms",
    "t_row_ms",
    "t_comp_par_ms",
    "t_mem_ms",
    "t_fm_ms",
    "t_w_ms",
    "t_mem_excess_ms",
    "n_nodes",
    "t_roof_ms",
    "log_t_roof",
)


@dataclass(frozen=True)
class HwParams:
    """The few DPU numbers the features and the roofline need.

    Attributes:
        pp: Pixel parallelism of the conv engine.
        icp: Input-channel parallelism.
        ocp: Output-channel parallelism.
        freq_mhz: DPU clock.
        bw_gbs: Nominal DDR bandwidth of one core (GB/s).
        node_ms: Nominal fixed cost of one DPU node (instruction fetch, DMA setup).
        dw_limit: Depthwise compile limit ``k^2 * ceil(C / icp)`` (UG1414: the bank depth).
        fm_buffer_bytes: On-chip feature-map memory; larger layers are processed in spatial tiles.
    """

    pp: int = 8
    icp: int = 16
    ocp: int = 16
    freq_mhz: float = 300.0
    bw_gbs: float = 6.0
    node_ms: float = 0.02
    dw_limit: int = 2048
    fm_buffer_bytes: int = 2 * 8 * 16 * 2048

    @classmethod
    def from_dpu(cls, dpu: Any) -> HwParams:
        """Read a :class:`ofa_hw.dpu.DPUConfig` (parallelism, clock, nominal bandwidth and node cost,
        on-chip memory); attributes an object lacks keep the B4096 defaults."""
        if dpu is None:
            return cls()
        default = cls()

        def get(name: str, fallback: float) -> float:
            value = getattr(dpu, name, None)
            return fallback if value is None else value

        return cls(
            pp=int(get("pp", default.pp)),
            icp=int(get("icp", default.icp)),
            ocp=int(get("ocp", default.ocp)),
            freq_mhz=float(get("freq_mhz", default.freq_mhz)),
            bw_gbs=float(get("ddr_bw_gbps", default.bw_gbs)),
            node_ms=float(get("node_overhead_us", default.node_ms * 1e3)) / 1e3,
            dw_limit=int(get("bank_depth", default.dw_limit)),
            fm_buffer_bytes=int(get("fm_buffer_bytes", default.fm_buffer_bytes)),
        )

    @property
    def dw_pp(self) -> int:
        """Depthwise engine pixel parallelism: half the conv engine's (PG338)."""
        return max(1, self.pp // 2)

    def cycles_to_ms(self, cycles: float) -> float:
        return cycles / (self.freq_mhz * 1e3)

    def bytes_to_ms(self, nbytes: float) -> float:
        return nbytes / (self.bw_gbs * 1e6)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class _Node:
    """Running totals of one DPU node (a conv/fc layer plus the depthwise/pool layers fused after it)."""

    cycles: dict[str, float]
    fm_bytes: float = 0.0
    w_bytes: float = 0.0
    has_overhead: bool = True


def _layer_cost(layer: Layer, hw: HwParams) -> dict[str, float]:
    """Engine cycles, padded MACs, tile/row counts and bytes of one layer."""
    oh = ow = layer.out_hw
    out: dict[str, float] = {
        "conv": 0.0,
        "dw": 0.0,
        "misc": 0.0,
        "padded": 0.0,
        "oc_tiles": 0.0,
        "dw_rows": 0.0,
    }
    in_fm, out_fm = layer.in_hw**2 * layer.in_c, layer.out_hw**2 * layer.out_c
    spatial = max(1, _ceil(in_fm + out_fm, hw.fm_buffer_bytes))
    if layer.kind == "conv":
        if layer.in_c < hw.icp:
            # Channel augmentation: kernel columns x input channels are packed into the ICP lanes.
            window = layer.kernel * _ceil(layer.kernel * layer.in_c, hw.icp)
        else:
            window = layer.kernel**2 * _ceil(layer.in_c, hw.icp)
        out["conv"] = float(oh * _ceil(ow, hw.pp) * _ceil(layer.out_c, hw.ocp) * window)
        out["padded"] = out["conv"] * hw.pp * hw.icp * hw.ocp
        out["oc_tiles"] = float(_ceil(layer.out_c, hw.ocp) * spatial)
    elif layer.kind == "dwconv":
        out["dw"] = float(oh * _ceil(ow, hw.dw_pp) * _ceil(layer.out_c, hw.icp) * layer.kernel**2)
        out["padded"] = out["dw"] * hw.dw_pp * hw.icp
        out["dw_rows"] = float(oh * _ceil(layer.out_c, hw.icp))
    elif layer.kind == "fc":
        out["conv"] = float(_ceil(layer.in_c, hw.icp) * _ceil(layer.out_c, hw.ocp))
        out["padded"] = out["conv"] * hw.icp * hw.ocp
        out["oc_tiles"] = float(_ceil(layer.out_c, hw.ocp))
    else:  # pooling (global, max, average) and ResNet's adds on the pooling / element-wise engine
        out["misc"] = float(_ceil(layer.in_hw**2, hw.dw_pp) * _ceil(layer.in_c, hw.icp))
    if layer.residual:  # the shortcut add runs one pixel per cycle per ICP channels
        out["misc"] += float(oh * ow * _ceil(layer.out_c, hw.icp))
    out["in_fm"], out["out_fm"], out["spatial"] = float(in_fm), float(out_fm), float(spatial)
    out["res_fm"] = float(out_fm if layer.residual else 0)
    out["weights"] = float(layer.weights + 4 * layer.out_c) if layer.kind in ("conv", "dwconv", "fc") else 0.0
    return out


def block_kind(block: Block) -> str:
    """The block's kind, separating the fixed first MBConv (expand 1) from the elastic ones."""
    if block.kind == "expanded_conv" and block.space_block < 0:
        return "first"
    return block.kind


def block_features(block: Block, ns: NetSpec, hw: HwParams) -> dict[str, float]:
    """The numeric features (:data:`FEATURES`) of one block of ``ns``.

    The block's layers are grouped into DPU nodes as VAI_C fuses them (a node starts at each conv/fc
    layer; depthwise convs and pools join the node before them, whose intermediate feature map then
    stays on chip). Per node the roofline is ``max(compute, DDR time) + node cost``; the block's
    roofline is the sum over its nodes. A depthwise conv with no conv before it in the block (the
    first block's, fused into the stem's node) forms a node without its own fixed cost.
    """
    layers = ns.block_layers(block.index)
    tot = dict.fromkeys(
        ("conv", "dw", "misc", "padded_conv", "padded_dw", "oc_tiles", "dw_rows", "spatial"), 0.0
    )
    macs = {"conv": 0.0, "dw": 0.0, "fc": 0.0}
    nodes: list[_Node] = []
    mid_c, dw_ratio = block.in_c, 0.0
    for i, layer in enumerate(layers):
        c = _layer_cost(layer, hw)
        starts_node = layer.kind in ("conv", "fc") or not nodes
        if starts_node:
            nodes.append(
                _Node(
                    {"conv": 0.0, "dw": 0.0, "misc": 0.0},
                    fm_bytes=c["in_fm"],
                    has_overhead=layer.kind in ("conv", "fc"),
                )
            )
        node = nodes[-1]
        for engine in ("conv", "dw", "misc"):
            node.cycles[engine] += c[engine]
            tot[engine] += c[engine]
        node.w_bytes += c["weights"]
        node.fm_bytes += c["res_fm"]
        last_of_node = i == len(layers) - 1 or layers[i + 1].kind in ("conv", "fc")
        if last_of_node:
            node.fm_bytes += c["out_fm"]
        tot["oc_tiles"] += c["oc_tiles"]
        tot["dw_rows"] += c["dw_rows"]
        tot["spatial"] = max(tot["spatial"], c["spatial"])
        key = "fc" if layer.kind == "fc" else ("dw" if layer.kind == "dwconv" else "conv")
        macs[key] += layer.macs
        tot["padded_dw" if layer.kind == "dwconv" else "padded_conv"] += c["padded"]
        if layer.kind == "dwconv":
            mid_c = layer.in_c
            dw_ratio = layer.kernel**2 * _ceil(layer.in_c, hw.icp) / hw.dw_limit
    t_par = t_mem = t_fm = t_w = t_excess = t_roof = 0.0
    n_nodes = 0
    for node in nodes:
        engines = [hw.cycles_to_ms(v) for v in node.cycles.values()]
        compute = sum(engines)
        mem = hw.bytes_to_ms(node.fm_bytes + node.w_bytes)
        t_par += max(engines)
        t_mem += mem
        t_fm += hw.bytes_to_ms(node.fm_bytes)
        t_w += hw.bytes_to_ms(node.w_bytes)
        t_excess += max(0.0, mem - compute)
        t_roof += max(compute, mem) + (hw.node_ms if node.has_overhead else 0.0)
        n_nodes += node.has_overhead
    fm_total = sum(n.fm_bytes for n in nodes)
    w_total = sum(n.w_bytes for n in nodes)
    padded_macs = macs["conv"] + macs["fc"]
    out_pad = _ceil(block.out_hw, hw.pp) * hw.pp
    return {
        "kind": float(BLOCK_KINDS.index(block_kind(block))),
        "in_hw": float(block.in_hw),
        "in_c": float(block.in_c),
        "out_hw": float(block.out_hw),
        "out_c": float(block.out_c),
        "mid_c": float(mid_c),
        "expand": float(block.expand),
        "kernel": float(block.kernel),
        "stride": float(block.stride),
        "idskip": float(block.idskip),
        "macs_conv": macs["conv"],
        "macs_dw": macs["dw"],
        "macs_fc": macs["fc"],
        "pad_eff_conv": padded_macs / tot["padded_conv"] if tot["padded_conv"] else 1.0,
        "pad_eff_dw": macs["dw"] / tot["padded_dw"] if tot["padded_dw"] else 1.0,
        "pix_eff": block.out_hw / out_pad,
        "dw_limit_ratio": dw_ratio,
        "fm_kib": fm_total / 1024.0,
        "w_kib": w_total / 1024.0,
        "spatial_tiles": tot["spatial"],
        "oc_tiles": tot["oc_tiles"],
        "dw_rows": tot["dw_rows"],
        "t_conv_ms": hw.cycles_to_ms(tot["conv"]),
        "t_dw_ms": hw.cycles_to_ms(tot["dw"]),
        "t_misc_ms": hw.cycles_to_ms(tot["misc"]),
        # One cycle per tile / row: a fitted model multiplies these by the per-tile / per-row cost.
        "t_tile_ms": hw.cycles_to_ms(tot["oc_tiles"]),
        "t_row_ms": hw.cycles_to_ms(tot["dw_rows"]),
        "t_comp_par_ms": t_par,
        "t_mem_ms": t_mem,
        "t_fm_ms": t_fm,
        "t_w_ms": t_w,
        "t_mem_excess_ms": t_excess,
        "n_nodes": float(n_nodes),
        "t_roof_ms": t_roof,
        "log_t_roof": math.log(t_roof),
    }


def featurize(blocks: Iterable[tuple[Block, NetSpec]], hw: HwParams) -> pd.DataFrame:
    """Feature frame of ``(block, netspec)`` pairs: the :data:`FEATURES` columns plus ``key``.

    The ``key`` column (OFA LUT key) is what the ``lut`` model looks up; numeric models use
    :data:`FEATURES` only. Features of a key are cached, so repeated keys cost a dict lookup.
    """
    rows, keys = [], []
    for block, ns in blocks:
        rows.append(_cached_features(block, ns, hw))
        keys.append(block.key)
    frame = pd.DataFrame(rows, columns=list(FEATURES)) if rows else pd.DataFrame(columns=list(FEATURES))
    frame.insert(0, "key", keys)
    return frame


_CACHE: dict[tuple[str, HwParams], dict[str, float]] = {}


def _cached_features(block: Block, ns: NetSpec, hw: HwParams) -> dict[str, float]:
    # A key fixes every shape of the block (the first block and stem keys are unique per resolution),
    # so (key, hw) identifies the features.
    cache_key = (block_kind(block) + "|" + block.key, hw)
    feats = _CACHE.get(cache_key)
    if feats is None:
        if len(_CACHE) > 200_000:
            _CACHE.clear()
        feats = _CACHE[cache_key] = block_features(block, ns, hw)
    return feats


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str] = FEATURES) -> np.ndarray:
    """The numeric feature matrix (float64) of a frame from :func:`featurize`."""
    return frame.loc[:, list(columns)].to_numpy(dtype=np.float64)
