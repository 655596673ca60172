"""Detector state in Kafka: the compacted state topic (detector.stream.state_topic), its record
layout (detector.stream.state_layout), fencing of stale owners in both backends, and `janus serve`
resuming a partition from the topic on an instance that has no local state at all."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from detector.config import CheckpointConfig, JanusConfig
from detector.stream.checkpoint import (
    CheckpointCorrupt,
    CheckpointStore,
    StateFenced,
    decode_checkpoint,
    encode_checkpoint,
)
from detector.stream.state_layout import base_key, claim_record, select_state, state_records
from test_stream_plumbing import _assert_same_state, _produce, _reference, _Runner, drift_data  # noqa: F401

BASE = base_key("grp", "decisions", 3)


def _blob(offset: int, size: int = 1000, epoch: int = 1) -> bytes:
    return encode_checkpoint("grp", "decisions", 3, offset, {"offset": offset}, {"pad": np.full(size, offset, np.int64)},
                             epoch=epoch)


def _apply(latest: dict, records) -> dict:
    for key, value in records:
        latest[key] = value
    return latest


# ---------------------------------------------------------------------------------------------
# Record layout (no broker)


def test_a_state_fits_one_record_or_is_chunked_and_reassembled():
    small, large = _blob(7, 100), _blob(8, 40_000)  # ~1 KB and ~320 KB
    (record,) = state_records(BASE, 1, 1, small, 64 * 1024)
    assert select_state(BASE, dict([record]), "t[0]").blob == small
    records = state_records(BASE, 1, 2, large, 64 * 1024)
    assert len(records) == 6 and all(len(k) + len(v) <= 64 * 1024 for k, v in records)
    assert records[-1][0] == f"{BASE}@1".encode()  # the manifest comes last
    selection = select_state(BASE, dict(records), "t[0]")
    assert selection.blob == large and selection.epoch == 1


def test_a_torn_chunked_write_leaves_the_previous_state_readable():
    latest = _apply({}, state_records(BASE, 1, 1, _blob(10, 40_000), 64 * 1024))
    torn = state_records(BASE, 1, 2, _blob(20, 40_000), 64 * 1024)
    _apply(latest, torn[:3])  # killed after three chunks: the other slot, the old manifest
    stored = select_state(BASE, latest, "t[0]")
    assert decode_checkpoint(stored.where, stored.blob, "grp", "decisions", 3).offset == 10


def test_the_highest_epoch_with_a_state_wins_over_later_writes_of_older_owners():
    latest = _apply({}, state_records(BASE, 1, 1, _blob(10), 1 << 20))
    _apply(latest, [claim_record(BASE, 2)])  # a new owner claimed; no state of its own yet
    claimed = select_state(BASE, latest, "t[0]")
    assert (claimed.epoch, claimed.highest_epoch) == (1, 2), "the claim fences but restores epoch 1's state"
    _apply(latest, state_records(BASE, 2, 1, _blob(30, epoch=2), 1 << 20))
    _apply(latest, state_records(BASE, 1, 2, _blob(40), 1 << 20))  # the stale owner writes later, with a newer offset
    newest = select_state(BASE, latest, "t[0]")
    assert newest.epoch == 2 and b'"offset":30' in newest.blob
    assert newest.keys == {f"{BASE}@1".encode(): 1, f"{BASE}@2".encode(): 2}
    other = select_state(base_key("grp", "decisions", 4), latest, "t[0]")
    assert other.blob is None and other.highest_epoch == 0


@pytest.mark.parametrize("damage", ["missing-chunk", "chunk-of-another-write", "manifest-garbage"])
def test_an_unreadable_newest_state_is_refused_not_replaced_by_an_older_one(damage):
    latest = _apply({}, state_records(BASE, 1, 1, _blob(10), 1 << 20))
    records = state_records(BASE, 2, 1, _blob(20, 40_000, epoch=2), 64 * 1024)
    _apply(latest, records)
    if damage == "missing-chunk":
        latest[records[2][0]] = None
    elif damage == "chunk-of-another-write":
        latest[records[2][0]] = state_records(BASE, 2, 3, _blob(99, 40_000, epoch=2), 64 * 1024)[2][1]
    else:
        latest[records[-1][0]] = b"JANUS-STATE\n\x00\x00\x00\x05{oops"
    with pytest.raises(CheckpointCorrupt, match=r"t\[0\] key grp/decisions/3@2 is corrupt .*janus state drop"):
        select_state(BASE, latest, "t[0]")


def test_directory_backend_fences_a_stale_owner(tmp_path):
    old_owner, new_owner = CheckpointStore(tmp_path, "grp"), CheckpointStore(tmp_path, "grp")
    restored, epoch_a = old_owner.claim("decisions", 0)
    assert restored is None and epoch_a == 1
    old_owner.save("decisions", 0, 100, {"by": "a"}, {}, epoch=epoch_a)
    restored, epoch_b = new_owner.claim("decisions", 0)
    assert (restored.offset, restored.epoch, epoch_b) == (100, 1, 2)
    with pytest.raises(StateFenced, match=r"decisions\[0\] was claimed by a newer owner \(epoch 2, ours 1\)"):
        old_owner.save("decisions", 0, 150, {"by": "a"}, {}, epoch=epoch_a)
    new_owner.save("decisions", 0, 120, {"by": "b"}, {}, epoch=epoch_b)
    assert new_owner.read("decisions", 0).meta == {"by": "b"}
    assert old_owner.load("decisions", 0)[:2] == (120, {"by": "b"})


# ---------------------------------------------------------------------------------------------
# The state topic on the embedded broker


def _store(bootstrap, topic, writer, max_message_bytes=1_000_000, group="grp"):
    from detector.stream.state_topic import KafkaStateStore

    config = CheckpointConfig(topic=topic, max_message_bytes=max_message_bytes, topic_partitions=3)
    store = KafkaStateStore(config, group, writer, {"bootstrap_servers": bootstrap})
    store.connect()
    return store


@pytest.mark.kafka
def test_state_topic_is_created_compacted_and_any_store_resumes_a_partition(kafka_bootstrap, unique_name):
    from kafka import KafkaAdminClient

    topic = unique_name("state")
    first = _store(kafka_bootstrap, topic, "host-a", max_message_bytes=64 * 1024)
    try:
        (claim,) = first.claim([("decisions", 3)])
        assert claim.restored is None and claim.epoch == 1
        arrays = {"counts": np.arange(50_000, dtype=np.int64)}  # 400 KB: seven chunks
        written = first.save(claim, 1234, {"models": ["m"]}, arrays)
        assert written.messages == 8 and written.bytes > 400_000 and written.seconds > 0
    finally:
        first.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert len(admin.describe_topics([topic])[0]["partitions"]) == 3
    finally:
        admin.close()
    second = _store(kafka_bootstrap, topic, "host-b", max_message_bytes=64 * 1024)
    try:
        (claim,) = second.claim([("decisions", 3)])
        assert claim.epoch == 2 and claim.restored.offset == 1234 and claim.restored.writer == "host-a"
        assert claim.restored.meta == {"models": ["m"]} and np.array_equal(claim.restored.arrays["counts"],
                                                                             arrays["counts"])
    finally:
        second.close()


@pytest.mark.kafka
def test_a_fenced_stale_writer_cannot_overwrite_newer_state(kafka_bootstrap, unique_name):
    topic = unique_name("state")
    stale, fresh, reader = (_store(kafka_bootstrap, topic, name) for name in ("stale", "fresh", "reader"))
    try:
        (old_claim,) = stale.claim([("decisions", 0)])
        stale.save(old_claim, 100, {"by": "stale"}, {})
        (new_claim,) = fresh.claim([("decisions", 0)])  # the group moved the partition; the old owner stalled
        assert new_claim.restored.offset == 100 and new_claim.epoch == old_claim.epoch + 1
        fresh.save(new_claim, 120, {"by": "fresh"}, {})
        stale.save(old_claim, 500, {"by": "stale"}, {})  # wakes up and writes, later and further along
        (newest,) = reader.read([("decisions", 0)])
        assert (newest.offset, newest.meta, newest.writer, newest.epoch) == (120, {"by": "fresh"}, "fresh", 2)
        (taken,) = reader.claim([("decisions", 0)])
        assert taken.epoch == 3 and taken.restored.offset == 120
    finally:
        for store in (stale, fresh, reader):
            store.close()


@pytest.mark.kafka
def test_a_corrupt_state_record_is_refused_until_dropped_with_janus_state(kafka_bootstrap, unique_name, unique_topic):
    from kafka import KafkaProducer

    from clirun import run_cli
    from detector.stream.state_layout import state_partition

    topic, source = unique_name("state"), unique_topic("src", partitions=2)
    cli = ["--bootstrap-servers", kafka_bootstrap, "--group-id", "grp", "--state-topic", topic]
    store = _store(kafka_bootstrap, topic, "host-a")
    try:
        (claim,) = store.claim([(source, 1)])
        store.save(claim, 10, {}, {})
        rc, out, _ = run_cli(["state", "show", "--topic", source, *cli])
        assert rc == 0 and out.startswith(f"{source}[0]: no state\n{source}[1]: offset 10, epoch 1, written by host-a at ")
        base = base_key("grp", source, 1)
        blob = encode_checkpoint("grp", source, 1, 10, {}, {"a": np.arange(100)}, epoch=claim.epoch)
        key, value = state_records(base, claim.epoch, 2, blob, 1 << 20)[0]
        damaged = value[:-40] + bytes([value[-40] ^ 1]) + value[-39:]
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        producer.send(topic, key=key, value=damaged, partition=state_partition(base, 3)).get(timeout=30)
        producer.close()
        with pytest.raises(CheckpointCorrupt, match=rf"key grp/{source}/1@1 is corrupt \(checksum mismatch.*janus "
                                                    r"state drop"):
            store.claim([(source, 1)])
        rc, out, _ = run_cli(["state", "drop", "--topic", source, "--partition", "1", *cli])
        assert (rc, out) == (0, f"{source}[1]: deleted 1 state record from {topic}\n")  # epoch 1's manifest
        (fresh,) = store.claim([(source, 1)])
        assert fresh.restored is None and fresh.epoch == 1
    finally:
        store.close()


@pytest.mark.kafka
def test_serve_resumes_from_the_state_topic_on_an_instance_with_an_empty_directory(
        kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data, caplog, monkeypatch):  # noqa: F811
    """Two `janus serve` instances that share nothing but Kafka (each its own, empty working
    directory): the second resumes where the first stopped, and the state in the topic at the end is
    an uninterrupted backtest's."""
    import io

    from detector.stream.service import StreamService

    store, values, _ = drift_data
    ref_alerts, ref_state = _reference(store, values)
    topic, group, state_topic = unique_topic("resume"), unique_name("g"), unique_name("state")
    config = JanusConfig(checkpoint=CheckpointConfig(topic=state_topic, every_records=1000))
    half = 1700

    def serve(host):
        (tmp_path / host).mkdir()
        monkeypatch.chdir(tmp_path / host)  # where a default checkpoint directory would go
        return StreamService(store, config, topics=[topic], group_id=group, arl=1000.0, alert_topic=f"{topic}.alerts",
                             alert_stream=io.StringIO(), client_id=host, poll_timeout_ms=200,
                             kafka_overrides=dict(bootstrap_servers=kafka_bootstrap, max_poll_interval_ms=5000,
                                                  session_timeout_ms=6000, max_poll_records=500))

    _produce(kafka_bootstrap, topic, values[:half])
    first = serve("host-a")
    with caplog.at_level(logging.INFO, logger="janus.stream"):
        runner = _Runner(first)
        runner.wait_for(lambda: first.stats.records >= half, what="the first half")
        runner.stop()
    assert f"checkpoint to topic {state_topic}: {topic}[0]@{half};" in caplog.text
    assert first.last_checkpoint_bytes > 0 and first.last_checkpoint_seconds > 0
    caplog.clear()
    _produce(kafka_bootstrap, topic, values[half:])
    second = serve("host-b")
    with caplog.at_level(logging.INFO, logger="janus.stream"):
        runner = _Runner(second)
        runner.wait_for(lambda: second.stats.records >= len(values) - half, what="the second half")
        runner.stop()
    assert (f"restored from topic {state_topic} at offset {half} (state of epoch 1 written by host-a; owner epoch "
            f"now 2;") in caplog.text
    assert second.stats.records == len(values) - half, "the second instance re-read or skipped records"
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "nothing may be written to a local directory"
    alerts = [line for svc in (first, second) for line in svc.alert_stream.getvalue().splitlines()]
    assert len(alerts) == len(ref_alerts)
    reader = _store(kafka_bootstrap, state_topic, "reader", group=group)
    try:
        (stored,) = reader.read([(topic, 0)])
    finally:
        reader.close()
    assert stored.offset == len(values) and stored.epoch == 2 and stored.writer == "host-b"
    _assert_same_state((stored.meta["pipeline"], stored.arrays), ref_state)


