"""Recalibration guidance: is an evaluation sample big enough for the ARL, and how far apart are
two baselines before a promotion deserves a second look.

Sample size
-----------
A detector that knows the evaluation rate ``p`` of a code exactly and the rate ``p1`` after a
change needs about ``log(ARL·F) / KL(p1‖p)`` production records to alarm (F features share the
false-alarm budget; KL in nats per record; Lorden/Pollak). Janus does not know ``p``: it only has
the evaluation sample, and scores against its posterior predictive (:mod:`detector.monitor.nulls`),
whose error is about one posterior standard deviation. The advice models that as a null at the
one-sd end ``p⁺`` of the posterior (level ``ADVICE_LEVEL``), tilted from there. Its expected
evidence per post-change record is then

    drift(n) = p1·log(q/p⁺) + (1−p1)·log((1−q)/(1−p⁺)),   q = odds tilt of p⁺ by the effect r,

which is ``KL(p1‖p)`` when ``n → ∞`` and shrinks (to ≤ 0: undetectable) as the interval widens.
With the feature's family of K alternatives mixed with weights 1/K, the delay is about
``(log(ARL·F) + log K) / drift(n)``. :func:`sample_size_advice` reports that delay for this
baseline and for an exact one, and the evaluation size ``n*`` at which the finite sample costs
at most ``slack`` (default 1.5×) of the exact-baseline delay — found by bisection on ``n``.
The Jeffreys-Beta quantile ``p⁺`` is the advice's own stand-in for the baseline's error, taken
at the model level: the detector itself uses no bound (its null is the posterior predictive per
condition cell, which also learns from production), so these figures are estimates, not the
detector's arithmetic.

``n*`` does not depend on the ARL: the level is fixed, so a finite sample stretches every
delay by the same factor whatever the threshold, while the ARL sets the delays themselves. As a
rule of thumb ``n*`` is of the order of the exact-baseline delay (1.3-1.5× it at ARL 10⁵ for the
codes of the analyst guide's worked example): the evaluation sample must know a rate about as
well as the detector needs to see it move.

It is a *model-wide, optimistic* figure: behaviour is judged per condition, whose samples are
smaller.

Promotion check
---------------
:func:`promotion_check` compares two baselines feature by feature with the Jensen–Shannon
distance (base 2, in [0, 1]) of their code shares, on features whose codes mean the same in both:
categorical ones (refusal, action, tool use, attributes, oversight phrases, novel inputs, data
quality) and numeric features whose bin edges happen to coincide. Text-cluster codes (``#3``) and
quantile bins are fitted per baseline, so the same label means different things in two versions;
those are left out and named.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detector.baseline.model import Baseline
from detector.config import DetectionConfig
from detector.features import BEHAVIOUR
from detector.monitor.monitor import watched_feature

__all__ = ["FeatureDistance", "SampleSizeAdvice", "monitored_features", "promotion_check", "sample_size_advice"]

CLUSTER_FEATURES = ("output_cluster", "reasoning_cluster", "input_cluster")
ADVICE_LEVEL = 0.84  # one posterior standard deviation: the typical error of a baseline's rate


@dataclass(frozen=True)
class SampleSizeAdvice:
    feature: str
    code: str
    rate: float  # evaluation share of the code, model-wide
    effect: float  # odds ratio of the change considered
    arl: float
    n_features: int  # F: monitored features sharing the ARL
    family: int  # K: alternatives in this feature's family
    n_records: int  # evaluation records in the baseline
    exact_delay: float  # production records to alarm with an exactly known evaluation rate
    delay: float  # ... with the null one posterior sd off (p⁺; inf: the change is within its uncertainty)
    needed: int  # evaluation records for delay <= slack * exact_delay
    slack: float

    @property
    def sufficient(self) -> bool:
        return self.n_records >= self.needed

    def to_dict(self) -> dict:
        out = asdict(self)
        out["delay"] = None if math.isinf(self.delay) else round(self.delay, 1)
        out["exact_delay"] = round(self.exact_delay, 1)
        out["sufficient"] = self.sufficient
        return out

    def sentence(self) -> str:
        if math.isinf(self.delay):
            now = "cannot be detected with this baseline (it is inside the baseline's uncertainty)"
        else:
            now = f"takes ~{self.delay:,.0f} production records to detect with this baseline"
        return (f"{self.feature} = {self.code} ({100 * self.rate:.1f}% of evaluation): a x{self.effect:g} change in "
                f"its odds {now}, ~{self.exact_delay:,.0f} with an exact one; ~{self.needed:,} evaluation "
                f"records would bring it within {self.slack:g}x")


def _bernoulli_kl(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))


def _tilt(p: np.ndarray | float, odds: float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return odds * p / (1.0 - p + odds * p)


def _drift(p: float, effect: float, n: np.ndarray, level: float) -> np.ndarray:
    """Expected log-likelihood ratio per post-change record of the ODDS-up detector for a code of
    true rate ``p`` estimated from ``n`` records (Jeffreys-Beta upper bound at ``level``)."""
    n = np.asarray(n, dtype=np.float64)
    hits = p * n
    p_hi = np.clip(stats.beta.ppf(level, hits + 0.5, n - hits + 0.5), 1e-12, 1 - 1e-12)
    q = _tilt(p_hi, effect)
    p1 = float(_tilt(p, effect))
    return p1 * np.log(q / p_hi) + (1 - p1) * np.log((1 - q) / (1 - p_hi))


def monitored_features(baseline: Baseline, config: DetectionConfig) -> list[tuple[int, int]]:
    """(featurizer column, family size) of the features a Monitor would watch, as it picks them."""
    out = []
    for j, spec in enumerate(baseline.specs):
        if config.features and spec.name not in config.features:
            continue
        watched = watched_feature(spec, baseline.counts[j], config)
        if watched is not None:
            out.append((j, len(watched.components)))
    return out


def needed_records(p: float, effect: float, level: float, slack: float) -> int:
    """Smallest evaluation size whose drift is at least KL/slack (bisection on a log scale)."""
    target = float(_bernoulli_kl(_tilt(p, effect), p)) / slack
    lo, hi = 1.0, 10.0
    while float(_drift(p, effect, np.array([hi]), level)[0]) < target:
        lo, hi = hi, hi * 10
        if hi > 1e12:
            return int(1e12)
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if float(_drift(p, effect, np.array([mid]), level)[0]) >= target:
            hi = mid
        else:
            lo = mid
        if hi / lo < 1.01:
            break
    return int(math.ceil(hi))


def sample_size_advice(baseline: Baseline, *, arl: float, config: DetectionConfig = DetectionConfig(),
                       effect: float | None = None, min_rate: float = 0.01, slack: float = 1.5,
                       features: list[str] | None = None) -> list[SampleSizeAdvice]:
    """Per code of each monitored behaviour feature seen in at least ``min_rate`` (and at most half)
    of evaluation: delays with this baseline and with an exact one, and the evaluation size that
    would bring them within ``slack``. ``effect`` defaults to the smallest configured odds tilt.
    Most demanding first."""
    effect = float(effect if effect is not None else min(config.tilts))
    monitored = monitored_features(baseline, config)
    log_budget = math.log(arl) + math.log(max(len(monitored), 1))
    n = baseline.n_records
    out = []
    for j, family in monitored:
        spec = baseline.specs[j]
        if spec.kind != BEHAVIOUR or (features and spec.name not in features):
            continue
        counts = baseline.counts[j].sum(axis=0).astype(np.float64)
        total = counts.sum()
        if total <= 0:
            continue
        codes = [1] if spec.n_codes == 2 else range(spec.n_codes)
        for k in codes:
            p = (counts[k] + 0.5) / (total + 1.0)
            if not min_rate <= p <= 0.5:
                continue
            kl = float(_bernoulli_kl(_tilt(p, effect), p))
            drift = float(_drift(p, effect, np.array([float(total)]), ADVICE_LEVEL)[0])
            threshold = log_budget + math.log(family)
            out.append(SampleSizeAdvice(
                feature=spec.name, code=spec.labels[k], rate=float(p), effect=effect, arl=float(arl),
                n_features=len(monitored), family=family, n_records=n,
                exact_delay=threshold / kl, delay=threshold / drift if drift > 0 else math.inf,
                needed=needed_records(p, effect, ADVICE_LEVEL, slack), slack=slack))
    out.sort(key=lambda a: -a.needed)
    return out


@dataclass(frozen=True)
class FeatureDistance:
    feature: str
    js_distance: float
    moved: list[tuple[str, float, float]]  # (code, share in current, share in candidate), most moved first


def _comparable(a: Baseline, b: Baseline) -> tuple[list[tuple[int, int]], list[str]]:
    b_index = {s.name: j for j, s in enumerate(b.specs)}
    pairs, skipped = [], []
    for j, spec in enumerate(a.specs):
        jb = b_index.get(spec.name)
        if jb is None:
            continue
        if spec.name in CLUSTER_FEATURES or (spec.ordered and spec.labels != b.specs[jb].labels):
            skipped.append(spec.name)
            continue
        pairs.append((j, jb))
    return pairs, skipped


def promotion_check(current: Baseline, candidate: Baseline) -> tuple[list[FeatureDistance], list[str]]:
    """JS distance of code shares per comparable feature, largest first, and the features left out
    because their codes are fitted per baseline. Codes are matched by label (vocabularies differ)."""
    pairs, skipped = _comparable(current, candidate)
    out = []
    for j, jb in pairs:
        la, lb = current.specs[j].labels, candidate.specs[jb].labels
        sa, sb = dict(zip(la, current.shares(j))), dict(zip(lb, candidate.shares(jb)))
        labels = list(dict.fromkeys([*la, *lb]))
        pa = np.array([sa.get(x, 0.0) for x in labels])
        pb = np.array([sb.get(x, 0.0) for x in labels])
        if pa.sum() <= 0 or pb.sum() <= 0:
            continue
        d = float(jensenshannon(pa, pb, base=2))
        moved = sorted(zip(labels, pa.tolist(), pb.tolist()), key=lambda c: -abs(c[1] - c[2]))
        out.append(FeatureDistance(current.specs[j].name, 0.0 if np.isnan(d) else d, moved))
    out.sort(key=lambda f: -f.js_distance)
    return out, skipped
