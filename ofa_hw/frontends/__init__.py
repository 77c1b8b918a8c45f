"""Front ends: a network in any form the user holds → the compiler's :class:`~ofa_hw.frontends.ops.Op` list.

* :mod:`ofa_hw.frontends.ops` — the ``Op`` record, BN/activation folding, the netspec form.
* :mod:`ofa_hw.frontends.torch_fx` — a ``torch.nn.Module`` traced with torch.fx.
* :mod:`ofa_hw.frontends.onnx` — an ONNX file.
* :mod:`ofa_hw.frontends.mbv3_blocks` (+ ``_torch``) — single OFA-MobileNetV3 blocks by name (the
  Ultra96 calibration set).

Submodules import torch/onnx only where they need them; import them directly.
"""
