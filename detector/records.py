"""Decision records, schema v1: one parser for Kafka message values and JSONL lines.

Each value is decoded as JSON and read in an input format (:mod:`detector.formats`; by default
Janus's own, where each value is one record). Every record either becomes a :class:`Decision`
or a :class:`Rejection` with a stable reason code and a message naming the field and where the
value came from. The parser never raises on bad input and never drops anything silently:

* with one record per value (the ``janus`` and ``mapped`` formats),
  ``len(decisions) + len(rejections) == len(values)``;
* a format reading several items from one value (``otlp-json``: the spans of a trace export)
  accounts for each item: a decision, a rejection naming the value and the item
  (``events.jsonl:3 span 2 (spanId …): …``), or one of ``skipped`` (items that are not decisions
  by design, such as non-GenAI spans). A value it cannot read at all is one rejection; a value
  holding no items (an export with no spans) yields nothing.

A rejection's ``position`` is always its value's (so ``locate`` and a dead-letter topic find the
value). A decision's is its value's too when each value holds one record; with several per value,
positions count decisions instead, from ``first_decision``, so that each decision has its own.

>>> result = parse_values([
...     b'{"decision_id": "d1", "timestamp": 1700000000, "model_id": "m", "traffic": "production",'
...     b' "output": {"refused": true}}',
...     b'{"decision_id": "d2"}',
...     b'not json',
... ])
>>> result.decisions[0].refused, result.decisions[0].segment
(True, 'default')
>>> [(r.position, r.reason) for r in result.rejections]
[(1, 'missing_field'), (2, 'not_json')]
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from detector.config import LimitsConfig

if TYPE_CHECKING:  # the formats build on this module, not the other way round
    from detector.formats import Format

TRAFFIC_VALUES = ("evaluation", "production")
PROBE_CONDITIONS = ("monitored", "unmonitored")

# Stable reason codes: they are metric label values and DLQ headers, so never rename one.
REASONS = (
    "empty",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "bad_timestamp",
    "bad_traffic",
    "too_large",
    "too_deep",
    "duplicate",  # a decision_id already seen within the de-duplication window (a producer retry)
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: Any = None


@dataclass(frozen=True, slots=True)
class Probe:
    pair_id: str
    condition: str
    cue: str | None = None


@dataclass(slots=True)
class Decision:
    """One validated decision record. ``position`` is its 0-based index in the source."""

    decision_id: str
    timestamp: float
    model_id: str
    traffic: str
    segment: str = "default"
    model_version: str | None = None
    input_text: str | None = None
    output_text: str | None = None
    action: str | None = None
    refused: bool | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    confidence: float | None = None
    reasoning: str | None = None
    latency_ms: float | None = None
    attributes: dict[str, str | float | bool] = field(default_factory=dict)
    probe: Probe | None = None
    position: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The record as schema-v1 JSON (absent optional fields left out)."""
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "model_id": self.model_id,
            "traffic": self.traffic,
            "segment": self.segment,
        }
        if self.model_version is not None:
            out["model_version"] = self.model_version
        if self.input_text is not None:
            out["input"] = {"text": self.input_text}
        output: dict[str, Any] = {}
        for key, value in (
            ("text", self.output_text),
            ("action", self.action),
            ("refused", self.refused),
            ("confidence", self.confidence),
        ):
            if value is not None:
                output[key] = value
        if self.tool_calls:
            output["tool_calls"] = [{"name": t.name, "arguments": t.arguments} for t in self.tool_calls]
        if output:
            out["output"] = output
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.probe is not None:
            probe = {"pair_id": self.probe.pair_id, "condition": self.probe.condition}
            if self.probe.cue is not None:
                probe["cue"] = self.probe.cue
            out["probe"] = probe
        return out


@dataclass(frozen=True, slots=True)
class Rejection:
    position: int
    reason: str
    message: str
    raw: bytes


@dataclass(slots=True)
class ParseResult:
    decisions: list[Decision]
    rejections: list[Rejection]
    skipped: int = 0  # items a format ignores by design (non-GenAI spans), neither decisions nor rejections
    # Formats with several decisions per value: the position of the value each decision came from.
    value_of: dict[int, int] = field(default_factory=dict)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail


def json_type_name(value: Any) -> str:
    """How messages name the JSON type of a decoded value: ``null``, ``number``, ``list``, ``object``…"""
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _string(obj: dict, key: str, label: str, max_chars: int, required: bool = False) -> str | None:
    value = obj.get(key)
    if value.__class__ is str and (value or not required) and len(value) <= max_chars:
        return value  # the common case first: one test per field on the hot path
    if value is None:
        if required:
            raise _Reject("missing_field", f"{label}: required field is missing")
        return None
    if not isinstance(value, str):
        raise _Reject("wrong_type", f"{label}: expected string, got {json_type_name(value)}")
    if len(value) > max_chars:
        raise _Reject("too_large", f"{label}: {len(value)} characters, limit {max_chars}")
    if required and not value:
        raise _Reject("bad_value", f"{label}: must not be empty")
    return value


