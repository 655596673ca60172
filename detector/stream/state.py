"""Where the stream service keeps each partition's state: the interface, the directory backend's
adapter, and the choice between backends (``[checkpoint] backend``).

An owner *claims* the partitions it is assigned (reading their newest state and fencing older
owners, see :mod:`detector.stream.checkpoint` and :mod:`detector.stream.state_layout`), then
*saves* state and offset together, every time with the epoch of its claim. The types both
backends share (:class:`~detector.stream.checkpoint.Claim`, ``Written``, ``StateFenced``,
``StateUnavailable``) live in :mod:`detector.stream.checkpoint`, so that this module and
:mod:`detector.stream.state_topic` need not import each other.

* ``backend = "kafka"`` (default): the compacted state topic ``[checkpoint] topic``
  (:class:`detector.stream.state_topic.KafkaStateStore`): any instance on any host resumes a
  partition where its previous owner stopped.
* ``backend = "directory"``: files under ``[checkpoint] directory``
  (:class:`DirectoryStateStore`), exactly-once only if every instance mounts the same directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from detector.config import CheckpointConfig
from detector.errors import JanusError
from detector.stream.checkpoint import CheckpointStore, Claim, Written

__all__ = ["BACKENDS", "DirectoryStateStore", "StateStore", "open_state_store"]

BACKENDS = ("kafka", "directory")


class StateStore(Protocol):
    location: str  # for log lines: "topic janus.state" / "directory checkpoints/janus"

    def connect(self) -> None:
        """Create clients (retried by the caller while Kafka is unavailable)."""

    def claim(self, partitions: Sequence[tuple[str, int]]) -> list[Claim]:
        """Take ``partitions`` over, in order; raises CheckpointCorrupt for an unreadable state."""

    def save(self, claim: Claim, offset: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Written:
        """Store state and offset under ``claim``'s epoch, durably, before returning."""

    def close(self) -> None: ...


class DirectoryStateStore:
    """The :class:`StateStore` of a checkpoint directory (:class:`CheckpointStore`)."""

    def __init__(self, directory: str | os.PathLike[str], group: str, writer: str) -> None:
        self.files = CheckpointStore(directory, group=group)
        self.writer = writer
        self.location = f"directory {self.files.directory}"

    def connect(self) -> None:
        pass

    def claim(self, partitions: Sequence[tuple[str, int]]) -> list[Claim]:
        claims = []
        for topic, partition in partitions:
            restored, epoch = self.files.claim(topic, partition)
            claims.append(Claim(topic, partition, epoch, restored))
        return claims

    def save(self, claim: Claim, offset: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Written:
        started = time.perf_counter()
        path = self.files.save(claim.topic, claim.partition, offset, meta, arrays, epoch=claim.epoch,
                               writer=self.writer)
        return Written(path.stat().st_size, 1, time.perf_counter() - started)

    def close(self) -> None:
        pass


def open_state_store(config: CheckpointConfig, group: str, writer: str, *, directory: str | os.PathLike[str] | None,
                     kafka_settings: dict[str, Any], bootstrap_timeout_ms: int = 10_000) -> StateStore:
    """The configured backend; an explicit ``directory`` (``--checkpoint-dir``) selects the directory one."""
    if directory is not None or config.backend == "directory":
        return DirectoryStateStore(directory if directory is not None else config.directory, group, writer)
    if config.backend != "kafka":
        raise JanusError(f"checkpoint.backend must be one of {', '.join(BACKENDS)}, not {config.backend!r}")
    from detector.stream.state_topic import KafkaStateStore

    return KafkaStateStore(config, group, writer, kafka_settings, bootstrap_timeout_ms=bootstrap_timeout_ms)
