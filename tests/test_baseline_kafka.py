"""Baselines from a Kafka time range, and recalibration guidance (sample size, promotion distance).

The Kafka tests produce evaluation records with explicit message timestamps to a topic of the
session broker (``kafka_bootstrap``) and build for a sub-range. The embedded Tansu broker answers
``offsets_for_times`` with offset 0 whatever the time, so a fake consumer with Kafka's semantics
checks that the reader does start where ``offsets_for_times`` says.
"""

from __future__ import annotations

import io
import json
import math
from collections import namedtuple

import orjson
import pytest

from clirun import run_cli as _run
from detector.baseline import BaselineStore, build_baseline
from detector.cli.kafka_range import ProgressReporter, parse_time
from detector.errors import JanusError
from detector.monitor import Monitor
from detector.records import parse_values
from detector.report.advice import _bernoulli_kl, _drift, _tilt, needed_records, promotion_check, \
    sample_size_advice
from detector.simulate import simulate
from detector.stream.topic_range import iso, iter_topic_range, read_topic_range

MODEL = "triage-agent"


# ---- Kafka: a time range of a real topic ---------------------------------------------------------------

@pytest.fixture(scope="module")
def produced(kafka_bootstrap, tmp_path_factory):
    """Evaluation records 0..1199 stamped one second apart over two partitions, plus inside the range
    40 production records and one value that is not JSON."""
    from kafka import KafkaProducer

    from detector.stream.broker import create_topics
    from detector.stream.kafka_config import kafka_kwargs

    import uuid

    topic = f"janus-test-baseline-range-{uuid.uuid4().hex[:10]}"
    create_topics(kafka_bootstrap, [topic], 2)
    logs = simulate("no-change", 11, n_evaluation=1200, n_production=40, change_at=0)
    t0 = 1_736_121_600
    messages = []  # (timestamp ms, partition, value), produced in time order as a live topic would be
    for i, record in enumerate(logs.evaluation):
        record["timestamp"] = t0 + i
        messages.append(((t0 + i) * 1000, i % 2, orjson.dumps(record)))
    for i, record in enumerate(logs.production):  # production traffic inside the range: refused by the build
        record["timestamp"] = t0 + 500 + i
        messages.append(((t0 + 500 + i) * 1000 + 500, i % 2, orjson.dumps(record)))
    messages.append(((t0 + 600) * 1000 + 250, 0, b"{not json"))
    producer = KafkaProducer(**kafka_kwargs("producer", bootstrap_servers=kafka_bootstrap))
    for timestamp_ms, partition, value in sorted(messages):
        producer.send(topic, value, partition=partition, timestamp_ms=timestamp_ms)
    producer.flush()
    producer.close()
    return {"topic": topic, "t0": t0, "bootstrap": kafka_bootstrap, "evaluation": logs.evaluation,
            "store": tmp_path_factory.mktemp("kafka-build") / "store"}


@pytest.fixture(scope="module")
def report_store(produced, tmp_path_factory):
    """A store whose ACTIVE baseline was built from the evaluation records of the topic."""
    store = BaselineStore(tmp_path_factory.mktemp("kafka-report") / "store")
    decisions = parse_values([orjson.dumps(r) for r in produced["evaluation"]]).decisions
    store.save(build_baseline(decisions), actor="t", reason="for the report", activate=True)
    return store.root


