"""One busy model across processes: `janus serve --role featurise` ×1 vs ×2 feeding one `--role detect`.

All on one embedded Tansu broker, every role a real `janus serve` subprocess with its state in the
Kafka state topic. The records are one model's (the support agent of ``detector.realistic``),
lengthened to long texts (pasted context in the input, long answers: ``LONG_INPUT`` /
``LONG_OUTPUT`` characters), dealt round-robin to a decision topic of two partitions (not keyed,
as a model too busy for one partition would be).

- ``featurise``: records/s of one featuriser process, then of two (each its own process), from
  their /metrics progress over a backlog: the group settles on two warm-up records (every
  featuriser owns a partition), the featurisers are stopped (SIGSTOP) while the rest of the
  records is produced and flushed, then continued (SIGCONT) and timed until the last record is
  featurised. A busy model's producers live on other hosts: producing here, during the
  measurement, would take a share of this machine's cores from the featurisers. The pause (under
  a second) stays well below the session timeout, so the group does not rebalance; a run whose
  group did is refused. The ratio is the scale-out. Also the featurisers' records per CPU-second
  and the cores they kept busy (from /proc): on a machine shared with other work, wall-clock rates
  follow the free cores.
- ``detect``: the detector's own ceiling: the blocks of the two-featuriser run, decoded, merged
  and applied (``Monitor.update_counts``) in one process as fast as it can, records represented
  per second and blocks per second (Kafka's share is the featurisers' rate above).
- ``state``: checkpoint size and write time in the state topic: what the featurisers and the
  detectors logged for each checkpoint (median), and a `--role all` pipeline's state after the
  same records (its de-duplication window included) written by the state store five times.

    .venv-bench/bin/python bench/scale_out.py --quick --out /tmp/scale_out.json
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 5
LONG_INPUT, LONG_OUTPUT = 3_000, 1_200  # characters
BLOCK = 500
SESSION_TIMEOUT_MS = 6000
CONFIG = """
[kafka]
session_timeout_ms = {session_timeout_ms}
max_poll_interval_ms = 20000
max_poll_records = 500

[checkpoint]
topic = "{state_topic}"
every_seconds = 2.0

[split]
counts_topic = "{counts_topic}"
block_records = {block}
merge_wait_seconds = 1.0
"""
_ASSIGNED = re.compile(r"assigned \S+\[(\d+)\]")
_REVOKED = re.compile(r"revoked (.*)")
_PARTITION = re.compile(r"\[(\d+)\]")
_CHECKPOINT = re.compile(r"checkpoint to topic \S+: .*; ([\d,]+) bytes in (\d+) messages?, (\d+) ms")


def long_records(records: list[dict]) -> list[dict]:
    """The records with long texts: other records' requests pasted as context, long answers."""
    out = []
    pool = [r["input"]["text"] for r in records]
    for i, r in enumerate(records):
        text, answer, j = r["input"]["text"], (r.get("output") or {}).get("text") or "", i
        while len(text) < LONG_INPUT:
            j = (j * 7 + 3) % len(pool)
            text += "\n> " + pool[j]
        while answer and len(answer) < LONG_OUTPUT:
            answer += " " + answer
        out.append({**r, "input": {**r["input"], "text": text},
                    **({"output": {**r["output"], "text": answer[:LONG_OUTPUT]}} if r.get("output") else {})})
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(port: int, *names: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(names))


class _Serve:
    def __init__(self, argv: list[str], role: str, log: Path):
        self.port = _free_port()
        self.log = log
        self.proc = subprocess.Popen([*argv, "--role", role, "--metrics-addr", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "wb"))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"janus serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def messages(self) -> list[str]:
        """The messages this process logged so far."""
        return [orjson.loads(line).get("message", "") for line in self.log.read_bytes().splitlines()
                if line.startswith(b"{")]

    def owned(self) -> frozenset[int]:
        """The partitions this process owns, by its "assigned" and "revoked" log lines."""
        owned: set[int] = set()
        for message in self.messages():
            if match := _ASSIGNED.match(message):
                owned.add(int(match[1]))
            elif match := _REVOKED.match(message):
                owned -= {int(p) for p in _PARTITION.findall(match[1])}
        return frozenset(owned)

    def checkpoints(self) -> list[tuple[int, int, int]]:
        """(bytes, messages, ms) of every checkpoint this process logged."""
        return [(int(m[1].replace(",", "")), int(m[2]), int(m[3]))
                for m in map(_CHECKPOINT.search, self.messages()) if m]


