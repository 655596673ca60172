"""Checkpoints of per-partition detector state together with the offset they reflect.

One file per (consumer group, topic, partition)::

    <directory>/<group>/<topic>/<partition>.ckpt

holding, in this order: a magic line, a JSON header (format version, group, topic, partition,
next offset, write time, section lengths), the caller's JSON document, the caller's numpy
arrays as an ``.npz`` (never pickled: ``allow_pickle=False`` both ways, object arrays are
refused), and a SHA-256 of everything before it. A checkpoint is written to a temporary file
in the same directory, flushed and fsynced, renamed over the old one with ``os.replace`` and
the directory is fsynced: a reader sees the old checkpoint or the new one, never a mix, and
a crash cannot leave state from one batch next to the offset of another. A file that is
truncated, torn by a faulty disk, edited, or from an unknown format fails the length and
checksum checks and :meth:`CheckpointStore.load` raises :class:`CheckpointCorrupt` naming
the file: it is never used, and never silently replaced by "no checkpoint" (which would
restart the detectors from nothing and lose their evidence). :meth:`CheckpointStore.quarantine`
moves such a file aside when an operator decides to start that partition over.

Why a directory and not a compacted Kafka topic:

* simplicity: state and offset are one file, written and read with the standard library;
  there is no second consumer to run at assignment time and no topic to provision;
* atomicity comes from ``os.replace`` (plus fsyncs), which every POSIX filesystem gives;
  a compacted topic would need Kafka transactions (a transactional producer sending the
  state and committing the consumer offsets in one transaction) to tie the state to the
  offsets it reflects, and compaction is lazy, so a reader must scan to the latest value;
* it works on a shared volume (NFS, a Kubernetes ReadWriteMany claim), so the state of a
  partition "travels with it" to whichever instance the group assigns it to, exactly like
  the compacted topic would, as long as all instances of a group mount the same directory.
  (The rename is atomic on NFS too; the directory fsync makes it durable.)

Two instances never write the same file at the same time in normal operation because a
partition has one owner; if a rebalance races, each file is still self-consistent (state and
offset from the same writer), so the worst case is replaying a few records, not corrupting
the state.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from detector.errors import JanusError

__all__ = ["Checkpoint", "CheckpointCorrupt", "CheckpointStore", "FORMAT_VERSION"]

MAGIC = b"JANUS-CHECKPOINT\n"
FORMAT_VERSION = 1
_DIGEST = 32  # SHA-256
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

Checkpoint = tuple[int, dict[str, Any], dict[str, np.ndarray]]


class CheckpointCorrupt(JanusError):
    """A checkpoint file exists but is truncated, altered or unreadable; it was not used."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"checkpoint {path} is corrupt ({reason}); it was not used. Move it aside "
            f"(CheckpointStore.quarantine) to restart this partition from its committed offset"
        )


def _component(name: str, what: str) -> str:
    """A filesystem-safe path component for a group or topic name (bijective)."""
    if not isinstance(name, str) or not name:
        raise JanusError(f"checkpoint {what} must be a non-empty string, not {name!r}")
    if _SAFE.match(name) and name not in (".", ".."):
        return name
    return "%" + quote(name, safe="")  # leading % cannot occur in the plain form


class CheckpointStore:
    """Atomic per-partition checkpoints under ``directory/<group>/``.

    ``save(topic, partition, offset, meta, arrays)`` where ``offset`` is the *next* offset to
    consume (the last record the state reflects, plus one); ``load(topic, partition)`` returns
    ``(offset, meta, arrays)`` or ``None`` if there is no checkpoint.
    """

    def __init__(self, directory: str | os.PathLike[str], group: str = "janus", *, fsync: bool = True) -> None:
        self.root = Path(directory)
        self.group = group
        self.fsync = fsync
        self.directory = self.root / _component(group, "group")

    def path(self, topic: str, partition: int) -> Path:
        partition = _partition(partition)
        return self.directory / _component(topic, "topic") / f"{partition}.ckpt"

    # -- write --------------------------------------------------------------------------------

    def save(
        self,
        topic: str,
        partition: int,
        offset: int,
        meta: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> Path:
        """Write the checkpoint atomically and durably; returns its path."""
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
            "group": self.group,
            "topic": topic,
            "partition": partition,
            "offset": int(offset),
            "written_at": time.time(),
            "meta_bytes": len(meta_bytes),
            "npz_bytes": len(npz_bytes),
            "arrays": sorted(arrays),
        }
        header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        body = b"".join(
            [MAGIC, len(header_bytes).to_bytes(4, "big"), header_bytes, meta_bytes, npz_bytes]
        )
        digest = hashlib.sha256(body).digest()

        target = self.path(topic, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{partition}.ckpt.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.write(digest)
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
        return target

    # -- read ---------------------------------------------------------------------------------

    def load(self, topic: str, partition: int) -> Checkpoint | None:
        """``(offset, meta, arrays)``, or ``None`` if no checkpoint exists.

        Raises :class:`CheckpointCorrupt` if the file exists but does not verify.
        """
        path = self.path(topic, partition)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointCorrupt(path, f"unreadable: {exc}") from exc
        return _decode(path, data, self.group, topic, _partition(partition))

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
            topic = _unquote(name)
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


def _decode(path: Path, data: bytes, group: str, topic: str, partition: int) -> Checkpoint:
    minimum = len(MAGIC) + 4 + _DIGEST
    if len(data) < minimum:
        raise CheckpointCorrupt(path, f"truncated: {len(data)} bytes")
    if not data.startswith(MAGIC):
        raise CheckpointCorrupt(path, "not a Janus checkpoint (bad magic)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointCorrupt(path, "checksum mismatch (truncated or altered)")
    pos = len(MAGIC)
    header_len = int.from_bytes(body[pos : pos + 4], "big")
    pos += 4
    try:
        header = json.loads(body[pos : pos + header_len])
        pos += header_len
        if header.get("format") != FORMAT_VERSION:
            raise CheckpointCorrupt(path, f"unsupported format {header.get('format')!r}")
        meta_len, npz_len = int(header["meta_bytes"]), int(header["npz_bytes"])
        if pos + meta_len + npz_len != len(body):
            raise CheckpointCorrupt(path, "section lengths do not match the file size")
        if header.get("topic") != topic or header.get("partition") != partition or header.get("group") != group:
            raise CheckpointCorrupt(
                path,
                f"belongs to group {header.get('group')!r} topic {header.get('topic')!r} "
                f"partition {header.get('partition')!r}",
            )
        meta = json.loads(body[pos : pos + meta_len])
        pos += meta_len
        with np.load(io.BytesIO(body[pos : pos + npz_len]), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        offset = int(header["offset"])
    except CheckpointCorrupt:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CheckpointCorrupt(path, f"undecodable: {exc}") from exc
    if offset < 0:
        raise CheckpointCorrupt(path, f"negative offset {offset}")
    return offset, meta, arrays


def _partition(partition: int) -> int:
    if isinstance(partition, bool) or not isinstance(partition, (int, np.integer)) or partition < 0:
        raise JanusError(f"partition must be an integer >= 0, not {partition!r}")
    return int(partition)


def _unquote(name: str) -> str:
    if name.startswith("%"):
        from urllib.parse import unquote

        return unquote(name[1:])
    return name


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
