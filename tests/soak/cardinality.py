"""Cardinality attack, run as its own process so its RSS is its own (tests/test_reliability.py).

``python tests/soak/cardinality.py STORE N [--monitored-share 0.1]`` feeds N production records
through :class:`~detector.pipeline.Pipeline` and :class:`~detector.metrics.JanusMetrics` in
batches of 10,000: 90% carry a model id never seen before, 10% belong to the monitored model
(``triage-agent``, whose baseline is ACTIVE in STORE) with a never-seen segment, tool name and
action each. It prints one JSON object: RSS samples (MB) after each tenth of the stream, the
sizes of every bounded structure, the metric series count and ``janus_labels_folded_total``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from detector.baseline import BaselineStore  # noqa: E402
from detector.config import JanusConfig  # noqa: E402
from detector.metrics import JanusMetrics  # noqa: E402
from detector.pipeline import Pipeline  # noqa: E402

MODEL = "triage-agent"
BATCH = 10_000


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def record(i: int, monitored: bool) -> bytes:
    if monitored:  # the monitored model, with a segment, tool and action nobody has seen
        return orjson.dumps({
            "decision_id": f"c{i}", "timestamp": 1_736_121_600 + i, "model_id": MODEL, "traffic": "production",
            "segment": f"seg-{i}", "output": {"action": f"act-{i}", "refused": False,
                                              "tool_calls": [{"name": f"tool-{i}", "arguments": {"q": i}}]}})
    return orjson.dumps({"decision_id": f"c{i}", "timestamp": 1_736_121_600 + i, "model_id": f"attacker-{i:09d}",
                         "traffic": "production", "segment": f"seg-{i}", "output": {"action": f"act-{i}"}})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("n", type=int)
    parser.add_argument("--monitored-share", type=float, default=0.1)
    args = parser.parse_args(argv)
    config = JanusConfig()
    pipeline = Pipeline(BaselineStore(args.store), config, arl=1e6)
    metrics = JanusMetrics(config.metrics)
    every = max(1, round(1 / args.monitored_share)) if args.monitored_share > 0 else 0
    samples, started = [], time.perf_counter()
    tenth = max(args.n // 10, 1)
    for lo in range(0, args.n, BATCH):
        hi = min(lo + BATCH, args.n)
        values = [record(i, bool(every) and i % every == 0) for i in range(lo, hi)]
        t0 = time.perf_counter()
        result = pipeline.process(values, first_position=lo)
        metrics.observe_batch(result, pipeline, time.perf_counter() - t0)
        if hi // tenth != lo // tenth or hi == args.n:
            samples.append([hi, round(rss_mb(), 1)])
    metrics.refresh(pipeline)
    text = generate_latest(metrics.registry).decode()
    series, folded, per_label = 0, {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series += 1
            if s.name == "janus_labels_folded_total":
                folded[s.labels["label"]] = int(s.value)
            for label in ("model_id", "segment"):
                if label in s.labels:
                    per_label.setdefault(f"{family.name}.{label}", set()).add(s.labels[label])
    meta, arrays = pipeline.state()
    return {
        "records": args.n,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_mb": samples,
        "peak_rss_mb": max(mb for _, mb in samples),  # not ru_maxrss: it keeps the forked parent's peak
        "monitors": len(pipeline.monitors),
        "unbaselined_remembered": len(pipeline._no_baseline),
        "dedup_window": len(pipeline.intake.duplicates._order) if pipeline.intake.duplicates else 0,
        "checkpoint_bytes": len(orjson.dumps(meta)) + sum(a.nbytes for a in arrays.values()),
        "review_counted_models": len({m for m, _, _ in pipeline.review.counts}),
        "series": series,
        "distinct_label_values": {k: len(v) for k, v in per_label.items()},
        "folded": folded,
        "scrape_bytes": len(text.encode()),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
