"""Checkpoints of per-partition detector state together with the offset they reflect: the record
format, the types every backend shares (a claim, the cost of a write, fencing and unavailability
errors), and the directory backend that stores one record per file.

The record (:func:`encode_checkpoint` / :func:`decode_checkpoint`), the same bytes in a file and
in the Kafka state topic (:mod:`detector.stream.state_topic`): a magic line, a JSON header
(format version, group, topic, partition, next offset, owner epoch, writer, write time, section
lengths), the caller's JSON document, the caller's numpy arrays as an ``.npz`` (never pickled:
``allow_pickle=False`` both ways, object arrays are refused), and a SHA-256 of everything before
it. A record that is truncated, torn by a faulty disk, edited, from an unknown format or from
another partition fails the length, checksum and identity checks and :class:`CheckpointCorrupt`
is raised naming where it was: it is never used, and never silently replaced by "no checkpoint"
(which would restart the detectors from nothing and lose their evidence).

The directory backend, one file per (consumer group, topic, partition)::

    <directory>/<group>/<topic>/<partition>.ckpt     the state and its offset
    <directory>/<group>/<topic>/<partition>.owner    the epoch of the partition's current owner

A checkpoint is written to a temporary file in the same directory, flushed and fsynced, renamed
over the old one with ``os.replace`` and the directory is fsynced: a reader sees the old
checkpoint or the new one, never a mix, and a crash cannot leave state from one batch next to
the offset of another. :meth:`CheckpointStore.quarantine` moves a corrupt file aside when an
operator decides to start that partition over.

Fencing. An instance taking a partition over *claims* it (:meth:`CheckpointStore.claim`): it
reads the checkpoint and writes the next epoch to the ``.owner`` file. A save with an epoch
checks the ``.owner`` file first and raises :class:`StateFenced` if a newer owner has claimed
the partition, so an old owner that stalled past its session (and does not know it lost the
partition yet) cannot overwrite the newer owner's state. (The check and the rename are two
steps: a stale write that slips between them is replaced by the new owner's first checkpoint,
and is itself a consistent state and offset.)

The directory gives exactly-once state only when every instance of a group mounts the *same*
directory (NFS, a Kubernetes ReadWriteMany claim; the rename is atomic there too). Instances on
hosts without a shared volume keep their state in the Kafka state topic instead
(``[checkpoint] backend = "kafka"``, the default; docs/runbooks.md, "State layouts").
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from detector.errors import JanusError

__all__ = ["Checkpoint", "CheckpointCorrupt", "CheckpointStore", "Claim", "FORMAT_VERSION", "StateFenced",
           "StateUnavailable", "StoredState", "Written", "decode_checkpoint", "encode_checkpoint"]

MAGIC = b"JANUS-CHECKPOINT\n"
FORMAT_VERSION = 1
_DIGEST = 32  # SHA-256
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
QUARANTINE_FIX = "Move it aside (CheckpointStore.quarantine) to restart this partition from its committed offset"

Checkpoint = tuple[int, dict[str, Any], dict[str, np.ndarray]]


@dataclass(frozen=True)
class StoredState:
    """A decoded checkpoint: the state after every record before ``offset``, written by the owner
    that claimed the partition with ``epoch``."""

    offset: int
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    epoch: int
    writer: str
    written_at: float


class CheckpointCorrupt(JanusError):
    """A checkpoint exists but is truncated, altered or unreadable; it was not used."""

    def __init__(self, where: str | Path, reason: str, fix: str = QUARANTINE_FIX) -> None:
        self.path = where
        self.reason = reason
        super().__init__(f"checkpoint {where} is corrupt ({reason}); it was not used. {fix}")


class StateFenced(JanusError):
    """A newer owner has claimed the partition: this (stale) owner's state is not written."""


class StateUnavailable(JanusError):
    """The state store cannot be read or written right now (Kafka away); worth retrying."""


@dataclass(frozen=True)
class Claim:
    """One partition taken over: the state to resume from (None: none) and this owner's epoch."""

    topic: str
    partition: int
    epoch: int
    restored: StoredState | None


@dataclass(frozen=True)
class Written:
    """The cost of one checkpoint write."""

    bytes: int
    messages: int  # Kafka records (chunks + manifest), or 1 file
    seconds: float


def _component(name: str, what: str) -> str:
    """A filesystem-safe path component for a group or topic name (bijective)."""
    if not isinstance(name, str) or not name:
        raise JanusError(f"checkpoint {what} must be a non-empty string, not {name!r}")
    if _SAFE.match(name) and name not in (".", ".."):
        return name
    return "%" + quote(name, safe="")  # leading % cannot occur in the plain form


