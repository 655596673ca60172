"""One busy model across cores and hosts (docs/runbooks.md, "Scale-out of one busy model").

* ``--role all``: a model whose records arrive on several partitions is reported (log line,
  ``janus_model_partitions``), since each partition's Monitor spends the model's whole ARL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orjson

import pytest
from prometheus_client import generate_latest

from test_stream_plumbing import REPO, _produce, _Runner, _service, drift_data  # noqa: F401


@pytest.mark.kafka
def test_a_model_on_two_partitions_is_reported(kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data,
                                               caplog):  # noqa: F811
    from detector.cli.serve_cmd import wire_metrics
    from detector.metrics import JanusMetrics

    store, values, model_id = drift_data
    topic = unique_topic("spread", partitions=3)
    _produce(kafka_bootstrap, topic, values[:600], partition_of=lambda i: i % 2)  # not keyed by model
    service = _service(store, kafka_bootstrap, topic, unique_name("g"), tmp_path / "ckpt")
    metrics = JanusMetrics()
    wire_metrics(service, metrics)
    with caplog.at_level(logging.WARNING, logger="janus.stream"):
        runner = _Runner(service)
        runner.wait_for(lambda: service.stats.records >= 600, what="all records")
        _produce(kafka_bootstrap, topic, values[600:800], partition_of=lambda i: i % 2)
        runner.wait_for(lambda: service.stats.records >= 800, what="more records")
        assert service.model_partitions() == {model_id: [(topic, 0), (topic, 1)]}
        scrape = generate_latest(metrics.registry).decode()
        runner.stop()
    assert f'janus_model_partitions{{model_id="{model_id}"}} 2.0' in scrape
    warnings = [r.getMessage() for r in caplog.records if "is seen on" in r.getMessage()]
    assert warnings == [f"model {model_id} is seen on 2 partitions of this instance ({topic}[0], {topic}[1]): each "
                        f"has a Monitor of its own that spends the whole ARL budget, so it gets up to 2 times the "
                        f"false alarms its ARL allows, and evidence split 2 ways. Have producers key its records by "
                        f"model_id, or run janus serve --role featurise / --role detect "
                        f"(docs/runbooks.md#janusmodelonmanypartitions)"], "once, not per batch"


# ---------------------------------------------------------------------------------------------
# The split roles' cores (no broker): featuriser blocks, counts messages, the detector's merge


def _split_config(block_records=100, **detection):
    import dataclasses

    from detector.config import DetectionConfig, JanusConfig, SplitConfig

    return JanusConfig(split=SplitConfig(block_records=block_records, merge_wait_seconds=5.0, merge_blocks=16),
                       detection=dataclasses.replace(DetectionConfig(), **detection))


def _featurise(store, config, values, partition=0, epoch=1, chunks=(137,), close_at=()):
    """Counts batches of ``values`` (one source partition) fed in runs of the given sizes; the
    offsets in ``close_at`` are checkpoints (blocks closed there)."""
    from detector.split.featurise import BlockFeaturiser

    featuriser = BlockFeaturiser(store, config, "decisions", partition, epoch)
    batches, offset, i = [], 0, 0
    while offset < len(values):
        size = chunks[i % len(chunks)]
        i += 1
        stop = min(len(values), offset + size, *(c for c in close_at if c > offset))
        batches += featuriser.process(values[offset:stop], offset)[1]
        offset = stop
        if offset in close_at or offset == len(values):
            featuriser.close_block(offset)
            batches += featuriser.take_outbox()
    return featuriser, batches


def _ranges(batches):
    return [(b.model_id, b.start, b.end) for b in batches]


def test_counts_messages_round_trip_and_malformed_ones_are_refused_clearly(drift_data):  # noqa: F811
    from detector.split.counts import decode, encode

    store, values, model_id = drift_data
    _, batches = _featurise(store, _split_config(), values[:300])
    batch = batches[0]
    data = encode(batch)
    back = decode(data)
    assert (back.model_id, back.source, back.start, back.end, back.epoch) == (model_id, "decisions[0]", 0, 100, 1)
    assert back.evidence == batch.evidence and back.first_time == batch.first_time
    assert all(np.array_equal(a, b) for a, b in zip(back.counts, batch.counts))
    assert len(data) < 100 * 100, "sparse: far smaller than the records"
    for damaged, message in ((b"", "not a Janus counts batch"), (data[:-3], "payload of"),
                             (data.replace(b'"range":[0,100]', b'"range":[99,10]'), "inconsistent counts header"),
                             (data[:20] + b"{" + data[21:], "undecodable counts header")):
        with pytest.raises(ValueError, match=message):
            decode(damaged)


def test_featuriser_blocks_end_at_multiples_of_the_block_size_whatever_the_poll_sizes(drift_data):  # noqa: F811
    store, values, _ = drift_data
    config = _split_config()
    _, one = _featurise(store, config, values[:1000], chunks=(500,))
    _, other = _featurise(store, config, values[:1000], chunks=(37, 250, 1))
    assert _ranges(one) == _ranges(other) == [(one[0].model_id, s, s + 100) for s in range(0, 1000, 100)]
    for a, b in zip(one, other):
        assert all(np.array_equal(x, y) for x, y in zip(a.counts, b.counts))
    _, closed = _featurise(store, config, values[:1000], chunks=(500,), close_at=(430,))
    assert [(s, e) for _, s, e in _ranges(closed)][3:6] == [(300, 400), (400, 430), (430, 500)]


def test_a_featuriser_restored_from_its_checkpoint_cuts_the_same_blocks_and_resends_its_outbox(drift_data):  # noqa: F811
    from detector.split.featurise import BlockFeaturiser

    store, values, _ = drift_data
    config = _split_config()
    first = BlockFeaturiser(store, config, "decisions", 0, 1)
    sent = first.process(values[:250], 0)[1]
    first.close_block(250)  # checkpoint at 250: [200, 250) waits in the outbox
    meta, arrays = first.state()
    sent += first.take_outbox()
    sent += first.process(values[250:480], 250)[1]  # then killed before the next checkpoint
    again = BlockFeaturiser.restore(store, config, "decisions", 0, 2, meta, arrays)
    resent = again.take_outbox() + again.process(values[250:600], 250)[1]
    assert [(s, e) for _, s, e in _ranges(sent)] == [(0, 100), (100, 200), (200, 250), (250, 300), (300, 400)]
    assert [(s, e) for _, s, e in _ranges(resent)] == [(200, 250), (250, 300), (300, 400), (400, 500), (500, 600)]
    assert {b.epoch for b in resent} == {2}, "an owner sends everything under its own epoch"


def test_detector_drops_replays_stale_featurisers_and_overlaps(drift_data):  # noqa: F811
    import dataclasses

    from detector.split.detect import CountsDetector

    store, values, _ = drift_data
    config = _split_config()
    _, batches = _featurise(store, config, values[:400], epoch=2)
    detector = CountsDetector(store, config, arl=1000.0)
    assert [detector.receive(b, 0.0) for b in batches[:2]] == [None, None]
    assert detector.receive(batches[1], 0.0) == "replayed"
    assert detector.receive(dataclasses.replace(batches[2], epoch=1), 0.0) == "fenced"
    assert detector.receive(dataclasses.replace(batches[2], start=150), 0.0) == "overlap"
    assert detector.receive(batches[2], 0.0) is None
    events, outcomes = detector.drain(now=10.0)  # one source: its blocks waited long enough
    assert outcomes == {"applied": 3}
    assert detector.monitors[batches[0].model_id].n_production == sum(
        int(b.counts[0].sum()) for b in batches[:3])


def _split_run(store, config, values, sources=2, order_seed=0, restart_at=None):
    """Records dealt round-robin to ``sources`` partitions, featurised, and their batches received by
    one detector in a seeded random interleaving of the sources; with ``restart_at`` the detector
    is checkpointed after that many batches, "killed", restored and fed the rest."""
    import random

    from detector.split.detect import CountsDetector

    streams = [_featurise(store, config, values[p::sources], partition=p)[1] for p in range(sources)]
    rng = random.Random(order_seed)
    detector = CountsDetector(store, config, arl=config.detection.arl)
    events, received = [], 0
    while any(streams):
        detector.receive(streams[rng.choice([p for p in range(sources) if streams[p]])].pop(0), 0.0)
        events += detector.drain(0.0)[0]
        received += 1
        if received == restart_at:
            meta, arrays = detector.state()
            detector = CountsDetector.restore(store, config, meta, arrays, 0.0, arl=config.detection.arl)
    return detector, events + detector.drain(now=1e9)[0]


def test_the_detector_merges_sources_in_record_time_whatever_the_arrival_order(drift_data):  # noqa: F811
    store, values, model_id = drift_data
    config = _split_config(arl=1e4)
    runs = [_split_run(store, config, values, order_seed=seed, restart_at=restart)
            for seed, restart in ((0, None), (1, None), (2, 17))]
    keys = [[(e.status, e.segment, e.feature, e.decision_id) for e in events] for _, events in runs]
    assert keys[0] and keys[0] == keys[1] == keys[2]
    states = [detector.monitors[model_id].state()[1] for detector, _ in runs]
    for name in states[0]:
        assert np.array_equal(states[0][name], states[1][name]) and np.array_equal(states[0][name], states[2][name])


def test_split_counts_equal_the_backtest_exactly_on_a_stream_without_change(drift_data):  # noqa: F811
    """No alert fires, so the null learns every record on both paths: the detector's learned counts,
    records per segment and production total are exactly the backtest's."""
    from detector.pipeline import Pipeline

    store, values, model_id = drift_data
    config = _split_config(arl=1e6)
    null = values[:500] * 3  # the records before the change, three times under new ids below
    null = [v.replace(b'"decision_id":"', f'"decision_id":"r{i // 500}-'.encode()) for i, v in enumerate(null)]
    backtest = Pipeline(store, config)
    assert not [a for i in range(0, len(null), 300) for a in backtest.process(null[i:i + 300], first_position=i).alerts]
    detector, events = _split_run(store, config, null, sources=3, restart_at=5)
    assert not events
    ours, theirs = detector.monitors[model_id], backtest.monitors[model_id]
    assert ours.n_production == theirs.n_production == sum(1 for v in null if b'"production"' in v)
    assert np.array_equal(ours.segment_records, theirs.segment_records)
    for a, b in zip(ours.seen, theirs.seen):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# The split roles on the embedded broker


