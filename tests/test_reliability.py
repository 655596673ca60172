"""Reliability and security (issue 9): Janus keeps working, loses nothing and lets nothing in.

* hostile input: a seeded corpus (tests/hostile.py, >= 10,000 records of every hostile class,
  10 MiB messages included) through ``janus backtest`` and a real ``janus serve`` on the embedded
  broker: no crash, accepted + rejected by reason = sent, the dead-letter topic holds every
  reject byte for byte, producer retries counted once, metrics behind basic auth;
* duplicate decision ids vs. exactly-once checkpoints (RELIABILITY.md explains the interaction);
* cardinality attack: distinct model ids, and records of the monitored model with distinct
  segments, tool names and actions, through Pipeline + JanusMetrics in a child process
  (tests/soak/cardinality.py): state and metric series under their caps, folds counted, RSS flat;
* crash recovery: ``kill -9`` of ``janus serve`` at seeded random points of a long stream,
  restarted each time: final detector state and de-duplicated alerts equal an uninterrupted run;
* broker outage mid-stream: the embedded broker frozen (SIGSTOP: same data) or killed and replaced
  by a fresh one on the same port (Tansu keeps data only in memory): ``janus serve`` resumes on its
  own and loses nothing it had checkpointed;
* baselines through the CLI: a truncated ``.npz`` whose manifest matches, path-traversal model ids
  in records;
* the soak script of ``make soak`` (tests/soak/soak_serve.py) at a small size.

Already covered elsewhere and not repeated here: concurrent promote/rollback from two processes,
tampered/deleted/extra files, symlinked folders and files, hostile ids at the API level and the
append-only audit chain (tests/test_baseline_store.py, tests/test_cli_baseline.py); the metrics
endpoint's 127.0.0.1 default bind and basic auth (tests/test_metrics_live.py::
test_basic_auth_and_default_bind, ::test_basic_auth_over_tls); checkpoint atomicity under kill -9
mid-write and corruption, one kill between checkpoints (tests/test_stream_plumbing.py).

Sizes come from environment variables; the defaults take seconds to a minute or two each, and
``make soak`` sets the issue's (1,000,000 ids, 20 kills in 30,000 records, 30 s outages):
JANUS_HOSTILE_N, JANUS_CARDINALITY_N, JANUS_CRASH_RECORDS, JANUS_CRASH_KILLS, JANUS_CRASH_SEED,
JANUS_OUTAGE_S, JANUS_OUTAGE_RECORDS, JANUS_SOAK_SMALL. RELIABILITY.md reports the figures.
With ``JANUS_RELIABILITY_REPORT=path`` every test appends its measured figures there as a JSON line.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detector.baseline import BaselineStore, build_baseline
from detector.baseline.store import ARRAYS_FILE, MANIFEST_FILE, model_dirname
from detector.config import JanusConfig
from detector.pipeline import Pipeline
from detector.records import REASONS, parse_values
from detector.simulate import simulate
from detector.stream.broker import EmbeddedBroker, create_topics
from detector.stream.checkpoint import CheckpointStore
from detector.stream.kafka_config import kafka_kwargs
from hostile import MIB, corpus, expected_counts, write_jsonl
from test_cli_serve import JANUS, _free_port
from test_stream_plumbing import ALERT_KEY, ARL, REPO, _alert_key, _assert_same_state, _drain, _reference

MODEL = "triage-agent"
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "soak"))  # soak_serve, cardinality: scripts `make soak` also runs


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


HOSTILE_N = _env_int("JANUS_HOSTILE_N", 10_000)
# `make test` sizes; `make soak` runs this file with the (1,000,000 ids, 20 kills, 30 s outages).
CARDINALITY_N = _env_int("JANUS_CARDINALITY_N", 50_000)
CRASH_RECORDS = _env_int("JANUS_CRASH_RECORDS", 4_000)
CRASH_KILLS = _env_int("JANUS_CRASH_KILLS", 2)
CRASH_SEED = _env_int("JANUS_CRASH_SEED", 2026)
OUTAGE_S = float(os.environ.get("JANUS_OUTAGE_S", 5))
OUTAGE_RECORDS = _env_int("JANUS_OUTAGE_RECORDS", 4_000)
SOAK_SMALL = _env_int("JANUS_SOAK_SMALL", 10_000)


def _report(test: str, **figures) -> None:
    """Print the figures; append them to $JANUS_RELIABILITY_REPORT (JSON lines) when set."""
    line = {"test": test, **figures}
    print(f"\n{test}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    path = os.environ.get("JANUS_RELIABILITY_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(line) + "\n")


# ---------------------------------------------------------------------------------------------
# shared world: one monitored model with an active baseline


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(store, production pool): the triage agent's baseline, and production records to build on."""
    logs = simulate("reasoning-unmonitored", seed=3, n_evaluation=1500, n_production=3000, change_at=1000)
    store = BaselineStore(tmp_path_factory.mktemp("baselines"))
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    store.save(build_baseline(evaluation), actor="test", reason="reliability tests", activate=True)
    return store, logs.production


