"""The null of each test: the Bayes posterior predictive of the baseline, updated by production.

A baseline is a finite evaluation sample, so the evaluation-time distribution of a feature's codes
in a condition cell is known only up to a posterior: Dirichlet(counts + ``prior``) over the cell's
*present* codes (missing and unseen values are data-quality facts, tested elsewhere). Scoring a
production record against the posterior *mean* alone would ignore that uncertainty, and a fixed
estimate that is slightly off compounds over a long stream into false alarms; scoring against the
worst end of a credible interval wastes power in every cell (the old design's 2-3× slack).

Instead a record is scored against the posterior predictive given the baseline *and the
production records of its cell seen so far*: ``m_t(x) = (α_x + N_x) / (Σα + ΣN)``. For any
alternative q fixed in advance, ``E[q(x_t)/m_t(x_t) | past] = Σ_x q(x) = 1`` under the Bayes joint
law of "production is drawn from the evaluation distribution", so each component's likelihood
ratio is an e-value and the Shiryaev–Roberts statistic keeps E[R_n] ≤ n (:mod:`.detectors`): the
ARL holds on average over what the baseline could have been, which is what a measured ARL over
redrawn baselines checks. The prior's strength is fixed (½ per present code, as Jeffreys'), never
estimated from the counts it smooths; its *mean* is the feature's share over all the baseline's
records (itself Jeffreys-smoothed). A cell with many records keeps its own rate, so a rare, distinct
condition is never pulled to the crowd; a cell with few leans on the model-wide rate rather than on
"every code equally likely". That matters at the boundary: a code never seen anywhere (an
oversight phrase, an exotic tool) gets ~1/N pseudo-records instead of ½ in every cell, so a stream
that keeps never producing it does not pile up the uniform prior's log T regret in each cell.

One floor guards the boundary: when a code occurs in a cell whose pseudo-count for it is below ½
(evaluation never showed it there, and the pooled prior gave it ~1/N), the predictive is read
with ½ pseudo-records for that occurrence, Jeffreys' share for an unseen code. The pooled prior
says "as rare here as everywhere", a strong claim about a cell of a few hundred records that
never showed it: a rare tool used by one kind (2 calls in 20,000 evaluation records) can be 0 in
that kind's stratum by chance, and without the floor its first production call there would be
scored at ~10⁻⁷ and page on its own. Raising a denominator only lowers a likelihood ratio, so
E[Λ] ≤ 1 still holds; the cost is that a code's first occurrence in such a cell counts for
up to a few nats instead of a dozen.

Production counts stop updating a (segment, feature) while its alert fires, so a persistent
change keeps its alert instead of being learnt as the new normal.

>>> import numpy as np
>>> alpha = dirichlet_alpha(np.array([[0, 90, 10, 0], [0, 0, 0, 0]]), first_present=1, prior=0.5)
>>> np.round(alpha, 3).tolist()
[[0.0, 91.337, 10.155, 0.007], [0.0, 1.337, 0.155, 0.007]]
>>> np.round(predictive(alpha), 3).tolist()
[[0.0, 0.9, 0.1, 0.0], [0.0, 0.892, 0.103, 0.005]]
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.special import gammaln


def dirichlet_alpha(counts: np.ndarray, *, first_present: int, prior: float, tolerance: float = 0.0) -> np.ndarray:
    """Posterior Dirichlet parameters per cell over the present codes (excluded codes get 0).

    The prior adds ``prior`` × (number of present codes) pseudo-records per cell, spread as the
    feature's pooled, Jeffreys-smoothed shares. ``tolerance`` > 0 (data-quality features): every
    code but the first ("ok") gets that share of the cell's records added, so a fault rate up to
    ``tolerance`` is part of the null.
    """
    alpha = counts.astype(np.float64).copy()
    alpha[:, :first_present] = 0.0
    pooled = alpha.sum(axis=0)
    pooled[first_present:] += prior
    strength = prior * (alpha.shape[1] - first_present)
    alpha[:, first_present:] += strength * pooled[first_present:] / pooled.sum()
    if tolerance > 0:
        alpha[:, first_present + 1:] += tolerance * alpha.sum(axis=1, keepdims=True)
    return alpha


def predictive(alpha: np.ndarray) -> np.ndarray:
    """Posterior predictive shares per cell (rows of ``alpha`` normalised)."""
    return alpha / np.maximum(alpha.sum(axis=1, keepdims=True), 1e-300)


FIRST_OCCURRENCE_FLOOR = 0.5  # pseudo-records a code gets when it occurs in a cell (see above)


def floored(pseudo_counts: np.ndarray) -> np.ndarray:
    """A code's pseudo-count as the predictive reads it when that code occurs."""
    return np.maximum(pseudo_counts, FIRST_OCCURRENCE_FLOOR)


@numba.njit(cache=True, nogil=True)
def sequential_predictive(keys, cells, learn, alpha, alpha_per_cell, seen, seen_per_cell):  # pragma: no cover
    """``m_t`` of each record of a batch, in order: ``(α + N + n_before)_key / (Σα + ΣN + n_before)_cell``
    read with the floor, where n_before counts the batch's earlier records that ``learn`` (True: the
    null learns this record) in the same key or cell; ``seen`` / ``seen_per_cell`` (flat N and its
    per-cell sums) then gain the learnt records, in place. Compiled: each record's predictive needs
    the counts of those before it (in numpy: two stable sorts per feature and batch).

    >>> alpha = np.array([[1.0, 1.0]]).ravel(); seen = np.zeros(2)
    >>> sequential_predictive(np.array([0, 0, 1]), np.zeros(3, np.int64), np.ones(3, bool), alpha,
    ...                       np.array([2.0]), seen, np.zeros(1)).tolist()
    [0.5, 0.6666666666666666, 0.25]
    >>> seen.tolist()
    [2.0, 1.0]
    """
    out = np.empty(len(keys))
    before = np.zeros(len(alpha))
    before_cell = np.zeros(len(alpha_per_cell))
    for i in range(len(keys)):
        key, cell = keys[i], cells[i]
        out[i] = max(alpha[key] + seen[key] + before[key], FIRST_OCCURRENCE_FLOOR) / (
            alpha_per_cell[cell] + seen_per_cell[cell] + before_cell[cell])
        if learn[i]:
            before[key] += 1.0
            before_cell[cell] += 1.0
    seen += before
    seen_per_cell += before_cell
    return out


def log_predictive_of_counts(alpha: np.ndarray, seen: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """log m(batch | alpha + seen) per cell: the Dirichlet-multinomial probability of a sequence with
    these code counts, the product of the sequential predictives in any order, each code's first
    occurrence read with the floor (only the first can be under it: the next has ≥ 1 more)."""
    a = alpha + seen
    present = alpha > 0
    safe = np.where(present, a, 1.0)
    first = np.where(present & (batch > 0), np.log(floored(safe)) - np.log(safe), 0.0)
    per_code = (np.where(present, gammaln(a + batch) - gammaln(safe), 0.0) + first).sum(axis=1)
    total = a.sum(axis=1)
    return per_code - (gammaln(total + batch.sum(axis=1)) - gammaln(np.maximum(total, 1e-300)))
