"""Fake ``pytorch_nndct.apis.torch_quantizer``: enforces calib-before-test and writes a fake xmodel.

Like the real one: ``quant_mode`` is ``calib`` or ``test``; calib mode must call
``export_quant_config`` (writes ``quant_info.json``); test mode needs that file, and
``export_xmodel`` requires a forward in test mode first, then writes ``<ModelClass>_int.xmodel``.
The fake xmodel holds the operators of the module it was given (a torch.fx trace, BN folded) and
each operator's quantizer node name (``<Root>::<Root>/<Class>[name]/…/input.<n>``; functional ops of
the root's ``forward``: ``<Root>::<Root>/input.<n>``), from which vai_c_xir names XIR subgraphs.
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
        self.input_args = tuple(input_args)
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
        ops, shape, scopes = _trace(self.module, tuple(self.input_args[0].shape))
        data = {
            "format": "fake-quantized-xmodel",
            "graph": name,
            "convs": convs,
            "input_shape": list(shape),
            "ops": ops,
            "scopes": scopes,
        }
        with open(os.path.join(output_dir, f"{name}_int.xmodel"), "w") as f:
            json.dump(data, f)
        print(
            f"[NNDCT_NOTE]: =>Converting to xmodel ...\n[NNDCT_NOTE]: =>Successfully convert '{name}' to xmodel."
        )


def _scope(root, target):
    """The quantizer node scope of module ``target`` (``Root/Class[name]/…``)."""
    parts, module = [type(root).__name__], root
    for name in target.split("."):
        module = getattr(module, name) if not name.isdigit() else module[int(name)]
        parts.append("%s[%s]" % (type(module).__name__, name))
    return "/".join(parts)


def _trace(module, input_shape):
    """The module's operators (ofa_hw's torch.fx front end) and each one's quantizer node name."""
    import torch.fx as fx

    import dataclasses

    from ofa_hw.frontends.torch_fx import FX_LOCK, trace_ops

    # The fake's DPU model (ofa_hw's torch.fx front end) needs a modern torch; a test emulating the old
    # torch of a Vitis-AI container removes torch.frombuffer, which fx's override table names.
    restored = not hasattr(torch, "frombuffer")
    if restored:
        torch.frombuffer = torch._C._VariableFunctions.frombuffer
    try:
        ops, shape = trace_ops(module, input_shape)
        with FX_LOCK:
            graph = fx.symbolic_trace(module).graph
    finally:
        if restored:
            del torch.frombuffer
    root = type(module).__name__
    modules = dict(module.named_modules())
    # the fx nodes that become DPU operators, in the order trace_ops emits them
    sources = {"conv": [], "fc": [], "add": [], "gap": []}
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(node.target), torch.nn.Conv2d):
            sources["conv"].append(_scope(module, node.target))
        elif node.op == "call_module" and isinstance(modules.get(node.target), torch.nn.Linear):
            sources["fc"].append(_scope(module, node.target))
        elif node.op == "call_function" and getattr(node.target, "__name__", "") == "add":
            sources["add"].append(root)
        elif node.op == "call_method" and node.target == "mean":
            sources["gap"].append(root)
    scopes = []
    for i, op in enumerate(ops):
        family = "conv" if op.kind in ("conv", "dwconv") else op.kind
        if not sources.get(family):
            raise RuntimeError("[NNDCT_ERROR]: no module for operator %s (%s)" % (op.name, op.kind))
        scopes.append("%s::%s/input.%d" % (root, sources[family].pop(0), i + 1))
    return [dataclasses.asdict(op) for op in ops], shape, scopes
