"""OTLP/JSON trace exports read into spans: the OpenTelemetry data model only, no GenAI meaning.

One value is an ``ExportTraceServiceRequest`` as OTLP/JSON writes it (the Collector's Kafka
exporter with ``encoding: otlp_json``, or one line of its file exporter): ``resourceSpans`` →
``scopeSpans`` → ``spans``, attributes as ``[{"key": …, "value": AnyValue}]``, ids as hex
strings, times as decimal strings of nanoseconds. Containers are checked here (a malformed one
rejects the whole value); each span's own fields are read on demand, so one bad span is one
rejection and the others still count.

>>> request = {"resourceSpans": [{"resource": {"attributes": [
...     {"key": "deployment.environment.name", "value": {"stringValue": "production"}}]},
...     "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",
...     "spanId": "eee19b7ec3c1b174", "startTimeUnixNano": "1700000000000000000",
...     "attributes": [{"key": "n", "value": {"intValue": "12"}}]}]}]}]}
>>> (span,) = spans(request)
>>> span.where, span.attribute("n"), span.resource_attribute("deployment.environment.name")
('span 1 (spanId eee19b7ec3c1b174)', 12, 'production')
>>> span.unix_nano("startTimeUnixNano")
1700000000000000000
"""

from __future__ import annotations

import math
import re
from typing import Any

from detector.formats.base import ItemError
from detector.records import json_type_name

_HEX_ID_DIGITS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
_HEX = re.compile(r"[0-9a-f]*")
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}  # protobuf JSON spellings


def _member(obj: dict, key: str, expected: type, where: str) -> Any:
    """``obj[key]`` when present and of type ``expected`` (absent or null: None)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, expected):
        wanted = json_type_name(expected())  # named after the empty value of that type
        raise ItemError("wrong_type", f"{where}{key}: expected {wanted}, got {json_type_name(value)}")
    return value


def _key_values(entries: Any, where: str) -> dict[str, Any]:
    """An OTLP ``KeyValue`` list → {key: undecoded AnyValue} (the last of a repeated key wins)."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise ItemError("wrong_type", f"{where}: expected list, got {json_type_name(entries)}")
    out = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ItemError("wrong_type", f"{where}[{i}]: expected an object with a string 'key'")
        out[entry["key"]] = entry.get("value")
    return out


