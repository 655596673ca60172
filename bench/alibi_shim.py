"""Make Alibi Detect's FETDriftOnline usable at an ERT of 1e4 on this machine, without changing a value.

``FETDriftOnline`` configures its thresholds by evaluating ``scipy.stats.hypergeom.cdf`` on an
``n_bootstraps × t_max`` array (1e5 × ~10³ calls at ERT 1e4): more than ten minutes per detector
with SciPy 1.17. Every argument array there takes at most ``window + 1`` distinct values, so
:func:`install` swaps the module's ``hypergeom`` for one that calls SciPy once per distinct
argument tuple and broadcasts the results back — the same numbers, bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import hypergeom as _scipy_hypergeom


class _DistinctHypergeom:
    def __init__(self) -> None:
        self._memo: dict[tuple, float] = {}

    def cdf(self, k, M, n, N):
        args = [np.asarray(a) for a in (k, M, n, N)]
        shape = np.broadcast_shapes(*(a.shape for a in args))
        if not shape:
            return self._scalar(*(a.item() for a in args))
        # One key per element: the distinct argument tuples (few: each is a count in a window).
        flat = [np.broadcast_to(a, shape).reshape(-1) for a in args]
        varying = [f for f, a in zip(flat, args) if a.size > 1]
        if not varying:  # size-1 arrays (scoring one window): a scalar call, memoised
            return np.full(shape, self._scalar(*(a.item() for a in args)))
        key = varying[0].astype(np.int64)
        for f in varying[1:]:
            key = key * (int(f.max()) + 1) + f.astype(np.int64)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        values = _scipy_hypergeom.cdf(*(f[first] for f in flat))
        return np.asarray(values)[inverse.reshape(-1)].reshape(shape)

    def _scalar(self, k, M, n, N) -> float:
        hit = self._memo.get((k, M, n, N))
        if hit is None:
            hit = float(_scipy_hypergeom.cdf(k, M, n, N))
            if len(self._memo) < 1_000_000:
                self._memo[(k, M, n, N)] = hit
        return hit


def install() -> None:
    from alibi_detect.cd import fet_online

    if not isinstance(fet_online.hypergeom, _DistinctHypergeom):
        fet_online.hypergeom = _DistinctHypergeom()


def _configure_thresholds(self) -> None:
    """``FETDriftOnline._configure_thresholds`` with the same arithmetic and the same random draws,
    keeping surviving streams as a mask instead of copying the whole (bootstraps × t_max) array
    at every t (that copy made configuration quadratic in t_max: tens of minutes at ERT 1e4)."""
    import warnings

    from alibi_detect.utils.misc import quantile

    beta = 1 - (1 - self.fpr) ** (1 / self.n_features)
    self.permit_probs = np.full((self.t_max, self.n_features), np.nan)
    thresholds = np.full((self.t_max, self.n_features), np.nan, dtype=np.float32)
    for f in range(self.n_features):
        stats = self._simulate_streams(self.x_ref[:, f], None)
        with warnings.catch_warnings():
            warnings.filterwarnings(action="ignore", message="All-NaN slice encountered")
            max_stats = np.nanmax(stats, -1)
        del stats
        order = np.arange(len(max_stats))  # surviving streams, in the order the original keeps them
        for t in range(np.min(self.window_sizes) - 1, self.t_max):
            col = max_stats[order, t]
            threshold = np.float32(quantile(col, 1 - beta, interpolate=False, type=6))
            below = col < threshold
            prob_of_equal = (col <= threshold).mean() - below.mean()
            if prob_of_equal == 0.0:
                permit_prob = np.inf
                order = order[below]
            else:
                undershoot = 1 - beta - below.mean()
                permit_prob = undershoot / prob_of_equal
                equal = order[col == threshold]
                n_keep_equal = np.random.binomial(len(equal), permit_prob)
                order = np.concatenate([order[below], equal[:n_keep_equal]])
            thresholds[t, f] = threshold
            self.permit_probs[t, f] = permit_prob
    self.thresholds = thresholds


def install_fast_thresholds() -> None:
    from alibi_detect.cd.fet_online import FETDriftOnline

    install()
    FETDriftOnline._configure_thresholds = _configure_thresholds