def _until(done, serves: list[_Serve], what: str, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        for s in serves:
            s.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def featurise_run(bootstrap: str, store: Path, tmp: Path, values: list[bytes], featurisers: int) -> dict:
    """k featuriser processes + one detector on a fresh topic pair; featurise rate and checkpoints."""
    from detector.stream.broker import create_topics

    from kafka import KafkaProducer

    name = f"f{featurisers}"
    topic, counts = f"bench.{name}.decisions", f"bench.{name}.counts"
    create_topics(bootstrap, [topic], 2)
    create_topics(bootstrap, [counts], 1)
    config = tmp / f"{name}.toml"
    config.write_text(CONFIG.format(session_timeout_ms=SESSION_TIMEOUT_MS, state_topic=f"bench.{name}.state",
                                    counts_topic=counts, block=BLOCK))
    argv = [sys.executable, "-m", "detector", "--config", str(config), "serve", "--store", str(store),
            "--bootstrap-servers", bootstrap, "--topic", topic, "--group-id", f"bench-{name}",
            "--alert-topic", f"bench.{name}.alerts", "--arl", "1e6", "--log-level", "info"]
    detector = _Serve(argv, "detect", tmp / f"{name}-detect.log")
    workers = [_Serve(argv, "featurise", tmp / f"{name}-featurise-{i}.log") for i in range(featurisers)]
    serves = [detector, *workers]
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20,
                             max_request_size=16 << 20)

    def produce(first: int, stop: int) -> None:
        for i in range(first, stop):
            producer.send(topic, value=values[i], partition=i % 2)
        producer.flush()

    try:
        def done(w: _Serve) -> float:
            return _metric(w.port, "janus_decisions_total{", "janus_records_rejected_total{")

        progress = lambda: sum(done(w) for w in workers)  # noqa: E731
        # Warm-up: one record per partition, until every featuriser owns a partition and both records
        # are featurised (the group is settled), so that the measurement holds no rebalance.
        produce(0, 2)
        _until(lambda: _settled(workers) and progress() >= 2, serves, "a settled group")
        owners, before = [w.owned() for w in workers], progress()  # /metrics does not answer while stopped
        # The backlog: produced while the featurisers are stopped, so they only read it.
        for w in workers:
            w.signal(signal.SIGSTOP)
        paused = time.perf_counter()
        try:
            produce(2, len(values))
        finally:
            paused = time.perf_counter() - paused
            cpu = sum(w.cpu_seconds() for w in workers)
            started = time.perf_counter()
            for w in workers:
                w.signal(signal.SIGCONT)
        _until(lambda: progress() >= len(values), serves, "every record featurised")
        seconds = time.perf_counter() - started
        cpu = sum(w.cpu_seconds() for w in workers) - cpu
        rate = (len(values) - before) / seconds
        if [w.owned() for w in workers] != owners:
            raise RuntimeError(f"the featurisers' group rebalanced during the measurement (backlog produced in "
                               f"{paused:.1f} s, session timeout {SESSION_TIMEOUT_MS / 1000:g} s), so the rate "
                               "would include the rebalance; run again on a less loaded machine")
        # The last blocks close at the featurisers' next checkpoint; then every block is applied.
        _until(lambda: _committed(bootstrap, f"bench-{name}.featurise", topic) >= len(values), serves,
               "the featurisers' last checkpoint")
        ends = _end(bootstrap, counts)
        _until(lambda: _metric(detector.port, "janus_counts_batches_total{") >= ends, serves, "every block applied")
    finally:
        producer.close()
        for s in serves:
            s.stop()
    return {"featurisers": featurisers, "records_per_s": round(rate), "seconds": round(seconds, 1),
            "backlog_produced_s": round(paused, 2),
            "records_per_cpu_s": round((len(values) - before) / cpu), "cores_busy": round(cpu / seconds, 2),
            "load_average": round(os.getloadavg()[0], 1),
            "counts_topic": counts, "checkpoints": {"featurise": [c for w in workers for c in w.checkpoints()],
                                                    "detect": detector.checkpoints()}}


def _settled(workers: list[_Serve]) -> bool:
    """Every featuriser owns a partition, and together they own both, each once."""
    owned = [w.owned() for w in workers]
    return all(owned) and sorted(p for o in owned for p in o) == [0, 1]


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))
    finally:
        consumer.close()


