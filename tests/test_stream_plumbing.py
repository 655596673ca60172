"""Kafka plumbing of the stream service, against the real embedded broker (Tansu).

Kafka tests use the session broker from ``kafka_bootstrap`` (or ``$JANUS_TEST_BOOTSTRAP``);
the broker-lifecycle tests start their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from detector.errors import JanusError
from detector.stream.broker import BrokerBinaryMissing, EmbeddedBroker, metadata_ready
from detector.stream.checkpoint import CheckpointCorrupt, CheckpointStore
from detector.stream.dlq import DeadLetterPublisher
from detector.stream.kafka_config import kafka_kwargs

REPO = Path(__file__).resolve().parents[1]


def _consumer(bootstrap, group, **kw):
    from kafka import KafkaConsumer

    return KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=bootstrap, group_id=group, **kw))


def _producer(bootstrap):
    from kafka import KafkaProducer

    return KafkaProducer(**kafka_kwargs("producer", bootstrap_servers=bootstrap))


def _drain(consumer, want, timeout=60.0):
    """Poll until ``want`` records arrived (or timeout); returns the records in arrival order."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    return got


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


# ---------------------------------------------------------------------------------------------
# kafka_kwargs (no broker needed)


def test_consumer_kwargs_defaults_and_pass_through(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    kw = kafka_kwargs(
        "consumer",
        bootstrap_servers="a:9092, b:9093",
        group_id="g",
        client_id="janus-test",
        security_protocol="sasl_ssl",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="u",
        sasl_plain_password="p",
        ssl_cafile=str(ca),
    )
    assert kw["bootstrap_servers"] == ["a:9092", "b:9093"]
    assert kw["enable_auto_commit"] is False
    assert kw["auto_offset_reset"] == "earliest"
    assert kw["check_crcs"] is True
    assert kw["max_poll_interval_ms"] == 5000
    assert kw["heartbeat_interval_ms"] < kw["session_timeout_ms"]
    assert (kw["security_protocol"], kw["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"], kw["ssl_cafile"]) == ("u", "p", str(ca))
    assert kw["client_id"] == "janus-test" and kw["group_id"] == "g"

    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    for role, cls in (("consumer", KafkaConsumer), ("producer", KafkaProducer), ("admin", KafkaAdminClient)):
        keys = set(kafka_kwargs(role, bootstrap_servers="h:1", max_poll_interval_ms=20000))
        assert keys <= set(cls.DEFAULT_CONFIG), (role, keys - set(cls.DEFAULT_CONFIG))
    assert kafka_kwargs("consumer", bootstrap_servers="h:1", max_poll_interval_ms=20000)["session_timeout_ms"] == 20000


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(bootstrap_servers=""), "bootstrap"),
        (dict(bootstrap_servers="h:x"), "host:port"),
        (dict(bootstrap_servers="h:1", security_protocol="TLS"), "security_protocol"),
        (dict(bootstrap_servers="h:1", security_protocol="SASL_PLAINTEXT"), "sasl_mechanism"),
        (dict(bootstrap_servers="h:1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN"), "username"),
        (dict(bootstrap_servers="h:1", sasl_mechanism="PLAIN"), "SASL options"),
        (dict(bootstrap_servers="h:1", security_protocol="SSL", ssl_cafile="/no/such/ca.pem"), "ssl_cafile"),
        (dict(bootstrap_servers="h:1", max_poll_interval_ms=0), "max_poll_interval_ms"),
        (dict(bootstrap_servers="h:1", session_timeout_ms=1000, heartbeat_interval_ms=2000), "heartbeat"),
    ],
)
def test_kafka_kwargs_rejects_mistakes_clearly(kwargs, fragment):
    with pytest.raises(JanusError, match=fragment):
        kafka_kwargs("consumer", **kwargs)


# ---------------------------------------------------------------------------------------------
# Checkpoints (no broker needed)


def _arrays(offset):
    return {
        "counts": np.arange(12, dtype=np.int64).reshape(3, 4) + offset,
        "stats": np.array([0.5, np.inf, -1e-300]),
        "codes": np.array([1, 2, 3], dtype=np.uint8),
        "names": np.array(["refused", "action"]),
        "empty": np.zeros((0, 5)),
    }


