"""Analysts' verdicts on sampled decisions: an append-only, hash-chained verdict log.

* A verdict names a sampled decision (``decision_id``), says ``ok``, ``violation`` or ``unsure``,
  and who decided (``reviewer``), optionally with a ``note``.
* Only decisions of the audit sample can get a verdict: an unknown id is refused, naming the
  sample files searched; a decision that already has a verdict is refused, naming the earlier one
  (a verdict is never silently replaced).
* A batch (``janus review record --input verdicts.jsonl``) is all or nothing: every line is
  checked first and nothing is appended unless all are valid.
* Each entry copies the design of its sample (model, traffic, stratum, inclusion probability,
  decision time), so the log alone supports the weighted estimates; it carries the SHA-256 of the
  previous line, and ``verdicts.head`` the count and hash of the newest, so an edited or removed
  entry is detected (as for the baseline audit log).

The default place of the log is next to the baseline store: ``<store>.review/verdicts.jsonl``.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from detector.baseline.store import atomic_write
from detector.config import REVIEW_STRATA, JanusConfig
from detector.errors import JanusError, file_error
from detector.records import TRAFFIC_VALUES

VERDICTS = ("ok", "violation", "unsure")
VERDICT_FIELDS = ("decision_id", "verdict", "reviewer", "note")
MAX_ID_CHARS = 128
MAX_NOTE_CHARS = 4_000
MAX_ERRORS_SHOWN = 10


def review_dir(store_root: str | Path) -> Path:
    """``<store>.review``: the review folder next to the baseline store (never inside it, where a
    model id could name the same folder)."""
    root = Path(store_root).resolve()
    return root.with_name(root.name + ".review")


def verdict_log_path(config: JanusConfig, store_root: str | Path | None = None) -> Path:
    if config.review.verdict_log:
        return Path(config.review.verdict_log)
    return review_dir(store_root if store_root is not None else config.store) / "verdicts.jsonl"


def default_sample_paths(config: JanusConfig, store_root: str | Path | None = None) -> list[Path]:
    """Where sampled records are looked up when no ``--samples`` is given."""
    if config.review.jsonl:
        return [Path(config.review.jsonl)]
    return [review_dir(store_root if store_root is not None else config.store) / "samples.jsonl"]


# ---- the audit sample, as written by the sampler -------------------------------------------------
@dataclass(frozen=True, slots=True)
class SampleRef:
    """The design facts of one sampled decision (what the estimates need)."""

    decision_id: str
    model_id: str
    traffic: str
    stratum: str
    inclusion_probability: float
    timestamp: float
    model_version: str | None = None


def _sample_ref(obj: Any) -> SampleRef:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    for key in ("decision_id", "model_id"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise ValueError(f"{key} must be a non-empty string")
    if obj.get("traffic") not in TRAFFIC_VALUES:
        raise ValueError(f"traffic must be one of {', '.join(TRAFFIC_VALUES)}, got {obj.get('traffic')!r}")
    if obj.get("stratum") not in REVIEW_STRATA:
        raise ValueError(f"stratum must be one of {', '.join(REVIEW_STRATA)}, got {obj.get('stratum')!r}")
    p = obj.get("inclusion_probability")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"inclusion_probability must be a number in (0, 1], got {p!r}")
    t = obj.get("timestamp")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ValueError(f"timestamp must be a number (epoch seconds), got {t!r}")
    version = obj.get("model_version")
    return SampleRef(obj["decision_id"], obj["model_id"], obj["traffic"], obj["stratum"], float(p), float(t),
                     version if isinstance(version, str) else None)


class SampleIndex:
    """Sampled decisions by id, read from sample JSONL files (``backtest --review-out``, the
    ``review.jsonl`` of ``janus serve``); the first occurrence of an id wins (a replay samples the
    same decisions again).

    >>> index = SampleIndex()
    >>> index.add([{"decision_id": "d1", "model_id": "m", "traffic": "production", "stratum": "base",
    ...             "inclusion_probability": 0.01, "timestamp": 0}])
    >>> index.get("d1").inclusion_probability, index.counts()
    (0.01, Counter({('m', 'production', 'base'): 1}))
    """

    def __init__(self, samples: Iterable[SampleRef] = ()):
        self.samples: dict[str, SampleRef] = {}
        self.sources: list[str] = []
        for s in samples:
            self.samples.setdefault(s.decision_id, s)

    @classmethod
    def load(cls, paths: Sequence[str | Path], *, missing_ok: bool = False) -> SampleIndex:
        index = cls()
        for path in paths:
            index.read(path, missing_ok=missing_ok)
        return index

    def read(self, path: str | Path, *, missing_ok: bool = False) -> int:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if missing_ok:
                return 0
            raise JanusError(f"{path}: sample file not found (written by `janus backtest --review-out` or "
                             "by `janus serve` with review.jsonl)") from None
        except OSError as exc:
            raise file_error(exc, path, "read sample file") from None
        self.sources.append(str(path))
        added = 0
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                ref = _sample_ref(orjson.loads(line))
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise JanusError(f"{path}:{number}: not a review sample: {exc}") from None
            if ref.decision_id not in self.samples:
                self.samples[ref.decision_id] = ref
                added += 1
        return added

    def add(self, samples: Iterable[dict]) -> None:
        for s in samples:
            ref = _sample_ref(s)
            self.samples.setdefault(ref.decision_id, ref)

    def get(self, decision_id: str) -> SampleRef | None:
        return self.samples.get(decision_id)

    def __len__(self) -> int:
        return len(self.samples)

    def counts(self, model_id: str | None = None, since: float | None = None) -> Counter:
        """Sampled decisions per (model_id, traffic, stratum)."""
        return Counter((s.model_id, s.traffic, s.stratum) for s in self.samples.values()
                       if (model_id is None or s.model_id == model_id) and (since is None or s.timestamp >= since))


# ---- verdicts -------------------------------------------------------------------------------------
def parse_verdict(obj: Any) -> dict:
    """Check one verdict as given by an analyst; returns it normalised or raises ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(VERDICT_FIELDS))
    if unknown:
        raise ValueError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"(a verdict has {', '.join(VERDICT_FIELDS)})")
    decision_id = _name(obj, "decision_id", "")
    verdict = obj.get("verdict")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    reviewer = _name(obj, "reviewer", " (who gave the verdict)")
    note = obj.get("note")
    if note is not None and not isinstance(note, str):
        raise ValueError(f"note must be a string, got {type(note).__name__}")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"note is longer than {MAX_NOTE_CHARS} characters")
    return {"decision_id": decision_id, "verdict": verdict, "reviewer": reviewer.strip(), "note": note or ""}


