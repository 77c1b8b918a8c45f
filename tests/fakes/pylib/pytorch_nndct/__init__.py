"""Fake pytorch_nndct (Vitis-AI's PyTorch quantizer) for the fake container: see ``apis``."""
