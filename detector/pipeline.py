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
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.dedup import DuplicateFilter
from detector.errors import JanusError
from detector.monitor import AlertEvent, Monitor
from detector.records import Decision, Rejection, parse_values

log = logging.getLogger("janus.pipeline")


@dataclass
class BatchResult:
    alerts: list[AlertEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)  # (model_id, segment, traffic) → count
    baseline_missing: Counter = field(default_factory=Counter)  # model_id → production records
    accepted: list[Decision] = field(default_factory=list)

    def merge(self, other: BatchResult) -> None:
        self.alerts.extend(other.alerts)
        self.rejections.extend(other.rejections)
        self.decisions.update(other.decisions)
        self.baseline_missing.update(other.baseline_missing)


class Pipeline:
    """Monitors for every model seen, each against its ACTIVE baseline (loaded lazily)."""

    def __init__(self, store: BaselineStore, config: JanusConfig = JanusConfig(), arl: float | None = None,
                 pinned: dict[str, str] | None = None):
        self.store = store
        self.config = config
        self.arl = arl
        self.pinned = dict(pinned or {})  # model_id → version, instead of ACTIVE
        self.monitors: dict[str, Monitor] = {}
        window = config.limits.dedup_window
        self.duplicates = DuplicateFilter(window) if window > 0 else None
        self._no_baseline: set[str] = set()

    def _version_for(self, model_id: str) -> str | None:
        return self.pinned.get(model_id) or self.store.active_version(model_id)

    def _monitor(self, model_id: str) -> Monitor | None:
        monitor = self.monitors.get(model_id)
        if monitor is not None or model_id in self._no_baseline:
            return monitor
        version = self._version_for(model_id)
        if version is None:
            self._no_baseline.add(model_id)
            return None
        monitor = Monitor(self.store.load(model_id, version), arl=self.arl, config=self.config.detection)
        self.monitors[model_id] = monitor
        return monitor

    def process(self, values: Sequence[bytes | str | None], *, traffic: str | None = None, first_position: int = 0,
                locate: Callable[[int], str] | None = None) -> BatchResult:
        kwargs = {"locate": locate} if locate is not None else {}
        parsed = parse_values(values, limits=self.config.limits, traffic=traffic, first_position=first_position,
                              **kwargs)
        decisions, rejections = parsed.decisions, parsed.rejections
        if self.duplicates is not None and decisions:
            repeated = self.duplicates.check([d.decision_id for d in decisions])
            if any(repeated):
                locate = locate or (lambda p: f"record {p}")
                for d, dup in zip(decisions, repeated):
                    if dup:
                        raw = values[d.position - first_position]
                        raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
                        rejections.append(Rejection(d.position, "duplicate", f"{locate(d.position)}: decision_id "
                                                    f"{d.decision_id!r} already seen (a retry?)", raw))
                decisions = [d for d, dup in zip(decisions, repeated) if not dup]
                rejections.sort(key=lambda r: r.position)
        result = self.process_decisions(decisions)
        result.rejections = rejections
        return result

    def process_decisions(self, decisions: Sequence[Decision]) -> BatchResult:
        result = BatchResult(accepted=list(decisions))
        by_model: dict[str, list[Decision]] = defaultdict(list)
        for d in decisions:
            result.decisions[(d.model_id, d.segment, d.traffic)] += 1
            if d.traffic == "production":
                by_model[d.model_id].append(d)
        for model_id, batch in by_model.items():
            monitor = self._monitor(model_id)
            if monitor is None:
                result.baseline_missing[model_id] += len(batch)
                continue
            result.alerts.extend(monitor.update(batch))
        result.alerts.sort(key=lambda e: e.record_index)
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
            self._no_baseline.discard(model_id)
            switches.append((model_id, old, new))
            log.info("baseline switch", extra={"model_id": model_id, "old": old, "new": new})
        return switches

    # ---- checkpoint state ------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict = {"models": {}}
        arrays: dict[str, np.ndarray] = {}
        if self.duplicates is not None:
            arrays["dedup"] = self.duplicates.state()
        for i, (model_id, monitor) in enumerate(sorted(self.monitors.items())):
            m_meta, m_arrays = monitor.state()
            meta["models"][model_id] = {"slot": i, **m_meta}
            arrays.update({f"m{i}.{k}": v for k, v in m_arrays.items()})
        return meta, arrays

    @classmethod
    def restore(cls, store: BaselineStore, config: JanusConfig, meta: dict, arrays: dict[str, np.ndarray],
                arl: float | None = None, pinned: dict[str, str] | None = None) -> Pipeline:
        pipeline = cls(store, config, arl, pinned)
        if pipeline.duplicates is not None and "dedup" in arrays:
            pipeline.duplicates.restore(arrays["dedup"])
        for model_id, m_meta in meta["models"].items():
            prefix = f"m{m_meta['slot']}."
            m_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                baseline = store.load(model_id, m_meta["baseline_version"])
            except JanusError as exc:
                raise JanusError(f"checkpoint refers to {model_id}@{m_meta['baseline_version']}: {exc}") from None
            pipeline.monitors[model_id] = Monitor.restore(baseline, m_meta, m_arrays, config.detection)
        return pipeline