def _number(obj: dict, key: str, label: str, low: float, high: float) -> float | None:
    value = obj.get(key)
    if value.__class__ is float and low <= value <= high:
        return value  # the common case first, as in _string
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Reject("wrong_type", f"{label}: expected number, got {json_type_name(value)}")
    value = float(value)
    if not (low <= value <= high):  # also false for NaN
        raise _Reject("bad_value", f"{label}: {value!r} is outside [{low}, {high}]")
    return value


def _object(obj: dict, key: str, label: str) -> dict | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Reject("wrong_type", f"{label}: expected object, got {json_type_name(value)}")
    return value


_CONTAINERS = frozenset((dict, list))  # the container types orjson decodes to


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists/objects, stopping early once ``limit`` is exceeded."""
    if isinstance(value, dict) and _CONTAINERS.isdisjoint(map(type, value.values())):
        return 1  # the common case, flat tool arguments, without building a stack
    stack = [(value, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_timestamp(value: Any, label: str = "timestamp") -> float:
    """RFC 3339 string (with a UTC offset) or epoch seconds → epoch seconds."""
    if value.__class__ is float and 0 <= value < 1e11:
        return value  # the common case first, as in _string
    if isinstance(value, bool) or value is None:
        raise _Reject("bad_timestamp",
                      f"{label}: expected RFC 3339 string or epoch seconds, got {json_type_name(value)}")
    if isinstance(value, (int, float)):
        if not (0 <= value < 1e11):
            raise _Reject("bad_timestamp", f"{label}: epoch seconds {value!r} out of range")
        return float(value)
    if not isinstance(value, str) or len(value) > 64:
        raise _Reject("bad_timestamp", f"{label}: expected RFC 3339 string or epoch seconds")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Reject("bad_timestamp", f"{label}: {value[:40]!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise _Reject("bad_timestamp", f"{label}: {value!r} has no UTC offset (RFC 3339 needs one, e.g. 'Z')")
    seconds = parsed.timestamp()
    if not (0 <= seconds < 1e11):  # the same range as epoch seconds, so a record re-serialised still parses
        raise _Reject("bad_timestamp", f"{label}: {value!r} is out of range (epoch seconds must be in [0, 1e11))")
    return seconds


def _decision(obj: Any, limits: LimitsConfig, traffic_hint: str | None, position: int) -> Decision:
    if not isinstance(obj, dict):
        raise _Reject("not_object", f"expected a JSON object, got {json_type_name(obj)}")
    ids = limits.max_id_chars
    texts = limits.max_text_chars
    decision_id = _string(obj, "decision_id", "decision_id", ids, required=True)
    if "timestamp" not in obj:
        raise _Reject("missing_field", "timestamp: required field is missing")
    timestamp = parse_timestamp(obj["timestamp"])
    model_id = _string(obj, "model_id", "model_id", ids, required=True)
    traffic = obj.get("traffic")
    if traffic is None:
        if traffic_hint is None:
            raise _Reject("missing_field", "traffic: required field is missing (and its source implies none: no topic mapping, no --traffic)")
        traffic = traffic_hint
    elif traffic not in TRAFFIC_VALUES:
        shown = traffic[:40] if isinstance(traffic, str) else json_type_name(traffic)
        raise _Reject("bad_traffic", f"traffic: {shown!r} is not 'evaluation' or 'production'")
    elif traffic_hint is not None and traffic != traffic_hint:
        # A record claiming "evaluation" on a production topic could poison the next baseline.
        raise _Reject("bad_traffic", f"traffic: record says {traffic!r} but its topic carries {traffic_hint!r}")
    segment = _string(obj, "segment", "segment", ids) or "default"
    model_version = _string(obj, "model_version", "model_version", ids)

    input_obj = _object(obj, "input", "input")
    input_text = _string(input_obj, "text", "input.text", texts) if input_obj else None
    output_obj = _object(obj, "output", "output") or {}
    output_text = _string(output_obj, "text", "output.text", texts)
    action = _string(output_obj, "action", "output.action", ids)
    refused = output_obj.get("refused")
    if refused is not None and not isinstance(refused, bool):
        raise _Reject("wrong_type", f"output.refused: expected bool, got {json_type_name(refused)}")
    confidence = _number(output_obj, "confidence", "output.confidence", 0.0, 1.0)

    tool_calls: tuple[ToolCall, ...] = ()
    raw_calls = output_obj.get("tool_calls")
    if raw_calls is not None:
        if not isinstance(raw_calls, list):
            raise _Reject("wrong_type", f"output.tool_calls: expected list, got {json_type_name(raw_calls)}")
        if len(raw_calls) > limits.max_tool_calls:
            raise _Reject("too_large", f"output.tool_calls: {len(raw_calls)} calls, limit {limits.max_tool_calls}")
        calls = []
        for i, call in enumerate(raw_calls):
            if not isinstance(call, dict):
                raise _Reject("wrong_type", f"output.tool_calls[{i}]: expected object, got {json_type_name(call)}")
            name = call.get("name")
            if name.__class__ is not str or not name or len(name) > ids:  # labels formatted only for a rejection
                name = _string(call, "name", f"output.tool_calls[{i}].name", ids, required=True)
            arguments = call.get("arguments")
            if _depth(arguments, limits.max_depth) > limits.max_depth:
                raise _Reject("too_deep", f"output.tool_calls[{i}].arguments: nested deeper than {limits.max_depth}")
            calls.append(ToolCall(name, arguments))
        tool_calls = tuple(calls)

    reasoning = _string(obj, "reasoning", "reasoning", texts)
    latency = _number(obj, "latency_ms", "latency_ms", 0.0, 1e9)

    attributes: dict[str, str | float | bool] = {}
    raw_attrs = _object(obj, "attributes", "attributes")
    if raw_attrs:
        if len(raw_attrs) > limits.max_attributes:
            raise _Reject("too_large", f"attributes: {len(raw_attrs)} keys, limit {limits.max_attributes}")
        for key, value in raw_attrs.items():
            if len(key) > ids:
                raise _Reject("too_large", f"attributes: key of {len(key)} characters, limit {ids}")
            if isinstance(value, str):
                if len(value) > ids:
                    raise _Reject("too_large", f"attributes.{key}: {len(value)} characters, limit {ids}")
            elif isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - orjson rejects
                raise _Reject("bad_value", f"attributes.{key}: not a finite number")
            elif not isinstance(value, (int, float, bool)):
                raise _Reject("wrong_type",
                              f"attributes.{key}: expected string, number or bool, got {json_type_name(value)}")
            attributes[key] = value

    probe = None
    probe_obj = _object(obj, "probe", "probe")
    if probe_obj is not None:
        pair_id = _string(probe_obj, "pair_id", "probe.pair_id", ids, required=True)
        condition = probe_obj.get("condition")
        if condition not in PROBE_CONDITIONS:
            shown = condition[:40] if isinstance(condition, str) else json_type_name(condition)
            raise _Reject("bad_value", f"probe.condition: {shown!r} is not 'monitored' or 'unmonitored'")
        probe = Probe(pair_id, condition, _string(probe_obj, "cue", "probe.cue", texts))

    # Positional, in field order: keywords cost a quarter of the construction, once per record.
    return Decision(decision_id, timestamp, model_id, traffic, segment, model_version, input_text, output_text,
                    action, refused, tool_calls, confidence, reasoning, latency, attributes, probe, position)


def _utf8_error(raw: bytes, decoder_message: str) -> str:
    """Where a value stops being UTF-8 (orjson names only the start of the value)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start: exc.start + 4].hex(" ")
        return (f"not valid UTF-8: byte {exc.start} ({bad}…): {exc.reason}; was it written in another encoding "
                "(Latin-1, Windows-1252)? Janus reads UTF-8 only")
    return f"not valid UTF-8: {decoder_message[:80]}"  # (surrogates written as \\ud800 escapes)


