"""Throughput, memory and alert latency of Janus, each measured the way a user runs it.

- ``backtest``: ``janus backtest``'s pipeline (parse, featurise, detect; every feature) over a
  simulated no-change log of N records, in a child process that samples its own RSS every few
  batches. Records/s per core = records / CPU seconds of that process.
- ``serve``: one embedded Tansu broker, one topic of simulated records; the bare kafka-python
  consume-and-decode loop (bench/bare_consume.py) and ``janus serve`` (a real subprocess, its
  progress read from its /metrics endpoint) consume the same topic in the same run.
- ``latency``: after that, compliance-gap records are produced at a steady rate; latency is the
  wall time from sending the record that fired the first behaviour alert to reading the alert
  from the alert topic.

    .venv-bench/bin/python bench/throughput.py --backtest-records 100000 --serve-records 30000 --out /tmp/tp.json
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED = 7
CHUNK = 200_000  # simulated records per block; longer logs repeat blocks with fresh decision ids


def _status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak) of this process. Not ru_maxrss: that survives exec, so a
    child would report the peak of the parent it was forked from."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def write_log(path: Path, n: int, store_root: Path) -> None:
    """A no-change production log of ``n`` records, and the baseline of its evaluation log."""
    from detector.baseline import BaselineStore, build_baseline
    from detector.records import parse_values
    from detector.simulate import simulate

    logs = simulate("no-change", SEED, n_evaluation=20_000, n_production=min(n, CHUNK), change_at=0)
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    BaselineStore(store_root).save(build_baseline(evaluation), actor="bench", reason="bench", activate=True)
    with path.open("wb") as f:
        written, copy = 0, 0
        while written < n:
            for r in logs.production[: n - written]:
                if copy:  # a new decision id, so de-duplication does not drop the repeat
                    r = {**r, "decision_id": f"{r['decision_id']}-{copy}"}
                f.write(orjson.dumps(r) + b"\n")
            written += min(len(logs.production), n - written)
            copy += 1


def backtest_child(path: str, store: str, arl: float, every: int) -> dict:
    """Run in its own process (``--child``): the backtest with RSS sampled every ``every`` batches."""
    from detector.backtest import run_backtest
    from detector.baseline import BaselineStore
    from detector.config import DetectionConfig, JanusConfig
    from detector.pipeline import Pipeline

    samples = [(0, round(_rss_mb(), 1))]
    seen = {"records": 0, "batches": 0}

    def on_batch(result) -> None:
        seen["batches"] += 1
        seen["records"] += len(result.accepted) + len(result.rejections)
        if seen["batches"] % every == 0:
            samples.append((seen["records"], round(_rss_mb(), 1)))

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    pipeline = Pipeline(BaselineStore(store), JanusConfig(detection=DetectionConfig(arl=arl)))
    summary = run_backtest(path, pipeline, on_batch=on_batch)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    samples.append((summary.records, round(_rss_mb(), 1)))
    return {"records": summary.records, "accepted": summary.accepted, "seconds": round(summary.seconds, 2),
            "cpu_seconds": round(cpu, 2), "records_per_s": round(summary.records_per_second),
            "records_per_cpu_s": round(summary.records / cpu) if cpu else None,
            "peak_rss_mb": round(_status_mb("VmHWM"), 1),
            "rss_samples": samples}


def backtest(n: int, arl: float = 1e6) -> dict:
    with tempfile.TemporaryDirectory(prefix="janus-bench-bt-") as tmp:
        log, store = Path(tmp) / "production.jsonl", Path(tmp) / "store"
        write_log(log, n, store)
        every = max(1, n // 2048 // 40)  # ~40 RSS samples over the run
        out = subprocess.run([sys.executable, __file__, "--child", str(log), str(store), str(arl), str(every)],
                             capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(f"backtest child failed ({out.returncode}): {out.stderr[-2000:]}")
        result = json.loads(out.stdout)
    result["arl"] = arl
    return result


# ---- serve -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _decisions_seen(url: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("janus_decisions_total{"))


def serve(n: int, latency_records: int, rate: float) -> dict:
    from kafka import KafkaConsumer, KafkaProducer

    from bare_consume import bare_consume_rate
    from detector.baseline import BaselineStore, build_baseline
    from detector.records import parse_values
    from detector.simulate import simulate
    from detector.stream.broker import EmbeddedBroker, create_topics
    from detector.stream.kafka_config import kafka_kwargs

    result: dict = {"records": n}
    with tempfile.TemporaryDirectory(prefix="janus-bench-serve-") as tmp, EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        logs = simulate("no-change", SEED, n_evaluation=20_000, n_production=n, change_at=0)
        store = BaselineStore(Path(tmp) / "store")
        evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
        store.save(build_baseline(evaluation), actor="bench", reason="bench", activate=True)
        topic, alerts = "bench.decisions", "bench.alerts"
        create_topics(bootstrap, [topic, alerts], 1)
        producer = KafkaProducer(**{**kafka_kwargs("producer", bootstrap_servers=bootstrap),
                                    "linger_ms": 20, "batch_size": 512 * 1024})
        for r in logs.production:
            producer.send(topic, key=r["model_id"].encode(), value=orjson.dumps(r))
        producer.flush()
        result["mean_record_bytes"] = round(sum(len(orjson.dumps(r)) for r in logs.production[:1000]) / 1000)
        bare = [bare_consume_rate(bootstrap, topic, n)["records_per_s"]]

        port = _free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        proc = subprocess.Popen(
            [sys.executable, "-m", "detector", "serve", "--store", str(store.root), "--bootstrap-servers", bootstrap,
             "--topic", topic, "--alert-topic", alerts, "--group-id", "bench", "--checkpoint-dir",
             str(Path(tmp) / "ckpt"), "--arl", "10000", "--metrics-addr", f"127.0.0.1:{port}",
             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # Rate between the first and the last progress sample: group join and start-up excluded.
            first, seen, deadline = None, 0.0, time.monotonic() + 600
            while seen < n:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"janus serve stopped or stalled at {seen:.0f}/{n}: "
                                       f"{proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ''}")
                time.sleep(0.1)
                seen = _decisions_seen(url)
                if first is None and seen > 0:
                    first = (time.perf_counter(), seen)
            serve_rate = (seen - first[1]) / (time.perf_counter() - first[0])
            bare.append(bare_consume_rate(bootstrap, topic, n)["records_per_s"])
            result.update(serve_records_per_s=round(serve_rate), bare_consume_records_per_s=[round(b) for b in bare],
                          serve_over_bare=round(serve_rate / max(bare), 3))
            result["latency"] = _alert_latency(producer, bootstrap, topic, alerts, latency_records, rate, kafka_kwargs,
                                               KafkaConsumer)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            producer.close()
    return result


def _alert_latency(producer, bootstrap, topic, alerts, n, rate, kafka_kwargs, KafkaConsumer) -> dict:
    """Produce a compliance gap at ``rate`` records/s; time from send to the first behaviour alert read."""
    from detector.simulate import simulate

    consumer = KafkaConsumer(alerts, **{**kafka_kwargs("consumer", bootstrap_servers=bootstrap, group_id=None),
                                        "auto_offset_reset": "latest"})
    consumer.poll(timeout_ms=500)  # join the partition before the change starts
    logs = simulate("compliance-gap", SEED + 1, n_evaluation=20_000, n_production=n, change_at=0)
    sent: dict[str, float] = {}
    step = max(1, int(rate / 20))  # 20 sends a second
    start = time.perf_counter()
    found = None
    for i in range(0, n, step):
        for r in logs.production[i:i + step]:
            r = {**r, "decision_id": "gap-" + r["decision_id"]}
            producer.send(topic, key=r["model_id"].encode(), value=orjson.dumps(r))
            sent[r["decision_id"]] = time.perf_counter()
        producer.flush()
        for records in consumer.poll(timeout_ms=0).values():
            for rec in records:
                alert = orjson.loads(rec.value)
                if found is None and alert.get("status") == "firing" and alert.get("kind") == "behaviour":
                    found = (alert, time.perf_counter())
        if found:
            break
        time.sleep(max(0.0, start + (i + step) / rate - time.perf_counter()))
    deadline = time.monotonic() + 30
    while found is None and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for rec in records:
                alert = orjson.loads(rec.value)
                if found is None and alert.get("status") == "firing" and alert.get("kind") == "behaviour":
                    found = (alert, time.perf_counter())
    consumer.close()
    if found is None or found[0]["decision_id"] not in sent:
        return {"rate": rate, "records_sent": len(sent), "alert": None}
    alert, seen_at = found
    return {"rate": rate, "records_sent": len(sent), "feature": alert["feature"],
            "records_after_change": len([k for k in sent if sent[k] <= sent[alert["decision_id"]]]),
            "seconds_from_record_to_alert": round(seen_at - sent[alert["decision_id"]], 3)}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        path, store, arl, every = sys.argv[2:6]
        print(json.dumps(backtest_child(path, store, float(arl), int(every))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backtest-records", type=int, nargs="+", default=[100_000])
    parser.add_argument("--serve-records", type=int, default=30_000)
    parser.add_argument("--latency-rate", type=float, default=1000.0)
    parser.add_argument("--latency-records", type=int, default=20_000,
                        help="compliance-gap records simulated for the alert-latency part (the alert comes ~3,000 in)")
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    args = parser.parse_args(argv)
    out = {"backtest": [backtest(n) for n in args.backtest_records],
           "serve": serve(args.serve_records, args.latency_records, args.latency_rate)}
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