def any_value(value: Any, where: str) -> Any:
    """An OTLP/JSON ``AnyValue`` → Python: str, bool, int, float, bytes as base64 text, list, dict, None."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise ItemError("wrong_type", f"{where}: expected an AnyValue object, got {json_type_name(value)}")
    if "stringValue" in value:
        return _member(value, "stringValue", str, f"{where}.")
    if "boolValue" in value:
        return _member(value, "boolValue", bool, f"{where}.")
    if "intValue" in value:  # int64: a JSON string by the protobuf JSON mapping; some writers use numbers
        raw = value["intValue"]
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,19}", raw):
            return int(raw)
        raise ItemError("wrong_type", f"{where}.intValue: {str(raw)[:40]!r} is not an integer")
    if "doubleValue" in value:
        raw = value["doubleValue"]
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str) and raw in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[raw]
        raise ItemError("wrong_type", f"{where}.doubleValue: {str(raw)[:40]!r} is not a number")
    if "arrayValue" in value:
        array = _member(value, "arrayValue", dict, f"{where}.") or {}
        items = _member(array, "values", list, f"{where}.arrayValue.") or []
        return [any_value(v, f"{where}[{i}]") for i, v in enumerate(items)]
    if "kvlistValue" in value:
        kvlist = _member(value, "kvlistValue", dict, f"{where}.") or {}
        entries = _key_values(kvlist.get("values"), f"{where}.kvlistValue.values")
        return {k: any_value(v, f"{where}.{k}") for k, v in entries.items()}
    if "bytesValue" in value:
        return _member(value, "bytesValue", str, f"{where}.")
    raise ItemError("wrong_type", f"{where}: unknown AnyValue kind {next(iter(value))[:40]!r}")


class Span:
    """One span of an export, with its resource's attributes; fields are read (and checked) on demand."""

    __slots__ = ("index", "raw", "_resource", "_attributes")

    def __init__(self, index: int, raw: Any, resource: dict[str, Any]):
        self.index = index  # 1-based, counting every span of the export in document order
        self.raw = raw
        self._resource = resource
        self._attributes: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        """How messages name this span: its place in the export, and its id when it has one."""
        span_id = self.raw.get("spanId") if isinstance(self.raw, dict) else None
        if isinstance(span_id, str) and span_id:
            return f"span {self.index} (spanId {span_id[:32]})"
        return f"span {self.index}"

    def _object(self) -> dict:
        if not isinstance(self.raw, dict):
            raise ItemError("wrong_type", f"expected a span object, got {json_type_name(self.raw)}")
        return self.raw

    def _attribute_index(self) -> dict[str, Any]:
        if self._attributes is None:
            self._attributes = _key_values(self._object().get("attributes"), "attributes")
        return self._attributes

    def attribute(self, key: str) -> Any:
        """The span attribute ``key``, decoded (None when absent)."""
        return any_value(self._attribute_index().get(key), f"attribute {key}")

    def attribute_keys(self) -> list[str]:
        return list(self._attribute_index())

    def resource_attribute(self, key: str) -> Any:
        return any_value(self._resource.get(key), f"resource attribute {key}")

    def hex_id(self, field: str) -> str | None:
        """``traceId``, ``spanId`` or ``parentSpanId`` as lowercase hex (None when absent or empty)."""
        value = _member(self._object(), field, str, "")
        if not value:
            return None
        digits = _HEX_ID_DIGITS[field]
        if len(value) != digits or not _HEX.fullmatch(value):
            # The protobuf JSON mapping (and MessageToDict) writes bytes as base64; OTLP/JSON does not.
            raise ItemError("bad_value", f"{field}: {value[:48]!r} is not {digits} lowercase hex digits "
                                         "(OTLP/JSON writes ids as hex, not base64)")
        return value

    def unix_nano(self, field: str) -> int | None:
        """``startTimeUnixNano`` or ``endTimeUnixNano`` (None when absent or 0, OTLP's "unset")."""
        value = self._object().get(field)
        if value is None:
            return None
        if isinstance(value, str) and value.isdecimal() and len(value) <= 20:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ItemError("bad_timestamp", f"{field}: {str(value)[:40]!r} is not a count of nanoseconds")
        return value or None

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, undecoded attributes) of the span's events."""
        events = _member(self._object(), "events", list, "") or []
        out = []
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                raise ItemError("wrong_type", f"events[{i}]: expected object, got {json_type_name(event)}")
            name = _member(event, "name", str, f"events[{i}].") or ""
            out.append((name, _key_values(event.get("attributes"), f"events[{i}].attributes")))
        return out


def spans(request: Any) -> list[Span]:
    """Every span of an ``ExportTraceServiceRequest``; :class:`ItemError` when a container is malformed."""
    if not isinstance(request, dict):
        raise ItemError("not_object",
                        f"expected an OTLP ExportTraceServiceRequest object, got {json_type_name(request)}")
    if "resourceSpans" not in request:
        raise ItemError("missing_field", "resourceSpans: required field is missing "
                                         "(is this an OTLP/JSON trace export?)")
    out: list[Span] = []
    for r, resource_spans in enumerate(_member(request, "resourceSpans", list, "") or []):
        where = f"resourceSpans[{r}]"
        if not isinstance(resource_spans, dict):
            raise ItemError("wrong_type", f"{where}: expected object, got {json_type_name(resource_spans)}")
        resource = _member(resource_spans, "resource", dict, f"{where}.") or {}
        attributes = _key_values(resource.get("attributes"), f"{where}.resource.attributes")
        for s, scope_spans in enumerate(_member(resource_spans, "scopeSpans", list, f"{where}.") or []):
            inner = f"{where}.scopeSpans[{s}]"
            if not isinstance(scope_spans, dict):
                raise ItemError("wrong_type", f"{inner}: expected object, got {json_type_name(scope_spans)}")
            for raw in _member(scope_spans, "spans", list, f"{inner}.") or []:
                out.append(Span(len(out) + 1, raw, attributes))
    return out
