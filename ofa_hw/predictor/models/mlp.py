"""``mlp``: a small ReLU MLP (torch), all bootstrap members trained as one batched network."""

from __future__ import annotations

from contextlib import contextmanager
from itertools import pairwise

import numpy as np

from ofa_hw.predictor.features import FEATURES, feature_matrix
from ofa_hw.predictor.models.base import BlockModel, register
from ofa_hw.predictor.models.codec import array_from_state, array_state


@register
class MLPModel(BlockModel):
    """A small ReLU MLP (torch) on the log ratio to the base; all members trained as one batched network.

    Inputs are ``sign(x)·log1p(|x|)``-squashed (MACs and bytes span orders of magnitude) and
    standardised. Persisted as the ``state_dict`` tensors (float32, base64) inside the JSON file.
    """

    name = "mlp"

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        epochs: int = 500,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        base: str = "fitted",
        n_members: int = 6,
        random_state: int = 0,
    ) -> None:
        self.base = base
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_members = n_members
        self.random_state = random_state

    def _net(self, n_members: int):
        import torch

        return _BatchedMLP(n_members, len(FEATURES), self.hidden, self.layers).to(torch.float32)

    def _fit_members(self, X, Z, y, W, rng):
        import torch

        with _torch_single_thread():
            self._train(torch, X, Z, W, int(rng.integers(2**31)))

    def _train(self, torch, X, Z, W, seed):
        torch.manual_seed(seed)
        Xs = _squash(feature_matrix(X))
        mu, sd = Xs.mean(axis=0), Xs.std(axis=0)
        sd[sd < 1e-9] = 1.0
        self.net_ = self._net(W.shape[0])
        self.net_.mu.copy_(torch.as_tensor(mu, dtype=torch.float32))
        self.net_.sd.copy_(torch.as_tensor(sd, dtype=torch.float32))
        xt = torch.as_tensor(Xs, dtype=torch.float32)
        zt = torch.as_tensor(Z, dtype=torch.float32)
        wt = torch.as_tensor(W / W.sum(axis=1, keepdims=True), dtype=torch.float32)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = (wt * (self.net_(xt) - zt) ** 2).sum()
            loss.backward()
            opt.step()
            sched.step()

    def _predict_log_ratio(self, X):
        import torch

        with torch.no_grad(), _torch_single_thread():
            xt = torch.as_tensor(_squash(feature_matrix(X)), dtype=torch.float32)
            return self.net_(xt).numpy().astype(np.float64)

    def _state(self):
        return {
            "n_members": int(self.net_.W[0].shape[0]),
            "tensors": {k: array_state(v.numpy()) for k, v in self.net_.state_dict().items()},
        }

    def _set_state(self, s):
        import torch

        self.net_ = self._net(int(s["n_members"]))
        state = {k: torch.as_tensor(array_from_state(v)) for k, v in s["tensors"].items()}
        self.net_.load_state_dict(state, strict=True)


@contextmanager
def _torch_single_thread():
    """Run torch on one thread: these tensors are tiny, and torch's and XGBoost's OpenMP pools
    spinning side by side on a shared 2-core machine slow both down by an order of magnitude."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _squash(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _batched_mlp_class():
    import torch
    from torch import nn

    class BatchedMLP(nn.Module):
        """``M`` independent MLPs evaluated together with batched matmuls: ``(N, F) -> (M, N)``."""

        def __init__(self, n_members: int, n_in: int, hidden: int, layers: int) -> None:
            super().__init__()
            dims = [n_in] + [hidden] * layers + [1]
            self.W = nn.ParameterList()
            self.b = nn.ParameterList()
            for d_in, d_out in pairwise(dims):
                w = torch.empty(n_members, d_in, d_out)
                for m in range(n_members):
                    nn.init.kaiming_uniform_(w[m].T, a=5**0.5)
                self.W.append(nn.Parameter(w))
                self.b.append(nn.Parameter(torch.zeros(n_members, 1, d_out)))
            self.register_buffer("mu", torch.zeros(n_in))
            self.register_buffer("sd", torch.ones(n_in))

        def forward(self, x):
            h = ((x - self.mu) / self.sd).unsqueeze(0).expand(self.W[0].shape[0], -1, -1)
            for i, (w, b) in enumerate(zip(self.W, self.b, strict=True)):
                h = torch.baddbmm(b, h, w)
                if i < len(self.W) - 1:
                    h = torch.relu(h)
            return h.squeeze(-1)

    return BatchedMLP


class _LazyBatchedMLP:
    # torch is imported only when an MLP is used: trees and LUT predictors load without it.
    _cls = None

    def __call__(self, *args, **kwargs):
        if self._cls is None:
            type(self)._cls = _batched_mlp_class()
        return self._cls(*args, **kwargs)


_BatchedMLP = _LazyBatchedMLP()