def _split_services(store, bootstrap, config, topic, group, *, featurisers=2, arl=1e4):
    import io

    from detector.stream.service import StreamService

    kafka = dict(bootstrap_servers=bootstrap, max_poll_interval_ms=5000, session_timeout_ms=6000, max_poll_records=500)
    detect = StreamService(store, config, role="detect", group_id=group, arl=arl, alert_topic=f"{topic}.alerts",
                           alert_stream=io.StringIO(), client_id="detector", kafka_overrides=kafka, poll_timeout_ms=200)
    featurise = [StreamService(store, config, role="featurise", topics=[topic], group_id=group, arl=arl,
                               alert_stream=None, client_id=f"featuriser-{i}", kafka_overrides=kafka,
                               poll_timeout_ms=200) for i in range(featurisers)]
    return detect, featurise


@pytest.mark.kafka
def test_two_featurisers_and_one_detector_raise_the_backtests_alerts(kafka_bootstrap, unique_topic, unique_name,
                                                                      drift_data):  # noqa: F811
    """A model's records spread over two partitions, one featuriser each, one detector: the alerts
    of `janus backtest` on the same records (segment, feature, status), each in the same block
    round of records as the backtest's or a little later: the count path's statistic restarts only
    at block ends (docs/detection.md), which delays the slower per-segment statistics more."""
    from detector.config import CheckpointConfig, JanusConfig, SplitConfig
    from detector.pipeline import Pipeline

    store, values, model_id = drift_data
    block = 100
    config = JanusConfig(checkpoint=CheckpointConfig(topic=unique_name("state"), every_records=10**9,
                                                     every_seconds=600.0),
                         split=SplitConfig(counts_topic=unique_topic("counts"), block_records=block))
    topic, group = unique_topic("hot", partitions=2), unique_name("g")
    detect, featurise = _split_services(store, kafka_bootstrap, config, topic, group)
    runners = [_Runner(service) for service in (detect, *featurise)]
    try:
        runners[0].wait_for(lambda: len(detect.assignment()) == 1, what="the detector to own the counts partition")
        for runner, service in zip(runners[1:], featurise):
            runner.wait_for(lambda s=service: len(s.assignment()) == 1, what="one partition per featuriser")
        _produce(kafka_bootstrap, topic, values, partition_of=lambda i: i % 2)  # round robin: not keyed
        production = sum(1 for v in values if b'"production"' in v)
        runners[0].wait_for(lambda: model_id in detect.monitors and detect.monitors[model_id].n_production == production,
                            timeout=300, what="every record's counts applied")
    finally:
        results = [runner.stop() for runner in runners]
    assert results == [0, 0, 0]
    assert sum(s.stats.records for s in featurise) == len(values) and all(s.stats.records for s in featurise)
    reference = Pipeline(store, config, arl=1e4)
    expected = [(e.status, e.segment, e.feature, e.record_index)
                for i in range(0, len(values), 500) for e in reference.process(values[i:i + 500], first_position=i).alerts]
    index = {orjson.loads(v)["decision_id"]: i for i, v in enumerate(values) if b'"decision_id":"' in v}
    alerts = [orjson.loads(line) for line in detect.alert_stream.getvalue().splitlines()]
    got = [(a["status"], a["segment"], a["feature"], index[a["decision_id"]]) for a in alerts]
    assert expected and sorted(k[:3] for k in got) == sorted(k[:3] for k in expected)
    rounds = 2 * block  # records of both partitions in one block each
    lag = {k[:3]: next(g[3] for g in got if g[:3] == k[:3]) // rounds - k[3] // rounds for k in expected}
    assert all(0 <= n <= 2 for n in lag.values()), lag
    assert all(n <= 1 for (_, segment, _), n in lag.items() if segment == "(all)"), lag
    for a in alerts:  # the evidence: the model's last record of the block that crossed, at its partition offset
        assert a["record_index"] == index[a["decision_id"]] // 2 and a["message"] and a["code"]
    print(f"\nsplit alerts: lag in block rounds of {rounds} records: {lag}")


SPLIT_CONFIG = """
[kafka]
session_timeout_ms = 6000
max_poll_interval_ms = 5000
max_poll_records = 100

[checkpoint]
topic = "{state_topic}"
every_records = 300
every_seconds = 1.0

[split]
counts_topic = "{counts_topic}"
block_records = 100
merge_wait_seconds = 1.0
"""


class _Role:
    """One `janus serve --role ROLE` process, started in a fresh empty working directory each time
    (its state lives only in Kafka), metrics on a fresh loopback port, JSON log per start."""

    def __init__(self, role: str, name: str, argv: list[str], tmp_path):
        self.role, self.name, self.argv, self.tmp = role, name, argv, tmp_path
        self.proc = None
        self.starts = 0

    def start(self) -> None:
        from test_cli_serve import _free_port

        self.starts += 1
        self.port = _free_port()
        cwd = self.tmp / f"{self.name}-{self.starts}"
        cwd.mkdir()
        self.log = self.tmp / f"{self.name}-{self.starts}.log"
        self.proc = subprocess.Popen([*self.argv, "--role", self.role, "--metrics-addr", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), cwd=cwd,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)})

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()[-3000:]

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _wait(condition, what, roles, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not condition():
        for role in roles:
            assert role.proc.poll() is None, f"{role.name} died ({what}): {role.log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.kafka
@pytest.mark.timeout(1800)
def test_kill_9_of_any_role_at_random_points_ends_with_exact_counts(kafka_bootstrap, unique_topic, unique_name,
                                                                    tmp_path, drift_data):  # noqa: F811
    """Two featurisers and a detector as `janus serve` processes with state in Kafka only; SIGKILL
    of every role (and one more, in random order) at random points, each restarted in a new empty
    directory: the restarted detector resumes its Monitor from the state topic. On a stream
    without change (so the null learns every record on both paths) the detector's final counts --
    learned counts per cell and code, records per segment, production total -- equal the backtest's,
    producer retries (de-duplicated per source partition) included."""
    import random

    from detector.config import CheckpointConfig, JanusConfig
    from detector.pipeline import Pipeline
    from detector.simulate import simulate
    from detector.stream.state_topic import KafkaStateStore

    store, _, model_id = drift_data
    rng = random.Random(int(os.environ.get("JANUS_SPLIT_SEED", 18)))
    values = [orjson.dumps(r) for r in simulate("reasoning-unmonitored", seed=8, n_evaluation=10,
                                                  n_production=3000, change_at=3000).production]
    for i in sorted(rng.sample(range(20, len(values)), 15)):  # retries, on the same partition as the original
        values[i] = values[i - 2 * rng.randrange(1, 5)]
    reference = Pipeline(store, JanusConfig(), arl=1e6)
    assert not [a for i in range(0, len(values), 500)
                for a in reference.process(values[i:i + 500], first_position=i).alerts], "no change: nothing fires"
    expected = reference.monitors[model_id]

    topic, group, state_topic = unique_topic("hot", partitions=2), unique_name("g"), unique_name("state")
    counts_topic = unique_topic("counts")
    config = tmp_path / "janus.toml"
    config.write_text(SPLIT_CONFIG.format(state_topic=state_topic, counts_topic=counts_topic))
    argv = [sys.executable, "-m", "detector", "--config", str(config), "serve", "--store", str(store.root),
            "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--group-id", group, "--arl", "1e6",
            "--alert-topic", f"{topic}.alerts"]
    roles = [_Role("detect", "detector", argv, tmp_path),
             *(_Role("featurise", f"featuriser-{i}", argv, tmp_path) for i in range(2))]
    state = KafkaStateStore(CheckpointConfig(topic=state_topic), f"{group}.detect", "test",
                            {"bootstrap_servers": kafka_bootstrap})
    state.connect()

    def detector_state():
        try:
            (stored,) = state.read([(counts_topic, 0)])
        except Exception:  # the state topic is created by the first checkpoint writer
            return None
        return stored

    def applied():
        stored = detector_state()
        return 0 if stored is None or model_id not in stored.meta["detector"]["models"] else \
            stored.meta["detector"]["models"][model_id]["n_production"]

    from kafka import KafkaConsumer, TopicPartition

    watcher = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{group}.featurise", enable_auto_commit=False)

    def featurised() -> int:
        """Records the featurisers have checkpointed, over both partitions (monotone across kills)."""
        return sum(watcher.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))

    victims = rng.sample(roles, len(roles)) + [rng.choice(roles)]  # every role at least once, in random order
    kills, chunk = [], len(values) // 5
    try:
        for role in roles:
            role.start()
        for k in range(5):
            first = k * chunk
            _produce(kafka_bootstrap, topic, values[first:first + chunk], partition_of=lambda i, f=first: (f + i) % 2)
            if k == 4:
                break
            point = first + rng.randrange(chunk // 5, chunk - chunk // 5)
            _wait(lambda: featurised() >= point, f"the featurisers to checkpoint {point} records", roles)
            victim = victims[k]
            victim.kill9()
            kills.append((victim.name, point))
            victim.start()
        production = expected.n_production
        _wait(lambda: applied() == production, "the detector's checkpoint to hold every record", roles)
        for role in roles:
            role.terminate()
    finally:
        for role in roles:
            role.ensure_dead()
        watcher.close()
    stored = detector_state()
    state.close()
    errors = [event["message"] for role in roles for n in range(1, role.starts + 1)
              for line in (tmp_path / f"{role.name}-{n}.log").read_bytes().splitlines() if line.strip()
              for event in [orjson.loads(line)] if event["level"] == "error" and event["logger"].startswith("janus")]
    assert not errors, "Janus logged errors"
    detector = stored.meta["detector"]
    meta = detector["models"][model_id]
    prefix = f"m{meta['slot']}."
    assert meta["n_production"] == expected.n_production
    assert np.array_equal(stored.arrays[prefix + "segment_records"], expected.segment_records)
    for f, seen in enumerate(expected.seen):
        assert np.array_equal(stored.arrays[f"{prefix}seen.{f}"], seen), f"learned counts of feature {f}"
    assert detector["received"][model_id] == {f"{topic}[0]": 1500, f"{topic}[1]": 1500}
    assert stored.epoch == roles[0].starts, "each detector start claimed the counts partition once"
    print(f"\nsplit kill -9: {len(values)} records, kills (role, featurised records at the kill) {kills}, starts "
          f"{ {r.name: r.starts for r in roles} }")
