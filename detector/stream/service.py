"""``janus serve``: the stream service around :class:`detector.pipeline.Pipeline`.

One consumer group member reading one or more decision topics and running, for each partition it
owns, the task of its role (:mod:`detector.stream.tasks`): ``all`` (the default) the whole
pipeline; ``featurise`` the featuriser of the split roles, whose counts batches go to the counts
topic; ``detect`` the detector of the split roles, reading the counts topic. What follows is
said of ``all``; the split roles share all of it but the pipeline (:mod:`detector.split`).

* **Micro-batches.** Each ``poll()`` returns up to ``max_poll_records`` records per call,
  grouped by partition; each partition's values go through *its own* Pipeline in one
  ``pipeline.process(values, traffic=topic_traffic, first_position=<offset of values[0]>)``
  call, so an alert's ``record_index`` is the Kafka offset of the record that fired it.
  (A batch with an offset gap -- compaction, transaction markers -- is split into contiguous
  runs so this stays true.)
* **State travels with the partition.** A newly assigned partition is paused; right after the
  ``poll()`` that assigned it, the main thread *claims* it from the state store
  (:mod:`detector.stream.state`: the Kafka state topic by default, or a shared directory),
  restores its Pipeline from the newest state and seeks to that state's offset (no state: a
  fresh Pipeline at the group's committed offset, or the earliest one), then resumes it. The
  claim gives this owner a new epoch, which fences older owners' writes. On revocation (a
  rebalance or shutdown) the partition is checkpointed and its offset committed before another
  member can take it. Because state and offset are saved together atomically, a crash or a
  rebalance neither loses nor double-counts a record in the detectors.
* **Checkpoints** every ``every_records`` records or ``every_seconds`` seconds: first the alert
  and dead-letter producer is flushed (so a checkpoint never covers an output still in a send
  buffer), then every partition that changed is checkpointed (one log line with the bytes,
  messages and milliseconds it took), then the offsets are committed to Kafka (for lag
  monitoring; the checkpoint is the source of truth).
* **Outputs.** Rejected records go unchanged to the dead-letter topic (``<topic>.dlq``) with
  the reason in headers; alert events (``event.to_dict()``) go to ``janus.alerts`` keyed by
  model id and are written as JSON lines to ``alert_stream`` (stdout by default). Outputs are
  at-least-once: after a crash, records since the last checkpoint are replayed and their
  alerts produced again (same ``decision_id`` and ``record_index``, so consumers can
  de-duplicate). The audit sample for human review (``BatchResult.review_samples``) goes the
  same way to the review topic (opt-in: ``review.enabled``) and/or the ``review.jsonl`` file.
* **Stopping.** SIGTERM or SIGINT (or :meth:`StreamService.stop`) finishes the current batch,
  checkpoints, commits, closes the clients and makes :meth:`run` return 0. A second signal
  aborts at once.
* **Kafka unavailable.** Connecting is retried with exponential backoff (1 s to 30 s) and a
  log line per attempt; once running, kafka-python reconnects by itself, and failing commits
  or sends are logged and retried at the next checkpoint.

Threading note (kafka-python >= 3): rebalance callbacks run on the consumer's IO thread while
the main thread is blocked inside ``poll()`` or ``close()``, so they never overlap batch
processing. They must not call blocking consumer APIs (kafka-python raises), hence the
listener is an ``AsyncConsumerRebalanceListener`` that awaits the asynchronous commit.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.errors import JanusError
from detector.pipeline import BatchResult
from detector.stream.checkpoint import Claim, StateFenced, StateUnavailable
from detector.stream.dlq import DeadLetterPublisher
from detector.stream.kafka_config import kafka_kwargs, kafka_settings_from_config
from detector.stream.state import open_state_store
from detector.stream.tasks import ROLES, PartitionTask, group_for_role, new_task, restore_task, state_document

log = logging.getLogger("janus.stream")

__all__ = ["ServiceStats", "StreamService"]

# A dead letter is a record the cluster already accepted, of any size its broker allows (a 10 MiB
# message is rejected as too_large but must still reach the DLQ unchanged): the client-side size
# check must not be what refuses it, so it sits at Kafka's own request ceiling
# (socket.request.max.bytes, 100 MiB); the broker's per-topic limit is the real one.
MAX_OUTPUT_REQUEST_BYTES = 104_857_600


@dataclass
class ServiceStats:
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    alerts: int = 0
    batches: int = 0
    checkpoints: int = 0
    commits: int = 0
    commit_failures: int = 0
    outputs_dropped: int = 0
    review_samples: int = 0
    skipped_behind_checkpoint: int = 0
    fenced: int = 0  # partitions dropped because a newer owner claimed them
    assigned: list[tuple[str, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(map(list, v)) if k == "assigned" else v) for k, v in self.__dict__.items()}


@dataclass
class _Partition:
    topic: str
    partition: int
    task: PartitionTask
    claim: Claim
    next_offset: int | None  # next offset to process; None until known
    checkpoint_offset: int | None  # offset of the last checkpoint written/read
    records: int = 0  # processed since assignment
    dirty: bool = False  # state changed since the last checkpoint
    warned_behind: bool = False


class StreamService:
    """Consume decision topics in a consumer group and run one Pipeline per owned partition.

    Every keyword left as ``None`` comes from ``config`` (``[kafka]``, ``[checkpoint]``,
    ``[split]``); ``kafka_overrides`` replaces :func:`kafka_kwargs` settings (e.g.
    ``bootstrap_servers``, ``max_poll_interval_ms``, security options). ``role`` is ``all``,
    ``featurise`` or ``detect`` (:mod:`detector.stream.tasks`); ``checkpoint_dir`` keeps the state
    in that directory instead of the configured backend (:mod:`detector.stream.state`).
    """

    def __init__(
        self,
        store: BaselineStore,
        config: JanusConfig = JanusConfig(),
        *,
        role: str = "all",
        topics: Sequence[str] | None = None,
        traffic_by_topic: dict[str, str] | None = None,
        group_id: str | None = None,
        alert_topic: str | None = None,
        dlq_topic_template: str | None = None,
        review_topic: str | None = None,
        review_jsonl: str | os.PathLike[str] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every_records: int | None = None,
        checkpoint_every_seconds: float | None = None,
        arl: float | None = None,
        kafka_overrides: dict[str, Any] | None = None,
        client_id: str | None = None,
        alert_stream: TextIO | None = sys.stdout,
        on_batch: Callable[[str, int, BatchResult, float], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        poll_timeout_ms: int = 500,
        refresh_baselines_every_s: float = 30.0,
        unavailable_timeout_s: float | None = None,
        bootstrap_timeout_ms: int = 10_000,
    ) -> None:
        k = config.kafka
        self.store = store
        self.config = config
        if role not in ROLES:
            raise JanusError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        self.role = role
        self.counts_topic = config.split.counts_topic
        if role == "detect":  # reads what the featurisers publish
            self.topics = [self.counts_topic]
        else:
            self.topics = list(topics if topics is not None else k.topics)
            if not self.topics:
                raise JanusError("no decision topics to consume (kafka.topics is empty)")
            if role == "featurise" and self.counts_topic in self.topics:
                raise JanusError(f"the counts topic {self.counts_topic!r} is also a decision topic")
        self.traffic_by_topic = dict(traffic_by_topic if traffic_by_topic is not None else k.traffic_by_topic)
        for topic, traffic in self.traffic_by_topic.items():
            if traffic not in ("evaluation", "production"):
                raise JanusError(f"traffic for topic {topic!r} must be evaluation or production, not {traffic!r}")
        self.group_id = group_for_role(group_id or k.group_id, role)
        self.alert_topic = alert_topic or k.alert_topic
        self.dlq_topic_template = dlq_topic_template or ("{topic}" + k.dlq_suffix)
        if self.alert_topic in self.topics:
            raise JanusError(f"the alert topic {self.alert_topic!r} is also a decision topic")
        # The audit sample for human review (docs/review.md): a topic and/or a JSONL file ("" = off).
        if review_topic is None:
            review_topic = config.review.topic if config.review.enabled else ""
        self.review_topic = review_topic
        if self.review_topic and self.review_topic in self.topics:
            raise JanusError(f"the review topic {self.review_topic!r} is also a decision topic")
        self.review_jsonl = str(review_jsonl if review_jsonl is not None else config.review.jsonl)
        self._review_writer: Any = None
        self.every_records = int(checkpoint_every_records or config.checkpoint.every_records)
        self.every_seconds = float(checkpoint_every_seconds or config.checkpoint.every_seconds)
        self.arl = arl
        self.client_id = client_id or f"janus-{socket.gethostname()}-{os.getpid()}"
        settings = kafka_settings_from_config(config)
        settings.update(kafka_overrides or {})
        self._consumer_kwargs = kafka_kwargs("consumer", group_id=self.group_id, client_id=self.client_id, **settings)
        self._consumer_kwargs["bootstrap_timeout_ms"] = int(bootstrap_timeout_ms)
        self._producer_kwargs = kafka_kwargs("producer", client_id=f"{self.client_id}-out", **settings)
        self._producer_kwargs["bootstrap_timeout_ms"] = int(bootstrap_timeout_ms)
        self._producer_kwargs["max_request_size"] = max(MAX_OUTPUT_REQUEST_BYTES, 2 * config.limits.max_record_bytes)
        self.state = open_state_store(config.checkpoint, self.group_id, self.client_id, directory=checkpoint_dir,
                                      kafka_settings=settings, bootstrap_timeout_ms=bootstrap_timeout_ms)
        self.alert_stream = alert_stream
        self.on_batch = on_batch
        # After every poll, records or not (at least every poll_timeout_ms): what must stay current
        # while the stream is idle or the assignment changed (lag, checkpoint time, partitions per
        # model) is refreshed here, on the consumer's thread.
        self.on_tick = on_tick
        self.poll_timeout_ms = int(poll_timeout_ms)
        self.refresh_baselines_every_s = float(refresh_baselines_every_s)
        self.unavailable_timeout_s = unavailable_timeout_s

        self.stats = ServiceStats()
        self._parts: dict[Any, _Partition] = {}  # TopicPartition → state
        self._to_claim: set = set()  # assigned and paused until the main thread claims them
        self._claim_retry_at, self._claim_backoff = 0.0, 0.0  # while the state store is unavailable
        self._spread_reported: dict[str, int] = {}  # model id → partitions when last reported
        self._stop = threading.Event()
        self._signals = 0
        self._fatal: BaseException | None = None
        self._failed_outputs: deque = deque()
        self._consumer: Any = None
        self._producer: Any = None
        self._dlq: DeadLetterPublisher | None = None
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._last_refresh = time.monotonic()
        self._down_since: float | None = None
        self._down_logged = 0.0
        self.running = threading.Event()  # set once the group is joined and records can flow
        self.last_checkpoint_time: float | None = None  # wall clock of the last checkpoint written
        self.last_checkpoint_bytes = 0  # size of the last checkpoint round (all partitions written)
        self.last_checkpoint_seconds = 0.0  # and the time its writes took

    # ---- public -------------------------------------------------------------------------------

    @property
    def monitors(self) -> dict:
        """Every owned partition's monitors by model id (a model keyed to one partition, as producers
        should key it, appears once; otherwise the last partition's monitor is shown: see
        :meth:`model_partitions`)."""
        return {m: mon for part in list(self._parts.values()) for m, mon in part.task.monitors.items()}

    def model_partitions(self) -> dict[str, list[tuple[str, int]]]:
        """The owned partitions on which each monitored model has a Monitor of its own.

        More than one (here, or summed over instances: ``janus_model_partitions``) means the model's
        records are spread over partitions: each partition's Monitor spends the whole ARL budget.
        """
        out: dict[str, list[tuple[str, int]]] = {}
        for part in list(self._parts.values()):
            for model_id in part.task.monitors:
                out.setdefault(model_id, []).append((part.topic, part.partition))
        return {m: sorted(tps) for m, tps in out.items()}

    @property
    def cue_detectors(self) -> dict:
        """Every owned partition's monitoring-cue detectors by model id, like :attr:`monitors`."""
        return {m: det for part in list(self._parts.values()) for m, det in part.task.cue_detectors.items()}

    def review_counts(self) -> dict[tuple[str, str, str], int]:
        """Decisions sampled for review per (model_id, traffic, stratum), summed over the owned
        partitions (the "sampled" of ``janus_review_pending``)."""
        out: dict[tuple[str, str, str], int] = {}
        for part in list(self._parts.values()):
            for key, n in getattr(part.task, "review_counts", {}).items():
                out[key] = out.get(key, 0) + n
        return out

    def lags(self) -> dict[tuple[str, int], int]:
        """Records behind the high watermark per owned partition (as last fetched)."""
        out = {}
        consumer = self._consumer
        for tp, part in list(self._parts.items()):
            high = consumer.highwater(tp) if consumer is not None else None
            if high is not None and part.next_offset is not None:
                out[(tp.topic, tp.partition)] = max(high - part.next_offset, 0)
        return out

    def stop(self, reason: str = "stop requested") -> None:
        """Ask :meth:`run` to finish the current batch, checkpoint, commit and return (thread-safe)."""
        if not self._stop.is_set():
            log.info("stopping: %s; finishing the current batch", reason)
        self._stop.set()

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._parts)

    def _assignment_updated(self) -> None:
        self.stats.assigned = self.assignment()

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Consume until stopped; returns 0 after a clean shutdown.

        Raises :class:`~detector.errors.JanusError` (after checkpointing the healthy
        partitions) if a partition cannot be restored, e.g. its checkpoint is corrupt.
        """
        previous = self._install_signals() if install_signal_handlers else {}
        try:
            if not self._connect():
                return 0
            from kafka import AsyncConsumerRebalanceListener

            service = self

            class Listener(AsyncConsumerRebalanceListener):
                async def on_partitions_revoked(self, revoked):
                    await service._on_revoked(revoked)

                async def on_partitions_assigned(self, assigned):
                    service._on_assigned(assigned)

                async def on_partitions_lost(self, lost):
                    service._on_lost(lost)

            self._consumer.subscribe(self.topics, listener=Listener())
            outputs = f"counts → {self.counts_topic}" if self.role == "featurise" else f"alerts → {self.alert_topic}"
            log.info("role %s: consuming %s as group %r (%s, dead letters → %s, checkpoints in %s)", self.role,
                     ", ".join(self.topics), self.group_id, outputs, self.dlq_topic_template.format(topic="<topic>"),
                     self.state.location)
            self._loop()
            self._checkpoint(commit=True, reason="shutdown")
            return 0
        finally:
            self._close()
            self._restore_signals(previous)
            if self._fatal is not None:
                fatal, self._fatal = self._fatal, None
                raise fatal

    # ---- main loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        from kafka.errors import KafkaError

        backoff = 1.0
        while not self._stop.is_set() and self._fatal is None:
            try:
                batch = self._consumer.poll(timeout_ms=self.poll_timeout_ms)
                backoff = 1.0
            except KafkaError as exc:
                if self._fatal is not None:  # a listener failure, surfaced through poll()
                    break
                log.warning("Kafka poll failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(30.0, backoff * 2)
                continue
            if self._fatal is not None:
                break
            if self._to_claim:
                self._claim_assigned()
                if self._fatal is not None:
                    break
            if self._parts and not self.running.is_set():
                self.running.set()
            self._watch_connection()
            if batch:
                self._prefetch()
                self._process(batch)
            self._tick_tasks()
            if self._failed_outputs:  # resend once now (counts blocks wait for them); checkpoints back off longer
                self._flush_outputs(attempts=1)
            self._maybe_checkpoint()
            self._maybe_refresh_baselines()
            if self.on_tick is not None:
                self.on_tick()

    def _prefetch(self) -> None:
        """Ask for the next records now, so that they arrive while this batch is processed.

        kafka-python (3.0) sends the next fetch only from inside ``poll()``, and not at all when that
        ``poll()`` had to wait for the records it returns: each batch would then wait a whole fetch
        round trip (about 50 ms for 6 MB from the embedded broker, a sixth of the time featurising
        long texts). Its fetcher sends nothing for a partition that still has records buffered or a
        fetch in flight, so this never fetches twice. (A private API, hence looked up and skipped
        if absent.)
        """
        send = getattr(getattr(self._consumer, "_fetcher", None), "send_fetches", None)
        if send is not None:
            try:
                send()
            except Exception as exc:  # the next poll() fetches anyway
                log.debug("prefetch failed: %s", exc)

    def _watch_connection(self) -> None:
        """Say so, in our own words, when the group coordinator has been out of reach for a while.

        kafka-python reconnects by itself and logs every failed attempt; this adds one clear
        line every 30 s while the outage lasts and one when it ends. (Reads kafka-python's
        ``coordinator_id``, which is None while no coordinator is reachable.)
        """
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or not hasattr(coordinator, "coordinator_id"):
            return
        now = time.monotonic()
        if coordinator.coordinator_id is None:
            if self._down_since is None:
                self._down_since, self._down_logged = now, 0.0
            elif now - self._down_since >= 5.0 and now - self._down_logged >= 30.0:
                self._down_logged = now
                log.warning(
                    "no contact with the Kafka group coordinator (bootstrap %s) for %.0f s; reconnecting, "
                    "consumption resumes when Kafka is back",
                    ",".join(self._consumer_kwargs["bootstrap_servers"]), now - self._down_since,
                )
        elif self._down_since is not None:
            if self._down_logged:
                log.info("Kafka reachable again after %.0f s", now - self._down_since)
            self._down_since = None

    def _process(self, batch: dict) -> None:
        self.stats.batches += 1
        self._process_partitions(batch)
        self._report_spread_models()

    def _tick_tasks(self) -> None:
        """Work the tasks have due without new records (--role detect: blocks done waiting in the merge)."""
        now = time.monotonic()
        for part in list(self._parts.values()):
            started = time.perf_counter()
            result = part.task.tick(now)
            if result is not None:
                self._deliver(part, result, [], time.perf_counter() - started)
                part.dirty = True
                self._since_checkpoint += 1

    def _report_spread_models(self) -> None:
        """One warning each time a model's records are found on more partitions than before."""
        for model_id, tps in self.model_partitions().items():
            if len(tps) > self._spread_reported.get(model_id, 1):
                self._spread_reported[model_id] = len(tps)
                log.warning(
                    "model %s is seen on %d partitions of this instance (%s): each has a Monitor of its own that "
                    "spends the whole ARL budget, so it gets up to %d times the false alarms its ARL allows, and "
                    "evidence split %d ways. Have producers key its records by model_id, or run janus serve --role "
                    "featurise / --role detect (docs/runbooks.md#janusmodelonmanypartitions)",
                    model_id, len(tps), ", ".join(f"{t}[{p}]" for t, p in tps), len(tps), len(tps))

    def _process_partitions(self, batch: dict) -> None:
        for tp, records in batch.items():
            if not records:
                continue
            part = self._parts.get(tp)
            if part is None:
                log.warning("dropping %d fetched records of %s[%d]: partition not owned", len(records), tp.topic, tp.partition)
                continue
            if part.next_offset is not None and records[0].offset < part.next_offset:
                behind = [r for r in records if r.offset < part.next_offset]
                records = records[len(behind):]
                self.stats.skipped_behind_checkpoint += len(behind)
                if not part.warned_behind:
                    part.warned_behind = True
                    log.warning(
                        "%s[%d]: Kafka delivered offsets from %d but the checkpoint already covers up to %d; "
                        "skipping them so they are not counted twice (was the topic re-created?)",
                        tp.topic, tp.partition, behind[0].offset, part.next_offset - 1,
                    )
                if not records:
                    continue
            if part.next_offset is not None and records[0].offset > part.next_offset:
                log.warning(
                    "%s[%d]: offsets %d..%d are gone (retention or compaction) and were never seen by Janus",
                    tp.topic, tp.partition, part.next_offset, records[0].offset - 1,
                )
            try:
                self._process_partition(tp, part, records)
            except BaseException:
                # The pipeline may hold part of this batch while next_offset does not: checkpointing
                # it now would count those records twice after a restart. Forget the partition so
                # no revoke/shutdown checkpoint is written; its last checkpoint stays valid.
                self._parts.pop(tp, None)
                log.error("%s[%d]: processing failed mid-batch; its state since the last checkpoint is "
                          "discarded and its records from %s will be processed again after a restart",
                          tp.topic, tp.partition,
                          f"offset {part.checkpoint_offset}" if part.checkpoint_offset is not None
                          else "the committed (or earliest) offset")
                raise

    def _process_partition(self, tp: Any, part: _Partition, records: list) -> None:
        for run in _contiguous_runs(records):
            started = time.perf_counter()
            output = part.task.process(run)
            for key, value in output.messages:
                self._send(("counts", key, value))
            self.stats.records += len(run)
            self._deliver(part, output.result, run, time.perf_counter() - started)
        part.next_offset = records[-1].offset + 1
        part.records += len(records)
        part.dirty = True
        self._since_checkpoint += len(records)

    def _deliver(self, part: _Partition, result: BatchResult, run: list, seconds: float) -> None:
        """A task's result: dead letters (of ``run``'s records), alerts, review samples, stats, on_batch."""
        if result.rejections:
            first = run[0].offset
            for rejection in result.rejections:
                record = run[rejection.position - first]
                self._send(("dlq", record, rejection.reason, rejection.message))
        for event in result.alerts:
            self._emit_alert(event)
        if result.review_samples:
            self._emit_review(result.review_samples)
        self.stats.accepted += len(result.accepted)
        self.stats.rejected += len(result.rejections)
        self.stats.alerts += len(result.alerts)
        if self.on_batch is not None:
            self.on_batch(part.topic, part.partition, result, seconds)

    def _emit_alert(self, event: Any) -> None:
        payload = orjson.dumps(event.to_dict())
        self._send(("alert", event.model_id.encode("utf-8"), payload))
        if self.alert_stream is not None:
            try:
                self.alert_stream.write(payload.decode("utf-8") + "\n")
                self.alert_stream.flush()
            except (OSError, ValueError):  # a closed pipe must not stop detection
                pass

    def _emit_review(self, samples: list[dict]) -> None:
        """Audit samples to the review topic (keyed by model id) and/or the review JSONL file; like
        alerts they are at-least-once (a replay after a crash samples the same decisions again)."""
        from detector.review.sampler import SampleWriter, encode_sample

        self.stats.review_samples += len(samples)
        if self.review_topic:
            for sample in samples:
                self._send(("review", *encode_sample(sample)))
        if self.review_jsonl:
            if self._review_writer is None:
                self._review_writer = SampleWriter(self.review_jsonl).__enter__()
            self._review_writer.write(samples)

    # ---- outputs --------------------------------------------------------------------------------

    def _send(self, what: tuple) -> None:
        """Send one output (``(kind, key, payload)`` for kind alert, review or counts, or
        ``("dlq", record, reason, message)``)."""
        try:
            if what[0] in ("alert", "review", "counts"):
                kind, key, payload = what
                topic = {"alert": self.alert_topic, "review": self.review_topic, "counts": self.counts_topic}[kind]
                future = self._producer.send(topic, key=key, value=payload)
            else:
                _, record, reason, message = what
                future = self._dlq.send_record(record, reason, message)
        except Exception as exc:  # raised before queueing: buffer full / metadata timeout / too large
            self._failed_outputs.append((what, exc))
            return
        failed, producer = self._failed_outputs, self._producer
        # A failure reported by a producer replaced since (_renew_producer) is resent, never dropped.
        future.add_errback(lambda exc: failed.append((what, exc if producer is self._producer else None)))

    def _flush_outputs(self, attempts: int = 5) -> bool:
        """Deliver every alert and dead letter sent so far; False if some could not be delivered.

        Retriable failures (the cluster is away) are resent with backoff; an output Kafka refuses
        for good (too large for the broker, not authorised, invalid topic) is logged as an error
        with its source and counted in ``stats.outputs_dropped`` instead of blocking the stream.
        """
        if self._producer is None:
            return True
        delay = 1.0
        for attempt in range(attempts + 1):
            try:
                self._producer.flush(timeout=60)
            except Exception as exc:  # KafkaTimeoutError while the cluster is away
                log.warning("flushing alerts/dead letters to Kafka failed: %s", exc)
            if not self._failed_outputs:
                return True
            failed = list(self._failed_outputs)
            self._failed_outputs.clear()
            retry = []
            # A producer in a fatal state, or one that held outputs for its whole delivery timeout while
            # the broker answered others (seen on the embedded broker: every later send stuck too), is
            # replaced; its failures say nothing about the outputs themselves.
            broken = _in_fatal_state(self._producer) or any(exc is not None and _is_timeout(exc) for _, exc in failed)
            if broken:
                self._renew_producer()
            for what, exc in failed:
                if broken or getattr(exc, "retriable", False) or _is_timeout(exc):
                    retry.append(what)
                else:
                    self.stats.outputs_dropped += 1
                    log.error("Kafka refused %s: %s: %s", _describe_output(what), type(exc).__name__, exc)
            if not retry:
                return True
            if attempt == attempts:
                self._failed_outputs.extend((what, None) for what in retry)
                return False
            log.warning("%d alerts/dead letters not delivered yet (Kafka unavailable?); resending in %.0f s "
                        "(attempt %d of %d)", len(retry), delay, attempt + 1, attempts)
            time.sleep(delay)
            delay = min(30.0, delay * 2)
            for what in retry:
                self._send(what)
        return not self._failed_outputs

    def _renew_producer(self) -> None:
        """Replace a stuck producer: in kafka-python's fatal state, which it never leaves (e.g. a broker
        restored empty does not know its idempotent producer id, and every later send would fail), or
        one whose outputs expired unsent."""
        from kafka import KafkaProducer

        log.warning("the Kafka producer is stuck (a fatal state, or outputs held past their delivery timeout); "
                    "replacing it and resending its outputs")
        try:
            fresh = KafkaProducer(**self._producer_kwargs)
        except Exception as exc:  # Kafka away again: keep the broken one, retried on the next flush
            log.warning("cannot create a new Kafka producer yet: %s: %s", type(exc).__name__, exc)
            return
        old, self._producer = self._producer, fresh
        self._dlq = DeadLetterPublisher(fresh, self.dlq_topic_template)
        try:
            old.close(timeout=0)
        except Exception as exc:
            log.warning("closing the failed Kafka producer: %s", exc)

    # ---- checkpoints ----------------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        if self._since_checkpoint >= self.every_records or (
            self._since_checkpoint and time.monotonic() - self._last_checkpoint >= self.every_seconds
        ):
            self._checkpoint(commit=True, reason="periodic")

    def _write_checkpoints(self, parts: list[_Partition], reason: str) -> list[_Partition]:
        """Flush outputs, then checkpoint the dirty partitions; returns those written."""
        dirty = [p for p in parts if p.dirty and p.next_offset is not None]
        if not dirty:
            return []
        if not self._flush_outputs():
            log.error(
                "not checkpointing %s: alerts or dead letters could not be delivered to Kafka; their records "
                "will be processed again after a restart",
                ", ".join(f"{p.topic}[{p.partition}]" for p in dirty),
            )
            return []
        written, size, messages, seconds = [], 0, 0, 0.0
        for part in dirty:
            part.task.close_block(part.next_offset)
            meta, arrays = part.task.state()
            doc = state_document(part.task, meta, {"writer": self.client_id, "records_since_assignment": part.records})
            try:
                cost = self.state.save(part.claim, part.next_offset, doc, arrays)
            except StateFenced as exc:
                self._drop_fenced(part, exc)
                continue
            except (OSError, JanusError) as exc:
                log.error("checkpoint of %s[%d] failed: %s", part.topic, part.partition, exc)
                continue
            self._send_outbox(part.task)
            part.dirty = False
            part.checkpoint_offset = part.next_offset
            written.append(part)
            size, messages, seconds = size + cost.bytes, messages + cost.messages, seconds + cost.seconds
            self.stats.checkpoints += 1
        if written:
            self.last_checkpoint_time = time.time()
            self.last_checkpoint_bytes, self.last_checkpoint_seconds = size, seconds
            log.info("%s checkpoint to %s: %s; %s bytes in %d message%s, %.0f ms", reason, self.state.location,
                     ", ".join(f"{p.topic}[{p.partition}]@{p.next_offset}" for p in written), f"{size:,}", messages,
                     "" if messages == 1 else "s", 1000 * seconds)
        return written

    def _send_outbox(self, task: PartitionTask) -> None:
        """What a featuriser may publish only once a checkpoint holds it (detector.split.featurise)."""
        for key, value in task.take_outbox():
            self._send(("counts", key, value))

    def _drop_fenced(self, part: _Partition, exc: StateFenced) -> None:
        """A newer owner claimed the partition: stop processing it, write nothing more for it."""
        for tp in [tp for tp, p in self._parts.items() if p is part]:
            self._parts.pop(tp)
            self._consumer.pause(tp)
        self.stats.fenced += 1
        self._assignment_updated()
        log.warning("%s; its records since offset %s are processed by the new owner", exc, part.checkpoint_offset)

    def _checkpoint(self, *, commit: bool, reason: str) -> None:
        parts = list(self._parts.values())
        self._write_checkpoints(parts, reason)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        if commit:
            offsets = self._offsets([p for p in self._parts.values() if p.checkpoint_offset is not None])
            if offsets:
                self._commit_sync(offsets)

    def _offsets(self, parts: list[_Partition]) -> dict:
        from kafka import OffsetAndMetadata, TopicPartition

        return {
            TopicPartition(p.topic, p.partition): OffsetAndMetadata(p.checkpoint_offset, "", -1)
            for p in parts
            if p.checkpoint_offset is not None
        }

    def _commit_sync(self, offsets: dict) -> None:
        try:
            self._consumer.commit(offsets, timeout_ms=10_000)
            self.stats.commits += 1
        except Exception as exc:  # the checkpoint is the source of truth; the commit is for lag monitoring
            self.stats.commit_failures += 1
            log.warning("committing offsets to Kafka failed (%s: %s); will retry at the next checkpoint",
                        type(exc).__name__, exc)

    # ---- rebalance callbacks (IO thread, main thread blocked in poll/close) ---------------------

    def _on_assigned(self, assigned: set) -> None:
        # Claiming reads the state store (the state topic: possibly megabytes): not on the IO thread,
        # whose heartbeats must go on. The main thread claims them right after this poll().
        for tp in assigned:
            if tp not in self._parts:
                self._consumer.pause(tp)
                self._to_claim.add(tp)

    def _claim_assigned(self) -> None:
        """Claim the partitions assigned by the last poll(), restore their tasks and resume them."""
        if time.monotonic() < self._claim_retry_at:
            return
        pending = sorted(self._to_claim)
        self._to_claim.clear()
        try:
            claims = self.state.claim([(tp.topic, tp.partition) for tp in pending])
            tasks = [self._task_for(claim) for claim in claims]
        except StateUnavailable as exc:  # Kafka away: the partitions stay paused, claimed again later
            self._to_claim.update(pending)
            self._claim_backoff = min(30.0, 2 * self._claim_backoff or 1.0)
            self._claim_retry_at = time.monotonic() + self._claim_backoff
            log.warning("cannot claim %s yet (%s); retrying in %.0f s",
                        ", ".join(f"{tp.topic}[{tp.partition}]" for tp in pending), exc, self._claim_backoff)
            return
        except JanusError as exc:
            # Never guess: a partition whose state cannot be restored is not consumed at all.
            where = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in pending)
            log.error("cannot take over %s: %s", where, exc)
            self._fatal = JanusError(f"cannot take over {where}: {exc}")
            return
        self._claim_backoff = 0.0
        for tp, claim, task in zip(pending, claims, tasks):
            restored = claim.restored
            offset = restored.offset if restored is not None else None
            if restored is not None:
                self._consumer.seek(tp, offset)
                log.info("assigned %s[%d]: restored from %s at offset %d (state of epoch %d written by %s; "
                         "owner epoch now %d; %d models)", tp.topic, tp.partition, self.state.location, offset,
                         restored.epoch, restored.writer or "?", claim.epoch, len(task.monitors))
            else:
                log.info("assigned %s[%d]: no state in %s, starting fresh at the committed or earliest offset "
                         "(epoch %d)", tp.topic, tp.partition, self.state.location, claim.epoch)
            self._parts[tp] = _Partition(tp.topic, tp.partition, task, claim, offset, offset)
            self._send_outbox(task)  # the previous owner's last checkpoint may hold blocks it never sent
            self._consumer.resume(tp)
        self._assignment_updated()

    def _task_for(self, claim: Claim) -> PartitionTask:
        traffic = self.traffic_by_topic.get(claim.topic)
        if claim.restored is None:
            return new_task(self.role, self.store, self.config, self.arl, claim.topic, claim.partition, traffic,
                            claim.epoch)
        return restore_task(self.role, self.store, self.config, self.arl, claim.topic, claim.partition, traffic,
                            claim.epoch, claim.restored.meta, claim.restored.arrays)

    async def _on_revoked(self, revoked: set) -> None:
        self._to_claim.difference_update(revoked)
        parts = [self._parts[tp] for tp in sorted(revoked) if tp in self._parts]
        if parts:
            self._write_checkpoints(parts, "revoke")
            offsets = self._offsets(parts)
            if offsets:
                try:
                    await self._consumer.commit_async(offsets)
                    self.stats.commits += 1
                except Exception as exc:
                    self.stats.commit_failures += 1
                    log.warning("committing revoked offsets failed (%s: %s); the checkpoints still hold them",
                                type(exc).__name__, exc)
            log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]@{p.next_offset}" for p in parts))
        for tp in revoked:
            self._parts.pop(tp, None)
        self._assignment_updated()

    def _on_lost(self, lost: set) -> None:
        # The group already gave these partitions to someone else: writing their checkpoints now
        # could overwrite the new owner's newer state. Records since our last checkpoint will be
        # processed again by the new owner.
        self._to_claim.difference_update(lost)
        dropped = [tp for tp in lost if self._parts.pop(tp, None) is not None]
        if dropped:
            log.warning("lost %s without a chance to checkpoint (session expired?)",
                        ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(dropped)))
        self._assignment_updated()

    # ---- baselines ------------------------------------------------------------------------------

    def _maybe_refresh_baselines(self) -> None:
        if time.monotonic() - self._last_refresh < self.refresh_baselines_every_s:
            return
        self._last_refresh = time.monotonic()
        for part in self._parts.values():
            for model_id, old, new in part.task.refresh_baselines():
                log.info("%s[%d]: baseline of %s switched %s → %s (its detectors restart)",
                         part.topic, part.partition, model_id, old, new)
                part.dirty = True

    # ---- connection and shutdown ----------------------------------------------------------------

    def _connect(self) -> bool:
        """Create the producer and consumer, retrying while Kafka is unavailable; False if stopped."""
        from kafka import KafkaConsumer, KafkaProducer

        servers = ",".join(self._consumer_kwargs["bootstrap_servers"])
        delay, started = 1.0, time.monotonic()
        while not self._stop.is_set():
            try:
                if self._producer is None:
                    self._producer = KafkaProducer(**self._producer_kwargs)
                    self._dlq = DeadLetterPublisher(self._producer, self.dlq_topic_template)
                self.state.connect()
                self._consumer = KafkaConsumer(**self._consumer_kwargs)
                log.info("connected to Kafka at %s", servers)
                return True
            except Exception as exc:  # NoBrokersAvailable, KafkaTimeoutError, OSError, ...
                waited = time.monotonic() - started
                if self.unavailable_timeout_s is not None and waited >= self.unavailable_timeout_s:
                    raise JanusError(
                        f"Kafka at {servers} unavailable for {waited:.0f} s ({type(exc).__name__}: {exc})"
                    ) from None
                log.warning("Kafka at %s is unavailable (%s: %s); retrying in %.0f s",
                            servers, type(exc).__name__, exc, delay)
                self._stop.wait(delay)
                delay = min(30.0, delay * 2)
        return False

    def _close(self) -> None:
        consumer = self._consumer
        if consumer is not None:
            try:
                # Runs the revoke callback (checkpoint + commit of anything still dirty), then leaves the group.
                consumer.close(autocommit=False, timeout_ms=10_000)
            except Exception as exc:
                log.warning("closing the Kafka consumer: %s", exc)
            self._consumer = None
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.flush(timeout=30)
                producer.close(timeout=10)
            except Exception as exc:
                log.warning("closing the Kafka producer: %s", exc)
        self.state.close()
        self._parts.clear()
        self._to_claim.clear()
        self.running.clear()
        writer, self._review_writer = self._review_writer, None
        if writer is not None:
            writer.__exit__(None, None, None)

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def handler(signum: int, frame: Any) -> None:
            self._signals += 1
            if self._signals > 1:
                self._restore_signals(previous)
                raise KeyboardInterrupt
            self.stop(f"received {signal.Signals(signum).name}")

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for signum, handler in previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, TypeError):
                pass


