"""The shipped ``ofa_mbv3_w12`` / ``ultra96_b2304`` LUT against the 22 real Ultra96 blocks we hold.

For every real block (``ofa_hw/data/ultra96_b2304/ofa_mbv3_blocks_calibration.csv``) the LUT key of the
same block inside an ``ofa_mbv3_w12`` network is looked up (OFA's ``MBv3LatencyTable`` key: input,
output, middle channels, kernel, stride, identity skip, SE, h-swish), and its mean is compared with the
board's DPU hardware time (``hw_rt_ms``) and software time (``avg_ms``).

Caveats written into the CSV: the real blocks were compiled without the residual add (``idskip`` keys
of the space include it) and the real stem uses ReLU where the space's stem uses h-swish; and the
simulator's constants were *fitted on these same 22 blocks*, so this is an in-sample check of the
LUT's consistency with its calibration data, not a held-out validation.

Run from the repository root: ``python experiments/mbv3_ultra96_lut/run.py``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ofa_hw.dpu import DPUConfig
from ofa_hw.frontends.mbv3_blocks import parse_block
from ofa_hw.lut import LatencyTable
from ofa_hw.lut.manage import SHIPPED_DIR
from ofa_hw.netspec import conv_key, mbv3_key
from ofa_hw.space import get_space

HERE = Path(__file__).parent
DATA = Path(__file__).parents[2] / "ofa_hw" / "data" / "ultra96_b2304" / "ofa_mbv3_blocks_calibration.csv"


def space_flags(space, in_c: int, out_c: int, stride: int) -> tuple[int, int, int] | None:
    """``(idskip, se, hs)`` of a block with these channels/stride in ``space`` (None: no such position)."""
    widths = space.widths
    sk = space.skeleton
    if (in_c, out_c, stride) == (widths[0], widths[1], 1):  # the fixed first block (expand 1)
        return int(sk.first_shortcut and in_c == out_c), 0, int(sk.first_act == "hswish")
    cin = widths[1]
    for stage, s in enumerate(sk.stage_strides):
        cout = widths[2 + stage]
        for pos in range(space.max_depth):
            stride_here = s if pos == 0 else 1
            c_in = cin if pos == 0 else cout
            if (c_in, cout, stride_here) == (in_c, out_c, stride):
                return (
                    int(stride == 1 and in_c == out_c),
                    int(sk.stage_se[stage]),
                    int(sk.stage_acts[stage] == "hswish"),
                )
        cin = cout
    return None


def main() -> dict:
    space, dpu = get_space("ofa_mbv3_w12"), DPUConfig.from_preset("ultra96_b2304")
    path = SHIPPED_DIR / f"ofa_mbv3_w12-ultra96_b2304-{dpu.fingerprint()}.csv"
    table = LatencyTable.load(path, space=space, dpu_fingerprint=dpu.fingerprint())
    rows = []
    for rec in csv.DictReader(DATA.open()):
        block = parse_block(rec["block"])
        note = []
        if block.kind == "stem":
            key = conv_key(block.hw, block.in_c, block.out_hw, block.out_c)
            if block.act != space.skeleton.stem_act:
                note.append(f"real stem act {block.act}, space stem {space.skeleton.stem_act}")
        else:
            flags = space_flags(space, block.in_c, block.out_c, block.stride)
            if flags is None:
                rows.append({"block": rec["block"], "key": "", "note": "no such position in ofa_mbv3_w12"})
                continue
            idskip, se, hs = flags
            if (se, hs) != (int(block.se), int(block.act == "hswish")):
                note.append("real SE/act differ from the space's stage")
            if idskip:
                note.append("LUT key includes the residual add; the real block has none")
            key = mbv3_key(
                block.hw,
                block.in_c,
                block.out_hw,
                block.out_c,
                block.mid,
                block.kernel,
                block.stride,
                idskip,
                se,
                hs,
            )
        lut_ms = table.lookup(key)["mean_ms"] if key in table else float("nan")
        hw_ms, sw_ms = float(rec["hw_rt_ms"]), float(rec["avg_ms"])
        rows.append(
            {
                "block": rec["block"],
                "key": key,
                "lut_ms": round(lut_ms, 4),
                "board_hw_ms": hw_ms,
                "board_avg_ms": sw_ms,
                "err_vs_hw": round(lut_ms / hw_ms - 1, 4),
                "note": "; ".join(note),
            }
        )
    with (HERE / "blocks.csv").open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["block", "key", "lut_ms", "board_hw_ms", "board_avg_ms", "err_vs_hw", "note"]
        )
        writer.writeheader()
        writer.writerows(rows)
    err = np.array([r["err_vs_hw"] for r in rows if r.get("key") and np.isfinite(r["lut_ms"])])
    clean = np.array(
        [r["err_vs_hw"] for r in rows if r.get("key") and np.isfinite(r["lut_ms"]) and not r["note"]]
    )
    results = {
        "lut": path.name,
        "blocks": len(rows),
        "matched": int(len(err)),
        "mape_vs_hw": float(np.mean(np.abs(err))),
        "max_abs_err_vs_hw": float(np.max(np.abs(err))),
        "exact_blocks": int(len(clean)),
        "mape_vs_hw_exact_blocks": float(np.mean(np.abs(clean))) if len(clean) else None,
        "truth": "Ultra96-v2 B2304 hw_rt_ms (vaitrace), the simulator's calibration set (in-sample)",
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