@pytest.mark.kafka
def test_serve_stops_writing_a_partition_another_owner_claimed(kafka_bootstrap, unique_topic, unique_name, tmp_path,
                                                               drift_data, caplog):  # noqa: F811
    """An instance that lost a partition without being told (here: another owner claims it while
    the instance keeps consuming) is fenced at its next checkpoint: it stops processing that
    partition and the newer owner's state stays."""
    from test_stream_plumbing import _service

    store, values, _ = drift_data
    topic, group = unique_topic("fenced"), unique_name("g")
    _produce(kafka_bootstrap, topic, values[:1000])
    service = _service(store, kafka_bootstrap, topic, group, tmp_path / "ckpt", checkpoint_every_records=400)
    files = CheckpointStore(tmp_path / "ckpt", group)
    with caplog.at_level(logging.WARNING, logger="janus.stream"):
        runner = _Runner(service)
        runner.wait_for(lambda: service.stats.checkpoints >= 1, what="a first checkpoint")
        restored, epoch = files.claim(topic, 0)  # the new owner
        files.save(topic, 0, restored.offset, {"by": "new owner"}, {}, epoch=epoch)
        _produce(kafka_bootstrap, topic, values[1000:2000])
        runner.wait_for(lambda: service.stats.fenced == 1, what="the stale owner to be fenced")
        assert service.assignment() == []
        runner.stop()
    assert f"{topic}[0] was claimed by a newer owner (epoch 2, ours 1)" in caplog.text
    assert files.load(topic, 0)[1] == {"by": "new owner"}


