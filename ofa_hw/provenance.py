"""What a run's "measured" figures were measured on: the calibrated simulator, or a board and toolchain.

The report puts this next to every figure, because "measured" means very different things: on the
``sim`` backend it is the simulator, calibrated on a few real profiles with some fit error, and the
predictor's MAPE/τ and the hit rate then compare the predictor with the very simulator its LUT came
from; on ``vitis_*`` backends it is a real board with a real toolchain.

The simulator's fit error is read from the preset that was selected: the fit and held-out figures
shipped as package data with it (``ofa_hw/data/calibration/<preset>.json``, when its fingerprint is
the preset's), else the header ``ofa-hw task=calibrate`` writes into a preset it calibrated
(``MAPE 0.0473 over 42 measured parts, total error -0.0057``); when neither exists, the basis says
the fit error is not recorded rather than leaving it out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# The header task=calibrate writes: "MAPE 0.0737 over 22 measured parts, total error -0.0180" (older
# presets: "node MAPE 0.0312, total error -0.0100").
_FIT = re.compile(r"MAPE\s+([0-9.]+)(?:\s+over\s+\d+\s+measured parts)?\s*,\s*total error\s+([+-]?[0-9.]+)")
_SHIPPED = Path(__file__).resolve().parent / "data" / "calibration"


def preset_file(name: str) -> Path | None:
    """The YAML a ``dpu=<name>`` selects (the workspace's shadows the packaged one), if any."""
    from ofa_hw.dpu.config import preset_dirs

    for directory in preset_dirs():
        path = Path(directory) / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def calibration_fit(dpu: Any) -> dict[str, Any] | None:
    """``{node_mape, total_error, source}`` of the selected preset's calibration (plus ``held_out_mape``
    and ``held_out_kind`` when shipped with the preset), or ``None`` if unrecorded."""
    shipped = _SHIPPED / f"{dpu.name}.json"
    if shipped.is_file():
        data = json.loads(shipped.read_text())
        if data.get("fingerprint") == _preset_fingerprint(dpu):
            held = data.get("held_out") or {}
            return {
                "node_mape": data["fit"]["node_mape"],
                "total_error": data["fit"]["total_error"],
                "held_out_mape": held.get("node_mape"),
                "held_out_kind": held.get("kind"),
                "source": f"ofa_hw/data/calibration/{shipped.name}",
            }
    path = preset_file(dpu.name)
    if path is not None:
        header = "\n".join(line for line in path.read_text().splitlines() if line.lstrip().startswith("#"))
        match = _FIT.search(header)
        if match:
            return {
                "node_mape": float(match.group(1)),
                "total_error": float(match.group(2)),
                "source": str(path),
            }
    return None


def measurement_basis(backend: Any, dpu: Any) -> dict[str, Any]:
    """What the backend's measurements are (``results.json`` ``basis``), with a one-sentence ``text``.

    Args:
        backend: The run's :class:`~ofa_hw.backends.Backend` (``name``, ``toolchain``; ``boards`` for Vitis).
        dpu: The run's :class:`~ofa_hw.dpu.DPUConfig`.
    """
    name = str(getattr(backend, "name", "?"))
    toolchain = str(getattr(backend, "toolchain", ""))
    if name == "sim":
        fit = calibration_fit(dpu)
        source = dpu.calibrated_on or "nothing (the model's default constants)"
        fit_text = (
            f"fit error: node MAPE {100 * fit['node_mape']:.1f} %, total {100 * fit['total_error']:+.1f} % "
            + (
                f"(on data it never saw, {fit['held_out_kind']}: node MAPE {100 * fit['held_out_mape']:.1f} %) "
                if fit.get("held_out_mape") is not None
                else ""
            )
            + f"({fit['source']})"
            if fit and fit.get("node_mape") is not None
            else "fit error not recorded"
        )
        overridden = _overridden(dpu)
        text = (
            f"the DPU simulator ({toolchain}), preset {dpu.name} calibrated on {source}; {fit_text}"
            + ("; its constants were changed on the command line since" if overridden else "")
            + ". Predictor MAPE/τ and hit rates compare the predictor with this same simulator its LUT "
            "came from: they show how well it learned the simulator, not the board"
        )
        return {
            "kind": "simulator",
            "backend": name,
            "toolchain": toolchain,
            "calibrated_on": dpu.calibrated_on,
            "fit": fit,
            "overridden": overridden,
            "text": text,
        }
    boards = [str(getattr(b, "name", b)) for b in getattr(backend, "boards", [])]
    text = (
        f"real hardware: board(s) {', '.join(boards) or '?'} ({dpu.name}, {dpu.arch} @ {dpu.freq_mhz:g} MHz) "
        f"through {name}, toolchain {toolchain or '?'}"
    )
    return {"kind": "board", "backend": name, "toolchain": toolchain, "boards": boards, "text": text}


def _preset_fingerprint(dpu: Any) -> str:
    """Fingerprint of the preset file ``dpu`` was composed from (``dpu``'s own when there is none)."""
    from ofa_hw.dpu import DPUConfig

    path = preset_file(dpu.name)
    if path is not None:
        try:
            return DPUConfig.from_yaml(path).fingerprint()
        except (ValueError, TypeError):
            pass
    return dpu.fingerprint()


def _overridden(dpu: Any) -> bool:
    """Whether ``dpu`` differs (in a latency field) from the preset file of its name."""
    return _preset_fingerprint(dpu) != dpu.fingerprint()
