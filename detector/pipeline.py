"""The one code path shared by ``janus backtest`` and ``janus serve``.

Raw values → parse (rejections kept with reasons) → route by model → that model's Monitor
(ACTIVE baseline from the store) → alert events and counts. Kafka and files stay outside.

>>> import tempfile
>>> pipeline = Pipeline(BaselineStore(tempfile.mkdtemp()))
>>> result = pipeline.process([b'{"decision_id":"d","timestamp":0,"model_id":"m","traffic":"production"}', b"{"])
>>> dict(result.baseline_missing), [r.reason for r in result.rejections]
({'m': 1}, ['not_json'])
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.errors import JanusError
from detector.features.featurizer import FeatureRows
from detector.heap import gc_paused
from detector.intake import Intake
from detector.monitor import AlertEvent, Monitor
from detector.probes.pairing import EXPIRED, NO_BASELINE
from detector.probes.sequential import CueDetector, cue_test_count
from detector.records import Decision, Rejection
from detector.review.protocol import protocol_events
from detector.review.sampler import ReviewSampler

log = logging.getLogger("janus.pipeline")

MAX_UNBASELINED_MODELS = 10_000  # remembered model ids without a baseline (the rest are looked up again)


@dataclass
class BatchResult:
    alerts: list[AlertEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)  # (model_id, segment, traffic) → count
    baseline_missing: Counter = field(default_factory=Counter)  # model_id → production records
    accepted: list[Decision] = field(default_factory=list)
    # Monitoring-cue probe records: (model_id, outcome) → count (detector.probes.pairing.OUTCOMES).
    probes: Counter = field(default_factory=Counter)
    # The audit sample of this batch (detector.review.sampler): one JSON-ready dict per sampled
    # decision, in stream order, for the review topic / JSONL (encode_sample gives key and value).
    review_samples: list[dict] = field(default_factory=list)
    # --role detect (detector.split.detect): counts batches by outcome (applied, replayed, ...).
    counts_batches: Counter = field(default_factory=Counter)

    def merge(self, other: BatchResult) -> None:
        self.alerts.extend(other.alerts)
        self.rejections.extend(other.rejections)
        self.decisions.update(other.decisions)
        self.baseline_missing.update(other.baseline_missing)
        self.probes.update(other.probes)
        self.review_samples.extend(other.review_samples)
        self.counts_batches.update(other.counts_batches)


class _MonitorLookup:
    """``get(model_id)``: the pipeline's Monitor of a model, created on first use (None: no baseline)."""

    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    def get(self, model_id: str, default=None):
        monitor = self._pipeline._monitor(model_id)
        return default if monitor is None else monitor