def _rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _checkpoint_offset(checkpoint_dir: Path, group: str, topic: str, partition: int = 0) -> int:
    loaded = CheckpointStore(checkpoint_dir, group=group).load(topic, partition)
    return loaded[0] if loaded else 0


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _counts_from_scrape(text: str) -> tuple[float, Counter]:
    """(sum of janus_decisions_total, janus_records_rejected_total by reason) from a scrape."""
    accepted, rejected = 0.0, Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "janus_decisions_total":
                accepted += s.value
            elif s.name == "janus_records_rejected_total":
                rejected[s.labels["reason"]] += int(s.value)
    return accepted, rejected


def _processed(port: int, auth: tuple[str, str] | None = None) -> int | None:
    """Records processed so far by the `janus serve` behind ``port`` (None while it does not answer)."""
    try:
        status, text = _get(f"http://127.0.0.1:{port}/metrics", auth)
    except OSError:
        return None
    if status != 200:
        return None
    accepted, rejected = _counts_from_scrape(text)
    return int(accepted) + sum(rejected.values())


def _big_producer(bootstrap: str):
    from kafka import KafkaProducer

    settings = {**kafka_kwargs("producer", bootstrap_servers=bootstrap), "linger_ms": 20}
    return KafkaProducer(**settings, max_request_size=32 * MIB, batch_size=256 * 1024)


def _read_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list:
    """Every record of partition 0 of ``topic`` up to its current end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=bootstrap, group_id=None),
                             fetch_max_bytes=64 * MIB, max_partition_fetch_bytes=32 * MIB)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        return _drain(consumer, end, timeout=timeout) if end else []
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------
# Hostile input


@pytest.fixture(scope="module")
def hostile_lines(world):
    _, pool = world
    return corpus(HOSTILE_N, seed=7, valid=pool)


def test_hostile_corpus_covers_every_class_and_reason(hostile_lines):
    assert len(hostile_lines) >= 10_000 or HOSTILE_N < 10_000
    kinds = Counter(r.kind for r in hostile_lines)
    assert set(kinds) >= {"invalid_utf8", "huge_string", "huge_message", "deep_nesting", "nan_infinity",
                          "number_as_string", "duplicate_keys", "control_chars", "unicode_tricks", "empty",
                          "null_bytes", "wrong_shape", "retry", "valid"}
    assert set(expected_counts(hostile_lines)) == {"accepted", *REASONS}  # every reason code is exercised
    assert max(r.size for r in hostile_lines) >= 10 * MIB


def test_hostile_corpus_through_backtest(world, hostile_lines, tmp_path):
    """Every line accounted for, by reason, through the CLI; per line, in process, with the raw bytes."""
    store, _ = world
    path = write_jsonl(hostile_lines, tmp_path / "hostile.jsonl")
    expected = expected_counts(hostile_lines)

    # In process, the code path of `janus backtest`: each line's outcome and the rejected bytes.
    from detector.backtest import run_backtest

    pipeline = Pipeline(store, JanusConfig(), arl=ARL)
    rejections = []
    started = time.perf_counter()
    summary = run_backtest(path, pipeline, on_batch=lambda result: rejections.extend(result.rejections))
    seconds = time.perf_counter() - started
    outcome = {r.position: r for r in rejections}
    wrong = [(i, r.kind, r.expect, outcome[i].reason if i in outcome else "accepted")
             for i, r in enumerate(hostile_lines) if (outcome[i].reason if i in outcome else "accepted") != r.expect]
    assert not wrong, wrong[:20]
    assert all(outcome[i].raw == hostile_lines[i].value for i in outcome), "a rejection's raw bytes changed"
    assert summary.records == len(hostile_lines) == summary.accepted + sum(summary.rejected.values())
    assert summary.baseline_missing, "look-alike model ids are other models, not the monitored one"

    # The command line, as a user runs it.
    result = subprocess.run(
        [*JANUS, "backtest", "--input", str(path), "--alerts-out", str(tmp_path / "alerts.jsonl"),
         "--store", str(store.root), "--arl", str(ARL), "--json"],
        capture_output=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    cli = orjson.loads(result.stdout)
    assert cli["records"] == len(hostile_lines)
    assert cli["accepted"] == expected["accepted"]
    assert cli["rejected"] == {k: v for k, v in expected.items() if k != "accepted"}
    assert cli["accepted"] + sum(cli["rejected"].values()) == cli["records"]
    _report("hostile_backtest", records=len(hostile_lines), bytes=sum(r.size for r in hostile_lines),
            largest=max(r.size for r in hostile_lines), accepted=expected["accepted"],
            rejected=sum(v for k, v in expected.items() if k != "accepted"), duplicates=expected["duplicate"],
            mismatches=len(wrong), seconds_in_process=round(seconds, 1))


SERVE_CONFIG = """
[kafka]
session_timeout_ms = 6000
max_poll_interval_ms = 5000
max_poll_records = {max_poll_records}

