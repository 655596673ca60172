"""Least-favourable null probabilities from a baseline's credible intervals.

A baseline is a finite evaluation sample, so the true evaluation-time rate of a code is only
known up to a credible interval. Each detector tests one direction, and its null is the end of the
interval least favourable to it: a detector for "code k became *more* frequent" uses the upper
bound, one for "less frequent" the lower bound. If the true rate is inside the interval, the
detector's likelihood ratio has expectation ≤ 1 under no change, which is what makes the ARL
guarantee hold even for a small baseline or a code seen three times.

Conditioning on the input shrinks each (segment, input cluster) cell towards its segment and
each segment towards the whole model (a Beta prior centred on the level above's bound, with an
empirical-Bayes strength of at most ``shrinkage`` pseudo-records), so small cells borrow strength
from similar ones and empty cells fall back to the level above, widened by the prior.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

_EPS = 1e-12


def _beta_bound(hits: np.ndarray, total: np.ndarray, prior_rate: np.ndarray, strength: float | np.ndarray,
                level: float) -> np.ndarray:
    a = np.maximum(hits + strength * prior_rate, 1e-6)
    b = np.maximum(total - hits + strength * (1.0 - prior_rate), 1e-6)
    return np.clip(stats.beta.ppf(level, a, b), _EPS, 1.0 - _EPS)


def prior_strength(counts: np.ndarray, group: np.ndarray, n_groups: int, max_strength: float) -> np.ndarray:
    """Empirical-Bayes strength of the Beta prior that shrinks units (cells) towards their group.

    Method of moments per (group, code): the spread of the units' rates beyond binomial noise is the
    between-unit variance τ²; a Beta prior with that variance has μ(1−μ)/τ² − 1 pseudo-records.
    Units that truly differ (harmful vs benign inputs) get a weak prior and speak for themselves;
    units that agree borrow strength. Clipped to [1, ``max_strength``]. Returns (groups, codes).
    """
    n = counts.sum(axis=1)
    rates = counts / np.maximum(n, 1.0)[:, None]
    g_counts = segment_sums(counts, group, n_groups)
    g_n = np.maximum(g_counts.sum(axis=1, keepdims=True), 1.0)
    mu = g_counts / g_n
    spread = segment_sums(n[:, None] * (rates - mu[group]) ** 2, group, n_groups) / g_n
    units = np.bincount(group, weights=(n > 0).astype(np.float64), minlength=n_groups)[:, None]
    noise = units * mu * (1.0 - mu) / g_n
    tau2 = np.maximum(spread - noise, 1e-12)
    strength = mu * (1.0 - mu) / tau2 - 1.0
    return np.clip(strength, 1.0, max_strength)


def segment_sums(counts: np.ndarray, cell_segment: np.ndarray, n_segments: int) -> np.ndarray:
    out = np.zeros((n_segments, counts.shape[1]), dtype=np.float64)
    np.add.at(out, cell_segment, counts)
    return out


def code_bounds(counts: np.ndarray, cell_segment: np.ndarray, n_segments: int, *, level: float,
                shrinkage: float, conditional: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper bound, lower bound and point estimate of P(code | cell), each (cells, codes).

    ``conditional=False`` (input features) stops at the segment level: the input mix is judged
    per segment, not given itself.
    """
    counts = counts.astype(np.float64)
    total_codes = counts.sum(axis=0)
    n = total_codes.sum()
    # Jeffreys prior at the model level.
    upper = _beta_bound(total_codes, n, np.full_like(total_codes, 0.5), 1.0, level)
    lower = _beta_bound(total_codes, n, np.full_like(total_codes, 0.5), 1.0, 1.0 - level)
    mean = (total_codes + 0.5) / (n + 1.0)
    seg = segment_sums(counts, cell_segment, n_segments)
    seg_n = seg.sum(axis=1, keepdims=True)
    strength = prior_strength(seg, np.zeros(n_segments, dtype=np.int64), 1, shrinkage)[0][None, :]
    s_upper = _beta_bound(seg, seg_n, upper[None, :], strength, level)
    s_lower = _beta_bound(seg, seg_n, lower[None, :], strength, 1.0 - level)
    s_mean = (seg + strength * mean[None, :]) / (seg_n + strength)
    if not conditional:
        return s_upper[cell_segment], s_lower[cell_segment], s_mean[cell_segment]
    cell_n = counts.sum(axis=1, keepdims=True)
    strength = prior_strength(counts, cell_segment, n_segments, shrinkage)[cell_segment]
    c_upper = _beta_bound(counts, cell_n, s_upper[cell_segment], strength, level)
    c_lower = _beta_bound(counts, cell_n, s_lower[cell_segment], strength, 1.0 - level)
    c_mean = (counts + strength * s_mean[cell_segment]) / (cell_n + strength)
    return c_upper, c_lower, c_mean


def mgf_upper_bound(counts: np.ndarray, prior_shares: np.ndarray, values: np.ndarray, shrinkage: float,
                    z: float) -> np.ndarray:
    """Upper credible bound of E[v(bin)] per cell under a Dirichlet posterior over the bins.

    ``counts`` (cells, bins), ``prior_shares`` (cells, bins) summing to 1, ``values`` (bins,) > 0.
    The posterior of a linear functional has mean Σ ᾱ_b v_b and variance
    (Σ ᾱ_b v_b² − mean²)/(α₀ + 1); the bound is mean + z·sd, capped at max v (it cannot exceed it).
    """
    alpha = counts + shrinkage * prior_shares
    alpha0 = alpha.sum(axis=1, keepdims=True)
    shares = alpha / np.maximum(alpha0, _EPS)
    mean = shares @ values
    var = np.maximum(shares @ values**2 - mean**2, 0.0) / (alpha0[:, 0] + 1.0)
    return np.minimum(mean + z * np.sqrt(var), values.max())
