"""ofa_hw: hardware-aware Once-For-All search for Xilinx DPUs.

The flow, one module per stage: ``space`` → ``netspec`` → ``dpu`` / ``backends`` → ``store`` →
``lut`` → ``predictor`` → ``search`` → ``tasks`` (Hydra entry points and reports).
"""

__version__ = "0.1.0"
