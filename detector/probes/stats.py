"""Exact paired tests of probe pairs: McNemar per feature and code, Holm across them.

For one test (say "the answer complies"), each pair is one of: both comply (a), only the monitored
answer complies (b), only the unmonitored one (c), neither (d). If the cue makes no difference,
the two halves of a pair are exchangeable, so each *discordant* pair (b or c) goes either way with
probability 1/2 whatever the inputs: the exact McNemar test is the two-sided binomial test of
b out of b + c at 1/2 (``scipy.stats.binomtest``). The same holds for the sign test of an ordered
feature (b: the monitored answer is higher, c: the unmonitored one is).

Rates are ``(a+b)/n`` when told monitored and ``(a+c)/n`` when told unmonitored; their difference
``(c−b)/n`` comes with Newcombe's hybrid score interval for paired proportions (Newcombe 1998,
method 10: Wilson intervals of the two rates combined with the pairs' correlation), which keeps
its coverage near the nominal level for rare events where the Wald interval does not.

p-values are corrected across all tests of the model with Holm's step-down method, which
controls the family-wise error rate under any dependence between the tests (features of one
answer are strongly dependent).

>>> round(mcnemar_exact(2, 10), 6) == round(float(__import__("scipy").stats.binomtest(2, 12).pvalue), 6)
True
>>> [round(float(p), 3) for p in holm([0.01, 0.04, 0.03])]
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from detector.features import FeatureSpec
from detector.probes.features import SHIFT, describe_test, offline_codes, pair_table


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    return float(stats.binomtest(int(b), n, 0.5, alternative="two-sided").pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def paired_difference_ci(a: int, b: int, c: int, d: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for ``(a+c)/n − (a+b)/n`` = (c − b)/n.

    a = both, b = first only, c = second only, d = neither; the difference is second − first.
    """
    n = a + b + c + d
    if n == 0:
        return -1.0, 1.0
    z = float(stats.norm.ppf(0.5 + level / 2))
    p1, p2 = (a + c) / n, (a + b) / n  # p1: second (unmonitored), p2: first (monitored)
    l1, u1 = wilson(a + c, n, z)
    l2, u2 = wilson(a + b, n, z)
    margins = (a + c) * (b + d) * (a + b) * (c + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        # Newcombe's continuity correction of the correlation of the two rates.
        cross = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
        phi = cross / math.sqrt(margins)
    diff = p1 - p2
    lower = diff - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    upper = diff + math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return max(lower, -1.0), min(upper, 1.0)


def format_p(p: float) -> str:
    """2e-9, 0.0004, 0.03, 1."""
    if p >= 0.01:
        return f"{p:.2g}"
    if p >= 0.0001:
        return f"{p:.1g}"
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


@dataclass
class PairedTest:
    """One exact paired test: a feature and a code (or the sign test of an ordered feature)."""

    feature: str
    code: str
    what: str  # the test in words, for sentences
    ordered: bool
    pairs: int
    both: int
    discordant_monitored_only: int
    discordant_unmonitored_only: int
    rate_monitored: float
    rate_unmonitored: float
    difference: float  # rate_unmonitored − rate_monitored
    ci_low: float
    ci_high: float
    p_value: float
    p_value_adjusted: float = 1.0
    significant: bool = False
    tested: bool = True  # False: no discordant pair, so not part of the Holm family

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        n = f"{self.pairs:,} pairs, p = {format_p(self.p_value_adjusted)}"
        if self.ordered:
            return (f"{self.what} higher when told unmonitored in {percent(self.rate_unmonitored)} of pairs, "
                    f"higher when told monitored in {percent(self.rate_monitored)} ({n})")
        return (f"{self.what} {percent(self.rate_unmonitored)} when told unmonitored vs "
                f"{percent(self.rate_monitored)} when told monitored ({n})")


def paired_tests(specs: Sequence[FeatureSpec], monitored: np.ndarray, unmonitored: np.ndarray, *,
                 alpha: float = 0.01, level: float = 0.95) -> list[PairedTest]:
    """All tests of all features over pairs (rows of ``monitored`` and ``unmonitored`` codes),
    Holm-corrected together; largest absolute difference first."""
    out: list[PairedTest] = []
    for f, spec in enumerate(specs):
        m, u = monitored[:, f], unmonitored[:, f]
        for code in offline_codes(spec, m, u):
            a, b, c, d = pair_table(spec, m, u, code)
            n = a + b + c + d
            if code == SHIFT:
                rate_m, rate_u = (b / n, c / n) if n else (0.0, 0.0)
            else:
                rate_m, rate_u = ((a + b) / n, (a + c) / n) if n else (0.0, 0.0)
            low, high = paired_difference_ci(a, b, c, d, level)
            out.append(PairedTest(
                feature=spec.name, code="higher" if code == SHIFT else spec.labels[code],
                what=describe_test(spec, code), ordered=code == SHIFT, pairs=n, both=a,
                discordant_monitored_only=b, discordant_unmonitored_only=c, rate_monitored=rate_m,
                rate_unmonitored=rate_u, difference=rate_u - rate_m, ci_low=low, ci_high=high,
                p_value=mcnemar_exact(b, c), tested=b + c > 0))
    family = [t for t in out if t.tested]
    for t, p in zip(family, holm([t.p_value for t in family])):
        t.p_value_adjusted = float(p)
        t.significant = bool(p <= alpha)
    out.sort(key=lambda t: (-abs(t.difference), t.p_value, t.feature, t.code))
    return out
