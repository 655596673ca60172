"""`janus serve` and `janus demo` as a user runs them: real processes, a real broker, a real scrape."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

from detector.baseline import BaselineStore, build_baseline
from detector.records import parse_values
from detector.simulate import simulate
from detector.stream.kafka_config import kafka_kwargs

pytestmark = pytest.mark.kafka
JANUS = [sys.executable, "-m", "detector"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _value(text: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus text exposition (0.0 if absent)."""
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0)


def test_serve_alerts_exports_metrics_and_stops_cleanly(tmp_path, kafka_bootstrap, unique_topic):
    from kafka import KafkaConsumer, KafkaProducer

    logs = simulate("compliance-gap", 3, n_evaluation=8000, n_production=9000, change_at=1500)
    store = BaselineStore(tmp_path / "store")
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    store.save(build_baseline(evaluation), actor="test", reason="test", activate=True)
    topic, alerts_topic = unique_topic("decisions"), unique_topic("alerts")
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*JANUS, "serve", "--store", str(store.root), "--bootstrap-servers", kafka_bootstrap, "--topic", topic,
         "--alert-topic", alerts_topic, "--group-id", f"g-{topic}", "--checkpoint-dir", str(tmp_path / "ckpt"),
         "--arl", "10000", "--max-poll-interval-ms", "5000", "--metrics-addr", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        producer = KafkaProducer(**kafka_kwargs("producer", bootstrap_servers=kafka_bootstrap))
        for record in logs.production:
            producer.send(topic, key=record["model_id"].encode(), value=orjson.dumps(record))
        producer.send(topic, value=b"{not json")
        producer.flush()
        consumer = KafkaConsumer(alerts_topic, **kafka_kwargs("consumer", bootstrap_servers=kafka_bootstrap,
                                                              group_id=f"reader-{topic}"))
        alerts, deadline = [], time.monotonic() + 120
        while not alerts and time.monotonic() < deadline and proc.poll() is None:
            for records in consumer.poll(timeout_ms=500).values():
                alerts += [orjson.loads(r.value) for r in records]
        consumer.close()
        assert alerts, "no alert reached the alert topic"
        assert alerts[0]["model_id"] == "triage-agent" and alerts[0]["kind"] == "behaviour"
        rejected = 'janus_records_rejected_total{reason="not_json"} 1.0'
        text, deadline = "", time.monotonic() + 60
        while rejected not in text and time.monotonic() < deadline:  # the bad record is the last one
            time.sleep(0.5)
            text = _scrape(f"http://127.0.0.1:{port}/metrics")
        assert 'janus_drift_alert{feature="refused",kind="behaviour",model_id="triage-agent"' in text
        assert rejected in text
        # Idle now: the lag gauge must fall to 0 and the checkpoint time must show, without new records.
        lag = f'janus_consumer_lag_records{{partition="0",topic="{topic}"}} 0.0'
        deadline = time.monotonic() + 60
        while not (lag in text and _value(text, "janus_last_checkpoint_timestamp_seconds") > 0) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            text = _scrape(f"http://127.0.0.1:{port}/metrics")
        assert lag in text
        assert abs(_value(text, "janus_last_checkpoint_timestamp_seconds") - time.time()) < 300
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read().decode()
        for line in filter(None, err.splitlines()):
            orjson.loads(line)  # structured logs: every line is a JSON object
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_catches_the_gap_and_spares_the_control(tmp_path):
    result = subprocess.run([*JANUS, "demo", "--out", str(tmp_path), "--production", "12000"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "ALERT [critical] triage-agent/" in out and "decisions after the gap began]" in out
    assert "ALERT [critical] triage-agent-control/" not in out
    assert "triage-agent-control   no alerts" in out
