"""ONNX export of subnets, checked numerically against PyTorch with onnxruntime.

ONNX is the hand-off format for toolchains other than the Caffe/xmodel flows (and a portable record
of exactly which network was measured). The default export uses TorchScript tracing (``dynamo=False``):
the subnets are static graphs, the tracer is ten times faster than the torch.export-based exporter
and gives stable node names. ``dynamo=True`` selects the new exporter (it needs onnxscript and opset
>= 18), for the day the legacy one is removed from torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ofa_hw.errors import require_extra

#: Opset every ONNX consumer we care about (onnxruntime, Vitis-AI's ONNX importers) reads.
DEFAULT_OPSET = 17


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_hw: int,
    input_c: int = 3,
    opset: int = DEFAULT_OPSET,
    batch: int = 1,
    dynamo: bool = False,
) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ONNX with one input ``data`` and one output ``logits``.

    Args:
        model: The module; it is put in eval mode (BN uses running statistics).
        path: Destination ``.onnx`` file (parent directories are created).
        input_hw: Input resolution (square).
        input_c: Input channels.
        opset: ONNX opset version.
        batch: Batch size of the exported graph (static).
        dynamo: Use torch's torch.export-based exporter instead of TorchScript tracing.

    Returns:
        The path written.
    """
    require_extra("onnx", "onnx", "ONNX export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.zeros(batch, input_c, input_hw, input_hw)
    if dynamo:
        require_extra("onnxscript", "onnx", "ONNX export with dynamo=True")
        opset = max(opset, 18)
    extra: dict[str, Any] = {"verbose": False} if dynamo else {}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its own deprecation on every call; the choice is deliberate.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["data"],
            output_names=["logits"],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=dynamo,
            **extra,
        )
    return path


def run_onnx(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run the ONNX file at ``path`` on ``x`` (float32 NCHW) with onnxruntime's CPU provider."""
    require_extra("onnxruntime", "onnx", "running ONNX files")
    import onnxruntime as ort  # heavy import, only where needed

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the machines are small and shared; one thread is deterministic
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})
    return out


def check_onnx(model: nn.Module, path: str | Path, input_hw: int, input_c: int = 3, seed: int = 0) -> float:
    """Max absolute difference between ``model`` and the ONNX file on one random input.

    Args:
        model: The PyTorch module the file was exported from.
        path: The ONNX file.
        input_hw: Input resolution.
        input_c: Input channels.
        seed: Seed of the random input.

    Returns:
        ``max |torch(x) - onnxruntime(x)|``.
    """
    require_extra("onnx", "onnx", "checking ONNX files")
    import onnx

    onnx.checker.check_model(str(path))
    x = np.random.default_rng(seed).standard_normal((1, input_c, input_hw, input_hw)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = run_onnx(path, x)
    if got.shape != expected.shape:
        raise ValueError(f"{path}: ONNX output shape {got.shape} != torch output shape {expected.shape}")
    return float(np.max(np.abs(got - expected)))
