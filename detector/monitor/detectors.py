"""The alternatives of the Shiryaev–Roberts e-detectors, and why they keep the ARL.

Why this gives the ARL (Shin, Ramdas & Rinaldo, "E-detectors", 2023; Pollak 1985):
each component has a per-record likelihood ratio Λ = q(x)/m_t(x) against the posterior
predictive null of :mod:`.nulls`, with E[Λ | past] = 1 under no change. Its Shiryaev–Roberts
statistic ``R_n = Λ_n (1 + R_{n-1})`` then satisfies E[R_n] = n, so ``R_n − n`` is a martingale
and, by optional stopping, the first time R reaches A comes after ≥ A records on average. A
feature's statistic is a weighted *mean* of its components' R (a mixture is again an e-detector). The
model has F features; alarming when any feature's mixture reaches F·A means the average over
features reached A, so the whole model keeps an ARL ≥ A. Segments are free: each record updates
only its own segment's statistics, so their sum still grows by ≤ 1 per record. After an alert
resolves, its statistic restarts from 0 (a renewal).

The alternatives q are fixed by the baseline alone (its posterior mean p̄ per cell), one per
component: a code's odds times a factor (ODDS), a share δ of decisions switching to or from a code
(SHARE), or the bins of an ordered feature tilted up or down (SHIFT). Because the null learns
production while the alternatives stay anchored to evaluation, the likelihood ratio of a real
change keeps growing after the null has moved.

Per record, the work is one gather of precomputed alternative probabilities (per cell and code),
one division by the predictive, and ``R = Λ·(1 + R)`` over all components at once
(:class:`~detector.monitor.shiryaev_roberts.ShiryaevRoberts`, which also fires, resolves and caps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UP, DOWN = "up", "down"

ODDS, SHARE, SHIFT = "odds", "share", "shift"


@dataclass(frozen=True)
class Component:
    code: int  # the code tilted, or -1 for an ordered shift
    direction: str
    tilt: float  # odds ratio (ODDS), switching fraction δ (SHARE) or exponential tilt λ (SHIFT)
    form: str = ODDS


def feature_components(n_codes: int, ordered: bool, tilts: list[float], shares: list[float], *,
                       first_present: int = 0, directions: tuple[str, ...] = (UP, DOWN),
                       forms: tuple[str, ...] = (ODDS, SHARE, SHIFT)) -> list[Component]:
    """The family of one feature, over its present codes ``first_present..n_codes-1``.

    * ODDS: the odds of code k change by a factor in every cell — the natural alternative for a
      rare code, scale-free (0.01→0.02 and 0.05→0.10 are both "×2").
    * SHARE: a fraction δ of decisions switch to (or away from) code k: q = p + δ(1−p) or p(1−δ).
      When a change hits some inputs only, cells where k was already common barely move under
      this alternative, so they do not cancel the evidence of the cells that changed.
    * SHIFT (ordered features): the bins' distribution tilted towards higher or lower values, the
      top bin's odds against the bottom bin's times each tilt. An ordered feature with more than
      three present bins gets odds and share alternatives on its two end bins only (timeouts,
      empty or runaway answers): a middle bin's own tests would mostly repeat the shift's evidence
      while every component adds to the family's cost, log(family size) in the threshold.

    >>> len(feature_components(9, True, [2.0, 4.0], [0.1, 0.3], first_present=1))  # 2 ends × 8 + 4 shifts
    20
    """
    present = list(range(first_present, n_codes))
    # With two codes, "code b more frequent" is "code a less frequent": one code suffices.
    codes = present[1:] if len(present) == 2 else present if len(present) > 2 else []
    if ordered and len(present) > 3 and SHIFT in forms:
        codes = [present[0], present[-1]]
    comps = []
    if ODDS in forms:
        comps += [Component(k, d, t, ODDS) for k in codes for d in directions for t in tilts]
    if SHARE in forms:
        comps += [Component(k, d, x, SHARE) for k in codes for d in directions for x in shares]
    if SHIFT in forms and ordered and len(present) > 2:
        comps += [Component(-1, d, float(np.log(t)), SHIFT) for d in directions for t in tilts]
    return comps


def component_weights(comps: list[Component]) -> np.ndarray:
    """Each component's weight in its feature's mixture. An ordered feature's shifts (the whole
    distribution moving) carry half of it and its end bins' tests (timeouts, empty or runaway
    answers) the other half, however many components spell each out: spread evenly over 20
    components, the shift that a slower model or a longer answer makes would pay log 20 nats in the
    threshold instead of log 8. Any weights summing to 1 keep the mixture an e-detector.

    >>> component_weights(feature_components(9, True, [2.0, 4.0], [0.1, 0.3], first_present=1)).round(4).tolist()[-5:]
    [0.0312, 0.125, 0.125, 0.125, 0.125]
    """
    shift = np.array([c.form == SHIFT for c in comps])
    if not shift.any() or shift.all():
        return np.full(len(comps), 1.0 / max(len(comps), 1))
    return np.where(shift, 0.5 / shift.sum(), 0.5 / (~shift).sum())


def alternative_table(mean: np.ndarray, comps: list[Component], first_present: int) -> np.ndarray:
    """q(code | cell) of every component: shape (cells, codes, components), rows summing to 1
    over the present codes. ``mean`` (cells, codes): the baseline's posterior mean, 0 on
    excluded codes."""
    n_cells, n_codes = mean.shape
    table = np.zeros((n_cells, n_codes, len(comps)), dtype=np.float64)
    p = np.clip(mean, 1e-12, 1.0)
    p[:, :first_present] = 0.0
    score = np.zeros(n_codes)
    if n_codes - first_present > 1:  # ordered bins on [0, 1]
        score[first_present:] = np.arange(n_codes - first_present) / (n_codes - first_present - 1)
    for c, comp in enumerate(comps):
        if comp.form == SHIFT:
            lam = comp.tilt if comp.direction == UP else -comp.tilt
            q = p * np.exp(lam * score)[None, :]
        else:
            k = comp.code
            pk = np.clip(p[:, k], 1e-12, 1.0 - 1e-12)
            if comp.form == ODDS:
                odds = comp.tilt if comp.direction == UP else 1.0 / comp.tilt
                qk = odds * pk / (1.0 - pk + odds * pk)
            else:
                qk = pk + comp.tilt * (1.0 - pk) if comp.direction == UP else pk * (1.0 - comp.tilt)
            q = p * ((1.0 - qk) / (1.0 - pk))[:, None]
            q[:, k] = qk
        table[:, :, c] = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
    return table


def evidence_rates(table: np.ndarray, mean: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Per component of ``table`` (cells, codes, components): the evidence per record it would give
    were it true, KL(q ‖ p̄) in nats, averaged over cells weighted by their baseline ``records``.
    An oracle that knew the change would need about (log threshold) / this many records to find it.

    >>> mean = np.array([[0.5, 0.5]])
    >>> comps = [Component(1, UP, 2.0)]
    >>> evidence_rates(alternative_table(mean, comps, 0), mean, np.array([100])).round(4).tolist()
    [0.0566]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(table > 0, table / np.maximum(mean, 1e-300)[:, :, None], 1.0)
        per_cell = (table * np.log(ratio)).sum(axis=1)  # (cells, components)
    weights = records / max(float(records.sum()), 1.0)
    return weights @ per_cell
