"""Prompt and output length distributions under `serve --request-rate` (issue 17 item 3): `--prompt-dist` and
`--output-dist`, each fixed, exponential or uniform, with the mean given by `--prompt-tokens` / `--output-tokens`.

  fixed        X = m                      E[X²] = m²
  exponential  X = −m·ln(1 − U)           E[X²] = 2·m²        (memoryless lengths: the heaviest tail here)
  uniform      X = 2·m·U on [0, 2m]       E[X²] = 4·m²/3

serving_load.py uses them three ways: moments of a function of the length (the prefill time t_p(P), whose
second moment sets the M/G/1 queue's wait, Pollaczek–Khinchine) by Gauss quadrature — Gauss–Laguerre for the
exponential, Gauss–Legendre for the uniform, exact for polynomials of degree < 2·QUADRATURE_POINTS, and t_p is
a polynomial of degree 2 in P where compute bound (linear GEMMs ∝ P, causal attention ∝ P(P + 1)/2); seeded
draws for the percentiles (inverse CDF of uniforms); and the length-biased mean of the output, E[T²]/E[T],
for the mean context of the sequences decoding (a long output stays in the batch longer).
Lengths are continuous (not rounded to whole tokens); a sampled output is at least MIN_OUTPUT_TOKENS long.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidValue, opt

LENGTH_DISTRIBUTIONS = ("fixed", "exponential", "uniform")
QUADRATURE_POINTS = 32
MIX_SAMPLES = 20_000  # seeded draws of the length mix (TTFT and TPOT percentiles)
MIX_SEED = 18  # a stream apart from serving_load's arrival draws (LOAD_SEED), which stay as they were
MIN_OUTPUT_TOKENS = 2.0  # a request's time per output token needs a second token


class LengthDist(NamedTuple):
    """A length distribution: its kind (LENGTH_DISTRIBUTIONS) and mean (tokens)."""

    kind: str
    mean: float

    @property
    def fixed(self) -> bool:
        return self.kind == "fixed"

    def second_moment(self) -> float:
        """E[X²] in tokens²."""
        return self.mean**2 * {"fixed": 1.0, "exponential": 2.0, "uniform": 4.0 / 3.0}[self.kind]

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Quadrature (lengths, weights summing to 1): E[f(X)] ≈ Σ w·f(x)."""
        if self.fixed:
            return np.array([self.mean]), np.array([1.0])
        x, w = _rule(self.kind)
        return self.mean * x, w

    def quantile(self, u) -> np.ndarray:
        """Inverse CDF at uniforms ``u`` in [0, 1)."""
        u = np.asarray(u, dtype=float)
        if self.kind == "exponential":
            return -self.mean * np.log1p(-u)
        if self.kind == "uniform":
            return 2.0 * self.mean * u
        return np.full(u.shape, self.mean)


@lru_cache(maxsize=2)
def _rule(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for a unit mean: Gauss–Laguerre (∫e^(−x) f) or Gauss–Legendre mapped to [0, 2]."""
    if kind == "exponential":
        x, w = np.polynomial.laguerre.laggauss(QUADRATURE_POINTS)
        return x, w / w.sum()
    x, w = np.polynomial.legendre.leggauss(QUADRATURE_POINTS)
    return x + 1.0, w / w.sum()


@lru_cache(maxsize=1)
def mix_uniforms() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded uniforms for the prompt and output lengths, and normals and uniforms for the stall sums."""
    rng = np.random.default_rng(MIX_SEED)
    return rng.random(MIX_SAMPLES), rng.random(MIX_SAMPLES), rng.standard_normal(MIX_SAMPLES), rng.random(MIX_SAMPLES)


def check_dist(kind, mean: float, name: str) -> LengthDist:
    """A LengthDist from an option's value (None: fixed); :class:`InvalidValue` for an unknown kind."""
    key = "fixed" if kind is None else str(kind).strip().lower()
    if key not in LENGTH_DISTRIBUTIONS:
        raise InvalidValue(f"{opt(name)} {kind!r}: unknown length distribution",
                           hint=f"use {', '.join(LENGTH_DISTRIBUTIONS)}")  # fmt: skip
    return LengthDist(key, float(mean))