def _default_locate(position: int) -> str:
    return f"record {position}"


def parse_values(
    values: Sequence[bytes | str | None],
    *,
    limits: LimitsConfig = LimitsConfig(),
    traffic: str | None = None,
    first_position: int = 0,
    locate: Callable[[int], str] = _default_locate,
    fmt: Format | None = None,
    first_decision: int | None = None,
) -> ParseResult:
    """Parse a micro-batch of raw values.

    ``traffic`` is the traffic the source implies (a topic mapped to production, say);
    ``first_position`` is the position of ``values[0]`` (a Kafka offset or a line index);
    ``locate`` turns a position into the place named in rejection messages;
    ``fmt`` is the input format (None: Janus's own records; see :func:`detector.formats.make_format`);
    ``first_decision`` is the position of the first decision when a format yields several per value
    (default ``first_position``; a caller parsing in chunks passes the count of decisions so far).
    """
    # Janus's own records skip the conversion step: one None test per value is all the hot path pays.
    convert = None if fmt is None or fmt.identity else fmt.convert
    result = ParseResult([], [])
    decisions, rejections = result.decisions, result.rejections
    next_decision = first_position if first_decision is None else first_decision
    max_bytes = limits.max_record_bytes
    for i, value in enumerate(values):
        position = first_position + i
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else (value or b"")
        try:
            if not raw or raw.isspace():  # (strip() would copy every record to find out)
                raise _Reject("empty", "empty value")
            if len(raw) > max_bytes:
                raise _Reject("too_large", f"{len(raw)} bytes, limit {max_bytes}")
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                text = str(exc)
                if "utf-8" in text.lower() or "surrogate" in text.lower():
                    raise _Reject("not_utf8", _utf8_error(raw, text)) from None
                if "recursion" in text.lower() or "depth limit" in text.lower():
                    raise _Reject("too_deep", "JSON nested too deeply") from None
                raise _Reject("not_json", f"not JSON: {text[:80]}") from None
            if convert is None:
                decisions.append(_decision(obj, limits, traffic, position))
                continue
            converted = convert(obj, traffic)
        except _Reject as rej:
            detail = rej.detail + _hint(raw, rej.reason, janus=convert is None)
            rejections.append(Rejection(position, rej.reason, f"{locate(position)}: {detail}", raw))
            continue
        result.skipped += converted.skipped
        for item in converted.items:
            place = f"{locate(position)} {item.where}" if item.where else locate(position)
            if item.reason:
                rejections.append(Rejection(position, item.reason, f"{place}: {item.detail}", raw))
                continue
            try:
                if fmt.one_record_per_value:
                    decisions.append(_decision(item.record, limits, traffic, position))
                else:
                    decisions.append(_decision(item.record, limits, traffic, next_decision))
                    result.value_of[next_decision] = position
                next_decision += 1
            except _Reject as rej:
                # The detail starts with the Janus field ("model_id: …"); the format adds where it read it.
                source = fmt.source(rej.detail.split(":", 1)[0].split("[", 1)[0])
                detail = (f"{rej.detail} ({source})" if source else rej.detail) + _hint(raw, rej.reason, janus=False)
                rejections.append(Rejection(position, rej.reason, f"{place}: {detail}", raw))
    return result


