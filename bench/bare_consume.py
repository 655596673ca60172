"""The speed limit of the stream service: a bare kafka-python consume-and-decode loop.

Produces N realistic decision records (~600-byte JSON, schema v1) to a topic on an embedded
Tansu broker (or ``--bootstrap-servers``), then times consumers that only ``poll()`` and
decode every value -- with orjson, with the standard json module, and without decoding --
and prints records/s as one JSON document. CRC checks stay on (``crc32c`` makes them cheap),
exactly as the service consumes.

    .venv/bin/python bench/bare_consume.py                 # 200,000 records
    .venv/bin/python bench/bare_consume.py -n 50000 --partitions 4

``bare_consume_rate(bootstrap, topic, n, decoder)`` is importable for the serve benchmark,
which compares the full service against this number on the same topic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.stream.kafka_config import kafka_kwargs  # noqa: E402

MODELS = ["support-agent", "triage-bot", "code-helper", "claims-assistant"]
SEGMENTS = ["billing", "refunds", "account", "technical", "general"]
ACTIONS = ["answer", "escalate", "refund", "deny", "ask_clarification"]
TOOLS = ["search_kb", "lookup_order", "issue_refund", "send_email", "create_ticket"]
WORDS = (
    "customer order refund account password invoice delivery shipping policy request "
    "please help cannot access charge twice cancel subscription update address payment "
    "card error message screen login reset email confirm thanks urgent problem since "
    "yesterday week month premium plan upgrade downgrade support agent manager"
).split()


def make_record(i: int, rng: random.Random) -> dict[str, Any]:
    """One schema-v1 decision record; its JSON is about 600 bytes."""
    model = MODELS[i % len(MODELS)]
    traffic = "evaluation" if rng.random() < 0.3 else "production"
    n_tools = rng.choice((0, 0, 1, 1, 2))
    return {
        "decision_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "timestamp": 1_735_000_000 + i * 0.05,
        "model_id": model,
        "model_version": f"{model}-2025.{1 + i % 3}",
        "traffic": traffic,
        "segment": rng.choice(SEGMENTS),
        "input": {"text": " ".join(rng.choices(WORDS, k=rng.randint(8, 15)))},
        "output": {
            "text": " ".join(rng.choices(WORDS, k=rng.randint(6, 12))),
            "action": rng.choice(ACTIONS),
            "refused": rng.random() < 0.05,
            "tool_calls": [
                {"name": rng.choice(TOOLS), "arguments": {"id": rng.randint(1, 10**6)}}
                for _ in range(n_tools)
            ],
            "confidence": round(rng.random(), 3),
        },
        "reasoning": " ".join(rng.choices(WORDS, k=rng.randint(5, 10))),
        "latency_ms": round(rng.lognormvariate(6, 0.5), 1),
        "attributes": {"region": rng.choice(["eu", "us", "apac"]), "tier": rng.choice(["free", "pro"])},
    }


def produce_records(bootstrap: str, topic: str, n: int, *, seed: int = 1, **kafka_settings: Any) -> dict[str, float]:
    """Produce ``n`` records (keyed by model_id); returns count, mean size and produce rate."""
    from kafka import KafkaProducer

    kw = kafka_kwargs("producer", bootstrap_servers=bootstrap, client_id="janus-bench-producer", **kafka_settings)
    kw.update(linger_ms=20, batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    producer = KafkaProducer(**kw)
    rng = random.Random(seed)
    total_bytes = 0
    t0 = time.perf_counter()
    for i in range(n):
        rec = make_record(i, rng)
        value = orjson.dumps(rec)
        total_bytes += len(value)
        producer.send(topic, value=value, key=rec["model_id"].encode())
    producer.flush()
    elapsed = time.perf_counter() - t0
    producer.close()
    return {"records": n, "mean_bytes": total_bytes / max(n, 1), "produce_records_per_s": n / elapsed}


def bare_consume_rate(
    bootstrap: str,
    topic: str,
    n: int,
    decoder: Callable[[bytes], Any] | None = orjson.loads,
    *,
    max_poll_records: int = 500,
    timeout: float = 300.0,
    **kafka_settings: Any,
) -> dict[str, float]:
    """Time a consumer that polls ``n`` records from the start of ``topic`` and decodes each.

    The consumer is built by :func:`kafka_kwargs` (CRC checks on) and assigned all partitions
    of the topic directly -- no group, so the broker's group-join delay is not measured.
    ``decoder=None`` only polls. The clock starts at the first poll (fetching is part of the
    loop) and stops after the ``n``-th value is decoded. Returns records, seconds, records/s.
    """
    from kafka import KafkaConsumer, TopicPartition

    kw = kafka_kwargs(
        "consumer",
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id="janus-bench-consumer",
        max_poll_records=max_poll_records,
        **kafka_settings,
    )
    consumer = KafkaConsumer(**kw)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} does not exist")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        count = 0
        checksum = 0
        deadline = time.monotonic() + timeout
        t0 = time.perf_counter()
        while count < n:
            batch = consumer.poll(timeout_ms=1000)
            for records in batch.values():
                if decoder is None:
                    count += len(records)
                    continue
                for record in records:
                    checksum += len(decoder(record.value))
                count += len(records)
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count} of {n} records consumed within {timeout:.0f} s")
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    return {"records": count, "seconds": elapsed, "records_per_s": count / elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--max-poll-records", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1, help="runs per decoder (best is reported)")
    parser.add_argument("--bootstrap-servers", help="use this cluster instead of an embedded broker")
    parser.add_argument("--topic", help="consume an existing topic (skip producing); needs -n <= its size")
    args = parser.parse_args(argv)

    from contextlib import nullcontext

    from detector.stream.broker import EmbeddedBroker, create_topics

    ctx = nullcontext(None) if args.bootstrap_servers else EmbeddedBroker()
    with ctx as broker:
        bootstrap = args.bootstrap_servers or broker.bootstrap_servers
        result: dict[str, Any] = {
            "benchmark": "bare_consume",
            "records": args.records,
            "partitions": args.partitions,
            "max_poll_records": args.max_poll_records,
            "broker": "external" if args.bootstrap_servers else "embedded tansu",
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
        try:
            import crc32c  # noqa: F401

            result["crc"] = "crc32c (C)"
        except ImportError:
            result["crc"] = "pure Python (install crc32c!)"
        topic = args.topic
        if topic is None:
            topic = f"janus-bench-{uuid.uuid4().hex[:8]}"
            create_topics(bootstrap, [topic], args.partitions)
            result.update(produce_records(bootstrap, topic, args.records))
        for name, decoder in (("orjson", orjson.loads), ("json", json.loads), ("poll_only", None)):
            runs = [
                bare_consume_rate(bootstrap, topic, args.records, decoder, max_poll_records=args.max_poll_records)
                for _ in range(args.repeat)
            ]
            best = max(runs, key=lambda r: r["records_per_s"])
            result[name] = {"records_per_s": round(best["records_per_s"]), "seconds": round(best["seconds"], 3)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
