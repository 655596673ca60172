"""Verdict-weighted violation rates with confidence intervals, per traffic and stratum.

**Estimator.** Decisions are sampled independently with known inclusion probabilities ``π_i``
(Poisson sampling, :mod:`detector.review.sampler`). Among the reviewed ones (verdict ``ok`` or
``violation``; ``unsure`` counts as not reviewed), each stands for ``w_i = 1 / (π_i · r_h)``
decisions, where ``r_h`` is the share of its stratum's sampled decisions that got a verdict (the
weighting-class adjustment for reviews still pending: within a stratum, the reviewed decisions are
taken to be a random subset of the sampled ones). The rate is the Hájek (ratio) estimator

    θ̂ = Σ w_i y_i / Σ w_i  =  Σ_h W_h θ̂_h,   W_h = Σ_{i∈h} w_i / Σ w_i,

preferred to Horvitz–Thompson's ``Σ w_i y_i / N`` because it needs no population count, keeps
the estimate in [0, 1] and is less variable when the realised sample size is random, as it is here.

**Interval: stratified Wilson on the design-effective sample size.** The stratified variance
``V = Σ_h W_h² θ̃_h (1 − θ̃_h) / n_h`` is computed with each stratum's rate shrunk to the centre
of its own Wilson interval, ``θ̃_h = (x_h + z²/2) / (n_h + z²)`` (``n_h``: Kish's effective size
within the stratum, the count of reviews when its π is constant). The effective size of the whole
sample is ``n* = θ̃(1 − θ̃) / V`` with ``θ̃ = Σ_h W_h θ̃_h`` (capped at the number reviewed), and
the interval is Wilson's score interval for ``θ̂`` on ``n*`` trials. Why this and not a plain
design-based variance: violation rates live near 0, where the linearised variance
``Σ w_i² (y_i − θ̂)²`` of a stratum without a violation is 0, so a heavily weighted stratum
with few reviews and no violation would make the overall interval claim a precision it does not
have; the shrunk rates keep every stratum's uncertainty in ``V`` (the same idea as Wilson's own
interval, and as the stratified Wilson intervals of Yan & Su, 2010). With a single stratum it is
exactly Wilson's interval. The variance from estimating the stratum shares ``W_h`` is left out
(the strata's sizes are estimated from hundreds of samples, their rates from few violations);
``tests/test_review.py`` checks the coverage on a simulated stream. No finite-population
correction: the target is the model's propensity to violate, not the share within the period's
finite set of decisions. ``method="exact"`` gives Clopper–Pearson on the same ``n*`` instead
(wider, conservative).

>>> import numpy as np
>>> r = weighted_rate(np.array([1, 0, 0, 0] * 50), np.full(200, 0.1))
>>> round(r.estimate, 3), round(r.lower, 3), round(r.upper, 3), round(r.n_effective)
(0.25, 0.195, 0.314, 200)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
import logging
from pathlib import Path

import numpy as np
from scipy.stats import beta

from detector.config import REVIEW_STRATA, JanusConfig
from detector.errors import JanusError
from detector.monitor.alerts import percent
from detector.probes.stats import wilson
from detector.review.sample_size import z_value
from detector.review.verdicts import SampleIndex, VerdictLog, verdict_log_path

log = logging.getLogger("janus.review")

OVERALL = "overall"
METHODS = ("wilson", "exact")
BOUNDS = ("lower", "estimate", "upper")


@dataclass
class RateEstimate:
    reviewed: int = 0  # verdicts ok + violation
    violations: int = 0
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    n_effective: float = 0.0
    represented: float = 0.0  # Σ w: the decisions the reviewed ones stand for

    def to_dict(self) -> dict:
        return asdict(self)

    def interval(self) -> str:
        if self.estimate is None:
            return "no verdicts"
        return f"{percent(self.estimate)} [{100 * self.lower:.1f}, {100 * self.upper:.1f}]"


def clopper_pearson(p: float, n: float, confidence: float) -> tuple[float, float]:
    """Exact (beta) interval with ``x = p·n`` successes out of ``n`` (fractional allowed)."""
    if n <= 0:
        return 0.0, 1.0
    a = 1 - confidence
    x = p * n
    lo = 0.0 if x <= 0 else float(beta.ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x >= n else float(beta.ppf(1 - a / 2, x + 1, n - x))
    return lo, hi


def weighted_rate(violation, inclusion, *, strata=None, response=None, confidence: float = 0.95,
                  method: str = "wilson") -> RateEstimate:
    """The Hájek estimate of a violation rate and its interval (see the module docstring).

    ``violation``: 0/1 per reviewed decision; ``inclusion``: its inclusion probability π;
    ``strata``: its stratum (default: its π, i.e. decisions of equal π form a stratum);
    ``response``: its stratum's share of sampled decisions that were reviewed (default 1).
    """
    if method not in METHODS:
        raise JanusError(f"interval method must be one of {', '.join(METHODS)}, got {method!r}")
    y = np.asarray(violation, dtype=np.float64)
    pi = np.asarray(inclusion, dtype=np.float64)
    n = len(y)
    if n == 0:
        return RateEstimate()
    if len(pi) != n:
        raise JanusError(f"{n} verdicts but {len(pi)} inclusion probabilities")
    if np.any(pi <= 0) or np.any(pi > 1):
        raise JanusError("inclusion probabilities must be in (0, 1]")
    w = 1.0 / pi
    if response is not None:
        w = w / np.asarray(response, dtype=np.float64)
    total = float(w.sum())
    est = float((w * y).sum() / total)
    z = z_value(confidence)
    _, stratum_of = np.unique(np.asarray(strata if strata is not None else pi), return_inverse=True)
    share = np.bincount(stratum_of, weights=w) / total  # W_h
    rate = np.bincount(stratum_of, weights=w * y) / (share * total)  # θ̂_h
    kish = np.bincount(stratum_of, weights=w) ** 2 / np.bincount(stratum_of, weights=w * w)  # n_h
    shrunk = (rate * kish + z * z / 2) / (kish + z * z)  # θ̃_h: the centre of the stratum's Wilson interval
    var = float((share * share * shrunk * (1 - shrunk) / kish).sum())
    centre = float((share * shrunk).sum())
    n_eff = float(min(centre * (1 - centre) / var, n))
    if method == "wilson":
        lo, hi = wilson(est * n_eff, n_eff, z)
    else:
        lo, hi = clopper_pearson(est, n_eff, confidence)
    return RateEstimate(n, int(y.sum()), est, min(lo, est), max(hi, est), n_eff, total)


@dataclass
class SummaryRow:
    model_id: str
    traffic: str
    stratum: str  # one of REVIEW_STRATA or "overall"
    sampled: int
    pending: int  # sampled, no verdict yet
    unsure: int
    rate: RateEstimate
    inclusion_probability: float | None = None  # the stratum's (None when it varied or overall)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "rate"}
        out.update(self.rate.to_dict())
        return out


@dataclass
class ReviewSummary:
    rows: list[SummaryRow] = field(default_factory=list)
    confidence: float = 0.95
    method: str = "wilson"
    notes: list[str] = field(default_factory=list)

    def row(self, model_id: str, traffic: str, stratum: str = OVERALL) -> SummaryRow | None:
        for r in self.rows:
            if (r.model_id, r.traffic, r.stratum) == (model_id, traffic, stratum):
                return r
        return None

    def models(self) -> list[str]:
        return sorted({r.model_id for r in self.rows})

    def pending(self) -> dict[str, int]:
        """model_id → sampled decisions without a verdict (``janus_review_pending``)."""
        out: Counter = Counter()
        for r in self.rows:
            if r.stratum == OVERALL:
                out[r.model_id] += r.pending
        return dict(out)

    def violation_rates(self) -> dict[tuple[str, str, str], float]:
        """(model_id, traffic, bound) → rate, bound in lower/estimate/upper
        (``janus_review_violation_ratio``); traffics without a verdict are left out."""
        out = {}
        for r in self.rows:
            if r.stratum == OVERALL and r.rate.estimate is not None:
                for bound in BOUNDS:
                    out[(r.model_id, r.traffic, bound)] = float(getattr(r.rate, bound))
        return out

    def sentence(self, model_id: str) -> str:
        """``violations: 0.4% [0.1, 1.2] in evaluation vs 3.8% [2.6, 5.3] in production``"""
        parts = []
        for traffic in ("evaluation", "production"):
            r = self.row(model_id, traffic)
            if r is not None and r.rate.estimate is not None:
                parts.append(f"{r.rate.interval()} in {traffic}")
        if not parts:
            return "violations: no verdicts yet"
        return "violations: " + " vs ".join(parts)

    def to_dict(self) -> dict:
        return {"confidence": self.confidence, "method": self.method, "notes": self.notes,
                "rows": [r.to_dict() for r in self.rows],
                "sentences": {m: self.sentence(m) for m in self.models()}}


def summarize(verdicts: Iterable[dict], sampled: Mapping[tuple[str, str, str], int] | None = None, *,
              model_id: str | None = None, since: float | None = None, confidence: float = 0.95,
              method: str = "wilson") -> ReviewSummary:
    """Per (model, traffic): each stratum and overall.

    ``verdicts``: verdict-log entries; ``sampled``: sampled decisions per (model, traffic,
    stratum) — from the sample files (:meth:`SampleIndex.counts`) or the samplers' counts — for
    the pending counts and the adjustment for pending reviews (without it, every stratum is taken
    as fully reviewed). ``since``: only decisions made at or after this epoch time.
    """
    by_cell: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    unsure: Counter = Counter()
    for v in verdicts:
        if model_id is not None and v.get("model_id") != model_id:
            continue
        if since is not None and float(v.get("timestamp", 0.0)) < since:
            continue
        key = (v["model_id"], v["traffic"], v["stratum"])
        if v["verdict"] == "unsure":
            unsure[key] += 1
        else:
            by_cell[key].append(v)
    sampled = Counter({k: n for k, n in (sampled or {}).items() if model_id is None or k[0] == model_id})
    summary = ReviewSummary(confidence=confidence, method=method)
    if not sampled and by_cell:
        summary.notes.append("no sample counts: pending reviews unknown, every stratum taken as fully reviewed")
    keys = set(by_cell) | set(unsure) | set(sampled)
    for model, traffic in sorted({(m, t) for m, t, _ in keys}):
        ys, pis, rs, hs = [], [], [], []
        totals = Counter()
        for stratum in REVIEW_STRATA:
            key = (model, traffic, stratum)
            if key not in keys:
                continue
            cell = by_cell.get(key, [])
            judged = len(cell) + unsure[key]
            n_sampled = max(sampled.get(key, 0), judged)
            if sampled and judged > sampled.get(key, 0):
                summary.notes.append(f"{model} {traffic} {stratum}: more verdicts ({judged}) than sampled "
                                     f"decisions counted ({sampled.get(key, 0)})")
            if n_sampled and not cell:
                summary.notes.append(f"{model} {traffic} {stratum}: {n_sampled} sampled, none with a verdict "
                                     "ok/violation yet: the overall rate leaves this stratum out")
            y = [1.0 if v["verdict"] == "violation" else 0.0 for v in cell]
            pi = [float(v["inclusion_probability"]) for v in cell]
            response = len(cell) / n_sampled if sampled and n_sampled else 1.0
            rate = weighted_rate(y, pi, confidence=confidence, method=method)
            distinct = set(pi)
            summary.rows.append(SummaryRow(model, traffic, stratum, n_sampled, n_sampled - judged, unsure[key],
                                           rate, distinct.pop() if len(distinct) == 1 else None))
            ys += y
            pis += pi
            rs += [response] * len(cell)
            hs += [stratum] * len(cell)
            totals.update(sampled=n_sampled, pending=n_sampled - judged, unsure=unsure[key])
        overall = weighted_rate(ys, pis, strata=hs, response=rs if sampled else None, confidence=confidence,
                                method=method)
        summary.rows.append(SummaryRow(model, traffic, OVERALL, totals["sampled"], totals["pending"],
                                       totals["unsure"], overall))
    return summary


class ReviewStatus:
    """Plain numbers for ``janus_review_pending`` and ``janus_review_violation_ratio`` in a live
    service: the verdict log (re-read when it changes) against the samplers' sampled counts.

    >>> status = ReviewStatus("/nonexistent/verdicts.jsonl")
    >>> status.pending({("m", "production", "base"): 3}), status.violation_rates({})
    ({'m': 3}, {})
    """

    def __init__(self, verdict_log: str | Path, *, confidence: float = 0.95, method: str = "wilson"):
        self.log = VerdictLog(verdict_log)
        self.confidence = confidence
        self.method = method
        self._stamp: tuple | None = None
        self._failed: tuple | None = None
        self._error: JanusError | None = None
        self._verdicts: list[dict] = []

    @classmethod
    def for_config(cls, config: JanusConfig, store_root: str | Path | None = None) -> ReviewStatus:
        return cls(verdict_log_path(config, store_root))

    def verdicts(self) -> list[dict]:
        try:
            st = self.log.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._stamp, self._error, self._verdicts = stamp, None, []
            try:
                self._verdicts = self.log.entries() if stamp is not None else []
            except JanusError as exc:  # raised again until the file changes
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._verdicts

    def summary(self, sampled: Mapping[tuple[str, str, str], int] | None = None) -> ReviewSummary:
        return summarize(self.verdicts(), sampled, confidence=self.confidence, method=self.method)

    def pending(self, sampled: Mapping[tuple[str, str, str], int]) -> dict[str, int]:
        return self.summary(sampled).pending()

    def violation_rates(self, sampled: Mapping[tuple[str, str, str], int] | None = None
                        ) -> dict[tuple[str, str, str], float]:
        return self.summary(sampled).violation_rates()

    def export(self, metrics, sampled: Mapping[tuple[str, str, str], int]) -> bool:
        """Set ``janus_review_pending`` / ``janus_review_violation_ratio`` on a
        :class:`~detector.metrics.JanusMetrics`. A verdict log that fails its hash check leaves the
        gauges as they were and is logged (once per change of the file): the stream goes on."""
        try:
            summary = self.summary(sampled)
        except JanusError as exc:
            if self._stamp != self._failed:
                self._failed = self._stamp
                log.error("review metrics not updated: %s", exc)
            return False
        metrics.set_review(summary.pending(), summary.violation_rates())
        return True


def review_summary(config: JanusConfig, model_id: str | None = None, *, store_root: str | Path | None = None,
                   since: float | None = None, confidence: float = 0.95, method: str = "wilson") -> ReviewSummary:
    """The review summary of ``model_id`` (every model when None) from the default places: the
    verdict log next to the baseline store and the configured sample file (``janus report`` uses
    this). ``summary.sentence(model_id)`` is the one-line comparison of the two traffics;
    ``summary.rows`` hold each stratum and the overall rate per traffic.

    >>> import tempfile
    >>> s = review_summary(JanusConfig(store=tempfile.mkdtemp()), "m")
    >>> s.rows, s.sentence("m")
    ([], 'violations: no verdicts yet')
    """
    from detector.review.verdicts import default_sample_paths

    return summary_from_files(verdict_log_path(config, store_root), default_sample_paths(config, store_root),
                              model_id=model_id, since=since, confidence=confidence, method=method)


def summary_from_files(verdict_log: str | Path, sample_paths: list[str | Path], **kwargs) -> ReviewSummary:
    """What ``janus review summary`` computes: the verdict log against the sample files."""
    index = SampleIndex.load(sample_paths, missing_ok=True)
    sampled = index.counts(kwargs.get("model_id"), kwargs.get("since"))
    summary = summarize(VerdictLog(verdict_log).entries(), sampled, **kwargs)
    if not index.sources:
        summary.notes.append("no sample file found (" + ", ".join(map(str, sample_paths)) + ")")
    return summary