_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, before a file's first line only
_NON_FINITE = re.compile(rb"(?<![\w\"])-?(?:NaN|Infinity)(?![\w\"])")


def _hint(raw: bytes, reason: str, janus: bool = True) -> str:
    """What the value most likely is, when it is not a record at all (said once per rejection); the
    OTLP hint only for Janus's own format (``janus``), the others for any."""
    if raw[:2] == _GZIP_MAGIC:
        return " (the value is gzip-compressed: send the JSON itself; Kafka compresses batches on its own)"
    if reason == "not_json" and _NON_FINITE.search(raw):
        return " (NaN and Infinity are not JSON numbers: write null, or leave the field out)"
    if reason == "not_object" and raw.lstrip()[:1] == b"[":
        return " (a JSON array: Janus reads one record per line (JSONL); `jq -c '.[]'` turns an array into lines)"
    if reason == "not_json" and raw.strip() in (b"[", b"{"):
        return (" (the file looks like indented JSON: Janus reads one record per line (JSONL); "
                "`jq -c '.[]'` turns an array into lines, `jq -c .` a stream of objects)")
    if janus and reason == "missing_field" and b'"resourceSpans"' in raw[:1000]:
        return " (this is an OTLP/JSON trace export: read it with `--format otlp-json`, or `[input] format`)"
    return ""


def line_locator(path: str | Path) -> Callable[[int], str]:
    """Name a 0-based line index as ``file:line`` (1-based, as editors count)."""
    name = str(path)
    return lambda position: f"{name}:{position + 1}"


def iter_jsonl_chunks(path: str | Path, chunk_size: int = 4096) -> Iterator[list[bytes]]:
    """Read a JSONL file (or a gzip-compressed one, ``.jsonl.gz`` as log shippers rotate them) in
    chunks of raw lines; blank lines stay (as b"") so positions match lines."""
    chunk: list[bytes] = []
    with Path(path).open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    with (gzip.open(path, "rb") if compressed else Path(path).open("rb")) as fh:
        first = fh.readline()
        if first.startswith(_BOM):  # some Windows editors and exporters begin a file with one
            first = first[len(_BOM):]
        for line in itertools.chain((first,) if first else (), fh):
            chunk.append(line.rstrip(b"\r\n"))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def read_decisions(
    path: str | Path, limits: LimitsConfig = LimitsConfig(), traffic: str | None = None, fmt: Format | None = None
) -> ParseResult:
    """Parse a whole JSONL file (for baselines and offline analysis; streams use the chunks)."""
    whole = ParseResult([], [])
    position = 0
    locate = line_locator(path)
    for chunk in iter_jsonl_chunks(path):
        result = parse_values(chunk, limits=limits, traffic=traffic, first_position=position, locate=locate,
                              fmt=fmt, first_decision=len(whole.decisions))
        whole.decisions.extend(result.decisions)
        whole.rejections.extend(result.rejections)
        whole.skipped += result.skipped
        position += len(chunk)
    return whole
