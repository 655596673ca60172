"""Soak: N decision records through a real `janus serve`, its RSS sampled over time.

Run by ``make soak`` (tests/soak/test_soak.py, 5,000,000 records) and, small, by
tests/test_reliability.py; also on its own::

    .venv/bin/python tests/soak/soak_serve.py --records 200000 --out soak-output

It starts an embedded broker (or uses ``--bootstrap-servers``), builds and activates a baseline
of the simulated triage agent, and produces N production records from a background thread --
drawn from a pool of simulated records (drifting after the first half of the pool) with fresh
decision ids, never faster than ``--max-lag`` records ahead of the service, so the broker's
in-memory log, not Janus, is what holds the backlog. Every ``--sample-seconds`` it records
(seconds, checkpointed offset, RSS of the serve process in MB) to ``rss.csv``; at the end it
writes ``summary.json`` (start/middle/end/peak RSS, records per second, restarts: none) and
``rss.png`` (the curve). Exit status 0 when every record was checkpointed and serve exited 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from detector.baseline import BaselineStore, build_baseline  # noqa: E402
from detector.records import parse_values  # noqa: E402
from detector.simulate import simulate  # noqa: E402
from detector.stream.broker import EmbeddedBroker, create_topics  # noqa: E402
from detector.stream.checkpoint import CheckpointStore  # noqa: E402
from detector.stream.kafka_config import kafka_kwargs  # noqa: E402

TOPIC = "soak"
GROUP = "janus-soak"
CONFIG = """
[kafka]
max_poll_records = 2000

[checkpoint]
every_records = 50000
every_seconds = 10.0
"""


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def logged_errors(log_path: Path) -> list[str]:
    """Error-level lines of a `janus serve` JSON log (every line must parse), except kafka-python's
    "Cancelled" of its own metadata task when the client closes at shutdown."""
    out = []
    for line in log_path.read_bytes().splitlines():
        event = orjson.loads(line) if line.strip() else {}
        if event.get("level") == "error" and not (
                event.get("logger", "").startswith("kafka") and event.get("message", "").endswith("Cancelled")):
            out.append(event["message"][:300])
    return out


def offset(checkpoints: Path) -> int:
    loaded = CheckpointStore(checkpoints, group=GROUP).load(TOPIC, 0)
    return loaded[0] if loaded else 0


class Producer(threading.Thread):
    """Sends ``n`` records (pool entries with fresh ids), at most ``max_lag`` ahead of ``done()``."""

    def __init__(self, bootstrap: str, pool: list[dict], n: int, max_lag: int, done):
        super().__init__(daemon=True)
        self.bootstrap, self.pool, self.n, self.max_lag, self.done = bootstrap, pool, n, max_lag, done
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaProducer

        try:
            producer = KafkaProducer(**{**kafka_kwargs("producer", bootstrap_servers=self.bootstrap),
                                        "linger_ms": 50}, batch_size=512 * 1024)
            while self.sent < self.n:
                while self.sent - self.done() > self.max_lag:
                    time.sleep(0.2)
                hi = min(self.sent + 10_000, self.n)
                for i in range(self.sent, hi):
                    rec = self.pool[i % len(self.pool)]
                    producer.send(TOPIC, key=b"triage-agent", partition=0,
                                  value=orjson.dumps({**rec, "decision_id": f"soak-{i}"}))
                producer.flush()
                self.sent = hi
            producer.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def plot(rows: list[tuple[float, int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([r[1] / 1e6 for r in rows], [r[2] for r in rows], lw=1.5)
    ax.set_xlabel("records processed (millions)")
    ax.set_ylabel("RSS of janus serve (MB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def soak(records: int, out: Path, bootstrap: str | None = None, sample_seconds: float = 2.0,
         max_lag: int = 200_000, timeout: float = 6 * 3600) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="janus-soak-"))
    logs = simulate("reasoning-unmonitored", seed=21, n_evaluation=2000, n_production=20_000, change_at=10_000)
    store = BaselineStore(work / "baselines")
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    store.save(build_baseline(evaluation), actor="soak", reason="soak test", activate=True)
    (work / "janus.toml").write_text(CONFIG)
    broker = None
    if bootstrap is None:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
    try:
        create_topics(bootstrap, [TOPIC, f"{TOPIC}.dlq", f"{TOPIC}.alerts", f"{TOPIC}.review"], 1)
        checkpoints = work / "ckpt"
        producer = Producer(bootstrap, logs.production, records, max_lag, lambda: offset(checkpoints))
        producer.start()
        log_path = out / "serve.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "detector", "--config", str(work / "janus.toml"), "serve",
             "--store", str(store.root), "--bootstrap-servers", bootstrap, "--topic", TOPIC,
             "--alert-topic", f"{TOPIC}.alerts", "--review-topic", f"{TOPIC}.review", "--group-id", GROUP,
             "--checkpoint-dir", str(checkpoints), "--arl", "1000", "--metrics-addr", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"), cwd=REPO)
        rows: list[tuple[float, int, float]] = []
        started = time.monotonic()
        curve = open(out / "rss.csv", "w", newline="")  # written as it goes: a cut-short soak keeps its curve
        writer = csv.writer(curve)
        writer.writerow(["seconds", "records_checkpointed", "rss_mb"])
        try:
            while True:
                done = offset(checkpoints)
                mb = rss_mb(proc.pid)
                if mb:  # None once gone, 0 while exec() replaces the forked image
                    rows.append((round(time.monotonic() - started, 1), done, round(mb, 1)))
                    writer.writerow(rows[-1])
                    curve.flush()
                if done >= records:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"janus serve exited with {proc.returncode}; see {log_path}")
                if producer.error is not None:
                    raise RuntimeError(f"the soak producer failed: {producer.error!r}")
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"soak not done after {timeout:.0f} s ({done} of {records} records)")
                time.sleep(sample_seconds)
            seconds = time.monotonic() - started
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=120)
        finally:
            curve.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        if broker is not None:
            broker.stop()
    # RSS once the service is warm (baseline loaded, first checkpoint written), then at the middle and end.
    warm = [r for r in rows if r[1] > 0] or rows
    middle = min(warm, key=lambda r: abs(r[1] - records / 2))
    summary = {
        "records": records, "seconds": round(seconds, 1), "records_per_second": round(records / seconds),
        "exit_status": status, "samples": len(rows), "rss_warm_mb": warm[0][2], "rss_middle_mb": middle[2],
        "rss_end_mb": rows[-1][2], "rss_peak_mb": max(r[2] for r in rows),
        "errors_logged": len(logged_errors(log_path)),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(rows, out / "rss.png", f"janus serve, {records:,} records: RSS over the soak")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--out", type=Path, default=Path("soak-output"))
    parser.add_argument("--bootstrap-servers", default=None, help="an existing cluster (default: embedded broker)")
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--max-lag", type=int, default=200_000)
    args = parser.parse_args(argv)
    summary = soak(args.records, args.out, args.bootstrap_servers, args.sample_seconds, args.max_lag)
    print(json.dumps(summary))
    return 0 if summary["exit_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
