"""Versioned baseline store: ``<root>/<model>/<version>/`` as JSON + ``.npz`` with a SHA-256 manifest.

* Never pickle: arrays are loaded with ``allow_pickle=False``; metadata is JSON.
* Every load checks the manifest: a changed, missing or extra file is refused, naming it.
* ``ACTIVE`` names the live version and is replaced atomically (temp file + ``os.replace``)
  under a per-model lock, so concurrent promote/rollback never leave it broken.
* Model ids are sanitised into folder names: no id can write outside the store.
* Symbolic links inside the store are refused.
* ``audit.jsonl`` is append-only; each entry carries the SHA-256 of the previous line and
  ``audit.head`` the count and hash of the newest, so an edited or deleted entry, the last one
  included, breaks the chain (``verify_audit``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import zipfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

from detector.baseline.model import Baseline
from detector.errors import JanusError
from detector.features import Featurizer

META_FILE = "baseline.json"
ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "MANIFEST.sha256"
ACTIVE_FILE = "ACTIVE"
AUDIT_FILE = "audit.jsonl"
AUDIT_HEAD_FILE = "audit.head"
FORMAT = 3  # 2: conditions of predicted behaviour, data-quality and novelty features; 3: pluggable text embedders
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def model_dirname(model_id: str) -> str:
    """A folder name for a model id that cannot escape the store (``../x`` → ``_x+<hash>``)."""
    safe = _SAFE.sub("_", model_id)[:80].lstrip(".")
    if safe != model_id or not safe or safe == AUDIT_FILE:  # the audit log shares the root
        # "+" never survives sanitising, so no unchanged id can collide with a hashed name.
        safe = f"{safe or 'model'}+{hashlib.sha256(model_id.encode()).hexdigest()[:16]}"
    return safe


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class BaselineStore:
    """The versions of every model's baseline under ``root``.

    >>> from detector.baseline.build import build_baseline
    >>> from detector.records import Decision
    >>> store = BaselineStore(tempfile.mkdtemp())
    >>> evaluation = [Decision(f"e{i}", float(i), "m", "evaluation", refused=i % 9 == 0) for i in range(300)]
    >>> store.save(build_baseline(evaluation), actor="ana", reason="eval week 1", activate=True)
    '1'
    >>> store.active_version("m"), store.load_active("m").n_records, [e["action"] for e in store.audit("m")]
    ('1', 300, ['build', 'promote'])
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- paths and safety --------------------------------------------------------------------
    def _model_dir(self, model_id: str) -> Path:
        return self.root / model_dirname(model_id)

    def _check_no_links(self, *paths: Path) -> None:
        for path in paths:
            if path.is_symlink():
                raise JanusError(f"{path}: symbolic links are not allowed in the baseline store")

    @contextmanager
    def _lock(self, model_id: str):
        model_dir = self._model_dir(model_id)
        self._check_no_links(self.root, model_dir)  # before creating anything through a link
        model_dir.mkdir(parents=True, exist_ok=True)
        self._check_no_links(model_dir / ".lock")
        with open(model_dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield model_dir
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ---- write ---------------------------------------------------------------------------------
    def save(self, baseline: Baseline, *, actor: str, reason: str, activate: bool = False) -> str:
        """Store a new version of ``baseline`` (its version is set), optionally make it ACTIVE."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_no_links(self.root)
        with self._lock(baseline.model_id) as model_dir:
            self._check_no_links(model_dir)
            numbers = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
            version = str(max(numbers, default=0) + 1)
            final = model_dir / version
            tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}."))
            baseline.version = version
            baseline.actor, baseline.reason = actor, reason
            self._write_files(baseline, tmp)
            os.rename(tmp, final)
            _fsync_dir(model_dir)
            self._audit("build", baseline.model_id, version, actor, reason,
                        records=baseline.n_records, traffic=baseline.traffic, source=baseline.source,
                        model_versions=baseline.model_versions)
            if activate:
                self._set_active(model_dir, baseline.model_id, version, actor, reason, "promote")
        return version

    def _write_files(self, baseline: Baseline, folder: Path) -> None:
        fz_meta, fz_arrays = baseline.featurizer.state()
        arrays = {f"counts.{j}": c.astype(np.int64) for j, c in enumerate(baseline.counts)}
        arrays.update(fz_arrays)
        if baseline.reservoir_codes is not None:
            arrays["reservoir_codes"] = baseline.reservoir_codes
        meta = {
            "format": FORMAT,
            "model_id": baseline.model_id,
            "version": baseline.version,
            "n_records": baseline.n_records,
            "time_range": list(baseline.time_range),
            "model_versions": baseline.model_versions,
            "built_at": baseline.built_at,
            "traffic": baseline.traffic,
            "source": baseline.source,
            "reason": baseline.reason,
            "actor": baseline.actor,
            "n_features": len(baseline.counts),
            "featurizer": fz_meta,
            "reservoir": baseline.reservoir,
        }
        (folder / META_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        with (folder / ARRAYS_FILE).open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        lines = [f"{_sha256(folder / name)}  {name}\n" for name in (META_FILE, ARRAYS_FILE)]
        (folder / MANIFEST_FILE).write_text("".join(lines))
        for name in (META_FILE, ARRAYS_FILE, MANIFEST_FILE):
            with (folder / name).open("rb") as fh:
                os.fsync(fh.fileno())

    # ---- read ----------------------------------------------------------------------------------
    def versions(self, model_id: str) -> list[str]:
        model_dir = self._model_dir(model_id)
        if not model_dir.is_dir():
            return []
        return sorted((p.name for p in model_dir.iterdir() if p.name.isdigit()), key=int)

    def models(self) -> list[str]:
        """Model ids with at least one stored version (read from their metadata)."""
        if not self.root.is_dir():
            return []
        out = []
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            numbers = sorted((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
            if numbers:
                try:
                    out.append(orjson.loads((numbers[-1] / META_FILE).read_bytes())["model_id"])
                except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    raise JanusError(f"{numbers[-1] / META_FILE}: unreadable baseline metadata: {exc}") from None
        return out

    def active_version(self, model_id: str) -> str | None:
        path = self._model_dir(model_id) / ACTIVE_FILE
        self._check_no_links(path)
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def resolve(self, ref: str) -> tuple[str, str]:
        """``MODEL@VERSION`` or ``MODEL`` (its ACTIVE version) → (model_id, version)."""
        model_id, _, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
        version = version or self.active_version(model_id)
        if version is None:
            raise JanusError(f"{ref}: no active baseline for model {model_id!r} in {self.root}")
        return model_id, version

    def verify(self, model_id: str, version: str) -> Path:
        """Check the manifest of a stored version; return its folder or raise naming the problem."""
        if not version.isdigit():
            raise JanusError(f"{model_id}@{version}: versions are whole numbers")
        folder = self._model_dir(model_id) / version
        self._check_no_links(self.root, self._model_dir(model_id), folder)
        if not folder.is_dir():
            raise JanusError(f"{model_id}@{version}: no such baseline in {self.root}")
        manifest = folder / MANIFEST_FILE
        self._check_no_links(manifest)
        if not manifest.is_file():
            raise JanusError(f"{manifest}: manifest missing; the baseline cannot be trusted")
        expected = {}
        for line in manifest.read_text().splitlines():
            digest, _, name = line.partition("  ")
            expected[name] = digest
        present = {p.name for p in folder.iterdir()}
        for name in sorted(present - set(expected) - {MANIFEST_FILE}):
            raise JanusError(f"{folder / name}: file not in the manifest; refusing a tampered baseline")
        for name, digest in expected.items():
            path = folder / name
            self._check_no_links(path)
            if not path.is_file():
                raise JanusError(f"{path}: listed in the manifest but missing")
            if _sha256(path) != digest:
                raise JanusError(f"{path}: SHA-256 does not match the manifest; refusing a tampered baseline")
        return folder

    def load(self, model_id: str, version: str | None = None) -> Baseline:
        if version is None:
            model_id, version = self.resolve(model_id)
        folder = self.verify(model_id, version)
        meta = orjson.loads((folder / META_FILE).read_bytes())
        if meta.get("format") != FORMAT:
            raise JanusError(f"{folder / META_FILE}: baseline format {meta.get('format')!r}, this Janus reads "
                             f"format {FORMAT}: rebuild it with `janus baseline build`")
        try:
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # e.g. truncated, manifest rewritten
            raise JanusError(f"{folder / ARRAYS_FILE}: unreadable arrays: {exc}") from None
        return Baseline(
            model_id=meta["model_id"],
            featurizer=Featurizer.from_state(meta["featurizer"], arrays),
            counts=[arrays[f"counts.{j}"] for j in range(meta["n_features"])],
            n_records=meta["n_records"],
            time_range=tuple(meta["time_range"]),
            model_versions=meta["model_versions"],
            built_at=meta["built_at"],
            traffic=meta["traffic"],
            source=meta["source"],
            reason=meta["reason"],
            actor=meta["actor"],
            version=meta["version"],
            reservoir=meta["reservoir"],
            reservoir_codes=arrays.get("reservoir_codes"),
        )

    def load_active(self, model_id: str) -> Baseline | None:
        version = self.active_version(model_id)
        return None if version is None else self.load(model_id, version)

    # ---- promote / rollback ---------------------------------------------------------------------
    def _set_active(self, model_dir: Path, model_id: str, version: str, actor: str, reason: str,
                    action: str) -> str | None:
        self.verify(model_id, version)
        previous = self.active_version(model_id)
        atomic_write(model_dir / ACTIVE_FILE, f"{version}\n".encode())
        self._audit(action, model_id, version, actor, reason, previous=previous)
        return previous

    def promote(self, model_id: str, version: str, *, actor: str, reason: str) -> str | None:
        """Make ``version`` ACTIVE; returns the version it replaced."""
        with self._lock(model_id) as model_dir:
            return self._set_active(model_dir, model_id, version, actor, reason, "promote")

    def rollback(self, model_id: str, *, actor: str, reason: str, to: str | None = None) -> str:
        """Return ACTIVE to the version active before the current one (or to ``to``)."""
        with self._lock(model_id) as model_dir:
            current = self.active_version(model_id)
            if to is None:
                # Activations form a stack: a promotion pushes, a rollback pops, so repeated
                # rollbacks keep walking back (3 → 2 → 1) instead of toggling between two versions.
                stack: list[str] = []
                for entry in self.audit(model_id):
                    if entry["action"] == "promote":
                        stack.append(entry["version"])
                    elif entry["action"] == "rollback":
                        while stack and stack[-1] != entry["version"]:
                            stack.pop()
                        if not stack:
                            stack.append(entry["version"])
                while stack and stack[-1] == current:
                    stack.pop()
                if not stack:
                    raise JanusError(f"{model_id}: no earlier active version to roll back to")
                to = stack[-1]
            self._set_active(model_dir, model_id, to, actor, reason, "rollback")
            return to

    # ---- audit log -------------------------------------------------------------------------------
    def _audit(self, action: str, model_id: str, version: str, actor: str, reason: str, **details) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / AUDIT_FILE
        self._check_no_links(path)
        with open(path, "ab+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                lines = fh.read().splitlines()
                prev = hashlib.sha256(lines[-1]).hexdigest() if lines else ""
                entry = {"time": _now(), "actor": actor, "action": action, "model_id": model_id,
                         "version": version, "reason": reason, **details, "prev_sha256": prev}
                line = orjson.dumps(entry)
                fh.write(line + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
                # The head records the newest line's hash, so editing or dropping the last entry
                # (which no later line vouches for) is detected too.
                atomic_write(self.root / AUDIT_HEAD_FILE,
                             f"{len(lines) + 1} {hashlib.sha256(line).hexdigest()}\n".encode())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def audit(self, model_id: str | None = None) -> list[dict]:
        path = self.root / AUDIT_FILE
        if not path.exists():
            return []
        entries = [_audit_entry(path, n, line) for n, line in enumerate(path.read_bytes().splitlines(), 1)
                   if line.strip()]
        return [e for e in entries if model_id is None or e.get("model_id") == model_id]

    def verify_audit(self) -> int:
        """Check the hash chain of the audit log; returns the number of entries."""
        path = self.root / AUDIT_FILE
        lines = path.read_bytes().splitlines() if path.exists() else []
        prev = ""
        for number, line in enumerate(lines, 1):
            entry = _audit_entry(path, number, line)
            if entry.get("prev_sha256") != prev:
                raise JanusError(f"{path}:{number}: audit chain broken (an earlier entry was edited or removed)")
            prev = hashlib.sha256(line).hexdigest()
        head_path = self.root / AUDIT_HEAD_FILE
        head = head_path.read_text().split() if head_path.exists() else ["0", ""]
        if lines and head != [str(len(lines)), prev]:
            raise JanusError(f"{path}: the last entries do not match {head_path} "
                             "(the newest entry was edited or removed)")
        return len(lines)


def _audit_entry(path: Path, number: int, line: bytes) -> dict:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        entry = None
    if not isinstance(entry, dict):
        raise JanusError(f"{path}:{number}: not an audit entry (the log was edited or truncated)")
    return entry