@pytest.mark.kafka
def test_build_from_a_kafka_time_range(produced):
    topic, t0, store = produced["topic"], produced["t0"], produced["store"]
    since, until = iso(t0 + 200), iso(t0 + 1000)  # evaluation records 200..999
    rc, out, err = _run(["baseline", "build", "--from-kafka", "--topic", topic, "--since", since, "--until", until,
                         "--bootstrap-servers", produced["bootstrap"], "--store", str(store),
                         "--reason", "eval week 1", "--actor", "ana", "--json"])
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["built"] == [{"model_id": MODEL, "version": "1", "records": 800, "active": False}]
    assert summary["skipped_production"] == 40 and summary["rejected"] == {"not_json": 1}
    kafka = summary["kafka"]
    assert (kafka["topic"], kafka["since"], kafka["until"]) == (topic, since, until)
    assert kafka["messages"] == 800 + 40 + 1
    assert sorted(p["partition"] for p in kafka["partitions"]) == [0, 1]
    assert all(p["stopped_by"] == "until" for p in kafka["partitions"])
    assert sum(p["messages"] for p in kafka["partitions"]) == kafka["messages"]
    # The audit entry says what was built from where, as for a file.
    entry = BaselineStore(store).audit(MODEL)[-1]
    assert (entry["action"], entry["version"], entry["actor"], entry["reason"]) == ("build", "1", "ana", "eval week 1")
    assert entry["records"] == 800 and entry["traffic"] == "evaluation"
    assert entry["source"].startswith(f"kafka {produced['bootstrap']} topic {topic} {since}..{until}")
    baseline = BaselineStore(store).load(MODEL, "1")
    assert baseline.time_range == (t0 + 200, t0 + 999)
    # Without --json on a pipe (not a terminal): plain progress lines, then the summary.
    rc, out, err = _run(["baseline", "build", "--from-kafka", "--topic", topic, "--since", str(t0 + 1000),
                         "--bootstrap-servers", produced["bootstrap"], "--store", str(store), "--reason", "tail"])
    assert rc == 0, err
    assert err.startswith(f"janus: reading {topic} {iso(t0 + 1000)}..") and "records read" in err
    lines = out.splitlines()
    assert lines[0].startswith(f"read 200 records of topic {topic} ")
    assert lines[1] == f"built {MODEL}@2 from 200 evaluation records"


@pytest.mark.kafka
def test_kafka_range_errors(produced):
    store = str(produced["store"])
    base = ["baseline", "build", "--from-kafka", "--bootstrap-servers", produced["bootstrap"], "--store", store,
            "--reason", "r"]
    cases = [
        (["--topic", produced["topic"], "--since", "2025-01-06T00:10:00Z", "--until", "2025-01-06T00:00:00Z"],
         "must be after --since"),
        (["--topic", produced["topic"]], "--from-kafka needs --since"),
        (["--topic", produced["topic"], "--since", "yesterday"], "expected RFC 3339"),
        (["--topic", produced["topic"], "--since", "2025-01-06T00:00:00"], "has no UTC offset"),
        (["--topic", produced["topic"], "--since", iso(produced["t0"] + 5000)], "no evaluation records"),
        (["--topic", produced["topic"], "--since", "1d", "--allow-production", "--reason", " "], "needs a --reason"),
    ]
    for extra, fragment in cases:
        rc, out, err = _run([*base, *extra])
        # Progress lines may come first (stderr is not a terminal); the error is one line.
        last = err.splitlines()[-1]
        assert rc == 2 and last.startswith("janus: error: ") and fragment in last, (extra, err)
    rc, out, err = _run(["baseline", "build", "--input", "x.jsonl", "--since", "1h", "--store", store, "--reason", "r"])
    assert rc == 2 and "only apply with --from-kafka" in err


@pytest.mark.kafka
def test_missing_topic_is_an_error(kafka_bootstrap):
    with pytest.raises(JanusError, match="does not exist"):
        read_topic_range("janus-test-no-such-topic-x", 0.0, 10.0, kafka_settings={"bootstrap_servers": kafka_bootstrap},
                         idle_timeout=2.0)


@pytest.mark.kafka
def test_report_from_kafka(produced, report_store, tmp_path):
    """`janus report --from-kafka`: the range's records replayed against the model's ACTIVE baseline."""
    out = tmp_path / "kafka-report.html"
    rc, stdout, err = _run(["report", "--store", str(report_store), "--model-id", MODEL, "--from-kafka", "--topic",
                            produced["topic"], "--since", iso(produced["t0"]), "--bootstrap-servers",
                            produced["bootstrap"], "--out", str(out), "--json"])
    assert rc == 0, err
    summary = json.loads(stdout)
    assert summary["production_records"] == 40 and summary["rejected"] == {"not_json": 1}
    page = out.read_text()
    assert f"topic {produced['topic']}" in page and 'id="drift"' in page


