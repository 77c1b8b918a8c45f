"""Ship each calibrated preset's fit and held-out figures as package data: ``ofa_hw/data/calibration/<preset>.json``.

Reads the committed outputs of this folder (all against **real board** measurements):

* ``results/results.json`` — ``ofa-hw task=calibrate calibrate=seed`` (the ``zcu102_b4096`` fit);
* ``zcu102_b4096/new.json`` — leave-one-network-out on the ZCU102 (``zcu102_networks.py``);
* ``ultra96_b2304/results.json`` — ``ofa-hw task=calibrate calibrate=ultra96_b2304``;
* ``ultra96_b2304/leave_out.json`` — leave-one-block-out on the Ultra96 (``leave_out.py``).

The report (``ofa_hw.provenance.calibration_fit``) reads the shipped file when its fingerprint is the
selected preset's, so an installed wheel shows the fit error without this folder. Run from the
repository root after regenerating the inputs::

    python experiments/calibration/ship_fit.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "ofa_hw" / "data" / "calibration"


def _fit(results: dict, command: str, measured_on: str) -> dict:
    cal = results["calibration"]
    return {
        "preset": cal["preset"],
        "fingerprint": cal["fingerprint"],
        "measured_on": measured_on,
        "command": command,
        "fit": {
            "node_mape": round(cal["node_mape"], 4),
            "total_error": round(cal["total_error"], 4),
            "parts": cal["nodes"],
            "worst": cal["worst"],
            "per_network": cal.get("per_network", []),
        },
    }


def zcu102() -> dict:
    out = _fit(
        json.loads((HERE / "results" / "results.json").read_text()),
        "ofa-hw task=calibrate calibrate=seed",
        "real ZCU102 board (3 x B4096 @ 300 MHz, DNNDK profile-mode node times): ProxylessNAS-Mobile 0.5 "
        "(42 nodes), FCN8 (21 nodes) and 3 nodes of fcn8ups",
    )
    lono = json.loads((HERE / "zcu102_b4096" / "new.json").read_text())
    figures = []
    for fit, train, judged in (("seed_to_fcn8", "seed", "fcn8"), ("fcn8_to_seed", "fcn8", "seed")):
        s = lono[fit][judged]
        figures.append({"fit_on": train, "predicted": judged, **{k: round(s[k], 4) for k in ("nodes", "node_mape", "total_error")},
                        "worst": s["worst"]})  # fmt: skip
    out["held_out"] = {
        "kind": "leave-one-network-out",
        "node_mape": round(sum(f["node_mape"] for f in figures) / len(figures), 4),
        "figures": figures,
        "source": "experiments/calibration/zcu102_b4096/README.md",
    }
    return out


def ultra96() -> dict:
    out = _fit(
        json.loads((HERE / "ultra96_b2304" / "results.json").read_text()),
        "ofa-hw task=calibrate calibrate=ultra96_b2304",
        "real Ultra96-v2 board (B2304 @ 200 MHz, Vitis-AI 3.0, vaitrace hardware time): 22 OFA-MobileNetV3 blocks",
    )
    loo = json.loads((HERE / "ultra96_b2304" / "leave_out.json").read_text())["loo"]
    out["held_out"] = {
        "kind": "leave-one-block-out",
        "node_mape": round(loo["mape"], 4),
        "figures": [
            {k: loo[k] for k in ("blocks", "mape", "median_ape", "worst_block", "worst_error", "spearman")}
        ],
        "source": "experiments/calibration/ultra96_b2304/README.md",
    }
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for data in (zcu102(), ultra96()):
        path = OUT / f"{data['preset']}.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(
            f"{path}: fit MAPE {100 * data['fit']['node_mape']:.1f} %, held-out {100 * data['held_out']['node_mape']:.1f} %"
        )


if __name__ == "__main__":
    main()
