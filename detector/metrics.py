"""Prometheus metrics of a running Janus, fed from :class:`~detector.pipeline.BatchResult` and Monitor views.

One :class:`JanusMetrics` owns its own ``CollectorRegistry`` (plus the process and platform
collectors) and exposes exactly the metric contract listed in ``tests/test_dashboards_rules.py``
(``JANUS_METRICS``; the dashboards and rules in ``dashboards/`` use these names)::

    metrics = JanusMetrics(config.metrics)
    server = metrics.serve(config.metrics.address)          # 127.0.0.1:9464 by default
    t0 = time.perf_counter(); result = pipeline.process(values)
    metrics.observe_batch(result, pipeline, time.perf_counter() - t0)

Label values (model ids, segments, codes, model versions) come from untrusted producers. Every
one is cut to 128 characters, and model ids, segments (per model) and codes (per model and
feature) are capped by ``[metrics] max_models / max_segments / max_codes`` (distinct values of
the label, ``"other"`` included): values beyond a cap fold into ``"other"`` and
``janus_labels_folded_total{label=...}`` counts the folds (probe outcomes, a fixed set, are
capped like rejection reasons). Models with
an active baseline (a Monitor) are admitted first and may displace a model id that has none, so
a flood of made-up ids can neither blow up Prometheus nor push a monitored model into "other".

Gauges derived from Monitors (statistics, shares, threshold, baseline, unbaselined versions) are
refreshed in :meth:`JanusMetrics.observe_batch` for the models that received production records
or alert events in that batch, at most once per ``refresh_seconds`` per model (default 5 s, a
third of the usual 15 s scrape interval). Why not every batch: a refresh costs ~1.5 ms per model
(most of it in ``Monitor.shares()``), so 100 models fed in small batches would spend more time
exporting gauges nobody scrapes than detecting; throttled, that is at most ~3% of a core. Why
not on a timer alone: a model with an alert event is refreshed at once, so that
``janus_drift_statistic`` agrees with ``janus_drift_alert`` (set from the events themselves,
never throttled). A model's monitoring-cue detector (``pipeline.cue_detectors``, see
docs/probes.md) is exported with its Monitor: its statistics and alerts as ``kind="cue"`` with
segment ``(all)``, its recent discordance as ``janus_probe_discordance``. The last batch
before a quiet period may sit unexported: call
:meth:`JanusMetrics.refresh` when the consumer goes idle and before shutdown.

>>> import tempfile
>>> from detector.baseline.store import BaselineStore
>>> from detector.pipeline import Pipeline
>>> from prometheus_client import generate_latest
>>> metrics = JanusMetrics()
>>> pipeline = Pipeline(BaselineStore(tempfile.mkdtemp()))
>>> result = pipeline.process([b'{"decision_id":"d","timestamp":0,"model_id":"m","traffic":"production"}', b"{"])
>>> metrics.observe_batch(result, pipeline, 0.01)
>>> text = generate_latest(metrics.registry).decode()
>>> 'janus_baseline_missing_total{model_id="m"} 1.0' in text, 'janus_records_rejected_total{reason="not_json"} 1.0' in text
(True, True)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
    start_http_server,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.exposition import ThreadingWSGIServer

from detector.config import MetricsConfig
from detector.monitor.alerts import SEVERITY

if TYPE_CHECKING:  # pragma: no cover
    from detector.monitor import Monitor
    from detector.pipeline import BatchResult, Pipeline
    from detector.probes.sequential import CueDetector

log = logging.getLogger("janus.metrics")

OTHER = "other"
MAX_LABEL_CHARS = 128
MAX_REASONS = 32  # detector.records.REASONS has 11 stable codes; the cap only guards against a bug
MAX_TOPIC_PARTITIONS = 4096
DEFAULT_ADDRESS = "127.0.0.1:9464"
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def clip(value: Any) -> str:
    """A label value: text, at most 128 characters, encodable as UTF-8 (lone surrogates replaced)."""
    text = "" if value is None else str(value)
    if len(text) > MAX_LABEL_CHARS:
        text = text[:MAX_LABEL_CHARS]
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class LabelCap:
    """At most ``limit`` distinct values of one label, ``"other"`` included: later values fold into it.

    A *trusted* value (a model with an active baseline, a segment its baseline knows) is always
    admitted while there is room, and when there is none it displaces the oldest untrusted value
    (``on_evict`` removes that value's series, and the value folds from then on). Memory stays
    bounded: folded values are not remembered.
    """

    def __init__(self, limit: int, label: str, folded: PromCounter, on_evict: Callable[[str], None] | None = None):
        self.limit = int(limit)
        self._named = max(self.limit - 1, 1)  # one value stays free for "other"
        self.label = label
        self._folded = folded.labels(label)
        self._on_evict = on_evict
        self._admitted: dict[str, bool] = {}  # value → trusted
        self._untrusted: OrderedDict[str, None] = OrderedDict()  # admission order, for eviction
        self._evicted: set[str] = set()  # bounded: one eviction per trusted admission

    def __contains__(self, value: str) -> bool:
        return value in self._admitted

    def __len__(self) -> int:
        return len(self._admitted)

    def get(self, raw: Any, *, trusted: bool = False) -> str:
        """The label for ``raw`` (``"other"`` when it folds, which the folded counter counts)."""
        value = clip(raw)
        known = self._admitted.get(value)
        if known is not None:
            if trusted and not known:
                self._admitted[value] = True
                self._untrusted.pop(value, None)
            return value
        if len(self._admitted) < self._named and (trusted or value not in self._evicted):
            self._admit(value, trusted)
            return value
        if trusted and self._untrusted:
            victim, _ = self._untrusted.popitem(last=False)
            del self._admitted[victim]
            self._evicted.add(victim)
            if self._on_evict is not None:
                self._on_evict(victim)
            self._admit(value, trusted)
            return value
        self._folded.inc()
        return OTHER

    def _admit(self, value: str, trusted: bool) -> None:
        self._admitted[value] = trusted
        self._evicted.discard(value)
        if not trusted:
            self._untrusted[value] = None


@dataclass
class _ModelView:
    """What is exported for one Monitor instance (a new baseline means a new view)."""

    monitor: Monitor
    model: str  # label value
    version: str
    segment: dict[str, str] = field(default_factory=dict)  # featurizer segment name → label
    code: dict[tuple[str, str], str] = field(default_factory=dict)  # (feature, code) → label
    feature: dict[str, str] = field(default_factory=dict)  # feature name → label
    firing: set[tuple[str, str, str]] = field(default_factory=set)  # (segment, feature, kind) as the Monitor names them
    cue: CueDetector | None = None  # the model's monitoring-cue detector, built on the same Monitor
    exported: dict[str, dict[tuple[str, ...], list]] = field(default_factory=dict)  # metric → labels → [child, value]
    refreshed: float = float("-inf")


class JanusMetrics:
    """The Janus metric contract on a private registry; see the module docstring."""

    def __init__(self, config: MetricsConfig = MetricsConfig(), *, refresh_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, registry: CollectorRegistry | None = None):
        self.config = config
        self.refresh_seconds = float(refresh_seconds)
        self._clock = clock
        self.registry = reg = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)

        self.decisions = PromCounter(
            "janus_decisions_total", "Decision records accepted, by model, segment and traffic.",
            ("model_id", "segment", "traffic"), registry=reg)
        self.rejected = PromCounter(
            "janus_records_rejected_total", "Records rejected by the parser (sent to the dead-letter topic), by reason.",
            ("reason",), registry=reg)
        self.statistic = Gauge(
            "janus_drift_statistic",
            "Normalised drift statistic of a detector (1.0 = its alert threshold), max over folded label values.",
            ("model_id", "segment", "feature", "kind"), registry=reg)
        self.threshold = Gauge(
            "janus_drift_threshold", "Raw e-detector threshold of the model's monitor (features x ARL).",
            ("model_id",), registry=reg)
        self.alert = Gauge(
            "janus_drift_alert", "1 while a drift detector is over its threshold (alert firing), else 0.",
            ("model_id", "segment", "feature", "kind", "severity"), registry=reg)
        self.share = Gauge(
            "janus_feature_share",
            "Share of records per feature code: evaluation = the active baseline, production = the recent window.",
            ("model_id", "feature", "code", "traffic"), registry=reg)
        self.baseline_info = Gauge(
            "janus_baseline_info", "The active baseline of a model (value always 1).",
            ("model_id", "version", "built_at", "records"), registry=reg)
        self.baseline_missing = PromCounter(
            "janus_baseline_missing_total", "Production records of models without an active baseline (not monitored).",
            ("model_id",), registry=reg)
        self.batch_seconds = Histogram(
            "janus_batch_processing_seconds", "Wall time to process one micro-batch (parse, featurise, detect).",
            registry=reg, buckets=BATCH_SECONDS_BUCKETS)
        self.lag = Gauge(
            "janus_consumer_lag_records", "Records between the consumer position and the end of a partition.",
            ("topic", "partition"), registry=reg)
        self.checkpoint = Gauge(
            "janus_last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint written.", registry=reg)
        self.checkpoint_bytes = Gauge(
            "janus_checkpoint_bytes", "Size of the last checkpoint: the states of every partition it wrote, in bytes.",
            registry=reg)
        self.checkpoint_seconds = Gauge(
            "janus_checkpoint_write_seconds",
            "Time the last checkpoint took to write its states (flushed to the state topic, or fsynced files).",
            registry=reg)
        self.model_partitions = Gauge(
            "janus_model_partitions",
            "Partitions of this instance on which a model has detectors of its own; summed over instances, more "
            "than 1 means each spends the model's whole ARL budget.",
            ("model_id",), registry=reg)
        self.folded = PromCounter(
            "janus_labels_folded_total",
            'Label values folded into "other" because a cardinality cap ([metrics] max_*) was reached '
            "(once per value and batch; codes once per baseline).",
            ("label",), registry=reg)
        self.unbaselined = Gauge(
            "janus_model_version_unbaselined",
            "1 for a model version seen in production that the active baseline was not built on.",
            ("model_id", "model_version"), registry=reg)
        self.probe_pairs = PromCounter(
            "janus_probe_pairs_total",
            "Monitoring-cue probe records by pairing outcome (paired, expired, same_condition, ...): pair ids, "
            "records for duplicate, extra_record and no_baseline.",
            ("model_id", "outcome"), registry=reg)
        self.probe_discordance = Gauge(
            "janus_probe_discordance",
            "Monitoring-cue probe pairs over the recent window: rate when told unmonitored minus rate when told "
            "monitored, for the feature's most discordant code (-1..1).",
            ("model_id", "feature"), registry=reg)
        # Review gauges are registered by the first set_review (janus serve, docs/review.md): a
        # batch run without a review status exports no such names rather than empty ones.
        self._review: dict[str, tuple[Gauge, set[tuple[str, ...]]]] = {}
        # Likewise the counts batches of `janus serve --role detect`, at the first batch with some.
        self._counts_batches: PromCounter | None = None

        self._counter_keys: dict[str, set[tuple[tuple[str, ...], PromCounter]]] = {}  # model label → series
        self.models = LabelCap(config.max_models, "model_id", self.folded, on_evict=self._evict_model)
        self._segments: dict[str, LabelCap] = {}  # model label → its segment cap
        self.reasons = LabelCap(MAX_REASONS, "reason", self.folded)
        # detector.probes.pairing.OUTCOMES (9) and detector.split.detect.OUTCOMES (6)
        self.outcomes = LabelCap(MAX_REASONS, "outcome", self.folded)
        self._views: dict[str, _ModelView] = {}  # model id (raw) → view
        self._lag_keys: set[tuple[str, str]] = set()
        self._model_partition_keys: set[str] = set()

    # ---- label caps ------------------------------------------------------------------------------
    def _segment_cap(self, model: str) -> LabelCap:
        cap = self._segments.get(model)
        if cap is None:
            cap = self._segments[model] = LabelCap(
                self.config.max_segments, "segment", self.folded,
                on_evict=lambda segment, model=model: self._evict_segment(model, segment))
        return cap

    def _evict_model(self, model: str) -> None:
        for labels, metric in self._counter_keys.pop(model, ()):
            _remove(metric, labels)
        self._segments.pop(model, None)

    def _evict_segment(self, model: str, segment: str) -> None:
        keys = self._counter_keys.get(model, set())
        for item in [k for k in keys if k[1] is self.decisions and k[0][1] == segment]:
            keys.discard(item)
            _remove(self.decisions, item[0])

    def _count(self, metric: PromCounter, model: str, labels: tuple[str, ...], amount: float) -> None:
        metric.labels(*labels).inc(amount)
        if model != OTHER:
            self._counter_keys.setdefault(model, set()).add((labels, metric))

    # ---- feeding ---------------------------------------------------------------------------------
    def observe_batch(self, result: BatchResult, pipeline: Pipeline, seconds: float) -> None:
        """Account for one processed micro-batch: counters, alert gauges and Monitor-derived gauges.

        ``pipeline`` is anything with a ``monitors`` mapping: a :class:`Pipeline`, or the stream
        service, whose ``monitors`` spans the pipelines of all its partitions.
        """
        self.batch_seconds.observe(max(float(seconds), 0.0))
        dirty = self._sync_monitors(pipeline)  # first: monitored models are admitted before producers' ids

        # Labels are looked up once per distinct value and batch: a fold counts once per batch.
        models: dict[str, str] = {}
        segments: dict[tuple[str, str], str] = {}
        decisions: Counter[tuple[str, str, str]] = Counter()
        for (model_id, segment, traffic), n in result.decisions.items():
            view = self._views.get(model_id)
            model = models.get(model_id)
            if model is None:
                model = models[model_id] = self.models.get(model_id, trusted=view is not None)
            seg = segments.get((model, segment))
            if seg is None:
                trusted = view is not None and segment in view.segment
                seg = segments[(model, segment)] = self._segment_cap(model).get(segment, trusted=trusted)
            decisions[(model, seg, clip(traffic))] += n
            if traffic == "production" and view is not None:
                dirty.add(model_id)
        for labels, n in decisions.items():
            self._count(self.decisions, labels[0], labels, n)

        rejected: Counter[str] = Counter()
        for reason, n in Counter(r.reason for r in result.rejections).items():
            rejected[self.reasons.get(reason)] += n
        for reason, n in rejected.items():
            self.rejected.labels(reason).inc(n)

        if result.counts_batches and self._counts_batches is None:
            self._counts_batches = PromCounter(
                "janus_counts_batches_total",
                "janus serve --role detect: counts batches from the featurisers by outcome (applied, replayed, "
                "fenced, overlap, stale_baseline, baseline_missing, bad_shape).", ("outcome",), registry=self.registry)
        for outcome, n in result.counts_batches.items():
            self._counts_batches.labels(self.outcomes.get(outcome)).inc(n)

        missing: Counter[str] = Counter()
        for model_id, n in result.baseline_missing.items():
            model = models.get(model_id)
            missing[model if model is not None else self.models.get(model_id)] += n
        for model, n in missing.items():
            self._count(self.baseline_missing, model, (model,), n)

        probes: Counter[tuple[str, str]] = Counter()
        for (model_id, outcome), n in result.probes.items():
            model = models.get(model_id)
            if model is None:
                model = models[model_id] = self.models.get(model_id, trusted=model_id in self._views)
            probes[(model, self.outcomes.get(outcome))] += n
            if model_id in self._views:
                dirty.add(model_id)  # discordance and cue statistics moved
        for labels, n in probes.items():
            self._count(self.probe_pairs, labels[0], labels, n)

        forced: set[str] = set()
        for event in result.alerts:
            view = self._views.get(event.model_id)
            if view is None or event.baseline_version != view.version:
                continue  # its monitor was replaced since: the new view starts from the new monitor's state
            key = (event.segment, event.feature, event.kind)
            if event.status == "firing":
                view.firing.add(key)
            elif event.status == "resolved":
                view.firing.discard(key)
            else:
                continue  # a notice (protocol change) moves no statistic
            forced.add(event.model_id)
        now = self._clock()
        for model_id in dirty | forced:
            view = self._views.get(model_id)
            if view is not None and (model_id in forced or now - view.refreshed >= self.refresh_seconds):
                self._refresh_view(view, now)

    def refresh(self, pipeline: Pipeline) -> None:
        """Re-export every Monitor-derived gauge now (e.g. on an idle poll or before shutdown)."""
        self._sync_monitors(pipeline)
        now = self._clock()
        for view in self._views.values():
            self._refresh_view(view, now)

    def set_lag(self, topic: str, partition: int, lag: float) -> None:
        key = (clip(topic), clip(partition))
        if key not in self._lag_keys and len(self._lag_keys) >= MAX_TOPIC_PARTITIONS:
            self.folded.labels("partition").inc()
            return
        self._lag_keys.add(key)
        self.lag.labels(*key).set(max(float(lag), 0.0))

    def set_lags(self, lags: dict[tuple[str, int], float]) -> None:
        """Every owned partition's lag; a partition no longer owned stops being exported (its new
        owner reports it), so a revoked partition does not show its last lag forever."""
        owned = {(clip(t), clip(p)) for t, p in lags}
        for key in self._lag_keys - owned:
            self._lag_keys.discard(key)
            _remove(self.lag, key)
        for (t, p), lag in lags.items():
            self.set_lag(t, p, lag)

    def set_checkpoint(self, ts: float | None = None, *, size_bytes: int = 0, seconds: float = 0.0) -> None:
        """The last checkpoint: its time, size and write time."""
        self.checkpoint.set(time.time() if ts is None else float(ts))
        self.checkpoint_bytes.set(float(size_bytes))
        self.checkpoint_seconds.set(float(seconds))

    def set_model_partitions(self, partitions: dict[str, int]) -> None:
        """Replace ``janus_model_partitions``: model id → partitions of this instance with its detectors
        (models through the model cap; folded ones report their largest count)."""
        values: dict[str, float] = {}
        for model_id, n in partitions.items():
            model = self.models.get(model_id, trusted=model_id in self._views)
            values[model] = max(values.get(model, 0.0), float(n))
        for model in self._model_partition_keys - set(values):
            _remove(self.model_partitions, (model,))
        for model, n in values.items():
            self.model_partitions.labels(model).set(n)
        self._model_partition_keys = set(values)

    def set_review(self, pending: dict[str, int], rates: dict[tuple[str, str, str], float]) -> None:
        """Replace the review gauges: ``pending`` model_id → count, ``rates`` (model_id, traffic,
        bound) → rate (see :class:`detector.review.summary.ReviewStatus`). Model ids go through the
        model cap; series no longer given are removed. Folded models: the max of their values."""
        if not self._review:
            self._review["pending"] = (Gauge(
                "janus_review_pending", "Decisions sampled for human review that have no verdict yet.",
                ("model_id",), registry=self.registry), set())
            self._review["rate"] = (Gauge(
                "janus_review_violation_ratio",
                "Verdict-weighted violation rate (Hajek estimate) and its confidence bounds (docs/review.md).",
                ("model_id", "traffic", "bound"), registry=self.registry), set())
        new: dict[str, dict[tuple[str, ...], float]] = {"pending": {}, "rate": {}}
        for model_id, n in pending.items():
            key = (self.models.get(model_id, trusted=model_id in self._views),)
            new["pending"][key] = max(new["pending"].get(key, 0.0), float(n))
        for (model_id, traffic, bound), value in rates.items():
            key = (self.models.get(model_id, trusted=model_id in self._views), clip(traffic), clip(bound))
            new["rate"][key] = max(new["rate"].get(key, 0.0), float(value))
        for name, values in new.items():
            gauge, old = self._review[name]
            for labels in old - set(values):
                _remove(gauge, labels)
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
            self._review[name] = (gauge, set(values))

    # ---- Monitor views ----------------------------------------------------------------------------
    def _sync_monitors(self, pipeline: Pipeline) -> set[str]:
        """Create views for new monitors (baseline switches included) and drop vanished ones."""
        new: set[str] = set()
        monitors = pipeline.monitors
        cues = getattr(pipeline, "cue_detectors", {})
        for model_id in [m for m, v in self._views.items() if monitors.get(m) is not v.monitor]:
            self._drop_view(self._views.pop(model_id))
        for model_id, monitor in monitors.items():
            view = self._views.get(model_id)
            if view is None:
                model = self.models.get(model_id, trusted=True)
                if model == OTHER:
                    continue  # more baselined models than max_models: not exported, a fold per batch
                view = self._views[model_id] = self._new_view(monitor, model)
                new.add(model_id)
                log.debug("metrics view for %s@%s", model_id, view.version)
            cue = cues.get(model_id)
            if cue is not view.cue and (cue is None or cue.monitor is monitor):
                self._attach_cue(view, cue)
                new.add(model_id)
        return new

    def _new_view(self, monitor: Monitor, model: str) -> _ModelView:
        baseline = monitor.baseline
        view = _ModelView(monitor, model, str(baseline.version))
        fz = monitor.featurizer
        segments = self._segment_cap(model)
        for s in range(monitor.n_rows):
            name = monitor.row_name(s)
            view.segment[name] = segments.get(name, trusted=True)
        max_codes = self.config.max_codes
        for j in monitor.features:  # codes in the featurizer's order: past the cap, the last ones fold
            spec = fz.specs[j]
            view.feature[spec.name] = clip(spec.name)
            keep = len(spec.labels) if len(spec.labels) <= max_codes else max(max_codes - 1, 1)
            for k, label in enumerate(spec.labels):
                view.code[(spec.name, label)] = clip(label) if k < keep else OTHER
            if len(spec.labels) > keep:
                self.folded.labels("code").inc(len(spec.labels) - keep)
        # A monitor restored from a checkpoint may already be firing: no event will say so again.
        for s, f in zip(*monitor.firing.nonzero()):
            spec = fz.specs[monitor.features[int(f)]]
            view.firing.add((monitor.row_name(int(s)), spec.name, spec.kind))
        return view

    def _attach_cue(self, view: _ModelView, cue: CueDetector | None) -> None:
        from detector.probes.sequential import KIND, SEGMENT

        view.firing = {key for key in view.firing if key[2] != KIND}
        view.cue = cue
        if cue is None:
            return
        # "(all)": cue statistics pool the model's segments. Through the segment cap like a baseline's
        # segments, so the per-model segment count stays bounded.
        view.segment[SEGMENT] = self._segment_cap(view.model).get(SEGMENT, trusted=True)
        for f in cue.firing.nonzero()[0]:  # restored from a checkpoint while firing
            view.firing.add((SEGMENT, cue.specs[int(f)].name, KIND))

    def _drop_view(self, view: _ModelView) -> None:
        metrics = self._gauges()
        for name, exported in view.exported.items():
            for labels in exported:
                _remove(metrics[name], labels)

    def _gauges(self) -> dict[str, Gauge]:
        return {"statistic": self.statistic, "alert": self.alert, "share": self.share, "threshold": self.threshold,
                "baseline_info": self.baseline_info, "unbaselined": self.unbaselined,
                "discordance": self.probe_discordance}

    def _refresh_view(self, view: _ModelView, now: float) -> None:
        monitor, model, segment_label, feature_label = view.monitor, view.model, view.segment, view.feature
        values: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in self._gauges()}

        stats = values["statistic"]
        cue = view.cue
        for st in [*monitor.statistics(), *(cue.statistics() if cue is not None else ())]:
            key = (model, segment_label.get(st.segment, OTHER), feature_label.get(st.feature) or clip(st.feature),
                   st.kind)
            old = stats.get(key)
            stats[key] = st.value if old is None or st.value > old else old
        alerts = values["alert"]
        for _, segment, feature, kind in stats:
            alerts[(model, segment, feature, kind, SEVERITY.get(kind, "warning"))] = 0.0
        for segment, feature, kind in view.firing:  # folded segments: 1 while any of them fires
            labels = (segment_label.get(segment, OTHER), feature_label.get(feature) or clip(feature), clip(kind))
            alerts[(model, *labels, SEVERITY.get(kind, "warning"))] = 1.0

        shares = values["share"]
        code_label = view.code
        for sh in monitor.shares():
            key = (model, feature_label.get(sh.feature) or clip(sh.feature), code_label.get((sh.feature, sh.code), OTHER),
                   sh.traffic)
            shares[key] = shares.get(key, 0.0) + sh.value

        if cue is not None:
            for feature, value in cue.discordance().items():
                values["discordance"][(model, feature_label.get(feature) or clip(feature))] = value

        values["threshold"][(model,)] = monitor.threshold
        b = monitor.baseline
        values["baseline_info"][(model, clip(b.version), clip(b.built_at), str(int(b.n_records)))] = 1.0
        for version in monitor.unbaselined_versions:  # the Monitor tracks at most 20
            values["unbaselined"][(model, clip(version))] = 1.0

        for name, metric in self._gauges().items():
            new = values[name]
            exported = view.exported.setdefault(name, {})
            for labels in [k for k in exported if k not in new]:
                del exported[labels]
                _remove(metric, labels)
            for labels, value in new.items():  # only what changed: evaluation shares, thresholds... rarely do
                entry = exported.get(labels)
                if entry is None:
                    entry = exported[labels] = [metric.labels(*labels), None]
                if entry[1] != value:
                    entry[0].set(value)
                    entry[1] = value
        view.refreshed = now

    # ---- HTTP --------------------------------------------------------------------------------------
    def serve(self, address: str = DEFAULT_ADDRESS, certfile: str | None = None, keyfile: str | None = None,
              basic_auth: tuple[str, str] | None = None) -> MetricsServer:
        """Serve the registry over HTTP(S) at ``host:port`` (port 0: a free port) from a daemon thread.

        Without ``basic_auth`` this is prometheus-client's ``start_http_server`` (TLS through its
        certfile/keyfile). prometheus-client has no server-side basic auth, so with
        ``basic_auth=(user, password)`` its WSGI app is wrapped in a check that answers 401 to a
        request without those credentials, served by the same threading WSGI server.
        """
        host, port = parse_address(address)
        if bool(certfile) != bool(keyfile):
            raise ValueError("TLS needs both certfile and keyfile")
        if basic_auth is None:
            httpd, thread = start_http_server(port, addr=host, registry=self.registry, certfile=certfile,
                                              keyfile=keyfile)
        else:
            user, password = basic_auth
            if not certfile and not _is_loopback(host):
                log.warning("metrics basic auth without TLS on %s: credentials cross the network in clear", host)
            app = basic_auth_app(make_wsgi_app(self.registry), user, password)
            httpd, thread = _start_wsgi(app, host, port, certfile, keyfile)
        server = MetricsServer(httpd, thread, host, httpd.server_port, "https" if certfile else "http")
        log.info("metrics at %s/metrics", server.url)
        return server


def _remove(metric: Any, labels: tuple[str, ...]) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


# ---- HTTP helpers --------------------------------------------------------------------------------


@dataclass
class MetricsServer:
    """A running metrics endpoint: ``port`` is the bound port; ``shutdown()`` stops it."""

    httpd: Any
    thread: threading.Thread
    host: str
    port: int
    scheme: str = "http"

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` / ``"[v6]:port"`` → (host, port); an empty host means 127.0.0.1.

    >>> parse_address("127.0.0.1:9464"), parse_address("[::1]:0"), parse_address(":9464")
    (('127.0.0.1', 9464), ('::1', 0), ('127.0.0.1', 9464))
    """
    host, sep, port = str(address).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics address must be host:port, got {address!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def basic_auth_app(app: Callable, user: str, password: str, realm: str = "janus") -> Callable:
    """Wrap a WSGI app: 401 unless the request carries HTTP basic credentials ``user:password``."""
    expected = f"{user}:{password}".encode()
    challenge = [("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"'), ("Content-Type", "text/plain")]

    def authenticated(environ: dict, start_response: Callable) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        if given and hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", challenge)
        return [b"401 Unauthorized\n"]

    return authenticated


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


def _start_wsgi(app: Callable, host: str, port: int, certfile: str | None,
                keyfile: str | None) -> tuple[Any, threading.Thread]:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    httpd = make_server(host, port, app, Server, handler_class=_QuietHandler)
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, name="janus-metrics", daemon=True)
    thread.start()
    return httpd, thread
