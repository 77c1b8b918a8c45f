"""Fake ``pytorch_nndct.apis.torch_quantizer``: enforces calib-before-test and writes a fake xmodel.

Like the real one: ``quant_mode`` is ``calib`` or ``test``; calib mode must call
``export_quant_config`` (writes ``quant_info.json``); test mode needs that file, and
``export_xmodel`` requires a forward in test mode first, then writes ``<ModelClass>_int.xmodel``.
"""

import json
import os

import torch


class torch_quantizer:
    def __init__(
        self, quant_mode, module, input_args=None, output_dir="quantize_result", device=None, **kwargs
    ):
        if quant_mode not in ("calib", "test"):
            raise ValueError(f"quant_mode must be 'calib' or 'test', got {quant_mode!r}")
        if not isinstance(module, torch.nn.Module) or module.training:
            raise ValueError("torch_quantizer needs an nn.Module in eval mode")
        self.mode, self.output_dir, self.module = quant_mode, output_dir, module
        self.forwards = 0
        os.makedirs(output_dir, exist_ok=True)
        config = os.path.join(output_dir, "quant_info.json")
        if quant_mode == "test" and not os.path.exists(config):
            raise RuntimeError(
                f"[NNDCT_ERROR]: quant_info.json not found in {output_dir}: run calib mode first"
            )
        with torch.no_grad():
            module(*input_args)  # the real quantizer traces the model with the example inputs

        def counted(*args):
            self.forwards += 1
            return module(*args)

        self.quant_model = counted

    def export_quant_config(self):
        if self.mode != "calib" or self.forwards == 0:
            raise RuntimeError("[NNDCT_ERROR]: export_quant_config needs calibration forwards in calib mode")
        with open(os.path.join(self.output_dir, "quant_info.json"), "w") as f:
            json.dump({"calib_batches": self.forwards}, f)

    def export_xmodel(self, output_dir="quantize_result", deploy_check=False):
        if self.mode != "test" or self.forwards == 0:
            raise RuntimeError("[NNDCT_ERROR]: export_xmodel needs one forward in test mode")
        convs = sum(1 for m in self.module.modules() if isinstance(m, torch.nn.Conv2d))
        name = type(self.module).__name__
        with open(os.path.join(output_dir, f"{name}_int.xmodel"), "w") as f:
            json.dump({"format": "fake-quantized-xmodel", "graph": name, "convs": convs}, f)
        print(
            f"[NNDCT_NOTE]: =>Converting to xmodel ...\n[NNDCT_NOTE]: =>Successfully convert '{name}' to xmodel."
        )