# ---- the offsets_for_times path, with Kafka's semantics ------------------------------------------------

Record = namedtuple("Record", "offset timestamp value")
Found = namedtuple("Found", "offset timestamp leader_epoch")


class FakeConsumer:
    """kafka-python's consumer methods used by iter_topic_range, over in-memory partitions."""

    def __init__(self, partitions: dict[int, list[int]]):  # partition → record timestamps (ms), by offset
        self.data = {p: [Record(o, ts, f"{p}:{o}".encode()) for o, ts in enumerate(tss)] for p, tss in partitions.items()}
        self.positions, self.paused, self.fetched, self.seeks = {}, set(), set(), {}

    def partitions_for_topic(self, topic):
        return set(self.data)

    def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps):
        return {tp: len(self.data[tp.partition]) for tp in tps}

    def offsets_for_times(self, query):
        out = {}
        for tp, ts in query.items():
            hit = next((r for r in self.data[tp.partition] if r.timestamp >= ts), None)
            out[tp] = None if hit is None else Found(hit.offset, hit.timestamp, 0)
        return out

    def assign(self, tps):
        self.assigned = list(tps)

    def seek(self, tp, offset):
        self.positions[tp] = offset
        self.seeks[tp.partition] = offset

    def position(self, tp):
        return self.positions[tp]

    def highwater(self, tp):
        return len(self.data[tp.partition]) if tp in self.fetched else None

    def pause(self, tp):
        self.paused.add(tp)

    def poll(self, timeout_ms=0, max_records=None):
        out = {}
        for tp in self.assigned:
            if tp in self.paused:
                continue
            self.fetched.add(tp)
            start = self.positions[tp]
            batch = self.data[tp.partition][start: start + 3]
            if batch:
                out[tp] = batch
                self.positions[tp] = start + len(batch)
        return out

    def close(self):
        pass


def test_reading_starts_at_offsets_for_times_and_stops_at_until():
    # Partition 0: timestamps 0..9 s; partition 1 out of order around the start; partition 2 all before.
    consumer = FakeConsumer({0: [i * 1000 for i in range(10)], 1: [1000, 5000, 2000, 6000, 9000, 3000],
                             2: [0, 500]})
    stats = []
    reads = []
    batches = list(iter_topic_range("t", 4.0, 8.0, kafka_settings={}, consumer=consumer, stats=stats,
                                    progress=lambda n, total: reads.append((n, total))))
    assert consumer.seeks == {0: 4, 1: 1}  # where offsets_for_times pointed; partition 2 has nothing
    got = {(b.partition, o) for b in batches for o in b.offsets}
    assert got == {(0, 4), (0, 5), (0, 6), (0, 7), (1, 1), (1, 3)}  # offset 2 of p1 is stamped before --since
    by_partition = {s.partition: s for s in stats}
    assert by_partition[0].stopped_by == "until" and by_partition[0].messages == 4
    assert by_partition[1].stopped_by == "until" and by_partition[1].skipped_before == 1
    assert by_partition[2].stopped_by == "empty" and by_partition[2].messages == 0
    assert reads and reads[-1][0] >= 6


def test_an_early_answer_only_costs_reading_more():
    """A broker answering offset 0 for every time (as Tansu does) gives the same records."""

    class EarlyAnswer(FakeConsumer):
        def offsets_for_times(self, query):
            return {tp: Found(0, 0, 0) for tp in query}

        def end_offsets(self, tps):  # and a too-small end, fixed by the fetch's high watermark
            return {tp: 1 for tp in tps}

    stamps = {0: [i * 1000 for i in range(10)], 1: [1000, 5000, 2000, 6000, 9000, 3000]}
    exact = {(b.partition, tuple(b.offsets)) for b in iter_topic_range("t", 4.0, 8.0, kafka_settings={},
                                                                     consumer=FakeConsumer(stamps))}
    early = list(iter_topic_range("t", 4.0, 8.0, kafka_settings={}, consumer=EarlyAnswer(stamps)))
    flat = lambda batches: sorted((p, o) for p, offs in batches for o in offs)  # noqa: E731
    assert flat((b.partition, b.offsets) for b in early) == flat(exact)
    # Reading to the end when no record reaches --until.
    stats = []
    tail = list(iter_topic_range("t", 4.0, 100.0, kafka_settings={}, consumer=EarlyAnswer(stamps), stats=stats))
    assert sum(len(b.offsets) for b in tail) == 6 + 3 and all(s.stopped_by == "end" for s in stats)


