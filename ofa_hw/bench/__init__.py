"""Benchmarks behind ``ofa-hw task=bench``: each prints and commits the figures an issue names.

* :mod:`ofa_hw.bench.predictor` — ``bench=predictor``.
* :mod:`ofa_hw.bench.search` — ``bench=search``.
"""