def test_checkpoint_round_trip(tmp_path):
    store = CheckpointStore(tmp_path, group="grp")
    assert store.load("decisions", 0) is None
    meta = {"models": {"m1": {"version": "v3", "threshold": float("inf")}}, "n": 5, "nan": float("nan")}
    path = store.save("decisions", 0, 1234, meta, _arrays(1))
    assert path == tmp_path / "grp" / "decisions" / "0.ckpt"
    offset, meta2, arrays = store.load("decisions", 0)
    assert offset == 1234
    assert meta2["models"] == meta["models"] and meta2["n"] == 5 and np.isnan(meta2["nan"])
    for name, arr in _arrays(1).items():
        assert arrays[name].dtype == arr.dtype and np.array_equal(arrays[name], arr), name
    # Overwrite; partitions and groups are separate; nothing temporary is left behind.
    store.save("decisions", 0, 2000, {"n": 6}, {})
    store.save("decisions", 3, 7, {"n": 1}, {"a": np.ones(2)})
    assert store.load("decisions", 0)[:2] == (2000, {"n": 6})
    assert CheckpointStore(tmp_path, group="other").load("decisions", 0) is None
    assert store.partitions() == [("decisions", 0), ("decisions", 3)]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    # Odd group/topic names are encoded, not interpreted as paths.
    odd = CheckpointStore(tmp_path, group="../escape")
    odd.save("t", 1, 1, {}, {})
    assert odd.directory.parent == tmp_path and odd.load("t", 1)[0] == 1


