"""Replay a JSONL file through the same pipeline as the stream service.

Each alert keeps ``record_index`` = the 0-based line of the record that fired it (rejected and
blank lines count as lines).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from detector.monitor import AlertEvent
from detector.pipeline import BatchResult, Pipeline
from detector.records import iter_jsonl_chunks, line_locator


@dataclass
class BacktestSummary:
    records: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    alerts: Counter = field(default_factory=Counter)  # (kind, feature, status) → count
    baseline_missing: Counter = field(default_factory=Counter)
    traffic: Counter = field(default_factory=Counter)  # accepted decisions per traffic
    seconds: float = 0.0
    first_rejections: list[str] = field(default_factory=list)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "records": self.records,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "alerts": [{"kind": k, "feature": f, "status": s, "count": n} for (k, f, s), n in sorted(self.alerts.items())],
            "baseline_missing": dict(self.baseline_missing),
            "traffic": dict(self.traffic),
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
        }


def run_backtest(path: str | Path, pipeline: Pipeline, *, chunk_size: int = 2048,
                 on_alert: Callable[[AlertEvent], None] | None = None,
                 on_batch: Callable[[BatchResult], None] | None = None) -> BacktestSummary:
    summary = BacktestSummary()
    locate = line_locator(path)
    started = time.perf_counter()
    position = 0
    for chunk in iter_jsonl_chunks(path, chunk_size):
        result = pipeline.process(chunk, first_position=position, locate=locate)
        position += len(chunk)
        summary.records += len(chunk)
        summary.accepted += len(result.accepted)
        summary.rejected.update(r.reason for r in result.rejections)
        summary.first_rejections.extend(r.message for r in result.rejections[: 5 - len(summary.first_rejections)])
        summary.baseline_missing.update(result.baseline_missing)
        for (_, _, traffic), n in result.decisions.items():
            summary.traffic[traffic] += n
        for event in result.alerts:
            summary.alerts[(event.kind, event.feature, event.status)] += 1
            if on_alert is not None:
                on_alert(event)
        if on_batch is not None:
            on_batch(result)
    summary.seconds = time.perf_counter() - started
    return summary


def write_alerts(path: str | Path):
    """An ``on_alert`` callback writing one JSON line per alert event; use as a context manager."""
    return _AlertWriter(Path(path))


class _AlertWriter:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Callable[[AlertEvent], None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("wb")
        return lambda event: self._fh.write(orjson.dumps(event.to_dict()) + b"\n")

    def __exit__(self, *exc) -> None:
        self._fh.close()
