"""What the stream service runs for one owned partition: a task per ``janus serve --role``.

The service (:mod:`detector.stream.service`) owns the Kafka side -- assignment, state claims and
saves, offsets, outputs -- and hands each partition's records, one run of consecutive offsets at
a time, to that partition's task:

* ``all`` (:class:`PipelineTask`): the whole :class:`~detector.pipeline.Pipeline` on a decision
  topic partition: parse, de-duplicate, featurise, detect.
* ``featurise`` (:class:`FeaturiseTask`): a decision topic partition to counts batches
  (:class:`~detector.split.featurise.BlockFeaturiser`), sent to the counts topic keyed by model.
* ``detect`` (:class:`DetectTask`): a counts topic partition to alerts
  (:class:`~detector.split.detect.CountsDetector`).

Each role runs in its own consumer group (:func:`group_for_role`), and a task's state goes into
the partition's checkpoint document under the role's own key, so a partition is never restored
into a task of another role.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.errors import JanusError
from detector.pipeline import BatchResult, Pipeline
from detector.records import Rejection
from detector.split import counts as counts_codec
from detector.split.detect import CountsDetector
from detector.split.featurise import BlockFeaturiser

__all__ = ["ROLES", "DetectTask", "FeaturiseTask", "PartitionTask", "PipelineTask", "TaskOutput", "group_for_role",
           "new_task", "restore_task", "state_document"]

log = logging.getLogger("janus.stream")

CHECKPOINT_FORMAT = 1
ROLES = ("all", "featurise", "detect")
_STATE_KEY = {"all": "pipeline", "featurise": "featuriser", "detect": "detector"}


def group_for_role(group_id: str, role: str) -> str:
    """The consumer group of a role: ``all`` uses ``group_id`` itself, the split roles their own."""
    return group_id if role == "all" else f"{group_id}.{role}"


@dataclass
class TaskOutput:
    result: BatchResult  # rejections → dead letters, alerts, review samples, metrics
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) for the role's output topic


class PartitionTask(Protocol):
    role: str
    monitors: dict
    cue_detectors: dict

    def process(self, records: Sequence[Any]) -> TaskOutput:
        """One run of records with consecutive offsets."""

    def state(self) -> tuple[dict, dict[str, np.ndarray]]: ...

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]: ...

    def close_block(self, next_offset: int) -> None:
        """Before a checkpoint at ``next_offset`` (featurise: the open block goes to the outbox)."""

    def take_outbox(self) -> list[tuple[bytes, bytes]]:
        """Messages to send now that a checkpoint holding them was saved or restored."""

    def tick(self, now: float) -> BatchResult | None:
        """Work due at (monotonic) time ``now`` without new records (detect: blocks whose wait in
        the merge is over); None when there is none."""


class PipelineTask:
    """``--role all``: a decision partition through the whole pipeline."""

    role = "all"

    def __init__(self, pipeline: Pipeline, topic: str, partition: int, traffic: str | None):
        self.pipeline = pipeline
        self.traffic = traffic
        self._where = f"{topic}[{partition}]@"

    @property
    def monitors(self) -> dict:
        return self.pipeline.monitors

    @property
    def cue_detectors(self) -> dict:
        return self.pipeline.cue_detectors

    @property
    def review_counts(self) -> dict:
        return self.pipeline.review.counts

    def process(self, records: Sequence[Any]) -> TaskOutput:
        where = self._where
        return TaskOutput(self.pipeline.process([r.value for r in records], traffic=self.traffic,
                                                first_position=records[0].offset,
                                                locate=lambda position: f"{where}{position}"))

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return self.pipeline.state()

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]:
        return self.pipeline.refresh_baselines()

    def close_block(self, next_offset: int) -> None:
        pass

    def take_outbox(self) -> list[tuple[bytes, bytes]]:
        return []

    def tick(self, now: float) -> BatchResult | None:
        return None


class FeaturiseTask:
    """``--role featurise``: a decision partition → counts batches for the counts topic."""

    role = "featurise"
    monitors: dict = {}  # detection happens in --role detect
    cue_detectors: dict = {}

    def __init__(self, featuriser: BlockFeaturiser):
        self.featuriser = featuriser
        self._where = f"{featuriser.topic}[{featuriser.partition}]@"

    def process(self, records: Sequence[Any]) -> TaskOutput:
        where = self._where
        result, ready = self.featuriser.process([r.value for r in records], records[0].offset,
                                                lambda position: f"{where}{position}")
        return TaskOutput(result, _messages(ready))

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return self.featuriser.state()

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]:
        return self.featuriser.refresh_baselines()

    def close_block(self, next_offset: int) -> None:
        self.featuriser.close_block(next_offset)

    def take_outbox(self) -> list[tuple[bytes, bytes]]:
        return _messages(self.featuriser.take_outbox())

    def tick(self, now: float) -> BatchResult | None:
        return None


def _messages(batches: list) -> list[tuple[bytes, bytes]]:
    return [(b.model_id.encode("utf-8"), counts_codec.encode(b)) for b in batches]


class DetectTask:
    """``--role detect``: a counts partition → each of its models' Monitor → alerts."""

    role = "detect"
    cue_detectors: dict = {}

    def __init__(self, detector: CountsDetector, topic: str, partition: int):
        self.detector = detector
        self._where = f"{topic}[{partition}]"

    @property
    def monitors(self) -> dict:
        return self.detector.monitors

    def process(self, records: Sequence[Any]) -> TaskOutput:
        result = BatchResult()
        for record in records:
            try:
                batch = counts_codec.decode(record.value)
            except ValueError as exc:
                result.rejections.append(Rejection(record.offset, "bad_value",
                                                   f"{self._where}@{record.offset}: {exc}", record.value or b""))
                continue
            dropped = self.detector.receive(batch, time.monotonic())
            if dropped is not None:
                result.counts_batches[dropped] += 1
            if dropped == "overlap":
                log.error("%s@%d: counts of %s from %s offsets %d..%d overlap a block already received: two "
                          "featurisers owned that partition at once (a stalled one not yet fenced); dropped",
                          self._where, record.offset, batch.model_id, batch.source, batch.start, batch.end - 1)
        self._drain(result, time.monotonic())
        return TaskOutput(result)

    def _drain(self, result: BatchResult, now: float) -> BatchResult:
        events, outcomes = self.detector.drain(now)
        result.alerts += events
        result.counts_batches.update(outcomes)
        return result

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return self.detector.state()

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]:
        return self.detector.refresh_baselines()

    def close_block(self, next_offset: int) -> None:
        pass

    def take_outbox(self) -> list[tuple[bytes, bytes]]:
        return []

    def tick(self, now: float) -> BatchResult | None:
        result = self._drain(BatchResult(), now)
        return result if result.counts_batches else None


