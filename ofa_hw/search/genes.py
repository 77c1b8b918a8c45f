"""OFA's evolutionary operators on integer-encoded populations (vectorised).

A population is an ``int8`` gene matrix ``(N, n_genes)`` laid out as :meth:`SearchSpace.encode` lays it
out: ``n_blocks`` kernel indices | ``n_blocks`` expand indices | one depth index per elastic stage | one
resolution index. The operators follow OFA's ``MobileNetArchEncoder`` / ``EvolutionFinder`` exactly,
only over whole populations at once:

* sampling draws every gene uniformly (inactive blocks included, as OFA does);
* mutation resamples the resolution with ``r_prob``, each block's kernel *and* expand (one coin per
  block) with ``prob``, and each stage depth with ``prob``;
* crossover takes every gene from either parent with probability 1/2.

Inactive blocks keep their genes (OFA keeps them too), so a later depth mutation can bring a block
back with the choices it carried. Two gene rows can therefore describe the same network;
:meth:`GeneOps.canonical` zeroes the inactive genes so that such duplicates compare equal.
"""

from __future__ import annotations

import numpy as np

from ofa_hw.space import SearchSpace


class GeneOps:
    """Sampling, mutation, crossover and canonical keys for one search space.

    Args:
        space: The search space whose gene layout the populations follow.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.n_blocks = space.n_blocks
        self.n_genes = space.n_genes
        self.cardinality = space.gene_cardinality.astype(np.int64)
        nb = self.n_blocks
        self._ks = slice(0, nb)
        self._e = slice(nb, 2 * nb)
        self._d = slice(2 * nb, self.n_genes - 1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random gene rows."""
        return (rng.random((n, self.n_genes)) * self.cardinality).astype(np.int8)

    def mutate(self, genes: np.ndarray, rng: np.random.Generator, prob: float, r_prob: float) -> np.ndarray:
        """Mutated copies of ``genes`` (one child per row)."""
        n = genes.shape[0]
        child = genes.copy()
        fresh = self.sample(rng, n)
        r_hit = rng.random(n) < r_prob
        child[r_hit, -1] = fresh[r_hit, -1]
        block_hit = rng.random((n, self.n_blocks)) < prob  # one coin moves kernel and expand together
        child[:, self._ks] = np.where(block_hit, fresh[:, self._ks], child[:, self._ks])
        child[:, self._e] = np.where(block_hit, fresh[:, self._e], child[:, self._e])
        d_hit = rng.random((n, self._d.stop - self._d.start)) < prob
        child[:, self._d] = np.where(d_hit, fresh[:, self._d], child[:, self._d])
        return child

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover of row pairs ``(a[i], b[i])``."""
        return np.where(rng.random(a.shape) < 0.5, a, b).astype(np.int8)

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """Copies of ``genes`` with the kernel/expand genes of inactive blocks set to 0."""
        genes = np.atleast_2d(genes).copy()
        inactive = ~self.space.active_mask(genes)
        genes[:, self._ks][inactive] = 0  # basic slices are views: this writes into ``genes``
        genes[:, self._e][inactive] = 0
        return genes

    def keys(self, genes: np.ndarray) -> np.ndarray:
        """One hashable key per row (bytes of the canonical genes): equal keys = same network."""
        canon = np.ascontiguousarray(self.canonical(genes))
        return canon.view(np.dtype((np.void, canon.shape[1]))).ravel()

    def unique_first(self, genes: np.ndarray) -> np.ndarray:
        """Indices of the first occurrence of every distinct network, in row order."""
        _, first = np.unique(self.keys(genes), return_index=True)
        return np.sort(first)
