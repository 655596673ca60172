"""Janus records → OTLP/JSON trace exports of GenAI inference spans (the inverse of ``otlp-json``).

For trying Janus on the shape real agent stacks log (``janus simulate --format otlp-json``) and for
tests and benchmarks that must read the same decisions both ways. Each record becomes one ``chat``
span following the GenAI semantic conventions v1.37: the model in ``gen_ai.request.model``, the
request as the user message of ``gen_ai.input.messages``, the answer, reasoning and tool calls as
parts of ``gen_ai.output.messages``; traffic is the resource's ``deployment.environment.name`` and
the segment a span attribute (``segment_attribute``). The refusal label is *not* written: OTLP has
no such field, so a reader has to recognise refusals in the text, as with real exports.

>>> record = {"decision_id": "d1", "timestamp": 1700000000.5, "model_id": "m", "traffic": "production",
...           "segment": "web", "input": {"text": "Hi"}, "output": {"text": "Hello", "refused": False},
...           "latency_ms": 250.0}
>>> (request,) = export_requests([record])
>>> resource = request["resourceSpans"][0]["resource"]["attributes"]
>>> resource[0]["value"]["stringValue"]
'production'
>>> span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
>>> int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])
250000000
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

import orjson

from detector.formats.genai import ENVIRONMENT, INPUT_MESSAGES, OPERATION, OUTPUT_MESSAGES

SEGMENT_ATTRIBUTE = "app.channel"


def _hex_id(decision_id: str, chars: int) -> str:
    return hashlib.blake2b(decision_id.encode("utf-8", "surrogatepass"), digest_size=chars // 2).hexdigest()


def _string(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def span_of(record: dict, segment_attribute: str = SEGMENT_ATTRIBUTE) -> dict:
    """One record as a GenAI ``chat`` span (OTLP/JSON: hex ids, times as decimal strings)."""
    output = record.get("output") or {}
    parts: list[dict] = []
    if record.get("reasoning"):
        parts.append({"type": "reasoning", "content": record["reasoning"]})
    if output.get("text"):
        parts.append({"type": "text", "content": output["text"]})
    parts += [{"type": "tool_call", "name": call["name"], "arguments": call.get("arguments")}
              for call in output.get("tool_calls") or []]
    start = int(round(float(record["timestamp"]) * 1e9))
    attributes = [_string(OPERATION, "chat"), _string("gen_ai.request.model", record["model_id"]),
                  _string(segment_attribute, record.get("segment", "default"))]
    if (record.get("input") or {}).get("text") is not None:
        messages = [{"role": "user", "parts": [{"type": "text", "content": record["input"]["text"]}]}]
        attributes.append(_string(INPUT_MESSAGES, orjson.dumps(messages).decode()))
    if "output" in record:
        attributes.append(_string(OUTPUT_MESSAGES, orjson.dumps([{"role": "assistant", "parts": parts}]).decode()))
    return {"traceId": _hex_id(record["decision_id"], 32), "spanId": _hex_id(record["decision_id"], 16),
            "name": f"chat {record['model_id']}", "kind": 3, "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + int(round(float(record.get("latency_ms") or 0.0) * 1e6))),
            "attributes": attributes}


def export_requests(records: Iterable[dict], *, spans_per_request: int = 100,
                    segment_attribute: str = SEGMENT_ATTRIBUTE) -> Iterator[dict]:
    """ExportTraceServiceRequests of up to ``spans_per_request`` spans, one traffic each (a resource
    carries one ``deployment.environment.name``), in record order."""
    batch: list[dict] = []
    for record in records:
        if batch and (len(batch) >= spans_per_request or batch[0]["traffic"] != record["traffic"]):
            yield _request(batch, segment_attribute)
            batch = []
        batch.append(record)
    if batch:
        yield _request(batch, segment_attribute)


def _request(records: Sequence[dict], segment_attribute: str) -> dict:
    resource = {"attributes": [_string(ENVIRONMENT, records[0]["traffic"]), _string("service.name", "agent")]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{
        "scope": {"name": "janus.simulate"}, "spans": [span_of(r, segment_attribute) for r in records]}]}]}