def encode_checkpoint(group: str, topic: str, partition: int, offset: int, meta: dict[str, Any],
                      arrays: dict[str, np.ndarray] | None = None, *, epoch: int = 0, writer: str = "") -> bytes:
    """The checkpoint record of one partition's state (see the module docstring)."""
    partition = _partition(partition)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise JanusError(f"checkpoint offset must be an integer >= 0, not {offset!r}")
    if not isinstance(meta, dict):
        raise JanusError(f"checkpoint meta must be a dict, not {type(meta).__name__}")
    arrays = dict(arrays or {})
    for name, arr in arrays.items():
        if not isinstance(name, str) or not name:
            raise JanusError(f"checkpoint array names must be non-empty strings, not {name!r}")
        if not isinstance(arr, np.ndarray):
            arrays[name] = arr = np.asarray(arr)
        if arr.dtype.hasobject:
            raise JanusError(f"checkpoint array {name!r} has dtype object; only plain numeric/str arrays are stored")
    try:
        meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise JanusError(f"checkpoint meta for {topic}[{partition}] is not JSON-serialisable: {exc}") from exc
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    npz_bytes = buf.getvalue()
    header = {
        "format": FORMAT_VERSION,
        "group": group,
        "topic": topic,
        "partition": partition,
        "offset": int(offset),
        "epoch": int(epoch),
        "writer": writer,
        "written_at": time.time(),
        "meta_bytes": len(meta_bytes),
        "npz_bytes": len(npz_bytes),
        "arrays": sorted(arrays),
    }
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    body = b"".join([MAGIC, len(header_bytes).to_bytes(4, "big"), header_bytes, meta_bytes, npz_bytes])
    return body + hashlib.sha256(body).digest()


