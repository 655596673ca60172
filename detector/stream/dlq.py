"""The dead-letter topic: rejected records, byte for byte, with why and where in headers.

A record Janus cannot use (not JSON, missing field, too large, ...) is produced unchanged --
same value bytes, same key, same timestamp -- to ``<source topic>.dlq`` (the name template is
configurable) with these headers (values UTF-8):

==========================  ===========================================================
``janus-reason``            stable reason code of the rejection (e.g. ``not_json``)
``janus-message``           human explanation (at most 1000 bytes)
``janus-source-topic``      topic the record came from
``janus-source-partition``  its partition (decimal)
``janus-source-offset``     its offset (decimal)
==========================  ===========================================================

so an operator can fix the producer and replay the dead letters, or find the original.
Original headers of the record are kept after Janus's own. Kafka clients cannot send a record
with neither key nor value, so such a record (a keyless tombstone) is dead-lettered with an
empty value and the header ``janus-null-value: 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.errors import JanusError

__all__ = ["DEFAULT_TOPIC_TEMPLATE", "DeadLetterPublisher", "dlq_headers", "MAX_MESSAGE_BYTES"]

DEFAULT_TOPIC_TEMPLATE = "{topic}.dlq"
MAX_MESSAGE_BYTES = 1000

HEADER_REASON = "janus-reason"
HEADER_MESSAGE = "janus-message"
HEADER_TOPIC = "janus-source-topic"
HEADER_PARTITION = "janus-source-partition"
HEADER_OFFSET = "janus-source-offset"
HEADER_NULL_VALUE = "janus-null-value"


def dlq_headers(reason: str, message: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The Janus headers of a dead letter, in a fixed order."""
    msg = (message or "").encode("utf-8", "replace")
    if len(msg) > MAX_MESSAGE_BYTES:
        msg = msg[: MAX_MESSAGE_BYTES - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."
    return [
        (HEADER_REASON, str(reason).encode("utf-8", "replace")),
        (HEADER_MESSAGE, msg),
        (HEADER_TOPIC, topic.encode("utf-8")),
        (HEADER_PARTITION, str(int(partition)).encode("ascii")),
        (HEADER_OFFSET, str(int(offset)).encode("ascii")),
    ]


class DeadLetterPublisher:
    """Sends rejected raw values to the dead-letter topic through a ``KafkaProducer``.

    ``topic_template`` is formatted with ``topic=<source topic>``; a fixed name without
    ``{topic}`` sends every source's dead letters to one topic. The producer is not owned:
    the caller flushes and closes it (the stream service flushes before it checkpoints, so a
    checkpointed offset never covers a dead letter still in a send buffer).
    """

    def __init__(self, producer: Any, topic_template: str = DEFAULT_TOPIC_TEMPLATE) -> None:
        try:
            topic_template.format(topic="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise JanusError(
                f"dead-letter topic template {topic_template!r} is invalid: only {{topic}} may be used"
            ) from exc
        self.producer = producer
        self.topic_template = topic_template
        self.sent = 0

    def topic_for(self, source_topic: str) -> str:
        return self.topic_template.format(topic=source_topic)

    def send(
        self,
        source_topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        reason: str,
        message: str = "",
        *,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Produce one dead letter; returns kafka-python's send future."""
        if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"dead-letter value must be bytes or None, not {type(value).__name__}")
        all_headers = dlq_headers(reason, message, source_topic, partition, offset)
        if value is None and key is None:
            all_headers.append((HEADER_NULL_VALUE, b"1"))
            value = b""
        if headers:
            all_headers.extend((str(k), bytes(v) if v is not None else b"") for k, v in headers)
        future = self.producer.send(
            self.topic_for(source_topic),
            value=bytes(value) if value is not None else None,
            key=key,
            headers=all_headers,
            timestamp_ms=timestamp_ms,
        )
        self.sent += 1
        return future

    def send_record(self, record: Any, reason: str, message: str = "") -> Any:
        """Dead-letter a kafka-python ``ConsumerRecord`` as received (value, key, timestamp, headers)."""
        return self.send(
            record.topic,
            record.partition,
            record.offset,
            record.value,
            reason,
            message,
            key=record.key,
            timestamp_ms=record.timestamp if getattr(record, "timestamp", -1) >= 0 else None,
            headers=list(getattr(record, "headers", None) or []),
        )

    def flush(self, timeout: float | None = None) -> None:
        self.producer.flush(timeout=timeout)