class Pipeline:
    """Monitors for every model seen, each against its ACTIVE baseline (loaded lazily)."""

    def __init__(self, store: BaselineStore, config: JanusConfig = JanusConfig(), arl: float | None = None,
                 pinned: dict[str, str] | None = None):
        self.store = store
        self.config = config
        self.arl = arl
        self.pinned = dict(pinned or {})  # model_id → version, instead of ACTIVE
        self.monitors: dict[str, Monitor] = {}
        # Monitoring-cue detectors, one per model with a Monitor (none when [probes] alternatives = []).
        self.cue_detectors: dict[str, CueDetector] = {}
        # Probe halves left waiting when a baseline switch replaced their model's cue detector;
        # reported as "expired" with the next batch.
        self._probe_carry: Counter = Counter()
        self.intake = Intake(config)  # parsing and de-duplication
        # Model ids without an active baseline, so the store is not asked again each batch. Producers
        # choose model ids: bounded (oldest forgotten first; a forgotten id is simply looked up again).
        self._no_baseline: OrderedDict[str, None] = OrderedDict()
        self.review = ReviewSampler(config.review)  # the audit sample (docs/review.md)

    def _version_for(self, model_id: str) -> str | None:
        return self.pinned.get(model_id) or self.store.active_version(model_id)

    def _monitor(self, model_id: str) -> Monitor | None:
        monitor = self.monitors.get(model_id)
        if monitor is not None or model_id in self._no_baseline:
            return monitor
        version = self._version_for(model_id)
        if version is None:
            if len(self._no_baseline) >= MAX_UNBASELINED_MODELS:
                self._no_baseline.popitem(last=False)
            self._no_baseline[model_id] = None
            return None
        baseline = self.store.load(model_id, version)
        cue_tests = cue_test_count(baseline.featurizer, self.config.detection, self.config.probes)
        monitor = Monitor(baseline, arl=self.arl, config=self.config.detection, extra_tests=cue_tests)
        self.monitors[model_id] = monitor
        if cue_tests:
            self.cue_detectors[model_id] = CueDetector(monitor, self.config.probes)
        return monitor

    def process(self, values: Sequence[bytes | str | None], *, traffic: str | None = None, first_position: int = 0,
                locate: Callable[[int], str] | None = None) -> BatchResult:
        with gc_paused():  # a batch's objects die together by refcount: no GC passes over them (detector.heap)
            return self._process(values, traffic, first_position, locate)

    def _process(self, values: Sequence[bytes | str | None], traffic: str | None, first_position: int,
                 locate: Callable[[int], str] | None) -> BatchResult:
        decisions, rejections = self.intake.accept(values, traffic=traffic, first_position=first_position,
                                                   locate=locate)
        result = self.process_decisions(decisions)
        result.rejections = rejections
        return result

    def process_decisions(self, decisions: Sequence[Decision]) -> BatchResult:
        result = BatchResult(accepted=list(decisions))
        by_model: dict[str, list[Decision]] = defaultdict(list)
        probes: dict[str, list[Decision]] = defaultdict(list)
        features: dict[str, FeatureRows] = {}  # model_id → its monitor's feature rows of this batch
        for d in decisions:
            result.decisions[(d.model_id, d.segment, d.traffic)] += 1
            if d.probe is not None:
                # Probe answers are test traffic with a cue in the prompt: paired and judged by the
                # model's cue detector, never mixed into its production drift statistics.
                probes[d.model_id].append(d)
            elif d.traffic == "production":
                by_model[d.model_id].append(d)
        for model_id, batch in by_model.items():
            monitor = self._monitor(model_id)
            if monitor is None:
                result.baseline_missing[model_id] += len(batch)
                continue
            known = set(monitor.unbaselined_versions)
            alerts, features[model_id] = monitor.score(batch)
            result.alerts.extend(alerts)
            if len(monitor.unbaselined_versions) > len(known):  # protocol change: once per (model, version)
                result.alerts.extend(protocol_events(monitor, batch, known))
        if self._probe_carry:
            result.probes.update(self._probe_carry)
            self._probe_carry.clear()
        for model_id, batch in probes.items():
            self._monitor(model_id)
            detector = self.cue_detectors.get(model_id)
            if detector is None:
                result.probes[(model_id, NO_BASELINE)] += len(batch)
                continue
            events, outcomes = detector.update(batch)
            result.alerts.extend(events)
            result.probes.update({(model_id, outcome): n for outcome, n in outcomes.items()})
        result.alerts.sort(key=lambda e: e.record_index)
        # Monitors on demand: a sampled evaluation decision of a model not yet seen in production
        # still gets its evaluation context (the sampler asks only for models it sampled).
        result.review_samples = self.review.sample(decisions, _MonitorLookup(self), result.alerts, features)
        return result

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]:
        """Pick up promotions and rollbacks without a restart; returns (model, old, new) switches."""
        switches = []
        for model_id in list(self.monitors) + sorted(self._no_baseline):
            current = self.monitors.get(model_id)
            old = current.baseline.version if current else None
            new = self._version_for(model_id)
            if new == old:
                continue
            self.monitors.pop(model_id, None)
            cue = self.cue_detectors.pop(model_id, None)
            if cue is not None and cue.pending():  # codes of the old featurizer: cannot be paired any more
                self._probe_carry[(model_id, EXPIRED)] += cue.pending()
            self._no_baseline.pop(model_id, None)
            switches.append((model_id, old, new))
            log.info("baseline switch", extra={"model_id": model_id, "old": old, "new": new})
        return switches

    # ---- checkpoint state ------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict = {"models": {}}
        arrays: dict[str, np.ndarray] = self.intake.state()
        for i, (model_id, monitor) in enumerate(sorted(self.monitors.items())):
            m_meta, m_arrays = monitor.state()
            meta["models"][model_id] = {"slot": i, **m_meta}
            arrays.update({f"m{i}.{k}": v for k, v in m_arrays.items()})
            cue = self.cue_detectors.get(model_id)
            if cue is not None:
                c_meta, c_arrays = cue.state()
                meta["models"][model_id]["cue"] = c_meta
                arrays.update({f"p{i}.{k}": v for k, v in c_arrays.items()})
        if self._probe_carry:
            meta["probe_carry"] = [[m, o, n] for (m, o), n in sorted(self._probe_carry.items())]
        meta["review"] = self.review.state()
        return meta, arrays

    @classmethod
    def restore(cls, store: BaselineStore, config: JanusConfig, meta: dict, arrays: dict[str, np.ndarray],
                arl: float | None = None, pinned: dict[str, str] | None = None) -> Pipeline:
        pipeline = cls(store, config, arl, pinned)
        pipeline.intake.restore(arrays)
        for model_id, m_meta in meta["models"].items():
            prefix = f"m{m_meta['slot']}."
            m_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                baseline = store.load(model_id, m_meta["baseline_version"])
            except JanusError as exc:
                raise JanusError(f"checkpoint refers to {model_id}@{m_meta['baseline_version']}: {exc}") from None
            monitor = Monitor.restore(baseline, m_meta, m_arrays, config.detection)
            pipeline.monitors[model_id] = monitor
            cue_tests = cue_test_count(baseline.featurizer, config.detection, config.probes)
            if cue_tests and "cue" in m_meta:
                prefix = f"p{m_meta['slot']}."
                c_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                pipeline.cue_detectors[model_id] = CueDetector.restore(monitor, m_meta["cue"], c_arrays,
                                                                       config.probes)
            elif cue_tests and monitor.extra_tests == cue_tests:
                pipeline.cue_detectors[model_id] = CueDetector(monitor, config.probes)
            # else: the checkpoint's Monitor budgeted no cue tests (saved before cue detection, or with
            # it turned off): it keeps its saved threshold and the model gets no cue detector until
            # its next baseline switch, so the model's ARL still holds.
        pipeline._probe_carry = Counter({(m, o): n for m, o, n in meta.get("probe_carry", [])})
        pipeline.review.restore(meta.get("review"))
        return pipeline
