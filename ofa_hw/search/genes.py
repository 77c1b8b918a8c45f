"""OFA's evolutionary operators on integer-encoded populations (vectorised).

A population is an ``int8`` gene matrix ``(N, n_genes)`` laid out as :meth:`SearchSpace.encode` lays it
out: ``n_blocks`` kernel indices | ``n_blocks`` expand indices | one depth index per elastic stage | one
resolution index. The operators follow OFA's ``MobileNetArchEncoder`` / ``EvolutionFinder`` exactly,
only over whole populations at once:

* sampling draws every gene uniformly (inactive blocks included, as OFA does);
* mutation resamples the resolution with ``r_prob``, each block's kernel *and* expand (one coin per
  block) with ``prob``, and each stage depth with ``prob``;
* crossover takes every gene from either parent with probability 1/2.

ResNet-50 (``expand | depth | width | resolution``, :mod:`ofa_hw.space_resnet`) has no kernel genes: every
expand, depth and width gene mutates on its own coin (OFA's ``ResNetArchEncoder``), the resolution with
``r_prob``.

Inactive blocks keep their genes (OFA keeps them too), so a later depth mutation can bring a block
back with the choices it carried. Two gene rows can therefore describe the same network;
:meth:`GeneOps.canonical` zeroes the inactive genes so that such duplicates compare equal.
"""

from __future__ import annotations

import numpy as np

from ofa_hw.space import SearchSpace
from ofa_hw.space_resnet import ResNetSpace

#: Random draws are 16-bit (four per 64-bit output of the generator, several times cheaper than float64
#: draws): a coin with probability ``p`` hits when ``u < round(p·2¹⁶)``, a uniform value of a gene with
#: ``c`` choices is ``⌊u·c / 2¹⁶⌋`` — exact to within 2⁻¹⁶ (OFA's ``random.random``: 2⁻⁵³).
_ONE = 1 << 16


class GeneOps:
    """Sampling, mutation, crossover and canonical keys for one search space.

    Mutation coins: each block's kernel and expand genes share one coin (OFA mutates a block's kernel
    and expand together), every other gene has its own; the resolution (the last gene) mutates with its
    own probability.

    Args:
        space: The search space whose gene layout the populations follow.
    """

    def __init__(self, space: SearchSpace | ResNetSpace) -> None:
        self.space = space
        self.n_blocks = space.n_blocks
        self.n_genes = space.n_genes
        self.cardinality = space.gene_cardinality.astype(np.int64)
        nb = self.n_blocks
        self._resnet = getattr(space, "family", "") == "resnet"
        if self._resnet:  # expand | depth | width | r: no kernel genes, every gene has its own coin
            self._ks, self._e = slice(0, 0), slice(0, 0)
            self._d = slice(nb, self.n_genes - 1)
        else:
            self._ks = slice(0, nb)
            self._e = slice(nb, 2 * nb)
            self._d = slice(2 * nb, self.n_genes - 1)
        self._scale = (self.cardinality / _ONE).astype(np.float32)  # exact: u·c < 2²⁴
        self._draw_cache: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------ random draws
    @staticmethod
    def _uniform16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform 16-bit integers (four per 64-bit draw of the generator)."""
        n = 1
        for dim in shape:
            n *= dim
        return rng.bit_generator.random_raw((n + 3) >> 2).view(np.uint16)[:n].reshape(shape)

    def _mutation_draw(self, prob: float, r_prob: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-gene 16-bit thresholds and value scales of one mutation draw (cached per probability pair).

        One 16-bit draw ``u`` per gene decides both whether the gene mutates (``u < t``, ``t = p·2¹⁶``)
        and, if it does, its fresh value ``⌊u·c/t⌋`` — given ``u < t``, ``u`` is uniform on ``0..t-1``,
        so the value is uniform on the ``c`` choices to within ``c/t`` (5·10⁻⁴ at OFA's settings). Expand
        genes follow their block's kernel coin (``t = 2¹⁶``: always below, masked afterwards) and take
        their value from their own draw.
        """
        key = (prob, r_prob)
        if key not in self._draw_cache:
            # uint16 like the draws (mixed-type comparisons are several times slower); a probability
            # of 1 becomes 1 - 2⁻¹⁶. Expand genes' thresholds are unused (their coin is the kernel's).
            t = np.full(self.n_genes, min(round(prob * _ONE), _ONE - 1), dtype=np.uint16)
            t[-1] = min(round(r_prob * _ONE), _ONE - 1)
            span = np.maximum(t.astype(np.int64), 1)
            span[self._e] = _ONE
            self._draw_cache[key] = (t, (self.cardinality / span).astype(np.float32))
        return self._draw_cache[key]

    # -------------------------------------------------------------- operators
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random gene rows."""
        return (self._uniform16(rng, (n, self.n_genes)) * self._scale).astype(np.int8)

    def mutate(self, genes: np.ndarray, rng: np.random.Generator, prob: float, r_prob: float) -> np.ndarray:
        """Mutated copies of ``genes`` (one child per row)."""
        return self.mutants(genes, 1, rng, prob, r_prob)[:, 0]

    def mutants(
        self, genes: np.ndarray, reps: int, rng: np.random.Generator, prob: float, r_prob: float
    ) -> np.ndarray:
        """``reps`` independent mutants of every row of ``genes``: shape ``(N, reps, n_genes)``."""
        thresholds, scale = self._mutation_draw(prob, r_prob)
        u = self._uniform16(rng, (genes.shape[0], reps, self.n_genes))
        hit = u < thresholds
        hit[..., self._e] = hit[..., self._ks]  # one coin moves a block's kernel and expand together
        # Values of genes that do not mutate (u >= t) are discarded; they stay below 128 (so cast to int8
        # before the select, 5x faster than a mixed-type select) unless t is tiny for a many-choice gene.
        if float(scale.max()) * (_ONE - 1) < 128:
            return np.where(hit, (u * scale).astype(np.int8), genes[:, None, :])
        return np.where(hit, u * scale, genes[:, None, :]).astype(np.int8)

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover of row pairs ``(a[i], b[i])``."""
        return self.crossovers(a, b, 1, rng)[:, 0]

    def crossovers(self, a: np.ndarray, b: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
        """``reps`` independent uniform crossovers of every row pair: shape ``(N, reps, n_genes)``."""
        u = self._uniform16(rng, (a.shape[0], reps, self.n_genes))
        return np.where(u < _ONE // 2, a[:, None, :], b[:, None, :])

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """Copies of ``genes`` with the kernel/expand genes of inactive blocks set to 0."""
        genes = np.atleast_2d(genes).copy()
        inactive = ~self.space.active_mask(genes)
        if self._resnet:  # expands of inactive blocks, and a skipped stem's depth gene (any non-max: 0)
            genes[:, : self.n_blocks][inactive] = 0
            d0 = genes[:, self.n_blocks]
            genes[:, self.n_blocks] = np.where(d0 == self.cardinality[self.n_blocks] - 1, d0, 0)
            return genes
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