def test_checkpoint_refuses_pickle_and_bad_input(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(JanusError, match="object"):
        store.save("t", 0, 1, {}, {"bad": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(JanusError, match="JSON"):
        store.save("t", 0, 1, {"x": object()}, {})
    with pytest.raises(JanusError, match="offset"):
        store.save("t", 0, -1, {}, {})
    assert store.load("t", 0) is None  # failed saves wrote nothing


def test_checkpoint_failed_write_keeps_previous(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save("t", 0, 10, {"v": 1}, {"a": np.full(4, 10)})

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        store.save("t", 0, 20, {"v": 2}, {"a": np.full(4, 20)})
    monkeypatch.undo()
    offset, meta, arrays = store.load("t", 0)
    assert (offset, meta) == (10, {"v": 1}) and (arrays["a"] == 10).all()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_checkpoint_survives_kill_9_mid_write(tmp_path):
    """A writer killed at arbitrary moments leaves the old or the new checkpoint, never a mix."""
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from detector.stream.checkpoint import CheckpointStore
        store = CheckpointStore({str(tmp_path)!r}, group="g")
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            store.save("t", 0, i, {{"i": i, "pad": "x" * (i % 5000)}}, {{"a": np.full(20000 + i % 7, i)}})
        """
    )
    rng = np.random.default_rng(7)
    offsets = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        # Not synchronisation: a random moment to kill the writer at, anywhere inside a save.
        time.sleep(float(rng.uniform(0.2, 0.6)))
        proc.kill()
        proc.wait()
        offset, meta, arrays = CheckpointStore(tmp_path, group="g").load("t", 0)
        assert meta["i"] == offset and (arrays["a"] == offset).all() and arrays["a"].size == 20000 + offset % 7
        offsets.append(offset)
    assert offsets[-1] > 0


@pytest.mark.parametrize("damage", ["truncate", "truncate-tail", "flip-byte", "empty", "garbage"])
def test_checkpoint_corruption_is_reported_not_used(tmp_path, damage):
    store = CheckpointStore(tmp_path)
    path = store.save("t", 2, 99, {"v": 1}, {"a": np.arange(1000)})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "truncate-tail":
        path.write_bytes(data[:-1])
    elif damage == "flip-byte":
        i = len(data) // 3
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1 :])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"PK\x03\x04 not a checkpoint at all" * 10)
    with pytest.raises(CheckpointCorrupt) as info:
        store.load("t", 2)
    assert info.value.path == path and str(path) in str(info.value)
    moved = store.quarantine("t", 2)
    assert moved is not None and moved.exists() and not path.exists()
    assert store.load("t", 2) is None


def test_checkpoint_from_another_partition_is_rejected(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save("t", 0, 5, {}, {})
    store.path("t", 1).write_bytes(store.path("t", 0).read_bytes())
    with pytest.raises(CheckpointCorrupt, match="belongs to"):
        store.load("t", 1)


# ---------------------------------------------------------------------------------------------
# Against the broker


@pytest.mark.kafka
def test_round_trip_in_a_consumer_group(kafka_bootstrap, unique_topic, unique_name):
    from kafka import TopicPartition

    topic = unique_topic("roundtrip", partitions=2)
    group = unique_name("g")
    producer = _producer(kafka_bootstrap)
    sent = [orjson.dumps({"decision_id": f"d{i}", "model_id": f"m{i % 3}", "n": i}) for i in range(300)]
    for i, value in enumerate(sent):
        producer.send(topic, value=value, key=f"m{i % 3}".encode())
    producer.flush()
    producer.close()

    consumer = _consumer(kafka_bootstrap, group)
    try:
        consumer.subscribe([topic])
        t0 = time.monotonic()
        got = _drain(consumer, len(sent))
        joined_after = time.monotonic() - t0
        assert len(got) == len(sent), f"consumed {len(got)} of {len(sent)} (group join did not complete?)"
        assert sorted(r.value for r in got) == sorted(sent)
        assert {tp.partition for tp in consumer.assignment()} == {0, 1}
        # Per-key order is kept (producers key by model_id).
        for model in ("m0", "m1", "m2"):
            ns = [orjson.loads(r.value)["n"] for r in got if r.key == model.encode()]
            assert ns == sorted(ns)
        # Manual commit (auto-commit is off) reaches the broker.
        ends = {}
        for r in got:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        consumer.commit()
        for partition, end in ends.items():
            assert consumer.committed(TopicPartition(topic, partition)) == end
        assert joined_after < 30
    finally:
        consumer.close()


@pytest.mark.kafka
def test_dead_letters_keep_bytes_and_carry_headers(kafka_bootstrap, unique_topic, unique_name):
    from kafka import KafkaConsumer, TopicPartition

    source = unique_topic("src")
    from detector.stream.broker import create_topics

    create_topics(kafka_bootstrap, [f"{source}.dlq"], 1)
    producer = _producer(kafka_bootstrap)
    raw_values = [b"\xff\xfe not json \x00", b'{"decision_id": 1}', b"", b"x" * 5000]
    producer.send(source, value=raw_values[0], key=b"k0", headers=[("origin", b"gw-1")])
    producer.flush()

    # A dead letter from a consumed record (key, timestamp, headers kept) ...
    reader = KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=kafka_bootstrap, group_id=None))
    reader.assign([TopicPartition(source, 0)])
    (record,) = _drain(reader, 1)
    reader.close()
    dlq = DeadLetterPublisher(producer)
    assert dlq.topic_for(source) == f"{source}.dlq"
    dlq.send_record(record, "not_json", "value is not valid JSON: unexpected byte 0xff")
    # ... and from raw values at given offsets, with an over-long message.
    for i, value in enumerate(raw_values[1:], start=1):
        dlq.send(source, 3, 1000 + i, value, "bad_type", "é" * 2000 if i == 3 else f"problem {i}")
    dlq.send(source, 0, 7, None, "empty", "null value")  # keyless tombstone
    dlq.flush()
    producer.close()
    assert dlq.sent == 5

    out = KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=kafka_bootstrap, group_id=None))
    out.assign([TopicPartition(f"{source}.dlq", 0)])
    letters = _drain(out, 5)
    out.close()
    tombstone = letters.pop()
    assert tombstone.value == b"" and dict(tombstone.headers)["janus-null-value"] == b"1"
    assert dict(tombstone.headers)["janus-source-offset"] == b"7"
    assert [r.value for r in letters] == raw_values
    first = dict(letters[0].headers)
    assert first["janus-reason"] == b"not_json"
    assert first["janus-message"].startswith(b"value is not valid JSON")
    assert first["janus-source-topic"] == source.encode()
    assert first["janus-source-partition"] == b"0"
    assert first["janus-source-offset"] == str(record.offset).encode()
    assert first["origin"] == b"gw-1"
    assert letters[0].key == b"k0" and letters[0].timestamp == record.timestamp
    for i, letter in enumerate(letters[1:], start=1):
        h = dict(letter.headers)
        assert h["janus-reason"] == b"bad_type"
        assert h["janus-source-partition"] == b"3"
        assert h["janus-source-offset"] == str(1000 + i).encode()
        assert len(h["janus-message"]) <= 1000
        h["janus-message"].decode("utf-8")  # truncation keeps valid UTF-8


@pytest.mark.kafka
def test_two_consumers_in_one_group_split_four_partitions(kafka_bootstrap, unique_topic, unique_name):
    topic = unique_topic("split", partitions=4)
    group = unique_name("g")
    stop = threading.Event()
    produce_now = threading.Event()
    lock = threading.Lock()
    assignments: dict[str, set[int]] = {}
    received: dict[str, list] = {"A": [], "B": []}
    errors: list[BaseException] = []

    def run(name):
        consumer = _consumer(kafka_bootstrap, group, client_id=f"janus-{name}")
        try:
            consumer.subscribe([topic])
            while not stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                with lock:
                    assignments[name] = {tp.partition for tp in consumer.assignment()}
                    if produce_now.is_set():
                        for records in batch.values():
                            received[name].extend((r.partition, r.offset, r.value) for r in records)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            consumer.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in ("A", "B")]
    for t in threads:
        t.start()
    try:
        # Wait for a stable split: both own partitions, disjoint, covering all four.
        deadline = time.monotonic() + 60
        stable_since = None
        while time.monotonic() < deadline and not errors:
            with lock:
                a, b = set(assignments.get("A", ())), set(assignments.get("B", ()))
            if a and b and not (a & b) and a | b == {0, 1, 2, 3}:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 2.0:
                    break
            else:
                stable_since = None
            time.sleep(0.1)
        assert not errors, errors
        assert stable_since is not None, f"no stable split within 60 s: {assignments}"
        produce_now.set()
        producer = _producer(kafka_bootstrap)
        values = {}
        for i in range(200):
            v = f"rec-{i}".encode()
            values[v] = i % 4
            producer.send(topic, value=v, partition=i % 4)
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(received["A"]) + len(received["B"]) >= len(values):
                    break
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    with lock:
        a, b = assignments["A"], assignments["B"]
        got = received["A"] + received["B"]
    assert sorted(v for _, _, v in got) == sorted(values), "each record exactly once"
    for name, owned in (("A", a), ("B", b)):
        assert {p for p, _, _ in received[name]} <= owned, f"{name} read a partition it does not own"
    for p, _, v in got:
        assert values[v] == p


@pytest.mark.kafka
def test_broker_process_is_gone_after_the_context(tmp_path):
    log = tmp_path / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        pid = broker.pid
        host, port = broker.bootstrap_servers.split(":")
        assert _alive(pid) and metadata_ready(host, int(port))
        assert os.getpgid(pid) == pid, "Tansu should lead its own process group"
    assert _wait_gone(pid), "Tansu still running after the context exited"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not metadata_ready(host, int(port), timeout=0.3)
    assert log.exists() and "listening on" in log.read_text()
    broker.stop()  # idempotent
    with pytest.raises(JanusError, match="not running"):
        broker.bootstrap_servers


@pytest.mark.kafka
def test_two_embedded_brokers_get_different_ports():
    with EmbeddedBroker() as one, EmbeddedBroker() as two:
        assert one.bootstrap_servers != two.bootstrap_servers
        pids = (one.pid, two.pid)
    assert all(_wait_gone(p) for p in pids)


@pytest.mark.kafka
@pytest.mark.parametrize("how", ["exit", "exception", "sigterm", "sigint", "sighup", "sigkill"])
def test_broker_killed_when_the_owner_process_ends(how):
    """atexit, signals and (Linux) parent-death: no Tansu outlives the Python that started it."""
    script = textwrap.dedent(
        f"""
        import faulthandler, signal, sys, threading, time
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks if it hangs
        sys.path.insert(0, {str(REPO)!r})
        from detector.stream.broker import EmbeddedBroker
        if {how!r} != "sigkill":
            # A second thread disables the parent-death signal, so this checks atexit and the
            # signal handler on their own.
            threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
        broker = EmbeddedBroker().start()      # deliberately not a context manager
        print(broker.pid, flush=True)
        if {how!r} == "exit":
            sys.exit(0)
        if {how!r} == "exception":
            raise RuntimeError("boom")
        time.sleep(60)
        """
    )
    # The child starts with SIGHUP and SIGINT at their default actions even when the suite runs
    # under nohup or as a background job (which ignore them, and an ignored signal is inherited).
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGHUP, signal.SIGINT)],
    )
    try:
        pid = int(proc.stdout.readline())
        if how not in ("exit", "exception"):  # those may already have cleaned up
            assert _alive(pid)
        sig = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "sighup": signal.SIGHUP, "sigkill": signal.SIGKILL}
        if how in sig:
            proc.send_signal(sig[how])
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Seen once in a full run, never alone: say where the owner was stuck.
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            pytest.fail(f"the owner of Tansu {pid} did not exit within 30 s of {how}; its threads:\n"
                        + proc.communicate(timeout=10)[1].decode(errors="replace")[-4000:])
        assert _wait_gone(pid), f"Tansu {pid} survived its owner ({how})"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_missing_broker_binary_is_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(BrokerBinaryMissing, match="not an executable"):
        EmbeddedBroker(binary=str(tmp_path / "no-such-tansu")).start()
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "missing"))
    with pytest.raises(BrokerBinaryMissing, match="calfkit|Tansu"):
        EmbeddedBroker().start()


# ---------------------------------------------------------------------------------------------
# The stream service (phase 2): StreamService around detector.pipeline.Pipeline

ARL = 1000.0
N_PRODUCTION = 4000
BAD = {10: b"not json at all", 20: b"", 3333: b'{"decision_id": 7}'}
ALERT_KEY = ("status", "kind", "model_id", "segment", "feature", "code", "direction", "decision_id", "record_index")


@pytest.fixture(scope="module")
def drift_data(tmp_path_factory):
    """A baseline store with the active baseline of one model, and production values that drift.

    ``reasoning-unmonitored``: from production record 500 on, 20% of reasoning traces say they
    are not monitored; at ARL 1000 that fires within ~60 records. A few values are invalid.
    """
    from detector.baseline.build import build_baselines
    from detector.baseline.store import BaselineStore
    from detector.records import parse_values
    from detector.simulate import simulate

    logs = simulate("reasoning-unmonitored", seed=3, n_evaluation=1500, n_production=N_PRODUCTION, change_at=500)
    store = BaselineStore(tmp_path_factory.mktemp("baselines"))
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    for baseline in build_baselines(evaluation).baselines.values():
        store.save(baseline, actor="test", reason="stream tests", activate=True)
    values = [orjson.dumps(r) for r in logs.production]
    for position, value in BAD.items():
        values[position] = value
    return store, values, logs.truth["model_id"]


def _reference(store, values, chunk=500):
    """What `janus backtest` would say: alerts (discrete fields) and final pipeline state."""
    from detector.config import JanusConfig
    from detector.pipeline import Pipeline

    pipeline = Pipeline(store, JanusConfig(), arl=ARL)
    alerts = []
    for i in range(0, len(values), chunk):
        alerts += [_alert_key(e.to_dict()) for e in pipeline.process(values[i : i + chunk], first_position=i).alerts]
    return alerts, pipeline.state()


def _alert_key(alert: dict) -> tuple:
    return tuple(alert[k] for k in ALERT_KEY)


def _assert_same_state(state, reference):
    (meta, arrays), (ref_meta, ref_arrays) = state, reference
    assert meta == ref_meta
    assert sorted(arrays) == sorted(ref_arrays)
    for name, ref in ref_arrays.items():
        if name.endswith(".quiet_time"):
            # Descriptive only (the "since" of an alert's sentence); the monitor takes it from an
            # upper bound computed per micro-batch, so it depends on where batches start.
            continue
        # Equal up to float rounding (batch boundaries differ); a lost or double-counted record
        # moves the counts and decayed windows by ~1, far beyond this tolerance.
        np.testing.assert_allclose(arrays[name], ref, rtol=1e-9, atol=1e-9, err_msg=name)


def _produce(bootstrap, topic, values, partition_of=lambda i: 0):
    producer = _producer(bootstrap)
    for i, value in enumerate(values):
        producer.send(topic, value=value, key=b"triage", partition=partition_of(i))
    producer.flush()
    producer.close()


def _service(store, bootstrap, topic, group, checkpoint_dir, **kw):
    import io

    from detector.config import JanusConfig
    from detector.stream.service import StreamService

    kw.setdefault("alert_stream", io.StringIO())
    kw.setdefault("checkpoint_every_records", 1000)
    return StreamService(
        store,
        JanusConfig(),
        topics=[topic],
        group_id=group,
        checkpoint_dir=checkpoint_dir,
        arl=ARL,
        alert_topic=f"{topic}.alerts",
        kafka_overrides=dict(bootstrap_servers=bootstrap, max_poll_interval_ms=5000, session_timeout_ms=6000,
                             max_poll_records=500),
        poll_timeout_ms=200,
        **kw,
    )


class _Runner:
    """Runs a StreamService on a thread; re-raises its exception on join."""

    def __init__(self, service):
        self.service = service
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.result = self.service.run(install_signal_handlers=False)
        except BaseException as exc:
            self.error = exc

    def wait_for(self, predicate, timeout=90.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; stats {self.service.stats.to_dict()}")

    def stop(self):
        self.service.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "service did not stop"
        if self.error is not None:
            raise self.error
        return self.result


def _read_to_the_end(service, partitions: int) -> bool:
    """The service owns ``partitions`` partitions and has processed each up to its high watermark:
    with everything produced beforehand, no record is left to arrive (a re-read or a skip shows in
    the counts checked afterwards)."""
    lags = service.lags()
    return len(lags) == partitions and not any(lags.values())


def _read_topic(bootstrap, topic, n, timeout=30.0):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=bootstrap, group_id=None))
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            time.sleep(0.05)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions or ())])
        return _drain(consumer, n, timeout=timeout)
    finally:
        consumer.close()


def _commit(bootstrap, group, topic, partition, offset):
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    consumer = KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=bootstrap, group_id=group))
    try:
        consumer.commit({TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


def _committed(bootstrap, group, topic, partition):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_kwargs("consumer", bootstrap_servers=bootstrap, group_id=group))
    try:
        return consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close()


@pytest.mark.kafka
def test_service_matches_backtest_and_routes_outputs(kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data):
    from detector.stream.broker import create_topics

    store, values, model_id = drift_data
    ref_alerts, ref_state = _reference(store, values)
    assert ref_alerts, "the scenario should fire"
    topic = unique_topic("svc")
    create_topics(kafka_bootstrap, [f"{topic}.dlq", f"{topic}.alerts"], 1)
    _produce(kafka_bootstrap, topic, values)
    group = unique_name("g")
    batches = []
    service = _service(store, kafka_bootstrap, topic, group, tmp_path / "ckpt",
                       on_batch=lambda t, p, result, seconds: batches.append((t, p, len(result.accepted))))
    runner = _Runner(service)
    runner.wait_for(lambda: service.stats.records >= len(values), what="all records")
    assert runner.stop() == 0

    stats = service.stats
    assert (stats.records, stats.rejected, stats.accepted) == (len(values), len(BAD), len(values) - len(BAD))
    assert sum(n for _, _, n in batches) == len(values) - len(BAD) and {(t, p) for t, p, _ in batches} == {(topic, 0)}
    # Alerts: the same as the backtest, on stdout-style JSON lines and on the alert topic.
    lines = [orjson.loads(line) for line in service.alert_stream.getvalue().splitlines()]
    assert [_alert_key(a) for a in lines] == ref_alerts
    on_topic = _read_topic(kafka_bootstrap, f"{topic}.alerts", len(ref_alerts))
    assert [_alert_key(orjson.loads(r.value)) for r in on_topic] == ref_alerts
    assert {r.key for r in on_topic} == {model_id.encode()}
    # Dead letters: unchanged bytes, reason and source offset in headers.
    letters = _read_topic(kafka_bootstrap, f"{topic}.dlq", len(BAD))
    assert [(int(dict(r.headers)["janus-source-offset"]), r.value) for r in letters] == sorted(BAD.items())
    assert all(dict(r.headers)["janus-source-topic"] == topic.encode() for r in letters)
    assert dict(letters[0].headers)["janus-reason"] == b"not_json"
    # The final checkpoint holds the state after the last record, and Kafka has the same offset.
    from detector.stream.checkpoint import CheckpointStore

    offset, doc, arrays = CheckpointStore(tmp_path / "ckpt", group=group).load(topic, 0)
    assert offset == len(values)
    _assert_same_state((doc["pipeline"], arrays), ref_state)
    assert _committed(kafka_bootstrap, group, topic, 0) == len(values)


@pytest.mark.kafka
def test_service_restart_resumes_from_its_checkpoint(kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data):
    store, values, _ = drift_data
    ref_alerts, ref_state = _reference(store, values)
    topic, group = unique_topic("restart"), unique_name("g")
    half = 1700
    _produce(kafka_bootstrap, topic, values[:half])
    first = _service(store, kafka_bootstrap, topic, group, tmp_path / "ckpt")
    runner = _Runner(first)
    runner.wait_for(lambda: first.stats.records >= half, what="first half")
    runner.stop()
    assert first.stats.records == half
    assert _committed(kafka_bootstrap, group, topic, 0) == half
    # Move the group's committed offset away: the checkpoint, not Kafka's offset, decides where to
    # resume (a committed offset ahead of the state would skip records; one behind would recount them).
    _commit(kafka_bootstrap, group, topic, 0, 3000)

    _produce(kafka_bootstrap, topic, values[half:])
    second = _service(store, kafka_bootstrap, topic, group, tmp_path / "ckpt")
    runner = _Runner(second)
    runner.wait_for(lambda: second.stats.records >= len(values) - half, what="second half")
    runner.wait_for(lambda: _read_to_the_end(second, 1), what="the end of the topic")
    runner.stop()
    assert second.stats.records == len(values) - half, "the restarted service re-read or skipped records"
    assert second.stats.skipped_behind_checkpoint == 0
    alerts = [
        _alert_key(orjson.loads(line))
        for svc in (first, second)
        for line in svc.alert_stream.getvalue().splitlines()
    ]
    assert alerts == ref_alerts
    from detector.stream.checkpoint import CheckpointStore

    offset, doc, arrays = CheckpointStore(tmp_path / "ckpt", group=group).load(topic, 0)
    assert offset == len(values)
    _assert_same_state((doc["pipeline"], arrays), ref_state)


SERVICE_SCRIPT = """
import logging, sys
sys.path.insert(0, {repo!r})
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.stream.service import StreamService
store_dir, checkpoint_dir, bootstrap, topic, group = sys.argv[1:6]
service = StreamService(
    BaselineStore(store_dir), JanusConfig(), topics=[topic], group_id=group, checkpoint_dir=checkpoint_dir,
    checkpoint_every_records=200, arl={arl}, alert_topic=topic + ".alerts", poll_timeout_ms=200,
    kafka_overrides=dict(bootstrap_servers=bootstrap, max_poll_interval_ms=5000, session_timeout_ms=6000,
                         max_poll_records=50),
)
sys.exit(service.run())
"""


def _spawn_service(store, bootstrap, topic, group, checkpoint_dir, log_path):
    script = SERVICE_SCRIPT.format(repo=str(REPO), arl=ARL)
    return subprocess.Popen(
        [sys.executable, "-c", script, str(store.root), str(checkpoint_dir), bootstrap, topic, group],
        stdout=subprocess.PIPE,
        stderr=open(log_path, "wb"),
    )


def _checkpoint_offset(checkpoint_dir, group, topic):
    from detector.stream.checkpoint import CheckpointStore

    loaded = CheckpointStore(checkpoint_dir, group=group).load(topic, 0)
    return loaded[0] if loaded else 0


@pytest.mark.kafka
def test_service_killed_mid_stream_loses_and_double_counts_nothing(
    kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data
):
    """kill -9 between checkpoints: the next owner replays from the checkpoint, so the detector
    state ends exactly as if nothing had happened (alerts are at-least-once: de-duplicated here)."""
    store, values, _ = drift_data
    ref_alerts, ref_state = _reference(store, values)
    topic, group = unique_topic("crash"), unique_name("g")
    _produce(kafka_bootstrap, topic, values)
    ckpt = tmp_path / "ckpt"
    proc = _spawn_service(store, kafka_bootstrap, topic, group, ckpt, tmp_path / "service.log")
    try:
        deadline = time.monotonic() + 90
        while _checkpoint_offset(ckpt, group, topic) < 1000 and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "service.log").read_text()
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        killed_alerts = [_alert_key(orjson.loads(line)) for line in proc.stdout.read().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()
    at_kill = _checkpoint_offset(ckpt, group, topic)
    assert 1000 <= at_kill < len(values), f"killed too late (checkpoint at {at_kill})"

    survivor = _service(store, kafka_bootstrap, topic, group, ckpt)
    runner = _Runner(survivor)
    runner.wait_for(lambda: survivor.stats.records >= len(values) - at_kill, timeout=120, what="the rest")
    runner.wait_for(lambda: _read_to_the_end(survivor, 1), what="the end of the topic")
    runner.stop()
    assert survivor.stats.records == len(values) - at_kill
    alerts = killed_alerts + [_alert_key(orjson.loads(x)) for x in survivor.alert_stream.getvalue().splitlines()]
    assert sorted(set(alerts), key=ref_alerts.index) == ref_alerts
    offset, doc, arrays = CheckpointStore(ckpt, group=group).load(topic, 0)
    assert offset == len(values)
    _assert_same_state((doc["pipeline"], arrays), ref_state)


@pytest.mark.kafka
def test_service_sigterm_checkpoints_commits_and_exits_0(kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data):
    store, values, _ = drift_data
    topic, group = unique_topic("term"), unique_name("g")
    _produce(kafka_bootstrap, topic, values)
    ckpt = tmp_path / "ckpt"
    log_path = tmp_path / "service.log"
    proc = _spawn_service(store, kafka_bootstrap, topic, group, ckpt, log_path)
    try:
        deadline = time.monotonic() + 90
        while _checkpoint_offset(ckpt, group, topic) < 400 and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text()
    assert "received SIGTERM" in log and "revoked" in log
    offset = _checkpoint_offset(ckpt, group, topic)
    assert 400 <= offset <= len(values)
    assert _committed(kafka_bootstrap, group, topic, 0) == offset
    # The checkpoint reflects exactly the records before its offset.
    _, ref_state = _reference(store, values[:offset])
    _, doc, arrays = CheckpointStore(ckpt, group=group).load(topic, 0)
    _assert_same_state((doc["pipeline"], arrays), ref_state)


@pytest.mark.kafka
def test_two_services_split_partitions_and_hand_over_state(
    kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data
):
    """State travels with the partition. A owns all four partitions; B joins and gets two of them
    from A's revoke-time checkpoints; A stops and B gets the other two from its shutdown
    checkpoints. Periodic checkpoints are off, so only the rebalance paths carry the state. Every
    partition ends in the state a lone backtest of its records gives, and every record is
    processed exactly once across the two instances."""
    store, values, _ = drift_data
    topic, group = unique_topic("pair", partitions=4), unique_name("g")
    per_partition = {p: [v for i, v in enumerate(values) if i % 4 == p] for p in range(4)}
    producer = _producer(kafka_bootstrap)

    def produce(lo, hi):
        for p, vals in per_partition.items():
            for v in vals[lo:hi]:
                producer.send(topic, value=v, key=b"triage", partition=p)
        producer.flush()

    ckpt = tmp_path / "ckpt"
    no_periodic = dict(checkpoint_every_records=10**9, checkpoint_every_seconds=10**6)
    a = _service(store, kafka_bootstrap, topic, group, ckpt, client_id="janus-a", **no_periodic)
    b = _service(store, kafka_bootstrap, topic, group, ckpt, client_id="janus-b", **no_periodic)
    total = lambda: a.stats.records + b.stats.records  # noqa: E731

    produce(0, 400)
    run_a = _Runner(a)
    run_a.wait_for(lambda: a.stats.records >= 1600 and len(a.assignment()) == 4, what="A to read 4 x 400")
    assert CheckpointStore(ckpt, group=group).partitions() == []
    run_b = _Runner(b)

    def split():
        owned_a, owned_b = set(a.assignment()), set(b.assignment())
        return len(owned_a) == 2 and len(owned_b) == 2 and not owned_a & owned_b

    run_b.wait_for(split, what="a 2+2 split")
    assert len(CheckpointStore(ckpt, group=group).partitions()) == 4, "A's revoke did not checkpoint"
    produce(400, 700)
    run_b.wait_for(lambda: total() >= 4 * 700, what="4 x 700 records")
    run_a.stop()
    run_b.wait_for(lambda: len(b.assignment()) == 4, what="B to take over all four partitions")
    produce(700, None)
    producer.close()
    run_b.wait_for(lambda: total() >= len(values), what="everything")
    run_b.wait_for(lambda: _read_to_the_end(b, 4), what="the end of every partition")
    run_b.stop()
    assert total() == len(values), f"lost or double-counted: {a.stats.records} + {b.stats.records}"
    assert b.stats.records > 0 and a.stats.records > 1600
    store_ck = CheckpointStore(ckpt, group=group)
    for p, vals in per_partition.items():
        ref_alerts, ref_state = _reference(store, vals)
        offset, doc, arrays = store_ck.load(topic, p)
        assert offset == len(vals)
        _assert_same_state((doc["pipeline"], arrays), ref_state)


@pytest.mark.kafka
def test_service_failing_mid_batch_keeps_the_last_consistent_checkpoint(
    kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data
):
    """An exception after the pipeline took a batch but before its offset was recorded (here: in
    the on_batch hook) must not checkpoint that half-counted state."""
    store, values, _ = drift_data
    topic, group = unique_topic("boom"), unique_name("g")
    _produce(kafka_bootstrap, topic, values[:2000])
    calls = []

    def on_batch(t, p, result, seconds):
        calls.append(len(result.accepted))
        if len(calls) == 4:
            raise RuntimeError("metrics exporter exploded")

    # Batches of <= 500 records, a checkpoint every 1000: when the 4th batch fails, the 3rd is
    # processed but not checkpointed, so the shutdown path has dirty state to (not) write.
    service = _service(store, kafka_bootstrap, topic, group, tmp_path / "ckpt", on_batch=on_batch,
                       checkpoint_every_records=1000)
    with pytest.raises(RuntimeError, match="exploded"):
        service.run(install_signal_handlers=False)
    offset, doc, arrays = CheckpointStore(tmp_path / "ckpt", group=group).load(topic, 0)
    assert 0 < offset < service.stats.records, (offset, service.stats.records)
    _, ref_state = _reference(store, values[:offset])
    _assert_same_state((doc["pipeline"], arrays), ref_state)
    assert _committed(kafka_bootstrap, group, topic, 0) == offset


@pytest.mark.kafka
def test_service_refuses_a_partition_with_a_corrupt_checkpoint(
    kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data
):
    store, values, _ = drift_data
    topic, group = unique_topic("corrupt"), unique_name("g")
    _produce(kafka_bootstrap, topic, values[:100])
    ckpt = CheckpointStore(tmp_path / "ckpt", group=group)
    path = ckpt.save(topic, 0, 50, {"format": 1, "pipeline": {"models": {}}}, {})
    path.write_bytes(path.read_bytes()[:-10])
    service = _service(store, kafka_bootstrap, topic, group, tmp_path / "ckpt")
    with pytest.raises(JanusError, match="corrupt") as info:
        service.run(install_signal_handlers=False)
    assert str(path) in str(info.value)
    assert service.stats.records == 0, "records of a partition without usable state were processed"
    assert path.exists(), "the corrupt checkpoint must be left for the operator"


@pytest.mark.kafka
def test_service_waits_for_an_unavailable_broker(tmp_path, drift_data, caplog):
    import logging

    from detector.stream.broker import _free_port

    store, values, _ = drift_data
    port = _free_port("127.0.0.1")
    bootstrap = f"127.0.0.1:{port}"
    service = _service(store, bootstrap, "late", "g-late", tmp_path / "ckpt", bootstrap_timeout_ms=500)
    with caplog.at_level(logging.WARNING, logger="janus.stream"):
        runner = _Runner(service)
        runner.wait_for(lambda: "unavailable" in caplog.text and "retrying in" in caplog.text, timeout=30,
                        what="a retry log line")
        with EmbeddedBroker(port=port) as broker:
            broker.create_topics(["late"], 1)
            _produce(bootstrap, "late", values[:300])
            runner.wait_for(lambda: service.stats.records >= 300, timeout=120, what="records after the broker came up")
            assert runner.stop() == 0
    assert f"Kafka at {bootstrap} is unavailable" in caplog.text

    quick = _service(store, bootstrap, "late", "g-late", tmp_path / "ckpt", bootstrap_timeout_ms=300,
                     unavailable_timeout_s=1.0)
    with pytest.raises(JanusError, match="unavailable for"):
        quick.run(install_signal_handlers=False)