def new_task(role: str, store: BaselineStore, config: JanusConfig, arl: float | None, topic: str, partition: int,
             traffic: str | None, epoch: int) -> PartitionTask:
    """A fresh task for a partition claimed with ``epoch`` (featurisers tag their batches with it)."""
    if role == "all":
        return PipelineTask(Pipeline(store, config, arl), topic, partition, traffic)
    if role == "featurise":
        return FeaturiseTask(BlockFeaturiser(store, config, topic, partition, epoch, traffic=traffic))
    if role == "detect":
        return DetectTask(CountsDetector(store, config, arl), topic, partition)
    raise JanusError(f"unknown role {role!r} (one of {', '.join(ROLES)})")


def state_document(task: PartitionTask, meta: dict, service: dict) -> dict:
    """The checkpoint document of a task's state."""
    return {"format": CHECKPOINT_FORMAT, "role": task.role, _STATE_KEY[task.role]: meta, "service": service}


def restore_task(role: str, store: BaselineStore, config: JanusConfig, arl: float | None, topic: str, partition: int,
                 traffic: str | None, epoch: int, doc: dict, arrays: dict[str, np.ndarray]) -> PartitionTask:
    """The task a checkpoint document describes; JanusError if this version or role cannot use it."""
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise JanusError(f"the state of {topic}[{partition}] was not written by this version of the stream service "
                         f"(format {doc.get('format')!r})")
    written_by = doc.get("role", "all")  # states from before roles existed are --role all's
    if written_by != role or _STATE_KEY[role] not in doc:
        raise JanusError(f"the state of {topic}[{partition}] was written by `janus serve --role {written_by}`, and "
                         f"this instance runs --role {role}: give each role its own consumer group")
    meta = doc[_STATE_KEY[role]]
    if role == "all":
        return PipelineTask(Pipeline.restore(store, config, meta, arrays, arl=arl), topic, partition, traffic)
    if role == "featurise":
        return FeaturiseTask(BlockFeaturiser.restore(store, config, topic, partition, epoch, meta, arrays,
                                                     traffic=traffic))
    return DetectTask(CountsDetector.restore(store, config, meta, arrays, time.monotonic(), arl=arl), topic, partition)