def _name(obj: dict, key: str, hint: str) -> str:
    """A required, non-blank string field of at most MAX_ID_CHARS characters."""
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} is missing or not a non-empty string{hint}")
    if len(value) > MAX_ID_CHARS:
        raise ValueError(f"{key} is longer than {MAX_ID_CHARS} characters")
    return value


def read_verdicts_jsonl(path: str | Path) -> list[tuple[str, Any]]:
    """(where, parsed JSON or the exception) per non-blank line of an import file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise file_error(exc, path, "read verdicts") from None
    out: list[tuple[str, Any]] = []
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                out.append((f"{path}:{number}", orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                out.append((f"{path}:{number}", ValueError(f"not JSON: {exc}")))
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class VerdictLog:
    """The append-only verdict log (JSONL with a hash chain and a head file).

    >>> import tempfile
    >>> index = SampleIndex()
    >>> index.add([{"decision_id": "d1", "model_id": "m", "traffic": "production", "stratum": "base",
    ...             "inclusion_probability": 0.01, "timestamp": 0}])
    >>> log = VerdictLog(Path(tempfile.mkdtemp()) / "verdicts.jsonl")
    >>> [e["stratum"] for e in log.record([("cli", {"decision_id": "d1", "verdict": "ok", "reviewer": "ana"})], index)]
    ['base']
    >>> log.record([("cli", {"decision_id": "d1", "verdict": "violation", "reviewer": "bo"})], index)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    detector.errors.JanusError: 1 of 1 verdict(s) refused, none recorded:
      cli: decision 'd1' already has a verdict (ok by ana at ...); verdicts are never replaced
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name.removesuffix(".jsonl") + ".head")

    def _check_no_links(self) -> None:
        for p in (self.path, self.head_path):
            if p.is_symlink():
                raise JanusError(f"{p}: symbolic links are not allowed for the verdict log")

    def entries(self) -> list[dict]:
        """Every entry, after checking the hash chain and the head."""
        self._check_no_links()
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return self._verify(lines)

    def _verify(self, lines: list[bytes]) -> list[dict]:
        entries, prev = [], ""
        for number, line in enumerate(lines, 1):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                raise JanusError(f"{self.path}:{number}: not a verdict entry (the log was edited or truncated)")
            if entry.get("prev_sha256") != prev:
                raise JanusError(f"{self.path}:{number}: verdict chain broken (an earlier entry was edited or removed)")
            prev = hashlib.sha256(line).hexdigest()
            entries.append(entry)
        try:
            head = self.head_path.read_text().split()
        except FileNotFoundError:
            head = ["0", ""]
        if lines and head != [str(len(lines)), prev]:
            raise JanusError(f"{self.path}: the last entries do not match {self.head_path} "
                             "(the newest verdict was edited or removed)")
        return entries

    def record(self, verdicts: Sequence[tuple[str, Any]], samples: SampleIndex) -> list[dict]:
        """Check every ``(where, verdict)`` and append them all, or none (raising a JanusError that
        lists the problems, each with its ``where``)."""
        if not verdicts:
            raise JanusError("no verdicts to record")
        self._check_no_links()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                lines = fh.read().splitlines()
                existing = {e["decision_id"]: e for e in self._verify(lines) if "decision_id" in e}
                errors: list[str] = []
                accepted: list[dict] = []
                batch: dict[str, str] = {}
                for where, obj in verdicts:
                    try:
                        if isinstance(obj, Exception):
                            raise obj
                        v = parse_verdict(obj)
                    except ValueError as exc:
                        errors.append(f"{where}: {exc}")
                        continue
                    did = v["decision_id"]
                    ref = samples.get(did)
                    if did in existing:
                        e = existing[did]
                        errors.append(f"{where}: decision {did!r} already has a verdict ({e.get('verdict')} by "
                                      f"{e.get('reviewer')} at {e.get('time')}); verdicts are never replaced")
                    elif did in batch:
                        errors.append(f"{where}: decision {did!r} appears twice in this batch (first at {batch[did]})")
                    elif ref is None:
                        where_from = ", ".join(samples.sources) or "no sample file"
                        errors.append(f"{where}: unknown decision id {did!r}: not among the {len(samples):,} "
                                      f"sampled decisions ({where_from})")
                    else:
                        batch[did] = where
                        accepted.append({**v, "model_id": ref.model_id, "model_version": ref.model_version,
                                         "traffic": ref.traffic, "stratum": ref.stratum,
                                         "inclusion_probability": ref.inclusion_probability,
                                         "timestamp": ref.timestamp})
                if errors:
                    shown = errors[:MAX_ERRORS_SHOWN]
                    more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
                    raise JanusError(f"{len(errors)} of {len(verdicts)} verdict(s) refused, none recorded:\n  "
                                     + "\n  ".join(shown) + more)
                prev = hashlib.sha256(lines[-1]).hexdigest() if lines else ""
                out, written = [], []
                now = _now()
                for v in accepted:
                    entry = {"time": now, **v, "prev_sha256": prev}
                    line = orjson.dumps(entry)
                    written.append(line + b"\n")
                    prev = hashlib.sha256(line).hexdigest()
                    out.append(entry)
                fh.seek(0, os.SEEK_END)
                fh.write(b"".join(written))
                fh.flush()
                os.fsync(fh.fileno())
                atomic_write(self.head_path, f"{len(lines) + len(written)} {prev}\n".encode())
                return out
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
