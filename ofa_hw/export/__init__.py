"""Exporters of subnets to the formats the Vitis-AI toolchains read (ONNX, Caffe, xmodel scripts)."""