def decode_checkpoint(where: str | Path, data: bytes, group: str, topic: str, partition: int, *,
                      fix: str = QUARANTINE_FIX) -> StoredState:
    """Verify and decode a checkpoint record of ``group``'s ``topic[partition]``; raises
    :class:`CheckpointCorrupt` (naming ``where``, with ``fix`` as the advice) if it does not verify."""
    partition = _partition(partition)
    minimum = len(MAGIC) + 4 + _DIGEST
    if len(data) < minimum:
        raise CheckpointCorrupt(where, f"truncated: {len(data)} bytes", fix)
    if not data.startswith(MAGIC):
        raise CheckpointCorrupt(where, "not a Janus checkpoint (bad magic)", fix)
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointCorrupt(where, "checksum mismatch (truncated or altered)", fix)
    pos = len(MAGIC)
    header_len = int.from_bytes(body[pos : pos + 4], "big")
    pos += 4
    try:
        header = json.loads(body[pos : pos + header_len])
        pos += header_len
        if header.get("format") != FORMAT_VERSION:
            raise CheckpointCorrupt(where, f"unsupported format {header.get('format')!r}", fix)
        meta_len, npz_len = int(header["meta_bytes"]), int(header["npz_bytes"])
        if pos + meta_len + npz_len != len(body):
            raise CheckpointCorrupt(where, "section lengths do not match the record size", fix)
        if header.get("topic") != topic or header.get("partition") != partition or header.get("group") != group:
            raise CheckpointCorrupt(
                where,
                f"belongs to group {header.get('group')!r} topic {header.get('topic')!r} "
                f"partition {header.get('partition')!r}",
                fix,
            )
        meta = json.loads(body[pos : pos + meta_len])
        pos += meta_len
        with np.load(io.BytesIO(body[pos : pos + npz_len]), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        offset = int(header["offset"])
        # Records written before owners had epochs count as epoch 0.
        epoch, writer, written_at = int(header.get("epoch", 0)), str(header.get("writer", "")), float(header["written_at"])
    except CheckpointCorrupt:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CheckpointCorrupt(where, f"undecodable: {exc}", fix) from exc
    if offset < 0:
        raise CheckpointCorrupt(where, f"negative offset {offset}", fix)
    return StoredState(offset, meta, arrays, epoch, writer, written_at)


class CheckpointStore:
    """Atomic per-partition checkpoints under ``directory/<group>/``.

    ``save(topic, partition, offset, meta, arrays)`` where ``offset`` is the *next* offset to
    consume (the last record the state reflects, plus one); ``load(topic, partition)`` returns
    ``(offset, meta, arrays)`` or ``None`` if there is no checkpoint. An owner that claimed the
    partition (:meth:`claim`) passes its ``epoch`` to :meth:`save` to be fenced.
    """

    def __init__(self, directory: str | os.PathLike[str], group: str = "janus", *, fsync: bool = True) -> None:
        self.root = Path(directory)
        self.group = group
        self.fsync = fsync
        self.directory = self.root / _component(group, "group")

    def path(self, topic: str, partition: int) -> Path:
        partition = _partition(partition)
        return self.directory / _component(topic, "topic") / f"{partition}.ckpt"

    def owner_path(self, topic: str, partition: int) -> Path:
        return self.path(topic, partition).with_suffix(".owner")

    # -- write --------------------------------------------------------------------------------

    def save(self, topic: str, partition: int, offset: int, meta: dict[str, Any],
             arrays: dict[str, np.ndarray] | None = None, *, epoch: int | None = None, writer: str = "") -> Path:
        """Write the checkpoint atomically and durably; returns its path.

        With ``epoch`` (the value :meth:`claim` returned), raises :class:`StateFenced` instead of
        writing when a newer owner has claimed the partition since.
        """
        partition = _partition(partition)
        data = encode_checkpoint(self.group, topic, partition, offset, meta, arrays,
                                 epoch=epoch or 0, writer=writer)
        if epoch is not None:
            owner = self._owner_epoch(topic, partition)
            if owner > epoch:
                raise StateFenced(
                    f"{topic}[{partition}] was claimed by a newer owner (epoch {owner}, ours {epoch}); "
                    f"this instance lost it and does not write its checkpoint")
        target = self.path(topic, partition)
        self._write_atomically(target, data)
        return target

    def claim(self, topic: str, partition: int) -> tuple[StoredState | None, int]:
        """Take the partition over: its checkpoint (None if there is none) and this owner's epoch,
        one above every epoch seen, recorded so that older owners are fenced from now on."""
        stored = self.read(topic, partition)
        epoch = max(self._owner_epoch(topic, partition), stored.epoch if stored else 0) + 1
        self._write_atomically(self.owner_path(topic, partition), str(epoch).encode("ascii"))
        return stored, epoch

    def _owner_epoch(self, topic: str, partition: int) -> int:
        path = self.owner_path(topic, partition)
        try:
            return int(path.read_bytes().decode("ascii").strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise CheckpointCorrupt(path, f"unreadable owner epoch: {exc}",
                                    "Delete the .owner file; the next owner to claim the partition rewrites it")

    def _write_atomically(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
            raise
        if self.fsync:
            _fsync_dir(target.parent)

    # -- read ---------------------------------------------------------------------------------

    def read(self, topic: str, partition: int) -> StoredState | None:
        """The checkpoint with its epoch and writer, or ``None`` if there is none.

        Raises :class:`CheckpointCorrupt` if the file exists but does not verify.
        """
        path = self.path(topic, partition)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointCorrupt(path, f"unreadable: {exc}") from exc
        return decode_checkpoint(path, data, self.group, topic, partition)

    def load(self, topic: str, partition: int) -> Checkpoint | None:
        """``(offset, meta, arrays)``, or ``None`` if no checkpoint exists (see :meth:`read`)."""
        stored = self.read(topic, partition)
        return None if stored is None else (stored.offset, stored.meta, stored.arrays)

    def exists(self, topic: str, partition: int) -> bool:
        return self.path(topic, partition).exists()

    def partitions(self) -> list[tuple[str, int]]:
        """(topic, partition) pairs that have a checkpoint file in this group."""
        out = []
        if not self.directory.is_dir():
            return out
        for topic_dir in sorted(self.directory.iterdir()):
            if not topic_dir.is_dir():
                continue
            name = topic_dir.name
            topic = unquote(name[1:]) if name.startswith("%") else name
            for f in topic_dir.glob("*.ckpt"):
                if f.stem.isdigit():
                    out.append((topic, int(f.stem)))
        return sorted(out)

    def delete(self, topic: str, partition: int) -> bool:
        path = self.path(topic, partition)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        if self.fsync:
            _fsync_dir(path.parent)
        return True

    def quarantine(self, topic: str, partition: int) -> Path | None:
        """Rename a (corrupt) checkpoint to ``<partition>.ckpt.corrupt-<time>``; returns the new path."""
        path = self.path(topic, partition)
        if not path.exists():
            return None
        dest = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        os.replace(path, dest)
        if self.fsync:
            _fsync_dir(path.parent)
        return dest


def _partition(partition: int) -> int:
    if isinstance(partition, bool) or not isinstance(partition, (int, np.integer)) or partition < 0:
        raise JanusError(f"partition must be an integer >= 0, not {partition!r}")
    return int(partition)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)
