"""Decision records of a time range of a Kafka topic: for baselines (and reports) built from the stream.

``read_topic_range(topic, since, until, kafka_settings=...)`` reads every partition of ``topic``
from the offset :meth:`KafkaConsumer.offsets_for_times` gives for ``since`` up to the first
record stamped at or after ``until`` (or the end of the partition as it was when reading
started), and parses the values with the same parser as ``janus baseline build --input``.

The range is over *Kafka message timestamps* (what ``offsets_for_times`` searches; a producer's
CreateTime is normally the decision time). A record inside the offsets but stamped before
``since`` (out-of-order timestamps) is skipped and counted, so the result is exactly the
records with ``since <= timestamp < until`` in offset order, up to the first one at or after
``until``. The answers of ``offsets_for_times`` and ``end_offsets`` are treated as hints that can
only make the read start earlier or run longer, never lose a record: the embedded Tansu broker,
for one, answers every time query with offset 0 and ``end_offsets`` with the base offset of the
last batch plus one, so the end of a partition is taken as the larger of ``end_offsets`` and the
high watermark of the first fetch.

No consumer group is joined and nothing is committed: reading a range for a baseline leaves the
stream service's offsets alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from detector.config import LimitsConfig
from detector.errors import JanusError
from detector.formats import Format
from detector.records import Decision, Rejection, parse_values
from detector.stream.kafka_config import kafka_kwargs

__all__ = ["KafkaRange", "PartitionRange", "RangeBatch", "iso", "iter_topic_range", "read_topic_range"]

Progress = Callable[[int, int | None], None]  # (messages read so far, expected total or None)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class PartitionRange:
    partition: int
    start: int  # first offset read
    next_offset: int  # offset after the last one read
    first: int | None = None  # first and last offsets inside the time range
    last: int | None = None
    messages: int = 0  # messages inside the time range
    skipped_before: int = 0  # read but stamped before `since` (out-of-order timestamps)
    stopped_by: str = ""  # "until" (a record at or after it) | "end" (end of the partition) | "empty"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RangeBatch:
    """Raw values of one partition read in one poll, in offset order."""

    partition: int
    offsets: list[int]
    timestamps_ms: list[int]
    values: list[bytes | None]


@dataclass
class KafkaRange:
    topic: str
    since: float
    until: float
    bootstrap_servers: str
    partitions: list[PartitionRange] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(p.messages for p in self.partitions)

    @property
    def skipped_before(self) -> int:
        return sum(p.skipped_before for p in self.partitions)

    def source(self) -> str:
        """What the baseline's ``source`` (and so its audit entry) says it was built from."""
        parts = ",".join(f"{p.partition}:{p.first}-{p.last}" for p in self.partitions if p.messages)
        return (f"kafka {self.bootstrap_servers} topic {self.topic} {iso(self.since)}..{iso(self.until)} "
                f"(partition:offsets {parts or 'none'})")


def _consumer(kafka_settings: dict[str, Any]):
    from kafka import KafkaConsumer

    settings = dict(kafka_settings)
    settings.setdefault("client_id", "janus-range-reader")
    return KafkaConsumer(**kafka_kwargs("consumer", group_id=None, **settings))