def test_parse_time_forms():
    assert parse_time("2025-01-06T00:00:00Z") == 1736121600.0
    assert parse_time("2025-01-06T01:00:00+01:00") == 1736121600.0
    assert parse_time("1736121600") == 1736121600.0
    assert parse_time("2h", now=10_000.0) == parse_time("-2h", now=10_000.0) == 2800.0
    assert parse_time("1w", now=1e6) == 1e6 - 7 * 86400
    for bad in ("soon", "2025-01-06", "-5", "1e12"):
        with pytest.raises(JanusError):
            parse_time(bad)


def test_progress_is_plain_lines_off_a_terminal_and_a_bar_on_one():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    plain = io.StringIO()
    with ProgressReporter("reading t", stream=plain, every=0.0) as progress:
        progress(10, None)
        progress(20, 40)
    assert plain.getvalue().splitlines() == ["janus: reading t: 10 records read", "janus: reading t: 20 of ~40 records read",
                                             "janus: reading t: 20 of ~40 records read"]
    bar = Tty()
    with ProgressReporter("reading t", stream=bar) as progress:
        progress(20, 40)
    assert "reading t" in bar.getvalue() and "20/40" in bar.getvalue() and "\r" in bar.getvalue()


# ---- recalibration: sample size and promotion distance --------------------------------------------------

def test_sample_size_arithmetic():
    for p in (0.02, 0.1, 0.3):
        kl = float(_bernoulli_kl(_tilt(p, 2.0), p))
        assert float(_drift(p, 2.0, [1e10], 0.99)[0]) == pytest.approx(kl, rel=1e-3)  # exact baseline in the limit
        n = needed_records(p, 2.0, 0.99, 1.5)
        assert float(_drift(p, 2.0, [n], 0.99)[0]) >= kl / 1.5 > float(_drift(p, 2.0, [0.95 * n], 0.99)[0])
    # Rarer codes need more evaluation records.
    assert needed_records(0.02, 2.0, 0.99, 1.5) > needed_records(0.1, 2.0, 0.99, 1.5) > needed_records(0.3, 2.0, 0.99, 1.5)


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    """Evaluation logs of 800 records: as simulated, and with refusals tripled (a large change)."""
    root = tmp_path_factory.mktemp("recal")
    same = simulate("no-change", 21, n_evaluation=800, n_production=0, change_at=0).evaluation
    other = simulate("no-change", 22, n_evaluation=800, n_production=0, change_at=0).evaluation
    for i, r in enumerate(other):
        if i % 3 == 0:
            r["output"]["refused"] = True
    paths = {}
    for name, records in (("same", same), ("changed", other)):
        paths[name] = root / f"{name}.jsonl"
        paths[name].write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return root, paths