@pytest.mark.kafka
def test_serve_claims_again_while_the_state_topic_is_unavailable(kafka_bootstrap, unique_topic, unique_name,
                                                                drift_data, monkeypatch, caplog):  # noqa: F811
    """Kafka briefly unable to serve the state topic at assignment: the partition stays paused
    and is claimed again with backoff, not consumed without its state nor given up."""
    import io

    from detector.stream.service import StreamService
    from detector.stream.checkpoint import StateUnavailable
    from detector.stream.state_topic import KafkaStateStore

    store, values, _ = drift_data
    topic = unique_topic("flaky")
    _produce(kafka_bootstrap, topic, values[:300])
    real, failures = KafkaStateStore.claim, []

    def flaky(self, partitions):
        if len(failures) < 2:
            failures.append(partitions)
            raise StateUnavailable("writing the claim failed: KafkaTimeoutError: simulated")
        return real(self, partitions)

    monkeypatch.setattr(KafkaStateStore, "claim", flaky)
    config = JanusConfig(checkpoint=CheckpointConfig(topic=unique_name("state")))
    service = StreamService(store, config, topics=[topic], group_id=unique_name("g"), arl=1000.0,
                            alert_stream=io.StringIO(), poll_timeout_ms=200,
                            kafka_overrides=dict(bootstrap_servers=kafka_bootstrap, max_poll_interval_ms=5000,
                                                 session_timeout_ms=6000))
    with caplog.at_level(logging.WARNING, logger="janus.stream"):
        runner = _Runner(service)
        runner.wait_for(lambda: service.stats.records >= 300, what="the records after the claim succeeded")
        assert runner.stop() == 0
    assert len(failures) == 2 and service.stats.records == 300
    assert f"cannot claim {topic}[0] yet (writing the claim failed: KafkaTimeoutError: simulated); retrying in 1 s" \
        in caplog.text and "retrying in 2 s" in caplog.text
