"""The simulator's model version: a hash of the timing model's own source.

Simulated numbers change when the timing model's code changes (:mod:`ofa_hw.sim.timing`, :mod:`ofa_hw.sim.costs`,
:mod:`ofa_hw.sim.compiler`, :mod:`ofa_hw.dpu.generations`), not only when the package version or the DPU
configuration does. The simulator backend's ``toolchain`` label is therefore derived from those files'
code — their syntax tree without docstrings, so comments, docstrings and formatting do not count: it keys stored simulator runs (part of the job key) and is written into every LUT, so a changed
model makes old runs miss (they are re-measured) and old LUTs stale (:func:`stale_reason`), visibly.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

#: The files whose code decides a simulated latency or compile outcome (relative to the package).
MODEL_FILES: tuple[str, ...] = (
    "sim/timing.py",
    "sim/costs.py",
    "sim/compiler.py",
    "dpu/generations.py",
)

_PACKAGE = Path(__file__).resolve().parents[1]


def _code(source: str) -> str:
    """The code of a module as a canonical string: its syntax tree without docstrings."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


@lru_cache(maxsize=1)
def model_hash() -> str:
    """12 hex chars of SHA-256 over the model files' names and code (:func:`_code`)."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        digest.update(name.encode() + b"\0")
        digest.update(_code((_PACKAGE / name).read_text()).encode())
    return digest.hexdigest()[:12]


def toolchain_label() -> str:
    """The simulator backend's toolchain label, e.g. ``sim-model-3f2a9c01b7de``."""
    return f"sim-model-{model_hash()}"


def stale_reason(toolchain: str) -> str | None:
    """Why numbers labelled ``toolchain`` no longer describe this simulator (``None`` if they do, or if
    they come from another backend)."""
    if not toolchain.startswith("sim-") or toolchain == toolchain_label():
        return None
    return (
        f"made by simulator {toolchain}, but the timing model's code has changed since "
        f"(now {toolchain_label()}: a hash of {', '.join(MODEL_FILES)})"
    )