def test_small_sample_warning_and_show_advice(two_stores):
    root, paths = two_stores
    store = str(root / "store-warn")
    rc, out, err = _run(["baseline", "build", "--input", str(paths["same"]), "--store", store, "--reason", "small",
                         "--activate"])
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"built {MODEL}@1 from 800 evaluation records (now ACTIVE)"
    assert lines[1].startswith(f"warning: {MODEL}@1 was built from 800 evaluation records: for ")
    assert "evaluation records would fix that" in lines[1] and "ARL 1,000,000" in lines[1]
    assert any("production records to detect with this baseline" in line for line in lines[2:])
    assert "log(ARL*F)" in lines[-1]

    rc, out, err = _run(["baseline", "show", MODEL, "--store", store, "--json", "--arl", "1e4"])
    assert rc == 0, err
    info = json.loads(out)["sample_size"]
    assert info["arl"] == 1e4 and info["effect"] == 2.0
    refused = next(c for c in info["codes"] if c["feature"] == "refused")
    baseline = BaselineStore(store).load(MODEL, "1")
    (advice,) = [a for a in sample_size_advice(baseline, arl=1e4) if a.feature == "refused"]
    monitor = Monitor(baseline, arl=1e4)  # the advice prices the family and the budget the Monitor watches
    column = monitor.features.index(baseline.featurizer.feature_index("refused"))
    assert (advice.n_features, advice.family) == (len(monitor.features), len(monitor.components[column]))
    kl = float(_bernoulli_kl(_tilt(advice.rate, 2.0), advice.rate))
    expected = (math.log(1e4) + math.log(advice.n_features) + math.log(advice.family)) / kl
    assert refused["exact_delay"] == pytest.approx(expected, rel=1e-3)
    assert refused["delay"] > refused["exact_delay"] and refused["sufficient"] == (800 >= refused["needed"])
    rc, out, _ = _run(["baseline", "show", MODEL, "--store", store])
    assert "sample size at ARL 1,000,000" in out


def test_promote_of_a_strongly_different_baseline_needs_confirmation(two_stores):
    root, paths = two_stores
    store = str(root / "store-promote")
    for name, activate in (("same", ["--activate"]), ("changed", [])):
        rc, _, err = _run(["baseline", "build", "--input", str(paths[name]), "--store", store, "--reason", name,
                           *activate])
        assert rc == 0, err
    s = BaselineStore(store)
    distances, skipped = promotion_check(s.load(MODEL, "1"), s.load(MODEL, "2"))
    assert distances[0].feature == "refused" and distances[0].js_distance > 0.1
    assert {"output_cluster", "reasoning_cluster", "input_cluster"} <= set(skipped)

    # `diff` flags what it cannot compare (codes refitted per build) instead of a distance by label.
    rc, out, err = _run(["baseline", "diff", f"{MODEL}@1", f"{MODEL}@2", "--store", store, "--json"])
    diffs = {d["feature"]: d for d in json.loads(out)}
    assert not any(diffs[name]["comparable"] for name in skipped) and diffs["refused"]["comparable"]
    rc, out, err = _run(["baseline", "diff", f"{MODEL}@1", f"{MODEL}@2", "--store", store])
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert all(rows[name] == "refit" for name in skipped)
    assert float(rows["refused"]) == pytest.approx(distances[0].js_distance, abs=5e-4)

    rc, out, err = _run(["baseline", "promote", MODEL, "2", "--store", store, "--reason", "new eval"])
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "differs strongly from ACTIVE 1" in err and "refused" in err and "--accept-large-change" in err
    assert s.active_version(MODEL) == "1"

    rc, out, err = _run(["baseline", "promote", MODEL, "2", "--store", store, "--reason", "   ", "--accept-large-change"])
    assert rc == 2 and "needs a --reason" in err and s.active_version(MODEL) == "1"

    rc, out, err = _run(["baseline", "promote", MODEL, "2", "--store", store, "--reason", "refusal policy changed",
                         "--accept-large-change", "--actor", "lee"])
    assert rc == 0 and out == f"{MODEL}: ACTIVE 1 → 2\n"
    assert err.startswith(f"warning: {MODEL}@2: large change accepted")
    entry = s.audit(MODEL)[-1]
    assert (entry["action"], entry["version"], entry["actor"], entry["previous"]) == ("promote", "2", "lee", "1")
    assert entry["reason"].startswith("refusal policy changed [large change accepted: JS distance > 0.1 from ACTIVE 1")
    assert "refused" in entry["reason"]
    # A looser threshold lets the same change through without confirmation; rollback is unaffected.
    rc, out, err = _run(["baseline", "rollback", MODEL, "--store", store, "--reason", "back"])
    assert rc == 0 and s.active_version(MODEL) == "1"
    rc, out, err = _run(["baseline", "promote", MODEL, "2", "--store", store, "--reason", "ok",
                         "--max-js-distance", "0.9"])
    assert (rc, err) == (0, "") and s.active_version(MODEL) == "2"
    assert s.audit(MODEL)[-1]["reason"] == "ok"