def _end(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def detect_ceiling(bootstrap: str, store: Path, counts: str) -> dict:
    """The detector's own ceiling: the counts messages of a run, decoded and applied (receive and
    merge, Monitor.update_counts) in this process, over and over for at least two seconds."""
    from kafka import KafkaConsumer, TopicPartition

    from detector.baseline import BaselineStore
    from detector.config import JanusConfig
    from detector.split.counts import decode
    from detector.split.detect import CountsDetector

    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                           max_partition_fetch_bytes=16 << 20)
    tp = TopicPartition(counts, 0)
    reader.assign([tp])
    reader.seek_to_beginning(tp)
    end = reader.end_offsets([tp])[tp]
    messages = []
    while reader.position(tp) < end:
        for batch in reader.poll(timeout_ms=500).values():
            messages += [m.value for m in batch]
    reader.close()
    baselines = BaselineStore(store)
    blocks = records = 0
    started = time.perf_counter()
    while time.perf_counter() - started < 2.0:
        detector = CountsDetector(baselines, JanusConfig(), arl=1e6)
        for value in messages:
            batch = decode(value)
            detector.receive(batch, 0.0)
            detector.drain(float("inf"))
            records += int(batch.counts[0].sum())
        blocks += len(messages)
    seconds = time.perf_counter() - started
    return {"blocks": len(messages), "records_per_block": round(records / blocks),
            "blocks_per_s": round(blocks / seconds), "records_per_s": round(records / seconds)}


def all_role_state(bootstrap: str, store_root: Path, values: list[bytes]) -> dict:
    """A --role all pipeline's state after ``values``, saved five times through the state store."""
    from detector.baseline import BaselineStore
    from detector.config import CheckpointConfig, JanusConfig
    from detector.pipeline import Pipeline
    from detector.stream.state_topic import KafkaStateStore

    pipeline = Pipeline(BaselineStore(store_root), JanusConfig(), arl=1e6)
    for i in range(0, len(values), 500):
        pipeline.process(values[i:i + 500], first_position=i)
    meta, arrays = pipeline.state()
    state = KafkaStateStore(CheckpointConfig(topic="bench.all.state"), "bench-all", "bench",
                            {"bootstrap_servers": bootstrap})
    state.connect()
    try:
        (claim,) = state.claim([("bench.decisions", 0)])
        writes = [state.save(claim, len(values), {"pipeline": meta}, arrays) for _ in range(5)]
    finally:
        state.close()
    return {"records": len(values), "dedup_window": int(arrays["dedup"].size), "bytes": writes[-1].bytes,
            "messages": writes[-1].messages, "ms_median": round(1000 * statistics.median(w.seconds for w in writes), 1)}


def _summary(checkpoints: list[tuple[int, int, int]]) -> dict | None:
    if not checkpoints:
        return None
    return {"checkpoints": len(checkpoints), "bytes_median": round(statistics.median(c[0] for c in checkpoints)),
            "messages_max": max(c[1] for c in checkpoints), "ms_median": statistics.median(c[2] for c in checkpoints)}


def run(quick: bool = False) -> dict:
    from detector.baseline import BaselineStore, build_baseline
    from detector.realistic import SUPPORT, generate
    from detector.records import parse_values
    from detector.stream.broker import EmbeddedBroker

    n = 4_000 if quick else 24_000  # two featurisers take ~2.5 s: fixed costs (first fetch, polling) stay small
    logs = generate(SUPPORT, seed=SEED, n_evaluation=2_000, n_production=n)
    evaluation = long_records(logs.evaluation)
    values = [orjson.dumps(r) for r in long_records(logs.production)]
    with tempfile.TemporaryDirectory(prefix="janus-bench-scale-") as tmp_name, EmbeddedBroker() as broker:
        tmp = Path(tmp_name)
        store = tmp / "store"
        BaselineStore(store).save(build_baseline(parse_values([orjson.dumps(r) for r in evaluation]).decisions),
                                  actor="bench", reason="bench", activate=True)
        bootstrap = broker.bootstrap_servers
        one = featurise_run(bootstrap, store, tmp, values, 1)
        two = featurise_run(bootstrap, store, tmp, values, 2)
        ceiling = detect_ceiling(bootstrap, store, two["counts_topic"])
        whole = all_role_state(bootstrap, store, values)
    return {"records": n, "mean_record_bytes": round(sum(map(len, values)) / len(values)), "block_records": BLOCK,
            "featurise": [{k: v for k, v in r.items() if k not in ("checkpoints", "counts_topic")} for r in (one, two)],
            "ratio_two_over_one": round(two["records_per_s"] / one["records_per_s"], 2),
            "detect_ceiling": ceiling,
            "state": {"featurise": _summary(one["checkpoints"]["featurise"] + two["checkpoints"]["featurise"]),
                      "detect": _summary(one["checkpoints"]["detect"] + two["checkpoints"]["detect"]),
                      "all": whole}}


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__))
