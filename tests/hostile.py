"""A seeded generator of hostile decision records, each labelled with what Janus must do with it.

Used by ``tests/test_reliability.py`` (``janus backtest`` and ``janus serve`` over the same corpus)
and importable on its own::

    from hostile import corpus, write_jsonl
    records = corpus(10_000, seed=7, valid=[...simulated production records...])
    write_jsonl(records, "hostile.jsonl")           # JSONL view: one line per record
    [(r.kind, r.expect) for r in records[:3]]        # e.g. ("invalid_utf8", "not_utf8")

Every :class:`Hostile` carries the raw message ``value`` (bytes, or ``None`` for a Kafka tombstone),
the ``expect``-ed outcome -- ``"accepted"`` or one of the stable reason codes of
:data:`detector.records.REASONS` -- and the ``kind`` of attack that produced it. The classes:

==================  ===============================================================================
invalid_utf8        stray continuation bytes, overlong encodings, CESU surrogates, truncated
                    sequences, a UTF-8 BOM, Latin-1 text                              → not_utf8
huge_string         texts over ``max_text_chars``, ids over ``max_id_chars``, 65 tool calls, 65
                    attributes → too_large; texts *at* the limit, a record of exactly
                    ``max_record_bytes`` → accepted
huge_message        messages of ``huge_bytes`` (10 MiB by default) and just over ``max_record_bytes``
                                                                                      → too_large
deep_nesting        tool arguments nested past ``max_depth`` → too_deep; 2,000 levels anywhere (past
                    orjson's 1,024) → too_deep; 500 levels in an ignored field → accepted
nan_infinity        ``NaN``, ``Infinity``, ``-Infinity``, ``1e400`` → not_json; confidence 1.5,
                    latency -1 → bad_value
number_as_string    ``"timestamp": "1736121600"`` → bad_timestamp; latency/confidence/refused as
                    strings, ids as numbers → wrong_type
duplicate_keys      a key given twice: the *last* value counts (orjson, like Python's json) → accepted
                    or the last value's reason
control_chars       raw C0 controls inside strings or between tokens → not_json; the same
                    characters escaped (``\\u0001``) in every text field → accepted
unicode_tricks      zero-width joiners/spaces, right-to-left overrides, combining marks, astral
                    characters, look-alike model ids, lone surrogate escapes (→ not_utf8) and
                    ``\\u0000`` inside ids → accepted
empty               ``b""``, whitespace only; tombstones (``None``, Kafka only)              → empty
null_bytes          raw NUL bytes alone, inside strings, after the document → not_json
wrong_shape         arrays, strings, numbers, ``null`` at top level → not_object; missing fields,
                    bad traffic/timestamps/probes, objects where strings belong → the matching reason
retry               a producer retry: an earlier accepted record sent again, byte for byte or with a
                    changed body but the same decision id                                → duplicate
valid               ordinary production records of the baselined model (the ``valid`` pool),
                    some with hostile but legal text                                     → accepted
multiline           (Kafka only) a valid record pretty-printed over several lines        → accepted
==================  ===============================================================================

``line_safe=True`` (the default) keeps ``\\n`` and a trailing ``\\r`` out of every value so the
corpus is also a JSONL file whose line *i* is record *i*; ``kafka=True`` adds tombstones and
multi-line records, which only a message broker can carry.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from detector.config import LimitsConfig

MIB = 1024 * 1024
ACCEPTED = "accepted"
TIMESTAMP = 1_736_121_600  # 2025-01-06T00:00:00Z, as the simulator uses


@dataclass(frozen=True)
class Hostile:
    value: bytes | None
    expect: str  # "accepted" or a reason code
    kind: str
    key: bytes | None = None

    @property
    def size(self) -> int:
        return 0 if self.value is None else len(self.value)


def expected_counts(records: Iterable[Hostile]) -> Counter:
    """Outcome → count (``"accepted"`` and each reason)."""
    return Counter(r.expect for r in records)


def write_jsonl(records: Sequence[Hostile], path: str | Path) -> Path:
    """The corpus as JSONL (line i = record i); needs a ``line_safe`` corpus without tombstones."""
    path = Path(path)
    with path.open("wb") as fh:
        for r in records:
            if r.value is None or b"\n" in r.value or r.value.endswith(b"\r"):
                raise ValueError(f"record of kind {r.kind} cannot be a JSONL line")
            fh.write(r.value + b"\n")
    return path


class _Gen:
    def __init__(self, seed: int, model_id: str, valid: Sequence[dict], limits: LimitsConfig, huge_bytes: int,
                 line_safe: bool, kafka: bool):
        self.rng = random.Random(seed)
        self.seed = seed
        self.model_id = model_id
        self.valid = list(valid) or [self._plain_valid(i) for i in range(50)]
        self.limits = limits
        self.huge_bytes = huge_bytes
        self.line_safe = line_safe
        self.kafka = kafka
        self.n = 0
        self.accepted: list[dict] = []  # accepted records, for retries

    # ---- helpers ---------------------------------------------------------------------------------
    def _id(self) -> str:
        self.n += 1
        return f"h{self.seed}-{self.n}"

    def _plain_valid(self, i: int) -> dict:
        return {"decision_id": f"pool-{i}", "timestamp": TIMESTAMP + i, "model_id": self.model_id,
                "traffic": "production", "output": {"action": "answer", "refused": False}}

    def base(self, **overrides: Any) -> dict:
        """A valid production record of the baselined model with a fresh decision id."""
        rec = dict(self.rng.choice(self.valid))
        rec["decision_id"] = self._id()
        rec.update(overrides)
        return rec

    def minimal(self, **overrides: Any) -> dict:
        rec = {"decision_id": self._id(), "timestamp": TIMESTAMP + self.n, "model_id": self.model_id,
               "traffic": "production"}
        rec.update(overrides)
        return rec

    def ok(self, rec: dict, kind: str, raw: bytes | None = None) -> tuple[bytes, str, str]:
        self.accepted.append(rec)
        return (raw if raw is not None else orjson.dumps(rec)), ACCEPTED, kind

    @staticmethod
    def splice(rec: dict, field: str, raw_json: bytes) -> bytes:
        """``rec`` serialised with ``field`` replaced by raw JSON text (NaN, bad bytes, ...)."""
        marker = "\u2063MARK\u2063"
        doc = orjson.dumps({**rec, field: marker})
        return doc.replace(orjson.dumps(marker), raw_json)

    def splice_output(self, rec: dict, field: str, raw_json: bytes) -> bytes:
        marker = "\u2063MARK\u2063"
        doc = orjson.dumps({**rec, "output": {**rec.get("output", {}), field: marker}})
        return doc.replace(orjson.dumps(marker), raw_json)

    # ---- classes ----------------------------------------------------------------------------------
    def invalid_utf8(self) -> tuple[bytes, str, str]:
        bad = self.rng.choice([b"\xff", b"\xfe\xff", b"\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
                               b"\xed\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"caf\xe9", b"\xf4\x90\x80\x80"])
        rec = self.base()
        where = self.rng.choice(["decision_id", "model_id", "segment", "reasoning", "bom"])
        if where == "bom":
            return b"\xef\xbb\xbf" + orjson.dumps(rec), "not_utf8", "invalid_utf8"
        text = orjson.dumps(f"x{self.rng.randrange(10**6)}")[:-1] + bad + b'"'
        return self.splice(rec, where, text), "not_utf8", "invalid_utf8"

    def huge_string(self) -> tuple[bytes, str, str]:
        lim = self.limits
        choice = self.rng.randrange(9)
        if choice == 0:
            rec = self.base(reasoning="r" * (lim.max_text_chars + 1 + self.rng.randrange(1000)))
            return orjson.dumps(rec), "too_large", "huge_string"
        if choice == 1:
            rec = self.base(output={"text": "\u202e" * (lim.max_text_chars + 1)})  # 3 bytes a char, < 1 MB
            return orjson.dumps(rec), "too_large", "huge_string"
        if choice == 2:
            rec = self.base(decision_id="d" * (lim.max_id_chars + 1))
            return orjson.dumps(rec), "too_large", "huge_string"
        if choice == 3:
            rec = self.base(model_id="m" * (lim.max_id_chars + 1 + self.rng.randrange(10_000)))
            return orjson.dumps(rec), "too_large", "huge_string"
        if choice == 4:
            calls = [{"name": f"t{i}"} for i in range(lim.max_tool_calls + 1)]
            rec = self.base(output={"tool_calls": calls})
            return orjson.dumps(rec), "too_large", "huge_string"
        if choice == 5:
            rec = self.base(attributes={f"k{i}": i for i in range(lim.max_attributes + 1)})
            return orjson.dumps(rec), "too_large", "huge_string"
        if choice == 6:  # texts exactly at the limit are fine (only a bounded prefix is featurised)
            rec = self.base(reasoning="\u0645" * lim.max_text_chars, input={"text": "q" * lim.max_text_chars})
            return self.ok(rec, "huge_string")
        if choice == 7:  # ids exactly at the limit, in astral characters (4 bytes each)
            rec = self.base(segment="\U0001f600" * lim.max_id_chars)
            return self.ok(rec, "huge_string")
        rec = self.base(attributes={"note": "a" * (lim.max_id_chars + 1)})
        return orjson.dumps(rec), "too_large", "huge_string"

    def record_of_exact_size(self, size: int) -> bytes:
        """A valid record of exactly ``size`` bytes (an ignored ``pad`` field fills it)."""
        rec = self.minimal(pad="")
        raw = orjson.dumps(rec)
        rec["pad"] = "p" * (size - len(raw))
        raw = orjson.dumps(rec)
        assert len(raw) == size, (len(raw), size)
        return raw

    def huge_message(self, size: int) -> tuple[bytes, str, str]:
        if size <= self.limits.max_record_bytes:  # not offered to retries: its position is random
            return self.record_of_exact_size(size), ACCEPTED, "huge_message"
        rec = self.base(output={"text": ""})
        raw = orjson.dumps(rec)
        rec["output"] = {"text": "z" * (size - len(raw))}
        raw = orjson.dumps(rec)
        assert len(raw) == size
        return raw, "too_large", "huge_message"

    def deep_nesting(self) -> tuple[bytes, str, str]:
        choice = self.rng.randrange(4)
        if choice == 0:  # tool arguments one level past the limit or far past it (raw: orjson writes <= 254)
            depth = self.rng.choice([self.limits.max_depth + 1, 50, 900])
            opens = [self.rng.choice([b'{"a":', b"["]) for _ in range(depth - 1)]
            closes = [b"}" if o.startswith(b"{") else b"]" for o in reversed(opens)]
            args = b"".join(opens) + b'{"leaf":1}' + b"".join(closes)
            rec = self.base(output={"tool_calls": [{"name": "search_logs", "arguments": "\u2063ARGS\u2063"}]})
            raw = orjson.dumps(rec).replace(orjson.dumps("\u2063ARGS\u2063"), args)
            return raw, "too_deep", "deep_nesting"
        if choice == 1:  # past orjson's own recursion limit (1,024), anywhere in the document
            depth = 2000
            raw = b"[" * depth + b"]" * depth
            return self.splice(self.base(), "extra", raw), "too_deep", "deep_nesting"
        if choice == 2:  # 500 levels in a field Janus ignores: parsed (orjson's limit is 1,024), ignored
            raw = b'{"x":' * 500 + b"1" + b"}" * 500
            rec = self.base()
            return self.ok(rec, "deep_nesting", self.splice(rec, "extra", raw))
        # tool arguments exactly at the limit
        args = {"leaf": 1}
        for _ in range(self.limits.max_depth - 1):
            args = {"a": args}
        rec = self.base(output={"tool_calls": [{"name": "run_query", "arguments": args}]})
        return self.ok(rec, "deep_nesting")

    def nan_infinity(self) -> tuple[bytes, str, str]:
        rec = self.base()
        choice = self.rng.randrange(6)
        if choice < 4:
            literal = [b"NaN", b"Infinity", b"-Infinity", b"1e400"][choice]
            if self.rng.random() < 0.5:
                return self.splice(rec, "latency_ms", literal), "not_json", "nan_infinity"
            return self.splice_output(rec, "confidence", literal), "not_json", "nan_infinity"
        if choice == 4:
            return self.splice_output(rec, "confidence", b"1.5"), "bad_value", "nan_infinity"
        return self.splice(rec, "latency_ms", b"-1"), "bad_value", "nan_infinity"

    def number_as_string(self) -> tuple[bytes, str, str]:
        choice = self.rng.randrange(7)
        if choice == 0:
            return orjson.dumps(self.base(timestamp=str(TIMESTAMP))), "bad_timestamp", "number_as_string"
        if choice == 1:
            return orjson.dumps(self.base(latency_ms="12.5")), "wrong_type", "number_as_string"
        if choice == 2:
            rec = self.base()
            return orjson.dumps({**rec, "output": {**rec.get("output", {}), "confidence": "0.9"}}), "wrong_type", \
                "number_as_string"
        if choice == 3:
            rec = self.base()
            return orjson.dumps({**rec, "output": {**rec.get("output", {}), "refused": "true"}}), "wrong_type", \
                "number_as_string"
        if choice == 4:
            return orjson.dumps(self.base(model_id=12345)), "wrong_type", "number_as_string"
        if choice == 5:
            return orjson.dumps(self.base(decision_id=self.n * 7919)), "wrong_type", "number_as_string"
        # a huge integer where seconds belong: orjson reads it as 1.2e29, out of range
        return self.splice(self.base(), "timestamp", b"123456789012345678901234567890"), "bad_timestamp", \
            "number_as_string"

    def duplicate_keys(self) -> tuple[bytes, str, str]:
        rec = self.base()
        body = orjson.dumps(rec)[1:-1]
        choice = self.rng.randrange(4)
        if choice == 0:  # traffic twice: the last one counts
            raw = b'{"traffic":"evaluation",' + body + b"}"
            return self.ok(rec, "duplicate_keys", raw)
        if choice == 1:  # a valid model id, then a wrong-typed one: the last one counts
            raw = b"{" + body + b',"model_id":["x"]}'
            return raw, "wrong_type", "duplicate_keys"
        if choice == 2:  # decision_id twice: the record is known by the last one
            rec2 = dict(rec, decision_id=self._id())
            raw = b'{"decision_id":"' + rec["decision_id"].encode() + b'",' + orjson.dumps(rec2)[1:]
            return self.ok(rec2, "duplicate_keys", raw)
        raw = b"{" + body + b',"traffic":"sideways"}'
        return raw, "bad_traffic", "duplicate_keys"

    def control_chars(self) -> tuple[bytes, str, str]:
        controls = [bytes([c]) for c in range(0x20) if c not in (0x0A, 0x0D) or not self.line_safe]
        c = self.rng.choice(controls)
        choice = self.rng.randrange(3)
        rec = self.base()
        if choice == 0:  # raw inside a string
            return self.splice(rec, "reasoning", b'"before' + c + b'after"'), "not_json", "control_chars"
        if choice == 1:  # raw between tokens (only space, tab, LF, CR are JSON whitespace)
            if c in (b"\t", b"\n", b"\r"):
                c = b"\x0b"
            raw = orjson.dumps(rec)
            return raw[:1] + c + raw[1:], "not_json", "control_chars"
        escaped = "".join(chr(i) for i in range(0x20)) + "\x7f\x85\u2028\u2029"
        rec = self.base(reasoning=escaped, segment="seg" + escaped[:20], output={"text": escaped, "action": escaped})
        return self.ok(rec, "control_chars")

    def unicode_tricks(self) -> tuple[bytes, str, str]:
        tricks = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u202d", "\u2066", "\u2069",
                  "\u0301", "\u0336", "\U0001f9e8", "\U000e0041", "\u00a0", "\u3000", "\uffff"]
        choice = self.rng.randrange(5)
        t = "".join(self.rng.choice(tricks) for _ in range(self.rng.randrange(1, 6)))
        if choice == 0:  # a look-alike model id: another model (no baseline), not the monitored one
            rec = self.base(model_id=self.model_id[:3] + t + self.model_id[3:])
            return self.ok(rec, "unicode_tricks")
        if choice == 1:  # segment / action / tool names / texts with tricks: the monitored model
            rec = self.base(segment=t, reasoning=t * 50 + " this is not a test " + t,
                            output={"text": t + "answer" + t, "action": "escalate" + t,
                                    "tool_calls": [{"name": "search_logs" + t, "arguments": {t: t}}]})
            return self.ok(rec, "unicode_tricks")
        if choice == 2:  # a lone surrogate escape: not a Unicode scalar value
            rec = self.base()
            return self.splice(rec, "reasoning", b'"\\ud800 lonely"'), "not_utf8", "unicode_tricks"
        if choice == 3:  # NUL escaped inside ids: legal JSON, kept as data
            rec = self.base(model_id=self.model_id + "\u0000" + t, segment="\u0000")
            return self.ok(rec, "unicode_tricks")
        rec = self.base(attributes={t: t, "rtl": "\u202egnp.exe"})
        return self.ok(rec, "unicode_tricks")

    def empty(self) -> tuple[bytes | None, str, str]:
        options: list[bytes | None] = [b"", b" ", b"\t\t", b"   \t "]
        if not self.line_safe:
            options += [b"\r\n", b"\n"]
        if self.kafka:
            options.append(None)
        return self.rng.choice(options), "empty", "empty"

    def null_bytes(self) -> tuple[bytes, str, str]:
        rec = self.base()
        choice = self.rng.randrange(4)
        if choice == 0:
            return b"\x00" * self.rng.randrange(1, 64), "not_json", "null_bytes"
        if choice == 1:
            return self.splice(rec, "model_id", b'"triage\x00agent"'), "not_json", "null_bytes"
        if choice == 2:
            return orjson.dumps(rec) + b"\x00", "not_json", "null_bytes"
        return b"\x00" + orjson.dumps(rec), "not_json", "null_bytes"

    def wrong_shape(self) -> tuple[bytes, str, str]:
        choice = self.rng.randrange(12)
        if choice == 0:
            return self.rng.choice([b"[]", b"[1,2]", b'"str"', b"42", b"null", b"true", b"-0.0"]), "not_object", \
                "wrong_shape"
        if choice == 1:
            rec = self.base()
            rec.pop(self.rng.choice(["decision_id", "timestamp", "model_id", "traffic"]))
            return orjson.dumps(rec), "missing_field", "wrong_shape"
        if choice == 2:
            return orjson.dumps(self.base(traffic=self.rng.choice(["Production", "prod", "", "eval"]))), \
                "bad_traffic", "wrong_shape"
        if choice == 3:
            ts = self.rng.choice(["2025-01-06T00:00:00", "yesterday", "9999-99-99T00:00:00Z", "+10000-01-01T00:00:00Z",
                                  "1969-12-31T23:59:59Z", -1, 1e12, True])
            return orjson.dumps(self.base(timestamp=ts)), "bad_timestamp", "wrong_shape"
        if choice == 4:
            return orjson.dumps(self.base(input="just a string")), "wrong_type", "wrong_shape"
        if choice == 5:
            return orjson.dumps(self.base(output=[1, 2])), "wrong_type", "wrong_shape"
        if choice == 6:
            return orjson.dumps(self.base(attributes={"nested": {"a": 1}})), "wrong_type", "wrong_shape"
        if choice == 7:
            return orjson.dumps(self.base(probe={"pair_id": "p", "condition": "maybe"})), "bad_value", "wrong_shape"
        if choice == 8:
            return orjson.dumps(self.base(decision_id="")), "bad_value", "wrong_shape"
        if choice == 9:
            return orjson.dumps(self.base(output={"tool_calls": "search_logs"})), "wrong_type", "wrong_shape"
        if choice == 10:  # fields Janus does not know are ignored, whatever they are called
            rec = self.base(__proto__={"admin": True}, constructor="x", **{"$where": "1", "": ""})
            return self.ok(rec, "wrong_shape")
        return b'{"decision_id": "a", "timestamp": 1,', "not_json", "wrong_shape"

    def retry(self) -> tuple[bytes, str, str] | None:
        if not self.accepted:
            return None
        original = self.rng.choice(self.accepted[-2000:])
        if self.rng.random() < 0.5:
            return orjson.dumps(original), "duplicate", "retry"
        changed = dict(original, latency_ms=float(self.rng.randrange(1, 5000)))  # a retry is not always identical
        return orjson.dumps(changed), "duplicate", "retry"

    def valid_record(self) -> tuple[bytes, str, str]:
        return self.ok(self.base(), "valid")

    def multiline(self) -> tuple[bytes, str, str]:
        rec = self.base()
        raw = orjson.dumps(rec, option=orjson.OPT_INDENT_2)
        return self.ok(rec, "multiline", raw)


WEIGHTS = {  # relative frequency of each class in a corpus
    "valid": 30,
    "invalid_utf8": 6,
    "huge_string": 3,
    "deep_nesting": 5,
    "nan_infinity": 6,
    "number_as_string": 6,
    "duplicate_keys": 5,
    "control_chars": 6,
    "unicode_tricks": 8,
    "empty": 4,
    "null_bytes": 5,
    "wrong_shape": 8,
    "retry": 6,
}


def corpus(
    n: int = 10_000,
    *,
    seed: int = 0,
    model_id: str = "triage-agent",
    valid: Sequence[dict] = (),
    limits: LimitsConfig = LimitsConfig(),
    huge_bytes: int = 10 * MIB,
    n_huge: int = 2,
    line_safe: bool = True,
    kafka: bool = False,
) -> list[Hostile]:
    """``n`` hostile records (seeded). ``valid`` are production records of ``model_id`` (whose
    baseline the caller has) used as the body of most attacks, so that what is *not* attacked
    is realistic. ``n_huge`` messages of ``huge_bytes`` and a few just over and exactly at
    ``limits.max_record_bytes`` are included; ``kafka=True`` adds tombstones and multi-line
    records (and disables ``line_safe``)."""
    if kafka:
        line_safe = False
    gen = _Gen(seed, model_id, valid, limits, huge_bytes, line_safe, kafka)
    weights = dict(WEIGHTS)
    if kafka:
        weights["multiline"] = 2
    kinds = list(weights)
    cum = [weights[k] for k in kinds]
    rng = random.Random(seed + 1)
    out: list[Hostile] = []
    specials = [gen.huge_message(huge_bytes) for _ in range(n_huge)]
    specials += [gen.huge_message(limits.max_record_bytes + 1), gen.huge_message(limits.max_record_bytes),
                 gen.huge_message(limits.max_record_bytes - 1)]
    special_at = sorted(rng.sample(range(n), min(len(specials), n)))
    for i in range(n):
        if special_at and i == special_at[0]:
            special_at.pop(0)
            value, expect, kind = specials.pop()
        else:
            kind = rng.choices(kinds, cum)[0]
            made = getattr(gen, kind if kind != "valid" else "valid_record")()
            if made is None:  # a retry before anything was accepted
                made = gen.valid_record()
            value, expect, kind = made
        if line_safe and value is not None:
            assert b"\n" not in value and not value.endswith(b"\r"), kind
        key = None
        if kafka:  # producers key by model id; hostile ones send anything, or nothing (but a tombstone needs a key)
            key = model_id.encode() if (value is None or rng.random() < 0.7) else rng.choice([None, b"\xff\x00", b""])
        out.append(Hostile(value, expect, kind, key))
    return out