def _contiguous_runs(records: list) -> list[list]:
    """Split records into runs of consecutive offsets (almost always a single run)."""
    if records[-1].offset - records[0].offset + 1 == len(records):
        return [records]
    runs, start = [], 0
    for i in range(1, len(records)):
        if records[i].offset != records[i - 1].offset + 1:
            runs.append(records[start:i])
            start = i
    runs.append(records[start:])
    return runs


def _in_fatal_state(producer: Any) -> bool:
    manager = getattr(producer, "_transaction_manager", None)  # kafka-python's idempotence state
    return bool(manager is not None and manager.has_fatal_error())


def _is_timeout(exc: BaseException | None) -> bool:
    return exc is None or "Timeout" in type(exc).__name__


def _describe_output(what: tuple) -> str:
    if what[0] == "review":
        return f"a review sample for {what[1].decode('utf-8', 'replace')} ({len(what[2])} bytes)"
    if what[0] in ("alert", "counts"):
        return f"{'an alert' if what[0] == 'alert' else 'a counts batch'} for {what[1].decode('utf-8', 'replace')} " \
               f"({len(what[2])} bytes)"
    record = what[1]
    size = len(record.value) if record.value is not None else 0
    return f"the dead letter of {record.topic}[{record.partition}]@{record.offset} ({size} bytes, {what[2]})"
