"""Fake ``vaitrace_py`` (Vitis-AI >= 2.0) for the loopback board: see ``ofa_fake_vaitrace``."""
