"""Stand-ins for what cannot exist here: the Vitis-AI tools, the container, the board's DPU."""