def iter_topic_range(topic: str, since: float, until: float, *, kafka_settings: dict[str, Any],
                     progress: Progress | None = None, idle_timeout: float = 30.0,
                     consumer: Any = None, stats: list[PartitionRange] | None = None) -> Iterator[RangeBatch]:
    """Yield the values of ``topic`` stamped in ``[since, until)``, partition batch by batch.

    ``stats`` (a list) receives one :class:`PartitionRange` per partition. ``consumer`` is for
    tests (anything with kafka-python's consumer methods); by default a group-less
    ``KafkaConsumer`` is made from ``kafka_settings`` (:func:`kafka_kwargs` keyword arguments).
    """
    from kafka import TopicPartition

    if until <= since:
        raise JanusError(f"--until ({iso(until)}) must be after --since ({iso(since)})")
    since_ms, until_ms = int(since * 1000), int(until * 1000)
    own = consumer is None
    if own:
        try:
            consumer = _consumer(kafka_settings)
        except Exception as exc:  # NoBrokersAvailable and friends: say where we tried
            raise JanusError(f"cannot connect to Kafka at {kafka_settings.get('bootstrap_servers')}: {exc}") from None
    stats = stats if stats is not None else []
    try:
        partitions = _partitions(consumer, topic, idle_timeout)
        tps = [TopicPartition(topic, p) for p in partitions]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        found = consumer.offsets_for_times({tp: since_ms for tp in tps})
        active, limit, ranges = [], {}, {}
        for tp in tps:
            hit = found.get(tp)
            if hit is None:  # no record at or after `since`
                stats.append(PartitionRange(tp.partition, int(end[tp]), int(end[tp]), stopped_by="empty"))
                continue
            start = max(int(hit.offset), int(begin[tp]))
            ranges[tp] = PartitionRange(tp.partition, start, start)
            stats.append(ranges[tp])
            limit[tp] = int(end[tp])
            active.append(tp)
        frozen: set = set()  # partitions whose end was confirmed by a fetch's high watermark
        done: set = set()
        if active:
            consumer.assign(active)
            for tp in active:
                consumer.seek(tp, ranges[tp].start)
        read = 0
        last_progress = time.monotonic()
        while True:
            for tp in active:
                if tp in done:
                    continue
                hw = consumer.highwater(tp)
                if hw is not None and tp not in frozen:
                    limit[tp] = max(limit[tp], int(hw))
                    frozen.add(tp)
                if tp in frozen or limit[tp] <= ranges[tp].start:
                    if consumer.position(tp) >= limit[tp]:
                        _finish(consumer, tp, ranges[tp], "end", done)
            if len(done) == len(active):
                break
            polled = consumer.poll(timeout_ms=500, max_records=5000)
            got = 0
            for tp, records in sorted(polled.items(), key=lambda kv: kv[0].partition):
                if tp in done:
                    continue
                pr = ranges[tp]
                batch = RangeBatch(tp.partition, [], [], [])
                for record in records:
                    if record.offset < pr.next_offset:
                        continue  # a re-delivered record (after a seek)
                    if record.timestamp >= until_ms:
                        _finish(consumer, tp, pr, "until", done)
                        break
                    pr.next_offset = record.offset + 1
                    got += 1
                    if record.timestamp < since_ms:
                        pr.skipped_before += 1
                        continue
                    pr.messages += 1
                    if pr.first is None:
                        pr.first = record.offset
                    pr.last = record.offset
                    batch.offsets.append(record.offset)
                    batch.timestamps_ms.append(record.timestamp)
                    batch.values.append(record.value)
                if batch.values:
                    yield batch
            read += got
            now = time.monotonic()
            if got:
                last_progress = now
                if progress is not None:
                    total = sum(max(limit[tp] - ranges[tp].start, 0) for tp in active) if len(frozen) == len(active) else None
                    progress(read, total)
            elif now - last_progress > idle_timeout:
                stuck = ", ".join(f"{tp.partition}@{consumer.position(tp)} (end {limit[tp]})" for tp in active
                                  if tp not in done)
                raise JanusError(f"topic {topic}: no records for {idle_timeout:.0f} s while reading partitions "
                                 f"{stuck}; is the broker reachable?")
    finally:
        if own:
            consumer.close()


def _finish(consumer, tp, pr: PartitionRange, why: str, done: set) -> None:
    pr.stopped_by = why
    done.add(tp)
    consumer.pause(tp)


def _partitions(consumer, topic: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + min(timeout, 15.0)
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise JanusError(f"topic {topic!r} does not exist (or has no partitions) on this cluster")
        time.sleep(0.2)


def read_topic_range(topic: str, since: float, until: float, *, kafka_settings: dict[str, Any],
                     limits: LimitsConfig = LimitsConfig(), traffic: str | None = None,
                     progress: Progress | None = None, idle_timeout: float = 30.0,
                     consumer: Any = None, fmt: Format | None = None) -> KafkaRange:
    """Parse every value of the range: decisions and rejections, with positions counted across
    partitions (partition by partition in poll order) and rejections located as
    ``topic/partition@offset``."""
    result = KafkaRange(topic, since, until, str(kafka_settings.get("bootstrap_servers", "")))
    for batch in iter_topic_range(topic, since, until, kafka_settings=kafka_settings, progress=progress,
                                  idle_timeout=idle_timeout, consumer=consumer, stats=result.partitions):
        parsed = _parse_batch(batch, topic, limits, traffic, len(result.decisions) + len(result.rejections), fmt)
        result.decisions.extend(parsed.decisions)
        result.rejections.extend(parsed.rejections)
    result.partitions.sort(key=lambda p: p.partition)
    return result


def _parse_batch(batch: RangeBatch, topic: str, limits: LimitsConfig, traffic: str | None, first: int,
                 fmt: Format | None):
    offsets = batch.offsets
    return parse_values(batch.values, limits=limits, traffic=traffic, first_position=first, fmt=fmt,
                        locate=lambda pos: f"{topic}/{batch.partition}@{offsets[pos - first]}")