[checkpoint]
every_records = {every_records}
every_seconds = 1.0
"""


class _Serve:
    """One `janus serve` process on ``topic`` (outputs to ``<topic>.dlq/.alerts/.review``), JSON logs
    in ``<tmp>/serve-<n>.log``, metrics on a fresh loopback port; ``start()`` again after a kill."""

    def __init__(self, store, bootstrap, topic, group, tmp_path, *, max_poll_records=500, every_records=5000,
                 auth: tuple[str, str] | None = None):
        self.store, self.bootstrap, self.topic, self.group, self.tmp = store, bootstrap, topic, group, tmp_path
        self.ckpt = tmp_path / "ckpt"
        self.config = _write_config(tmp_path / "janus.toml", SERVE_CONFIG.format(
            max_poll_records=max_poll_records, every_records=every_records))
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @staticmethod
    def topics(topic: str) -> list[str]:
        return [f"{topic}.dlq", f"{topic}.alerts", f"{topic}.review"]

    def start(self) -> subprocess.Popen:
        self.starts += 1
        self.port = _free_port()
        self.log_path = self.tmp / f"serve-{self.starts}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [*JANUS, "--config", str(self.config), "serve", "--store", str(self.store.root),
                "--bootstrap-servers", self.bootstrap, "--topic", self.topic, "--alert-topic", f"{self.topic}.alerts",
                "--review-topic", f"{self.topic}.review", "--group-id", self.group, "--checkpoint-dir", str(self.ckpt),
                "--arl", str(ARL), "--metrics-addr", f"127.0.0.1:{self.port}"]
        if self.auth:
            env["JANUS_METRICS_AUTH"] = ":".join(self.auth)
            argv += ["--metrics-basic-auth-env", "JANUS_METRICS_AUTH"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"), env=env,
                                     cwd=REPO)
        return self.proc

    def offset(self) -> int:
        return _checkpoint_offset(self.ckpt, self.group, self.topic)

    def processed(self) -> int | None:
        return _processed(self.port, self.auth)

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:]

    def wait(self, predicate, what: str, timeout: float = 300.0, every: float = 0.2, on_tick=None) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, f"janus serve died ({what}): {self.log_tail()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; log: {self.log_tail()}"
            if on_tick:
                on_tick()
            time.sleep(every)

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL: no handler, no flush, no checkpoint
        self.proc.wait()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log_tail()

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def errors(self) -> list[str]:
        """Messages of every error-level log line of every run (each line must be JSON)."""
        from soak_serve import logged_errors

        return [m for n in range(1, self.starts + 1) for m in logged_errors(self.tmp / f"serve-{n}.log")]


@pytest.mark.kafka
def test_hostile_corpus_through_serve(world, kafka_bootstrap, unique_topic, unique_name, tmp_path):
    """A real `janus serve` on the embedded broker: no crash; the metrics count every record by
    reason; the dead-letter topic holds every reject byte for byte (10 MiB ones and tombstones
    included) with its reason; /metrics wants the configured basic-auth credentials."""
    store, pool = world
    records = corpus(HOSTILE_N, seed=8, valid=pool, kafka=True)
    expected = expected_counts(records)
    topic = unique_topic("hostile")
    create_topics(kafka_bootstrap, _Serve.topics(topic), 1)
    producer = _big_producer(kafka_bootstrap)
    futures = [producer.send(topic, key=r.key, value=r.value, partition=0) for r in records]
    producer.flush()
    offsets = [f.get(timeout=60).offset for f in futures]
    producer.close()
    assert offsets == list(range(len(records))), "the broker did not take every message in order"

    auth = ("scraper", "s3cret")
    serve = _Serve(store, kafka_bootstrap, topic, unique_name("g"), tmp_path, auth=auth)
    serve.start()
    started = time.monotonic()
    rss = []
    try:
        serve.wait(lambda: serve.offset() >= len(records), "the whole corpus", every=0.5,
                   on_tick=lambda: rss.append(_rss_mb(serve.proc.pid)))
        seconds = time.monotonic() - started
        url = f"http://127.0.0.1:{serve.port}/metrics"
        assert _get(url)[0] == 401, "an unauthenticated scrape must be refused"
        assert _get(url, ("scraper", "wrong"))[0] == 401
        status, text = _get(url, auth)
        assert status == 200
        serve.terminate()
    finally:
        serve.ensure_dead()

    accepted, rejected = _counts_from_scrape(text)
    assert accepted == expected["accepted"]
    assert dict(rejected) == {k: v for k, v in expected.items() if k != "accepted"}
    assert accepted + sum(rejected.values()) == len(records)
    assert not serve.errors()  # and every log line is JSON

    letters = _read_all(kafka_bootstrap, f"{topic}.dlq")
    by_offset = {int(dict(r.headers)["janus-source-offset"]): r for r in letters}
    rejects = {i: r for i, r in enumerate(records) if r.expect != "accepted"}
    assert len(letters) == len(by_offset) == len(rejects), (len(letters), len(rejects))
    assert set(by_offset) == set(rejects)
    for offset, record in rejects.items():
        letter = by_offset[offset]
        assert letter.value == record.value, f"dead letter of offset {offset} ({record.kind}) changed"
        assert letter.key == (record.key if record.key != b"" else letter.key)
        assert dict(letter.headers)["janus-reason"].decode() == record.expect
    _report("hostile_serve", records=len(records), bytes=sum(r.size for r in records),
            largest=max(r.size for r in records), accepted=int(accepted), rejected=sum(rejected.values()),
            dead_letters=len(letters), duplicates=rejected["duplicate"], seconds=round(seconds, 1),
            rss_end_mb=round(rss[-1], 1) if rss else None, rss_peak_mb=round(max(rss), 1) if rss else None)


# ---------------------------------------------------------------------------------------------
# Duplicate decision ids and exactly-once checkpoints


def _ids(ids, model=MODEL):
    return [orjson.dumps({"decision_id": i, "timestamp": 1_736_121_600, "model_id": model, "traffic": "production"})
            for i in ids]


def test_retries_across_a_crash_and_replay_are_counted_once(tmp_path):
    """The window is checkpointed with the detector state and the offset, so a replay after a
    crash neither mistakes the replayed records for retries nor lets a retry through twice."""
    store = BaselineStore(tmp_path)
    stream = _ids(["a", "b", "a", "c", "d", "b", "e", "c", "f"])  # three producer retries
    uninterrupted = Pipeline(store)
    whole = uninterrupted.process(stream)
    assert [(r.position, r.reason) for r in whole.rejections] == [(2, "duplicate"), (5, "duplicate"), (7, "duplicate")]
    # The service checkpoints at offset 3, processes offsets 3-4, and is killed (-9) before the next checkpoint.
    first = Pipeline(store)
    before = first.process(stream[:3])
    meta, arrays = first.state()
    first.process(stream[3:5])
    # Its successor restores the checkpoint and replays from offset 3: "c" and "d" are not retries.
    restored = Pipeline.restore(store, JanusConfig(), orjson.loads(orjson.dumps(meta)), arrays)
    replay = restored.process(stream[3:], first_position=3)
    assert [(r.position, r.reason) for r in replay.rejections] == [(5, "duplicate"), (7, "duplicate")]
    assert sum(before.decisions.values()) + sum(replay.decisions.values()) == sum(whole.decisions.values()) == 6
    assert np.array_equal(restored.state()[1]["dedup"], uninterrupted.state()[1]["dedup"])


def test_duplicate_window_limits(tmp_path):
    """What the window does not catch, documented in RELIABILITY.md: a retry older than
    ``dedup_window`` distinct ids, and a retry landing on another partition (each partition has
    its own Pipeline, so producers must key retries like the original: by model id)."""
    from detector.config import LimitsConfig

    config = JanusConfig(limits=LimitsConfig(dedup_window=3))
    pipeline = Pipeline(BaselineStore(tmp_path), config)
    assert pipeline.process(_ids(["a", "b", "c", "a"])).rejections[0].reason == "duplicate"
    late = pipeline.process(_ids(["d", "e", "f", "a"]))  # "a" is 4 distinct ids back: forgotten
    assert late.rejections == [] and sum(late.decisions.values()) == 4
    other_partition = Pipeline(BaselineStore(tmp_path), config)
    assert other_partition.process(_ids(["d"])).rejections == []


# ---------------------------------------------------------------------------------------------
# Cardinality attack


@pytest.mark.timeout(3 * 3600)  # `make soak` sizes take long
def test_cardinality_attack_stays_under_the_caps(world, tmp_path):
    """CARDINALITY_N production records, 90% from a model id never seen before and 10% from the
    monitored model with a never-seen segment, tool name and action each, through Pipeline +
    JanusMetrics in a child process (tests/soak/cardinality.py): every structure stays at its
    cap, the metric series stay few, the folds are counted, and RSS stops growing."""
    from detector.pipeline import MAX_UNBASELINED_MODELS
    from detector.review.sampler import MAX_COUNTED_MODELS

    store, _ = world
    result = subprocess.run([sys.executable, str(TESTS / "soak" / "cardinality.py"), str(store.root),
                             str(CARDINALITY_N)], capture_output=True, timeout=3600, cwd=REPO)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = orjson.loads(result.stdout)
    config = JanusConfig()
    n, attackers = CARDINALITY_N, CARDINALITY_N - (CARDINALITY_N + 9) // 10
    assert out["monitors"] == 1
    assert out["unbaselined_remembered"] == min(attackers, MAX_UNBASELINED_MODELS)
    assert out["dedup_window"] == min(n, config.limits.dedup_window)
    assert out["review_counted_models"] <= MAX_COUNTED_MODELS
    values = out["distinct_label_values"]
    assert values["janus_decisions.model_id"] == config.metrics.max_models
    assert all(v <= config.metrics.max_models for k, v in values.items() if k.endswith(".model_id"))
    # segments are capped per model: at most max_models x max_segments values in all
    assert values["janus_decisions.segment"] <= config.metrics.max_models * config.metrics.max_segments
    assert out["series"] < 3000, out["series"]
    # every attacker id past the cap was folded (once per batch it appeared in: each appears in one)
    assert out["folded"]["model_id"] >= attackers - config.metrics.max_models
    assert out["folded"]["segment"] >= n // 10 - config.metrics.max_segments
    # the checkpoint of the whole pipeline does not grow with the attack
    assert out["checkpoint_bytes"] < 4 * 1024 * 1024
    rss = [mb for _, mb in out["rss_mb"]]
    half = rss[len(rss) // 2]
    if n >= 500_000:  # past every window (dedup 100,000 ids, text cache 50,000): flat from the middle on
        # (±4 MB of noise; the per-model-id caches this caught grew ~27 MB over the second half)
        assert rss[-1] - half < 15, out["rss_mb"]
    _report("cardinality", records=n, distinct_model_ids=attackers, seconds=out["seconds"], rss_mb=out["rss_mb"],
            peak_rss_mb=out["peak_rss_mb"], series=out["series"], folded=out["folded"],
            unbaselined_remembered=out["unbaselined_remembered"], checkpoint_bytes=out["checkpoint_bytes"])


# ---------------------------------------------------------------------------------------------
# Crash recovery and broker outages


def _long_stream(n: int, seed: int) -> list[bytes]:
    """``n`` production records of the baselined model that drift half-way, with producer retries
    and a few invalid records sprinkled in (so replays cross the de-duplication window and the DLQ)."""
    logs = simulate("reasoning-unmonitored", seed=seed, n_evaluation=10, n_production=n, change_at=n // 2)
    values = [orjson.dumps(r) for r in logs.production]
    rng = random.Random(seed)
    for i in sorted(rng.sample(range(10, n), max(n // 500, 3))):
        values[i] = values[i - rng.randrange(1, 10)] if rng.random() < 0.7 else b'{"decision_id": 1}'
    return values


def _produce_all(bootstrap: str, topic: str, values: list[bytes], first: int = 0) -> None:
    """Send ``values`` to partition 0, which must take them at offsets ``first``, ``first + 1``, ..."""
    producer = _big_producer(bootstrap)
    futures = [producer.send(topic, key=MODEL.encode(), value=v, partition=0) for v in values]
    producer.flush()
    assert [f.get(timeout=60).offset for f in futures] == list(range(first, first + len(values)))
    producer.close()


def _assert_exact_outcome(serve: _Serve, bootstrap: str, values: list[bytes], reference, since: int = 0) -> dict:
    """The final checkpoint equals an uninterrupted backtest; the alert and dead-letter topics hold
    every reference alert / reject from offset ``since`` on (at least once: replays after a crash
    may repeat some)."""
    ref_alerts, ref_state = reference
    ref_alerts = [a for a in ref_alerts if a[ALERT_KEY.index("record_index")] >= since]
    offset, doc, arrays = CheckpointStore(serve.ckpt, group=serve.group).load(serve.topic, 0)
    assert offset == len(values)
    _assert_same_state((doc["pipeline"], arrays), ref_state)
    alerts = [_alert_key(orjson.loads(r.value)) for r in _read_all(bootstrap, f"{serve.topic}.alerts")]
    assert sorted(set(alerts), key=ref_alerts.index) == ref_alerts
    letters = _read_all(bootstrap, f"{serve.topic}.dlq")
    ref_rejects = [r for r in Pipeline(serve.store, JanusConfig(), arl=ARL).process(values).rejections
                   if r.position >= since]
    assert {int(dict(r.headers)["janus-source-offset"]) for r in letters} == {r.position for r in ref_rejects}
    return {"alerts": len(ref_alerts), "alerts_repeated": len(alerts) - len(set(alerts)),
            "rejects": len(ref_rejects), "dead_letters_repeated": len(letters) - len(ref_rejects)}


@pytest.mark.kafka
@pytest.mark.timeout(3 * 3600)  # `make soak` sizes take long
def test_kill_9_at_random_points_ends_exact(world, kafka_bootstrap, unique_topic, unique_name, tmp_path):
    """`janus serve` is killed with SIGKILL at CRASH_KILLS seeded random points of a CRASH_RECORDS
    stream and restarted each time: the final detector state is exactly the uninterrupted one,
    every alert and dead letter is there, nothing is counted twice."""
    store, _ = world
    values = _long_stream(CRASH_RECORDS, seed=CRASH_SEED)
    reference = _reference(store, values)
    assert reference[0], "the scenario should fire"
    topic = unique_topic("crash")
    create_topics(kafka_bootstrap, _Serve.topics(topic), 1)
    _produce_all(kafka_bootstrap, topic, values)
    rng = random.Random(CRASH_SEED)
    serve = _Serve(store, kafka_bootstrap, topic, unique_name("g"), tmp_path, max_poll_records=200,
                   every_records=1000)
    replayed, kills = 0, []
    try:
        while len(kills) < CRASH_KILLS:
            # The next point: uniform over twice the fair share of what is left, so the kills spread
            # over the whole stream and each lands after the restart's checkpoint.
            start = serve.offset()
            share = 2 * (len(values) - start) // (CRASH_KILLS - len(kills) + 1)
            point = min(start + rng.randrange(1, max(share, 2)), len(values) - 1)
            serve.start()
            serve.wait(lambda: (serve.processed() or 0) + start >= point, f"offset {point}", every=0.02)
            serve.kill9()
            at_kill = serve.offset()
            kills.append((point, at_kill))
            replayed += max(point - at_kill, 0)  # what the next run processes again
        serve.start()
        serve.wait(lambda: serve.offset() >= len(values), "the end of the stream")
        serve.terminate()
    finally:
        serve.ensure_dead()
    assert any(point > at_kill for point, at_kill in kills), "no kill landed between two checkpoints"
    figures = _assert_exact_outcome(serve, kafka_bootstrap, values, reference)
    assert not serve.errors()
    _report("kill_9", records=len(values), kills=len(kills), restarts=serve.starts, lost=0, double_counted=0,
            replayed_after_kills_at_least=replayed, **figures)


def _stop_broker_for(broker: EmbeddedBroker, how: str, seconds: float, topics: list[str], values: list[bytes],
                     serve: _Serve) -> tuple[EmbeddedBroker, int]:
    """``freeze``: SIGSTOP the broker's process group for ``seconds`` (a hung broker; data kept),
    then produce the rest of ``values``. ``restart``: kill it, and after ``seconds`` start a fresh
    one on the same port; Tansu keeps its data only in memory, so the topics are re-created and the
    producers send the whole stream again. Returns the broker now serving and the service's
    checkpoint when the broker came back."""
    half = len(values) // 2
    if how == "freeze":
        os.killpg(broker.pid, signal.SIGSTOP)
        time.sleep(seconds)
        resumed_from = serve.offset()
        os.killpg(broker.pid, signal.SIGCONT)
        _produce_all(broker.bootstrap_servers, topics[0], values[half:], first=half)
        return broker, resumed_from
    port = broker.port
    broker.stop()
    time.sleep(seconds)
    resumed_from = serve.offset()
    fresh = EmbeddedBroker(port=port).start()
    fresh.create_topics([topics[0]], 1)
    create_topics(fresh.bootstrap_servers, topics[1:], 1)
    _produce_all(fresh.bootstrap_servers, topics[0], values)
    return fresh, resumed_from


@pytest.mark.kafka
@pytest.mark.timeout(3 * 3600)  # `make soak` sizes take long
@pytest.mark.parametrize("how", ["freeze", "restart"])
def test_broker_outage_mid_stream_resumes_on_its_own(world, unique_name, tmp_path, how):
    """Half the stream is produced; once `janus serve` has checkpointed a quarter, the broker goes
    away for OUTAGE_S seconds and comes back (``freeze``: the same broker and data; ``restart``: a
    fresh in-memory broker on the same address, the stream produced again), and the second half
    arrives. Nobody touches the service: it resumes from its checkpoint and ends in exactly the
    state of an uninterrupted run, losing nothing it had checkpointed."""
    store, _ = world
    values = _long_stream(OUTAGE_RECORDS, seed=11)
    reference = _reference(store, values)
    topic = "outage"
    topics = [topic, *_Serve.topics(topic)]
    broker = EmbeddedBroker().start()
    try:
        broker.create_topics([topic], 1)
        create_topics(broker.bootstrap_servers, topics[1:], 1)
        _produce_all(broker.bootstrap_servers, topic, values[: len(values) // 2])
        serve = _Serve(store, broker.bootstrap_servers, topic, unique_name("g"), tmp_path, max_poll_records=100,
                       every_records=500)
        serve.start()
        try:
            serve.wait(lambda: serve.offset() >= len(values) // 4, "a quarter of the stream")
            before = serve.offset()
            broker, down = _stop_broker_for(broker, how, OUTAGE_S, topics, values, serve)
            assert serve.proc.poll() is None, f"janus serve died during the outage: {serve.log_tail()}"
            assert before <= down <= len(values) // 2, (before, down)
            serve.wait(lambda: serve.offset() >= len(values), "the end of the stream after the outage", timeout=600)
            serve.terminate()
        finally:
            serve.ensure_dead()
        # a fresh broker has only what was produced to it: outputs from the resumed checkpoint on
        since = down if how == "restart" else 0
        figures = _assert_exact_outcome(serve, broker.bootstrap_servers, values, reference, since)
    finally:
        broker.stop()
    _report(f"broker_outage_{how}", records=len(values), outage_s=OUTAGE_S, checkpoint_before=before,
            checkpoint_after_outage=down, lost=0, **figures)


# ---------------------------------------------------------------------------------------------
# Soak (small): the `make soak` script end to end


@pytest.mark.kafka
def test_soak_script_small(tmp_path):
    """tests/soak/soak_serve.py at SOAK_SMALL records (`make soak` runs it with 5,000,000): serve
    takes every record, exits 0 on SIGTERM, logs no error; the RSS curve and its plot are written."""
    from soak_serve import soak

    summary = soak(SOAK_SMALL, tmp_path / "soak", sample_seconds=0.5)
    assert summary["exit_status"] == 0 and summary["errors_logged"] == 0, summary
    rows = (tmp_path / "soak" / "rss.csv").read_text().splitlines()
    assert rows[0] == "seconds,records_checkpointed,rss_mb" and len(rows) == summary["samples"] + 1 > 2
    assert int(rows[-1].split(",")[1]) == SOAK_SMALL
    assert (tmp_path / "soak" / "rss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["rss_peak_mb"] < 2 * summary["rss_warm_mb"] + 200, summary
    _report("soak_small", **summary)


# ---------------------------------------------------------------------------------------------
# Baselines under the commands that use them (the store's own tests: tests/test_baseline_store.py)


def test_truncated_arrays_with_a_matching_manifest_stop_backtest_with_one_line(world, tmp_path):
    """Someone truncates arrays.npz *and* rewrites the manifest to match: the SHA-256 check passes,
    so the load itself must refuse it, naming the file (it used to escape as a BadZipFile traceback).
    Record model ids that try path traversal are just models without a baseline."""
    import hashlib

    store, pool = world
    root = tmp_path / "store"
    shutil.copytree(store.root, root)
    records = [dict(pool[0], decision_id="trav-1", model_id="../../../etc/passwd"),
               dict(pool[1], decision_id="trav-2", model_id="/" + str(tmp_path / "escape"))]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    argv = ["backtest", "--input", str(path), "--alerts-out", str(tmp_path / "alerts.jsonl"), "--store", str(root),
            "--arl", str(ARL), "--json"]
    result = subprocess.run([*JANUS, *argv], capture_output=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr.decode()
    assert orjson.loads(result.stdout)["accepted"] == 2
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in store.root.iterdir())
    assert not (tmp_path / "escape").exists()

    folder = root / model_dirname(MODEL) / BaselineStore(root).active_version(MODEL)
    arrays = folder / ARRAYS_FILE
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    manifest = (folder / MANIFEST_FILE).read_text()
    digest = hashlib.sha256(arrays.read_bytes()).hexdigest()
    (folder / MANIFEST_FILE).write_text(re.sub(rf"^[0-9a-f]+  {re.escape(ARRAYS_FILE)}$", f"{digest}  {ARRAYS_FILE}",
                                               manifest, flags=re.M))
    path.write_bytes(orjson.dumps(pool[0]) + b"\n")
    result = subprocess.run([*JANUS, *argv], capture_output=True, timeout=300, cwd=REPO)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.startswith("janus: error: ") and err.count("\n") == 1, err
    assert str(arrays) in err and "unreadable arrays" in err
