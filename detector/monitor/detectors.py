"""Shiryaev–Roberts e-detectors against tilted alternatives, vectorised over micro-batches.

Why this gives the ARL (Shin, Ramdas & Rinaldo, "E-detectors", 2023; Pollak 1985):
each component has a per-record likelihood ratio Λ with E[Λ] ≤ 1 under no change (see
:mod:`.nulls`). Its Shiryaev–Roberts statistic ``R_n = Λ_n (1 + R_{n-1})`` then satisfies
E[R_n] ≤ n, so ``R_n − n`` is a supermartingale and, by optional stopping, the first time
R reaches A comes after ≥ A records on average. A feature's statistic is the *mean* of its
components' R (a mixture is again an e-detector, and it is never weaker than a Bonferroni split of
the family). The model has F features; alarming when any feature's mixture reaches F·A means the
average over features reached A, so the whole model keeps an ARL ≥ A. Segments are free: each
record updates only its own segment's statistics, so their sum still grows by ≤ 1 per record.
After an alert resolves, its statistic restarts from 0; each restart is a renewal, so in the long
run false alarms come at most once per A production records.

Unlike CUSUM, whose threshold log A is conservative by a factor of about 1/KL(null‖alt) in ARL,
the SR bound is nearly tight, which is why no simulation-based calibration is needed to come
close to the oracle's delay.

Per record, the work is one gather of precomputed likelihood ratios (per input cell and code)
and ``R = Λ·(1 + R)`` over all components of the model at once (:func:`sr_run`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.monitor.nulls import code_bounds, mgf_upper_bound

UP, DOWN = "up", "down"


ODDS, SHARE, SHIFT = "odds", "share", "shift"


@dataclass(frozen=True)
class Component:
    code: int  # the code tilted, or -1 for an ordered shift
    direction: str
    tilt: float  # odds ratio (ODDS), switching fraction δ (SHARE) or exponential tilt λ (SHIFT)
    form: str = ODDS


def feature_components(n_codes: int, ordered: bool, tilts: list[float], shares: list[float]) -> list[Component]:
    """The family of one feature.

    * ODDS: the odds of code k change by a factor in every input cell — the natural alternative
      for a rare code, scale-free (0.01→0.02 and 0.05→0.10 are both "×2").
    * SHARE: a fraction δ of decisions switch to (or away from) code k: q = p + δ(1−p) or q = p(1−δ).
      When a change hits some inputs only (harmful requests), cells where k was already common
      barely move under this alternative, so they do not cancel the evidence of the cells that
      changed, as they would under an odds tilt.
    * SHIFT (ordered features): the bins' distribution tilted towards higher or lower values.
    """
    # With two codes, "code 1 more frequent" is "code 0 less frequent": one code suffices.
    codes = [1] if n_codes == 2 else list(range(n_codes)) if n_codes > 2 else []
    comps = [Component(k, d, t, ODDS) for k in codes for d in (UP, DOWN) for t in tilts]
    comps += [Component(k, d, x, SHARE) for k in codes for d in (UP, DOWN) for x in shares]
    if ordered and n_codes > 2:
        comps += [Component(-1, d, 2.0 * float(np.log(t)), SHIFT) for d in (UP, DOWN) for t in tilts]
    return comps


def llr_table(counts: np.ndarray, cell_segment: np.ndarray, n_segments: int, comps: list[Component], *,
              level: float, shrinkage: float, conditional: bool) -> np.ndarray:
    """log Λ for every (cell, observed code, component): shape (cells, codes, components)."""
    n_cells, n_codes = counts.shape
    table = np.zeros((n_cells, n_codes, len(comps)), dtype=np.float64)
    upper, lower, mean = code_bounds(counts, cell_segment, n_segments, level=level, shrinkage=shrinkage,
                                     conditional=conditional)
    z = float(-np.sqrt(2) * _erfcinv(2 * level))  # normal quantile at `level`
    bins = np.arange(1, n_codes)
    score = (bins - 1) / max(n_codes - 2, 1)  # ordered bins on [0, 1]; code 0 (missing) is neutral
    for c, comp in enumerate(comps):
        if comp.code >= 0:
            up = comp.direction == UP
            p0 = (upper if up else lower)[:, comp.code]
            if comp.form == ODDS:
                odds = comp.tilt if up else 1.0 / comp.tilt
                q = odds * p0 / (1.0 - p0 + odds * p0)
            else:
                q = p0 + comp.tilt * (1.0 - p0) if up else p0 * (1.0 - comp.tilt)
            table[:, :, c] = np.log((1.0 - q) / (1.0 - p0))[:, None]
            table[:, comp.code, c] = np.log(q / p0)
        else:
            lam = comp.tilt if comp.direction == UP else -comp.tilt
            values = np.exp(lam * score)
            present = mean[:, 1:]
            prior = present / np.maximum(present.sum(axis=1, keepdims=True), 1e-12)
            bound = mgf_upper_bound(counts[:, 1:].astype(np.float64), prior, values, shrinkage, z)
            table[:, 1:, c] = lam * score[None, :] - np.log(bound)[:, None]
    return table


def _erfcinv(y: float) -> float:
    from scipy.special import erfcinv

    return float(erfcinv(y))


def sr_run(r0: np.ndarray, lr: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """R after each record: ``R_n = Λ_n (1 + R_{n-1})`` from ``r0`` (C,) over ratios ``lr`` (n, C).

    Linear space, in place, three ufunc calls per record over all components: no exp or log.
    Every alternative in the family has Λ ≥ ~0.06, so R_n ≥ Λ_n never underflows; ``cap`` (C,)
    sits far above any threshold and stops overflow while an alert stays open. Capping can only
    lower an e-process, so the ARL guarantee is untouched.
    """
    path = np.empty_like(lr)
    prev = r0
    for i in range(len(lr)):
        row = path[i]
        np.add(prev, 1.0, out=row)
        np.multiply(row, lr[i], out=row)
        np.minimum(row, cap, out=row)
        prev = row
    return path


def mixture(log_r: np.ndarray, starts: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """log of each feature's weighted sum of components, (n, C) → (n, F); weights 1/size = mean."""
    return np.logaddexp.reduceat(log_r, starts, axis=-1) + log_weights

