"""Fitted state as plain JSON: numeric arrays as base64 of their bytes, with dtype and shape.

Only plain numbers are ever decoded (no object dtypes, no pickles), so loading a predictor file can
never execute anything.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def unb64(text: str, dtype: Any, shape: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape).copy()


def array_state(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": b64(a)}


def array_from_state(s: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(s["dtype"])
    if dtype.kind not in "fiub":  # only plain numbers, never objects
        raise ValueError(f"refusing array of dtype {dtype}")
    return unb64(s["data"], dtype, s["shape"])
