"""What the stream service runs for one owned partition: a task per ``janus serve --role``.

The service (:mod:`detector.stream.service`) owns the Kafka side -- assignment, state claims and
saves, offsets, outputs -- and hands each partition's records, one run of consecutive offsets at
a time, to that partition's task:

* ``all`` (:class:`PipelineTask`): the whole :class:`~detector.pipeline.Pipeline` on a decision
  topic partition: parse, de-duplicate, featurise, detect.

A task's state goes into the partition's checkpoint document under the role's own key, so a
partition is never restored into a task of another role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.errors import JanusError
from detector.pipeline import BatchResult, Pipeline

__all__ = ["ROLES", "PartitionTask", "PipelineTask", "TaskOutput", "new_task", "restore_task", "state_document"]

CHECKPOINT_FORMAT = 1
ROLES = ("all",)
_STATE_KEY = {"all": "pipeline"}


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


def new_task(role: str, store: BaselineStore, config: JanusConfig, arl: float | None, topic: str, partition: int,
             traffic: str | None) -> PartitionTask:
    if role == "all":
        return PipelineTask(Pipeline(store, config, arl), topic, partition, traffic)
    raise JanusError(f"unknown role {role!r} (one of {', '.join(ROLES)})")


def state_document(task: PartitionTask, meta: dict, service: dict) -> dict:
    """The checkpoint document of a task's state."""
    return {"format": CHECKPOINT_FORMAT, "role": task.role, _STATE_KEY[task.role]: meta, "service": service}


def restore_task(role: str, store: BaselineStore, config: JanusConfig, arl: float | None, topic: str, partition: int,
                 traffic: str | None, doc: dict, arrays: dict[str, np.ndarray]) -> PartitionTask:
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
    raise JanusError(f"unknown role {role!r}")  # pragma: no cover - guarded above
