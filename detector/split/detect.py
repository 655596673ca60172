"""``--role detect``: each model's Monitor, fed counts batches (:mod:`detector.split.counts`).

Featurisers publish a batch per model and block, keyed by model, so one counts partition -- and
one detector -- receives all of a model's batches, from every source partition, each source's in
offset order. Received batches are

* dropped as ``replayed`` if they end at or before the end of the last block received from that
  source for that model (a featuriser sent the block again after a restart: featurisers cut
  blocks the same way in every run), ``fenced`` if their featuriser epoch is below one already
  seen for that source (a stale featuriser), or ``overlap`` if they straddle that end (only two
  featurisers owning one partition at once can cause it; logged as an error by the caller);
* otherwise *merged*: held per source, and applied in record-time order (the first record's
  timestamp of each block) across the model's sources, so that the Monitor sees the records in
  about the order a single stream would have delivered them, whatever the featurisers' relative
  speeds. A block waits until every active source of its model has a block waiting, or until a
  block has waited ``[split] merge_wait_seconds`` or a source holds more than ``[split]
  merge_blocks``: then the sources with nothing waiting are taken as idle (no longer waited for,
  until they send again). A model's first blocks wait the same way, since its sources are not
  known before they send;
* applied: ``Monitor.update_counts`` with the block's counts and its last record as the evidence
  an alert names (outcome ``applied``), unless it was featurised for a baseline that is no longer
  active (``stale_baseline``), the model has none (``baseline_missing``) or its tables do not fit
  the baseline's featurizer (``bad_shape``, logged).

Waiting blocks, the last block end and epoch per source and the active sources are state, saved
with the Monitors in the detector's checkpoint. The Monitors are the ones ``--role all`` would
build (same ARL, same number of tests, monitoring-cue tests included), so the thresholds are the
same in both deployments.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.errors import JanusError
from detector.monitor import AlertEvent, Monitor
from detector.probes.sequential import cue_test_count
from detector.split.counts import CountsBatch, decode, encode

log = logging.getLogger("janus.detect")

__all__ = ["OUTCOMES", "CountsDetector"]

OUTCOMES = ("applied", "replayed", "fenced", "overlap", "stale_baseline", "baseline_missing", "bad_shape")


class CountsDetector:
    """The Monitors of the models of one counts partition."""

    def __init__(self, store: BaselineStore, config: JanusConfig = JanusConfig(), arl: float | None = None):
        self.store = store
        self.config = config
        self.arl = arl
        self.hold = config.split.merge_blocks
        self.wait = config.split.merge_wait_seconds
        self.monitors: dict[str, Monitor] = {}
        self.received: dict[str, dict[str, int]] = {}  # model → source → end of the last block received
        self.epochs: dict[str, dict[str, int]] = {}  # model → source → highest featuriser epoch seen
        # model → source → blocks not applied yet, each with the (monotonic) time it arrived
        self.waiting: dict[str, dict[str, list[tuple[CountsBatch, float]]]] = {}
        self.active: dict[str, set[str]] = {}  # model → sources its blocks wait for
        self.started: set[str] = set()  # models whose first block was applied

    # ---- receive and merge -----------------------------------------------------------------------
    def receive(self, batch: CountsBatch, now: float) -> str | None:
        """Hold a batch for the merge (arrived at ``now``); the outcome if it is dropped instead (None: held)."""
        model_id, source = batch.model_id, batch.source
        epochs = self.epochs.setdefault(model_id, {})
        if batch.epoch < epochs.get(source, 0):
            return "fenced"
        epochs[source] = batch.epoch
        received = self.received.setdefault(model_id, {})
        end = received.get(source, 0)
        if batch.end <= end:
            return "replayed"
        if batch.start < end:
            return "overlap"
        received[source] = batch.end
        self.waiting.setdefault(model_id, {}).setdefault(source, []).append((batch, now))
        self.active.setdefault(model_id, set()).add(source)
        return None

    def drain(self, now: float) -> tuple[list[AlertEvent], Counter]:
        """Apply every block the merge allows at (monotonic) time ``now``, in record-time order per
        model; their alert events and outcomes."""
        events: list[AlertEvent] = []
        outcomes: Counter = Counter()
        for model_id in sorted(self.waiting):
            queues, active = self.waiting[model_id], self.active[model_id]
            while any(queues.values()):
                heads = {s: q[0] for s, q in queues.items() if q}
                # Until a model's first block is applied, its sources are not all known yet: wait too.
                if any(not queues.get(s) for s in active) or model_id not in self.started:
                    waited = now - min(arrived for _, arrived in heads.values())
                    if waited < self.wait and max(len(q) for q in queues.values()) <= self.hold:
                        break
                    active.intersection_update(heads)  # the others are idle: no longer waited for
                self.started.add(model_id)
                source = min(heads, key=lambda s: (heads[s][0].first_time, s))
                found, outcome = self._apply(queues[source].pop(0)[0])
                events += found
                outcomes[outcome] += 1
            self.waiting[model_id] = {s: q for s, q in queues.items() if q}
        return events, outcomes

    def _apply(self, batch: CountsBatch) -> tuple[list[AlertEvent], str]:
        model_id = batch.model_id
        monitor = self.monitors.get(model_id)
        if monitor is None or monitor.baseline.version != batch.baseline_version:
            active = self.store.active_version(model_id)
            if active is None:
                return [], "baseline_missing"
            if batch.baseline_version != active:
                return [], "stale_baseline"
            monitor = self._new_monitor(model_id, active)
        fz = monitor.featurizer
        expected = [(fz.n_cells(j), spec.n_codes) for j, spec in enumerate(fz.specs)]
        if [c.shape for c in batch.counts] != expected:
            log.error("counts of %s@%s from %s offsets %d..%d have table shapes that do not fit the baseline's "
                      "featurizer; not applied", model_id, batch.baseline_version, batch.source, batch.start,
                      batch.end - 1)
            return [], "bad_shape"
        monitor.count_unbaselined(batch.unbaselined)
        return monitor.update_counts(batch.counts, batch.evidence), "applied"

    def _new_monitor(self, model_id: str, version: str) -> Monitor:
        baseline = self.store.load(model_id, version)
        old = self.monitors.get(model_id)
        if old is not None:
            log.info("baseline of %s switched %s → %s (its detectors restart)", model_id, old.baseline.version, version)
        cue_tests = cue_test_count(baseline.featurizer, self.config.detection, self.config.probes)
        monitor = self.monitors[model_id] = Monitor(baseline, arl=self.arl, config=self.config.detection,
                                                    extra_tests=cue_tests)
        return monitor

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]:
        """Drop the Monitors of models whose active baseline changed: the first block featurised
        for the new one starts a new Monitor."""
        switches = []
        for model_id, monitor in list(self.monitors.items()):
            new = self.store.active_version(model_id)
            if new != monitor.baseline.version:
                del self.monitors[model_id]
                switches.append((model_id, monitor.baseline.version, new))
        return switches

    # ---- state -------------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict = {"models": {}, "received": self.received, "epochs": self.epochs,
                      "active": {m: sorted(s) for m, s in self.active.items()}, "started": sorted(self.started),
                      "waiting": []}
        arrays: dict[str, np.ndarray] = {}
        for i, (model_id, monitor) in enumerate(sorted(self.monitors.items())):
            m_meta, m_arrays = monitor.state()
            meta["models"][model_id] = {"slot": i, **m_meta}
            arrays.update({f"m{i}.{k}": v for k, v in m_arrays.items()})
        waiting = [b for queues in self.waiting.values() for q in queues.values() for b, _ in q]
        meta["waiting"] = len(waiting)
        arrays.update({f"w{i}": np.frombuffer(encode(b), dtype=np.uint8) for i, b in enumerate(waiting)})
        return meta, arrays

    @classmethod
    def restore(cls, store: BaselineStore, config: JanusConfig, meta: dict, arrays: dict[str, np.ndarray],
                now: float, arl: float | None = None) -> CountsDetector:
        """The detector of a checkpoint; its waiting blocks wait again from ``now``."""
        detector = cls(store, config, arl)
        detector.received = {m: {s: int(e) for s, e in ends.items()} for m, ends in meta["received"].items()}
        detector.epochs = {m: {s: int(e) for s, e in epochs.items()} for m, epochs in meta["epochs"].items()}
        detector.active = {m: set(sources) for m, sources in meta["active"].items()}
        detector.started = set(meta["started"])
        for i in range(int(meta["waiting"])):
            batch = decode(arrays[f"w{i}"].tobytes())
            detector.waiting.setdefault(batch.model_id, {}).setdefault(batch.source, []).append((batch, now))
        for model_id, m_meta in meta["models"].items():
            prefix = f"m{m_meta['slot']}."
            try:
                baseline = store.load(model_id, m_meta["baseline_version"])
            except JanusError as exc:
                raise JanusError(f"checkpoint refers to {model_id}@{m_meta['baseline_version']}: {exc}") from None
            detector.monitors[model_id] = Monitor.restore(
                baseline, m_meta, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                config.detection)
        return detector
