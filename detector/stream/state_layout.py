"""How a partition's checkpoint is laid out as records of the compacted state topic (no Kafka IO here).

The value stored is the checkpoint record of :mod:`detector.stream.checkpoint` (SHA-256 and
identity checks included). Its keys, for the *base key* ``<group>/<topic>/<partition>`` of the
partition whose state it is (the group percent-encoded)::

    <base>@<epoch>                  manifest: epoch, write sequence, and the state inline,
                                    or the number of chunks and the slot holding them
    <base>@<epoch>#<slot>.<i>       chunk i of a state too large for one message (slot 0 or 1)

* **Epoch in the key: fencing that compaction cannot undo.** Every owner claims the partition
  with a new epoch, one above every epoch in the topic, by writing a claim manifest (no state)
  before it processes anything. Readers restore the state of the *highest epoch* that has one.
  A stale owner (stalled past its session, not yet told it lost the partition) keeps writing
  under its old epoch's key: readers ignore it, and because its key is not the new owner's,
  compaction -- which keeps the last record *per key* -- can never let it replace the newer
  state. After its first state write the new owner deletes (tombstones) the older epochs' keys.
* **Chunks.** A state larger than ``max_message_bytes`` is cut into chunks written before the
  manifest that names them. Successive writes alternate between two chunk slots, so a crash in
  the middle of a write only damages the slot the current manifest does not point at.
* All records of a base key go to one partition of the state topic
  (:func:`state_partition`), in write order, so a reader scans a single partition.

Chunking was chosen over compression: the de-duplication window, a large part of most states,
is random 64-bit digests that do not compress (zlib saved ~30% on a measured state), so a
compressed state could still exceed the broker's limit and would have to be refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from detector.errors import JanusError
from detector.stream.checkpoint import CheckpointCorrupt

__all__ = ["MIN_MESSAGE_BYTES", "RECORD_OVERHEAD", "Selection", "base_key", "claim_record", "select_state",
           "state_partition", "state_records"]

_MANIFEST = b"JANUS-STATE\n"
_CHUNK = b"JANUS-CHUNK\n"
RECORD_OVERHEAD = 1024  # key, chunk header and Kafka's record framing, below max_message_bytes
MIN_MESSAGE_BYTES = 16 * 1024
DROP_FIX = ("Delete the partition's state records (`janus state drop`) to restart it from its committed offset "
            "(its detectors start over)")


def base_key(group: str, topic: str, partition: int) -> str:
    return f"{quote(group, safe='')}/{topic}/{int(partition)}"


def _manifest_key(base: str, epoch: int) -> bytes:
    return f"{base}@{epoch}".encode("utf-8")


def _chunk_key(base: str, epoch: int, slot: int, index: int) -> bytes:
    return f"{base}@{epoch}#{slot}.{index}".encode("utf-8")


def _split_key(key: bytes) -> tuple[str, int, str] | None:
    """(base, epoch, chunk part or "") of a state key; None for anything else."""
    text = key.decode("utf-8", "replace")
    base, sep, rest = text.rpartition("@")
    if not sep:
        return None
    epoch, _, chunk = rest.partition("#")
    return (base, int(epoch), chunk) if epoch.isdigit() else None


def state_partition(base: str, partitions: int) -> int:
    """The state topic partition holding every record of ``base`` (the Java client's hash)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(base.encode("utf-8")) & 0x7FFFFFFF) % partitions


def _framed(magic: bytes, header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return magic + len(head).to_bytes(4, "big") + head + payload


def _unframed(magic: bytes, value: bytes) -> tuple[dict, bytes]:
    if not value.startswith(magic) or len(value) < len(magic) + 4:
        raise ValueError("not a Janus state record")
    pos = len(magic)
    n = int.from_bytes(value[pos:pos + 4], "big")
    header = json.loads(value[pos + 4:pos + 4 + n])
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header, value[pos + 4 + n:]


def claim_record(base: str, epoch: int) -> tuple[bytes, bytes]:
    """The manifest by which a new owner claims ``base`` with ``epoch`` (it holds no state)."""
    return _manifest_key(base, epoch), _framed(_MANIFEST, {"epoch": epoch, "seq": 0, "claim": True})


def state_records(base: str, epoch: int, seq: int, blob: bytes, max_message_bytes: int) -> list[tuple[bytes, bytes]]:
    """(key, value) records that store ``blob`` as write ``seq`` of ``epoch``: the manifest last."""
    if max_message_bytes < MIN_MESSAGE_BYTES:
        raise JanusError(f"checkpoint.max_message_bytes must be at least {MIN_MESSAGE_BYTES}, not {max_message_bytes}")
    room = max_message_bytes - RECORD_OVERHEAD
    header = {"epoch": epoch, "seq": seq, "claim": False, "size": len(blob)}
    if len(blob) <= room:
        return [(_manifest_key(base, epoch), _framed(_MANIFEST, {**header, "chunks": 0}, blob))]
    slot = seq % 2
    pieces = [blob[i:i + room] for i in range(0, len(blob), room)]
    out = [(_chunk_key(base, epoch, slot, i), _framed(_CHUNK, {"epoch": epoch, "seq": seq, "index": i}, piece))
           for i, piece in enumerate(pieces)]
    out.append((_manifest_key(base, epoch), _framed(_MANIFEST, {**header, "chunks": len(pieces), "slot": slot})))
    return out


@dataclass(frozen=True)
class Selection:
    """What the state topic holds for one base key."""

    blob: bytes | None  # the newest state's checkpoint record (None: no state)
    where: str  # names the manifest the blob came from, for messages
    epoch: int  # epoch of that state (0: none)
    highest_epoch: int  # highest epoch claimed, states or not (the next owner takes one more)
    keys: dict[bytes, int]  # every live key of the base → its epoch (to delete the older ones)


def select_state(base: str, latest: Mapping[bytes, bytes | None], where: str) -> Selection:
    """The newest state of ``base`` among ``latest`` (the last value of each key of a state topic
    partition, None for a deleted key), reassembled from its chunks.

    Raises :class:`~detector.stream.checkpoint.CheckpointCorrupt` if the newest state cannot be
    read: an older one is never used instead, since its offset is behind records whose effect
    (alerts) was already delivered.
    """
    keys: dict[bytes, int] = {}
    manifests: dict[int, tuple[bytes, bytes]] = {}
    for key, value in latest.items():
        parts = _split_key(key)
        if parts is None or parts[0] != base or value is None:
            continue
        keys[key] = parts[1]
        if not parts[2]:
            manifests[parts[1]] = (key, value)
    highest = max(keys.values(), default=0)
    for epoch in sorted(manifests, reverse=True):
        key, value = manifests[epoch]
        here = f"{where} key {key.decode('utf-8', 'replace')}"
        try:
            header, payload = _unframed(_MANIFEST, value)
            if header.get("claim"):
                continue
            blob = payload if header["chunks"] == 0 else _assemble(base, latest, header, here)
            if len(blob) != header["size"]:
                raise CheckpointCorrupt(here, f"{len(blob)} bytes where the manifest says {header['size']}", DROP_FIX)
        except CheckpointCorrupt:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointCorrupt(here, f"undecodable manifest: {exc}", DROP_FIX) from exc
        return Selection(blob, here, epoch, highest, keys)
    return Selection(None, where, 0, highest, keys)


def _assemble(base: str, latest: Mapping[bytes, bytes | None], manifest: dict, where: str) -> bytes:
    epoch, seq, slot = manifest["epoch"], manifest["seq"], manifest["slot"]
    pieces = []
    for i in range(int(manifest["chunks"])):
        value = latest.get(_chunk_key(base, epoch, slot, i))
        if value is None:
            raise CheckpointCorrupt(where, f"chunk {i + 1} of {manifest['chunks']} is missing", DROP_FIX)
        header, piece = _unframed(_CHUNK, value)
        if (header.get("epoch"), header.get("seq"), header.get("index")) != (epoch, seq, i):
            raise CheckpointCorrupt(where, f"chunk {i + 1} of {manifest['chunks']} belongs to another write "
                                           f"(write {header.get('seq')}, not {seq})", DROP_FIX)
        pieces.append(piece)
    return b"".join(pieces)
