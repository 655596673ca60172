"""A counts batch: what a featuriser sends the detector of one model for one block of records.

One message of the counts topic, keyed by model id. It carries the per-feature (cell, code) count
tables of the model's production records in the block (sparse: most cells of a block are empty),
the source partition and the offset range ``[start, end)`` of the block, the featuriser's owner
epoch of that partition, the last record of the model in the block (the evidence an alert names)
and the model versions without a baseline it counted. ``[start, end)`` is what lets the detector
drop a block replayed after a featuriser restarts (:mod:`detector.split.detect`).

Encoding: ``JANUS-COUNTS\\n``, a 4-byte header length, a JSON header, then per feature the
indices (row-major cell * codes + code) and the values of its non-zero entries as little-endian
uint32. Kafka's CRC guards the bytes in transit; :func:`decode` checks every length and range,
since a malformed message must become a dead letter, not a wrong count.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from detector.monitor.monitor import Evidence

__all__ = ["CountsBatch", "decode", "encode"]

MAGIC = b"JANUS-COUNTS\n"
VERSION = 1
_INDEX = np.dtype("<u4")


@dataclass
class CountsBatch:
    model_id: str
    baseline_version: str
    topic: str  # the source partition and the block's offset range [start, end)
    partition: int
    start: int
    end: int
    epoch: int  # the featuriser's owner epoch of the source partition
    counts: list[np.ndarray]  # per featurizer column: (cells, codes) counts of the model's production records
    first_time: float  # timestamp of the model's first record in the block (the detector merges sources by it)
    evidence: Evidence  # the model's last record in the block
    unbaselined: Counter = field(default_factory=Counter)  # model_version → records the baseline was not built on

    @property
    def source(self) -> str:
        return f"{self.topic}[{self.partition}]"


def encode(batch: CountsBatch) -> bytes:
    tables = [np.asarray(c) for c in batch.counts]
    flat = [t.ravel() for t in tables]
    nonzero = [np.flatnonzero(f) for f in flat]
    header = {
        "v": VERSION, "model_id": batch.model_id, "baseline_version": batch.baseline_version,
        "source": [batch.topic, batch.partition], "range": [batch.start, batch.end], "epoch": batch.epoch,
        "first_time": batch.first_time, "evidence": [batch.evidence.decision_id, batch.evidence.record_index, batch.evidence.time],
        "unbaselined": dict(batch.unbaselined), "shapes": [list(t.shape) for t in tables],
        "nnz": [len(i) for i in nonzero],
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    payload = b"".join(np.concatenate([i.astype(_INDEX), f[i].astype(_INDEX)]).tobytes()
                       for i, f in zip(nonzero, flat))
    return MAGIC + len(head).to_bytes(4, "big") + head + payload


def decode(value: bytes | None) -> CountsBatch:
    """The batch in a counts message; ValueError saying what is wrong with it."""
    if not value or not value.startswith(MAGIC) or len(value) < len(MAGIC) + 4:
        raise ValueError("not a Janus counts batch")
    pos = len(MAGIC)
    n = int.from_bytes(value[pos:pos + 4], "big")
    try:
        h = json.loads(value[pos + 4:pos + 4 + n])
        if h["v"] != VERSION:
            raise ValueError(f"counts format {h['v']!r}, this version reads {VERSION}")
        shapes, nnz = [tuple(int(x) for x in s) for s in h["shapes"]], [int(x) for x in h["nnz"]]
        topic, partition = str(h["source"][0]), int(h["source"][1])
        start, end = (int(x) for x in h["range"])
        decision_id, record_index, time = h["evidence"]
        evidence = Evidence(str(decision_id), int(record_index), float(time))
        unbaselined = Counter({str(k): int(v) for k, v in h["unbaselined"].items()})
        model_id, version, epoch = str(h["model_id"]), str(h["baseline_version"]), int(h["epoch"])
        first_time = float(h["first_time"])
    except (KeyError, TypeError, IndexError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"undecodable counts header: {exc}") from None
    if len(shapes) != len(nnz) or not 0 <= start < end:
        raise ValueError(f"inconsistent counts header ({len(shapes)} shapes, {len(nnz)} sizes, range {start}..{end})")
    payload = memoryview(value)[pos + 4 + n:]
    if len(payload) != 8 * sum(nnz):
        raise ValueError(f"counts payload of {len(payload)} bytes, the header announces {8 * sum(nnz)}")
    counts, at = [], 0
    for shape, k in zip(shapes, nnz):
        size = int(np.prod(shape))
        entries = np.frombuffer(payload[at:at + 8 * k], dtype=_INDEX)
        at += 8 * k
        index, values = entries[:k].astype(np.int64), entries[k:].astype(np.int64)
        if len(shape) != 2 or (k and (index.max() >= size or np.any(np.diff(index) <= 0))):
            raise ValueError(f"counts table of shape {shape} with out-of-range or unordered entries")
        table = np.zeros(size, dtype=np.int64)
        table[index] = values
        counts.append(table.reshape(shape))
    return CountsBatch(model_id, version, topic, partition, start, end, epoch, counts, first_time, evidence,
                       unbaselined)
