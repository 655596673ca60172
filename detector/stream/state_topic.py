"""The state topic backend: each partition's checkpoint in a compacted Kafka topic (``janus.state``).

Kafka Streams keeps a task's state in a changelog topic for the same reason: whichever instance,
on whichever host, the consumer group gives a partition to reads that partition's state back from
Kafka and resumes exactly where the previous owner stopped, with no shared volume. The record
layout (keys with the owner's epoch, chunks, fencing) is :mod:`detector.stream.state_layout`; the
record itself, checksum included, is :mod:`detector.stream.checkpoint`'s.

* **Claim** (at assignment): the state partition holding the key is read from its beginning to
  its end (compaction keeps it short on a real cluster: one live state per partition, plus
  deleted keys until ``delete.retention.ms``), the newest state is verified and decoded, and a
  claim manifest with the next epoch is written and flushed before the partition is consumed.
* **Save**: chunks and manifest are sent to that state partition and flushed (``acks=all``); a
  record Kafka refuses is an error naming the setting to change. After the first save of an
  epoch the older epochs' keys are deleted.
* **Topic.** If ``[checkpoint] topic`` does not exist it is created with ``cleanup.policy=compact``,
  ``[checkpoint] topic_partitions`` and ``replication_factor``; if creation is not allowed the
  error names the command that creates it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.config import CheckpointConfig
from detector.errors import JanusError
from detector.stream.checkpoint import (
    Claim,
    StateUnavailable,
    StoredState,
    Written,
    decode_checkpoint,
    encode_checkpoint,
)
from detector.stream.kafka_config import kafka_kwargs
from detector.stream.state_layout import (
    DROP_FIX,
    RECORD_OVERHEAD,
    base_key,
    claim_record,
    select_state,
    state_partition,
    state_records,
)

log = logging.getLogger("janus.state")

__all__ = ["KafkaStateStore"]

READ_TIMEOUT_S = 120.0


class KafkaStateStore:
    """:class:`detector.stream.state.StateStore` on the compacted topic ``config.topic``."""

    def __init__(self, config: CheckpointConfig, group: str, writer: str, settings: dict[str, Any], *,
                 bootstrap_timeout_ms: int = 10_000) -> None:
        self.config = config
        self.topic = config.topic
        self.group = group
        self.writer = writer
        self.location = f"topic {config.topic}"
        self._settings = settings  # kafka_kwargs() arguments: servers, security
        self._bootstrap_timeout_ms = int(bootstrap_timeout_ms)
        self._producer: Any = None
        self._reader: Any = None
        self._partitions = 0
        self._seq: dict[tuple[str, int, int], int] = {}  # (topic, partition, epoch) → writes so far
        self._stale: dict[tuple[str, int, int], list[bytes]] = {}  # older epochs' keys, deleted after a save

    # ---- clients ----------------------------------------------------------------------------------

    def connect(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(**{
                **kafka_kwargs("producer", client_id=f"{self.writer}-state", **self._settings), "linger_ms": 0,
                "max_request_size": self.config.max_message_bytes + RECORD_OVERHEAD,
                "bootstrap_timeout_ms": self._bootstrap_timeout_ms})
        if self._reader is None:
            fetch = max(2 * self.config.max_message_bytes, 1 << 20)
            self._reader = KafkaConsumer(
                **kafka_kwargs("consumer", client_id=f"{self.writer}-state-reader", group_id=None, **self._settings),
                fetch_max_bytes=fetch * 4, max_partition_fetch_bytes=fetch,
                bootstrap_timeout_ms=self._bootstrap_timeout_ms)
        if not self._partitions:
            self._partitions = self._ensure_topic()

    def close(self) -> None:
        for client in (self._reader, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception as exc:  # closing must not hide the reason we stop
                    log.warning("closing a state topic client: %s", exc)
        self._reader = self._producer = None

    def _ensure_topic(self) -> int:
        partitions = self._reader.partitions_for_topic(self.topic)
        if partitions:
            return len(partitions)
        from detector.stream.broker import create_topics

        admin = kafka_kwargs("admin", client_id=f"{self.writer}-state-admin", **self._settings)
        servers = admin.pop("bootstrap_servers")
        try:
            create_topics(servers, [self.topic], self.config.topic_partitions,
                          replication_factor=self.config.replication_factor,
                          topic_configs={"cleanup.policy": "compact"}, **admin)
        except JanusError as exc:
            raise JanusError(
                f"the state topic {self.topic!r} does not exist and cannot be created ({exc}); create it with "
                f"`kafka-topics.sh --create --topic {self.topic} --partitions {self.config.topic_partitions} "
                f"--config cleanup.policy=compact`, or set [checkpoint] backend = \"directory\"") from None
        log.info("created the state topic %s (%d partitions, compacted)", self.topic, self.config.topic_partitions)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not (partitions := self._reader.partitions_for_topic(self.topic)):  # fetches metadata when unknown
            if time.monotonic() > deadline:
                raise JanusError(f"the state topic {self.topic!r} was created but has no partitions yet")
        return len(partitions)

    # ---- claim --------------------------------------------------------------------------------------

    def claim(self, partitions: Sequence[tuple[str, int]]) -> list[Claim]:
        claims = []
        for (topic, partition), (sp, base, selection, restored) in zip(partitions, self._select(partitions)):
            epoch = selection.highest_epoch + 1
            self._send(sp, [claim_record(base, epoch)], f"the claim of {topic}[{partition}]")
            self._seq[(topic, partition, epoch)] = 0
            self._stale[(topic, partition, epoch)] = [k for k, e in selection.keys.items() if e < epoch]
            claims.append(Claim(topic, partition, epoch, restored))
        return claims

    def source_partitions(self, topic: str) -> list[int]:
        """The partitions of a topic the states are about (for inspection)."""
        return sorted(self._reader.partitions_for_topic(topic))

    def read(self, partitions: Sequence[tuple[str, int]]) -> list[StoredState | None]:
        """The newest state of each partition, without claiming it (for inspection)."""
        return [restored for *_, restored in self._select(partitions)]

    def drop(self, topic: str, partition: int) -> int:
        """Delete every state record of a partition (its next owner starts it over); returns how many."""
        [(sp, base, selection, _)] = self._select([(topic, partition)], decode=False)
        if selection.keys:
            self._send(sp, [(key, None) for key in selection.keys], f"deleting the state of {topic}[{partition}]")
        return len(selection.keys)

    def _select(self, partitions: Sequence[tuple[str, int]], decode: bool = True) -> list[tuple]:
        """Per partition: (state partition, base key, Selection, decoded newest state or None),
        reading each state partition once."""
        bases = [base_key(self.group, t, p) for t, p in partitions]
        spans = [state_partition(base, self._partitions) for base in bases]
        latest = {sp: self._read(sp) for sp in sorted(set(spans))}
        out = []
        for (topic, partition), base, sp in zip(partitions, bases, spans):
            selection = select_state(base, latest[sp], f"{self.topic}[{sp}]")
            restored = None
            if decode and selection.blob is not None:
                restored = decode_checkpoint(selection.where, selection.blob, self.group, topic, partition,
                                             fix=DROP_FIX)
            out.append((sp, base, selection, restored))
        return out

    def _read(self, partition: int) -> dict[bytes, bytes | None]:
        """The last value of every key in one state partition (None: deleted)."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        tp = TopicPartition(self.topic, partition)
        reader = self._reader
        latest: dict[bytes, bytes | None] = {}
        try:
            reader.assign([tp])
            reader.seek_to_beginning(tp)
            end = reader.end_offsets([tp])[tp]
            deadline = time.monotonic() + READ_TIMEOUT_S
            while reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise StateUnavailable(
                        f"reading the state topic {self.topic}[{partition}] took over {READ_TIMEOUT_S:.0f} s (at "
                        f"offset {reader.position(tp)} of {end}); is it compacted (cleanup.policy=compact)?")
                for records in reader.poll(timeout_ms=500).values():
                    for record in records:
                        if record.key is not None:
                            latest[record.key] = record.value
        except KafkaError as exc:
            raise StateUnavailable(f"reading the state topic {self.topic}[{partition}] failed: "
                                   f"{type(exc).__name__}: {exc}") from None
        return latest

    # ---- save ---------------------------------------------------------------------------------------

    def save(self, claim: Claim, offset: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Written:
        started = time.perf_counter()
        topic, partition, epoch = claim.topic, claim.partition, claim.epoch
        blob = encode_checkpoint(self.group, topic, partition, offset, meta, arrays, epoch=epoch, writer=self.writer)
        base = base_key(self.group, topic, partition)
        sp = state_partition(base, self._partitions)
        seq = self._seq.get((topic, partition, epoch), 0) + 1
        records = state_records(base, epoch, seq, blob, self.config.max_message_bytes)
        self._send(sp, records, f"the state of {topic}[{partition}] ({len(blob):,} bytes)")
        self._seq[(topic, partition, epoch)] = seq
        stale = self._stale.pop((topic, partition, epoch), [])
        if stale:  # the older owners' records are of no use once this epoch holds a state
            self._send(sp, [(key, None) for key in stale], f"deleting {len(stale)} old state records")
        return Written(len(blob), len(records), time.perf_counter() - started)

    def _send(self, partition: int, records: list[tuple[bytes, bytes | None]], what: str) -> None:
        try:
            futures = [self._producer.send(self.topic, key=key, value=value, partition=partition)
                       for key, value in records]
            self._producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=60)
        except Exception as exc:  # kafka-python's errors, raised by send() or by the future
            if "TooLarge" in type(exc).__name__:
                raise JanusError(f"writing {what} to {self.topic}[{partition}] failed: {type(exc).__name__}: {exc}; "
                                 f"set [checkpoint] max_message_bytes (now {self.config.max_message_bytes}) below the "
                                 f"state topic's max.message.bytes") from None
            raise StateUnavailable(f"writing {what} to {self.topic}[{partition}] failed: "
                                   f"{type(exc).__name__}: {exc}") from None
