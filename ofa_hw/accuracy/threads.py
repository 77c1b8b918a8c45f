"""Scoped control of torch's intra-op thread count.

On a small shared machine (2 cores here) torch's worker threads spin against other processes: small
matmuls and convs then run up to 10x slower with two threads than with one. Models that run many small
ops (the MLP predictor) pin one thread; the supernet evaluator lets the user choose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (``None``: leave torch's setting alone)."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
