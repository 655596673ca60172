"""``--role featurise``: one decision partition's records → counts batches per model, in blocks.

Parsing and de-duplication are the pipeline's (:class:`detector.intake.Intake`); each production
record of a model with an active baseline is featurised by that baseline's featurizer and counted
into the open *block*. A block closes

* at every offset that is a multiple of ``block_records`` (``[split] block_records``), and
* when the service checkpoints the partition (so a quiet partition's counts still reach the
  detector within ``[checkpoint] every_seconds``).

A closed block becomes one :class:`~detector.split.counts.CountsBatch` per model that had records
in it, tagged with the block's offset range. Why the ends are chosen so: after a crash the next
owner replays from the last checkpoint, and the detector drops a replayed batch by its range
(:mod:`detector.split.detect`); that is exact only if the replay cuts the same blocks as the
first run did. Multiples of ``block_records`` are the same in every run; a block closed by a
checkpoint is not, so it is published only *after* the checkpoint that closed it was saved, and
the checkpoint holds it (the *outbox*) until the next one: the next owner publishes it again
from the state, and the detector drops the copy it already has. While an outbox waits (its
checkpoint could not be saved), later blocks wait behind it, so a model's batches reach the
detector in offset order.

Probe records (monitoring-cue pairs, docs/probes.md) and the audit sample for human review are
``--role all`` features; featurisers count probe records as decisions and skip them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from detector.baseline.model import Baseline
from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.intake import Intake
from detector.monitor.monitor import Evidence, scored_counts
from detector.pipeline import MAX_UNBASELINED_MODELS, BatchResult
from detector.records import Decision
from detector.split.counts import CountsBatch, decode, encode

__all__ = ["BlockFeaturiser"]


class BlockFeaturiser:
    """Counts batches of one source partition (see the module docstring)."""

    def __init__(self, store: BaselineStore, config: JanusConfig, topic: str, partition: int, epoch: int, *,
                 traffic: str | None = None):
        self.store = store
        self.config = config
        self.topic, self.partition, self.epoch = topic, int(partition), int(epoch)
        self.traffic = traffic
        self.block_records = config.split.block_records
        self.intake = Intake(config)
        self.baselines: dict[str, Baseline] = {}
        self._no_baseline: OrderedDict[str, None] = OrderedDict()  # bounded like the pipeline's
        self._block_start: int | None = None  # first offset of the open block
        self._open: dict[str, list[Decision]] = {}  # model → its production records in the open block
        self.outbox: list[CountsBatch] = []  # closed by a checkpoint, published after it was saved

    # ---- records ---------------------------------------------------------------------------------
    def process(self, values: Sequence[bytes | None], first_offset: int,
                locate: Callable[[int], str] | None = None) -> tuple[BatchResult, list[CountsBatch]]:
        """Values at consecutive offsets from ``first_offset``: the batch result (decisions,
        rejections) and the batches of the blocks that closed, ready to publish."""
        result = BatchResult()
        ready: list[CountsBatch] = []
        offset, end = first_offset, first_offset + len(values)
        while offset < end:
            block_end = (offset // self.block_records + 1) * self.block_records
            stop = min(end, block_end)
            decisions, rejections = self.intake.accept(values[offset - first_offset:stop - first_offset],
                                                       traffic=self.traffic, first_position=offset, locate=locate)
            result.accepted += decisions
            result.rejections += rejections
            if self._block_start is None:
                self._block_start = offset
            self._add(decisions, result)
            offset = stop
            if stop == block_end:
                ready += self._close(stop)
        if self.outbox:  # keep the order: nothing overtakes a block still waiting for its checkpoint
            self.outbox += ready
            ready = []
        return result, ready

    def _add(self, decisions: list[Decision], result: BatchResult) -> None:
        for d in decisions:
            result.decisions[(d.model_id, d.segment, d.traffic)] += 1
            if d.traffic != "production" or d.probe is not None:
                continue
            if self._baseline(d.model_id) is None:
                result.baseline_missing[d.model_id] += 1
            else:
                self._open.setdefault(d.model_id, []).append(d)

    def _close(self, end: int) -> list[CountsBatch]:
        """The open block as batches, its range ``[start, end)``; a new block opens at ``end``."""
        start, self._block_start = self._block_start, None
        open_, self._open = self._open, {}
        if start is None or start >= end:
            return []
        return [batch for model_id, decisions in sorted(open_.items())
                if (batch := self._batch(model_id, decisions, start, end)) is not None]

    def _batch(self, model_id: str, decisions: list[Decision], start: int, end: int) -> CountsBatch | None:
        baseline = self.baselines[model_id]
        known = baseline.model_versions
        new = [d.model_version is not None and bool(known) and d.model_version not in known for d in decisions]
        unbaselined = Counter(d.model_version for d, is_new in zip(decisions, new) if is_new)
        if self.config.detection.on_protocol_change == "pause":
            decisions = [d for d, is_new in zip(decisions, new) if not is_new]
        fz = baseline.featurizer
        if decisions:
            counts = scored_counts(fz.transform(decisions), fz)
        elif unbaselined:  # every record paused: the versions still count
            counts = [np.zeros((fz.n_cells(j), spec.n_codes), dtype=np.int64) for j, spec in enumerate(fz.specs)]
        else:
            return None
        if decisions:
            first, last = decisions[0], decisions[-1]
            first_time, evidence = first.timestamp, Evidence(last.decision_id, last.position, last.timestamp)
        else:
            first_time, evidence = 0.0, Evidence("", start, 0.0)
        return CountsBatch(model_id, baseline.version, self.topic, self.partition, start, end, self.epoch, counts,
                           first_time, evidence, unbaselined)

    def close_block(self, end: int) -> None:
        """A checkpoint at ``end`` (the next offset): the open block goes to the outbox."""
        self.outbox += self._close(end)

    def take_outbox(self) -> list[CountsBatch]:
        """The outbox, to publish now that a checkpoint holding it was saved (or restored)."""
        out, self.outbox = self.outbox, []
        return out

    # ---- baselines -------------------------------------------------------------------------------
    def _baseline(self, model_id: str) -> Baseline | None:
        baseline = self.baselines.get(model_id)
        if baseline is not None or model_id in self._no_baseline:
            return baseline
        version = self.store.active_version(model_id)
        if version is None:
            if len(self._no_baseline) >= MAX_UNBASELINED_MODELS:
                self._no_baseline.popitem(last=False)
            self._no_baseline[model_id] = None
            return None
        baseline = self.baselines[model_id] = self.store.load(model_id, version)
        return baseline

    def refresh_baselines(self) -> list[tuple[str, str | None, str | None]]:
        """Pick up promotions and rollbacks: a switched model's records in the open block are
        dropped (featurised for the old baseline; its detector restarts on the new one anyway)."""
        switches = []
        for model_id in list(self.baselines) + list(self._no_baseline):
            old = self.baselines[model_id].version if model_id in self.baselines else None
            new = self.store.active_version(model_id)
            if new != old:
                self.baselines.pop(model_id, None)
                self._no_baseline.pop(model_id, None)
                self._open.pop(model_id, None)
                switches.append((model_id, old, new))
        return switches

    # ---- state -----------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The de-duplication window and the outbox (taken at a checkpoint: no block is open)."""
        if self._open:
            raise RuntimeError("state() with an open block: close_block() first")
        arrays = self.intake.state()
        arrays.update({f"outbox.{i}": np.frombuffer(encode(b), dtype=np.uint8) for i, b in enumerate(self.outbox)})
        return {"outbox": len(self.outbox)}, arrays

    @classmethod
    def restore(cls, store: BaselineStore, config: JanusConfig, topic: str, partition: int, epoch: int,
                meta: dict, arrays: dict[str, np.ndarray], *, traffic: str | None = None) -> BlockFeaturiser:
        featuriser = cls(store, config, topic, partition, epoch, traffic=traffic)
        featuriser.intake.restore(arrays)
        # Sent again by this owner, so under its epoch (the detector drops what it already applied).
        featuriser.outbox = [dataclasses.replace(decode(arrays[f"outbox.{i}"].tobytes()), epoch=featuriser.epoch)
                             for i in range(int(meta["outbox"]))]
        return featuriser
