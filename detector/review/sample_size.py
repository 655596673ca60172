"""How many reviews a violation-rate estimate of a given precision needs, and the rates that give them.

The normal approximation to the binomial, without a finite-population correction:

    n = z² · p(1 − p) / m²,   z = Φ⁻¹(1 − (1 − confidence)/2)

is the number of reviewed decisions for a confidence interval of half-width ``m`` around a rate
near ``p`` (``p = 0.5``, the default, is the worst case). It is per stratum: each stratum's own
rate gets that precision. No finite-population correction: the question a SOC asks is the model's
propensity to violate, not the share among one period's finite set of decisions, and the review
populations (thousands to millions of decisions) dwarf n anyway, where the correction is ~1.

>>> sample_size(0.02, 0.95)
2401
>>> sample_size(0.02, 0.95, expected_rate=0.05)
457
>>> rates_for_target(0.02, 0.95, 0.05, {"consequential": 2_000, "base": 1_000_000})
{'consequential': 0.2285, 'base': 0.000457}
"""

from __future__ import annotations

import math

from scipy.stats import norm

from detector.errors import JanusError


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence`` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise JanusError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(norm.ppf(1 - (1 - confidence) / 2))


def sample_size(margin: float, confidence: float = 0.95, expected_rate: float = 0.5) -> int:
    """Reviews per stratum for a ±``margin`` interval at ``confidence`` around ``expected_rate``."""
    if not 0 < margin < 0.5:
        raise JanusError(f"margin must be in (0, 0.5), got {margin!r}")
    if not 0 < expected_rate < 1:
        raise JanusError(f"expected rate must be in (0, 1), got {expected_rate!r}")
    z = z_value(confidence)
    return int(math.ceil(z * z * expected_rate * (1 - expected_rate) / (margin * margin) - 1e-9))


def rates_for_target(margin: float, confidence: float, expected_rate: float,
                     period_records: dict[str, float]) -> dict[str, float]:
    """Per stratum, the inclusion probability that yields ``sample_size`` reviews out of the
    stratum's expected records per review period (capped at 1: review everything)."""
    n = sample_size(margin, confidence, expected_rate)
    return {stratum: round(min(1.0, n / float(volume)), 12) for stratum, volume in period_records.items()}
