"""The ``otlp-json`` format: GenAI inference spans (OpenTelemetry GenAI conventions v1.37+) → records.

A decision is a span whose ``gen_ai.operation.name`` is ``chat``, ``text_completion`` or
``generate_content``. Every other span (HTTP, database, ``execute_tool``, ``invoke_agent``,
``embeddings``…) is skipped and counted. docs/formats.md has the table of fields read; in short:

* ``decision_id`` is ``traceId:spanId``; ``timestamp`` the span's start; ``latency_ms`` end − start;
* ``model_id`` is ``gen_ai.request.model`` (else ``gen_ai.response.model``), or the attribute the
  caller names (``model_from``, e.g. ``gen_ai.agent.name`` or the resource's ``service.name``);
* ``traffic`` is the resource's ``deployment.environment.name``, unless the caller gives one;
* ``input.text`` is the text of the *last* user message of ``gen_ai.input.messages`` (the turn
  this call answers; earlier turns and ``gen_ai.system_instructions`` are left out), with the user
  message before it when it is a short follow-up ("Yes, go ahead."): the request it confirms;
* ``output.text``, ``reasoning`` and ``output.tool_calls`` are the text, reasoning and tool-call
  parts of the first output message (choice 0); with no tool-call part, the ``execute_tool``
  spans that are children of this span in the same export stand for its tool calls;
* ``gen_ai.response.finish_reasons`` becomes the attribute of the same name (comma-separated).

Content recorded the pre-1.37 way (span events such as ``gen_ai.user.message`` and
``gen_ai.choice``, or ``gen_ai.prompt``/``gen_ai.completion`` attributes) is refused with a message
naming the version needed: those conventions changed shape from release to release, and reading
one of them wrongly would feed the baseline wrong text. ``output.refused`` is left absent.

>>> span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
...         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001500000000",
...         "attributes": [
...             {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
...             {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
...             {"key": "gen_ai.output.messages", "value": {"stringValue":
...                 '[{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}]'}}]}
>>> request = {"resourceSpans": [{"resource": {"attributes": [{"key": "deployment.environment.name",
...     "value": {"stringValue": "production"}}]}, "scopeSpans": [{"spans": [span, {"name": "GET /"}]}]}]}
>>> converted = OtlpJson().convert(request, None)
>>> converted.skipped, converted.items[0].where
(1, 'span 1 (spanId eee19b7ec3c1b174)')
>>> record = converted.items[0].record
>>> record["decision_id"], record["timestamp"], record["latency_ms"]
('5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174', 1700000000.0, 1500.0)
>>> record["model_id"], record["traffic"], record["output"]
('gpt-4o', 'production', {'text': 'Hello'})
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson

from detector.formats.base import Converted, Format, Item, ItemError
from detector.formats.otlp import Span, any_value, spans
from detector.formats.turns import confirmed_request
from detector.records import json_type_name

OPERATION = "gen_ai.operation.name"
INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
EXECUTE_TOOL = "execute_tool"
ENVIRONMENT = "deployment.environment.name"
OLD_ENVIRONMENT = "deployment.environment"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
FINISH_REASONS = "gen_ai.response.finish_reasons"
# v1.37+ lets instrumentations put the content on this span event instead of the span itself.
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_OLDER_CONTENT_EVENTS = frozenset({
    "gen_ai.content.prompt", "gen_ai.content.completion", "gen_ai.system.message", "gen_ai.user.message",
    "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
})
_OLDER_CONTENT_ATTRIBUTES = ("gen_ai.prompt", "gen_ai.completion")  # also as prefixes: gen_ai.prompt.0.content


class OtlpJson(Format):
    """OTLP/JSON trace exports, one ``ExportTraceServiceRequest`` per value."""

    name = "otlp-json"
    one_record_per_value = False

    def __init__(self, *, segment_attribute: str | None = None, model_from: str | None = None):
        self.segment_attribute = segment_attribute
        self.model_from = model_from
        self.sources = {
            "decision_id": "read from the span's traceId and spanId",
            "timestamp": "read from the span's startTimeUnixNano",
            "model_id": (f"read from attribute {model_from} of the span or its resource" if model_from
                         else "read from span attribute gen_ai.request.model or gen_ai.response.model"),
            "traffic": f"read from resource attribute {ENVIRONMENT} (or {OLD_ENVIRONMENT})",
            "latency_ms": "read from the span's endTimeUnixNano - startTimeUnixNano",
            "input": f"read from the last user message of {INPUT_MESSAGES}",
            "output.text": f"read from text parts of {OUTPUT_MESSAGES}",
            "output.tool_calls": f"read from tool_call parts of {OUTPUT_MESSAGES}, or child execute_tool spans",
            "reasoning": f"read from reasoning parts of {OUTPUT_MESSAGES}",
            f"attributes.{FINISH_REASONS}": f"read from span attribute {FINISH_REASONS}",
        }
        if segment_attribute:
            self.sources["segment"] = f"read from attribute {segment_attribute} of the span or its resource"

    def convert(self, value: Any, traffic: str | None) -> Converted:
        try:
            every_span = spans(value)
        except ItemError as exc:
            return Converted([exc.item("")])
        tool_spans = _tool_spans_by_parent(every_span)
        items: list[Item] = []
        skipped = 0
        for span in every_span:
            try:
                operation = span.attribute(OPERATION)
                if not isinstance(operation, str) or operation not in INFERENCE_OPERATIONS:
                    skipped += 1
                    continue
                items.append(Item(span.where, self._record(span, tool_spans, traffic)))
            except ItemError as exc:
                items.append(exc.item(span.where))
        return Converted(items, skipped)

    def _record(self, span: Span, tool_spans: dict[tuple[str, str], list[Span]], traffic: str | None) -> dict:
        trace_id, span_id = span.hex_id("traceId"), span.hex_id("spanId")
        if trace_id is None or span_id is None:
            raise ItemError("missing_field", f"{'traceId' if trace_id is None else 'spanId'}: required field is "
                                             "missing (the decision id is traceId:spanId)")
        start = span.unix_nano("startTimeUnixNano")
        if start is None:
            raise ItemError("missing_field", "startTimeUnixNano: required field is missing (the decision's time)")
        record: dict[str, Any] = {"decision_id": f"{trace_id}:{span_id}", "timestamp": start / 1e9}
        model = _span_or_resource(span, self.model_from) if self.model_from else (
            _first_present(span.attribute("gen_ai.request.model"), span.attribute("gen_ai.response.model")))
        if model is not None:
            record["model_id"] = model
        if traffic is None:  # a traffic given by the caller overrides the deployment's environment name
            # deployment.environment: its name before semantic conventions 1.27, still common in exports.
            environment = _first_present(span.resource_attribute(ENVIRONMENT),
                                         span.resource_attribute(OLD_ENVIRONMENT))
            if environment is not None:
                record["traffic"] = environment
        if self.segment_attribute:
            segment = _span_or_resource(span, self.segment_attribute)
            if segment is not None:
                record["segment"] = str(segment) if type(segment) is int else segment
        end = span.unix_nano("endTimeUnixNano")
        if end is not None:
            if end < start:
                raise ItemError("bad_value", "endTimeUnixNano: before startTimeUnixNano")
            record["latency_ms"] = (end - start) / 1e6
        record.update(_content(span, tool_spans.get((trace_id, span_id), [])))
        finish_reasons = span.attribute(FINISH_REASONS)
        if finish_reasons is not None:
            if isinstance(finish_reasons, list) and all(isinstance(r, str) for r in finish_reasons):
                finish_reasons = ",".join(finish_reasons)
            record["attributes"] = {FINISH_REASONS: finish_reasons}
        return record


def _content(span: Span, tool_spans: list[Span]) -> dict[str, Any]:
    """The record's ``input``, ``output`` and ``reasoning`` from the span's messages (and tool spans)."""
    inputs = _messages(span, INPUT_MESSAGES)
    outputs = _messages(span, OUTPUT_MESSAGES)
    if inputs is None and outputs is None:
        _refuse_older_content(span)
    content: dict[str, Any] = {}
    input_text = _last_user_text(inputs or [])
    if input_text is not None:
        content["input"] = {"text": input_text}
    output: dict[str, Any] = {}
    if outputs:
        where = f"{OUTPUT_MESSAGES}[0]"
        parts = _parts(outputs[0], where)
        text = _joined_contents(parts, "text", where)
        if text is not None:
            output["text"] = text
        reasoning = _joined_contents(parts, "reasoning", where)
        if reasoning is not None:
            content["reasoning"] = reasoning
        calls = [{"name": part.get("name"), "arguments": part.get("arguments")}
                 for part in parts if part.get("type") == "tool_call"]
        if calls:
            output["tool_calls"] = calls
    if "tool_calls" not in output and tool_spans:
        output["tool_calls"] = [_tool_call(child) for child in tool_spans]
    if output:
        content["output"] = output
    return content


def _span_or_resource(span: Span, key: str) -> Any:
    return _first_present(span.attribute(key), span.resource_attribute(key))


def _first_present(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _tool_spans_by_parent(every_span: list[Span]) -> dict[tuple[str, str], list[Span]]:
    """``execute_tool`` spans by (traceId, parentSpanId), in start order."""
    children: dict[tuple[str, str], list[tuple[int, Span]]] = defaultdict(list)
    for span in every_span:
        try:
            if span.attribute(OPERATION) == EXECUTE_TOOL:
                trace_id, parent_id = span.hex_id("traceId"), span.hex_id("parentSpanId")
                if trace_id and parent_id:
                    children[trace_id, parent_id].append((span.unix_nano("startTimeUnixNano") or 0, span))
        except ItemError:
            pass  # a tool span whose ids or time can't be read links to nothing: it stays a skipped span
    return {parent: [span for _, span in sorted(siblings, key=lambda pair: pair[0])]
            for parent, siblings in children.items()}


def _tool_call(span: Span) -> dict[str, Any]:
    try:
        return {"name": span.attribute("gen_ai.tool.name"), "arguments": span.attribute("gen_ai.tool.call.arguments")}
    except ItemError as exc:
        raise ItemError(exc.reason, f"tool call from execute_tool {span.where}: {exc.detail}") from None


def _content_attribute(span: Span, key: str) -> Any:
    """``key`` from the span, else from its ``gen_ai.client.inference.operation.details`` event."""
    value = span.attribute(key)
    if value is None:
        for name, attributes in span.events():
            if name == DETAILS_EVENT and key in attributes:
                return any_value(attributes[key], f"event {DETAILS_EVENT} attribute {key}")
    return value


def _messages(span: Span, key: str) -> list | None:
    """``gen_ai.input.messages`` or ``gen_ai.output.messages``: a JSON string or a structured list."""
    value = _content_attribute(span, key)
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ItemError("bad_value", f"{key}: not JSON: {str(exc)[:80]}") from None
    if value is not None and not isinstance(value, list):
        raise ItemError("wrong_type", f"{key}: expected a list of messages, got {json_type_name(value)}")
    return value


def _parts(message: Any, where: str) -> list[dict]:
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        raise ItemError("wrong_type", f"{where}: expected a message object with a 'parts' list "
                                      "(GenAI semantic conventions v1.37+)")
    for i, part in enumerate(message["parts"]):
        if not isinstance(part, dict):
            raise ItemError("wrong_type", f"{where}.parts[{i}]: expected object, got {json_type_name(part)}")
    return message["parts"]


def _joined_contents(parts: list[dict], part_type: str, where: str) -> str | None:
    """The ``content`` of every part of ``part_type``, one per line (None when there is none)."""
    contents = []
    for i, part in enumerate(parts):
        if part.get("type") == part_type:
            content = part.get("content")
            if not isinstance(content, str):
                raise ItemError("wrong_type", f"{where}.parts[{i}].content: expected string, "
                                              f"got {json_type_name(content)}")
            contents.append(content)
    return "\n".join(contents) if contents else None


def _last_user_text(messages: list) -> str | None:
    """The last user message's text; when it is a short follow-up, the user message before it too,
    so that what conditions the decision is the request being confirmed, not "yes"."""
    return confirmed_request(_user_texts(messages))


def _user_texts(messages: list) -> Iterator[str | None]:
    """The text of each user message, newest first (checked as they are read)."""
    for i in range(len(messages) - 1, -1, -1):
        where = f"{INPUT_MESSAGES}[{i}]"
        if not isinstance(messages[i], dict):
            raise ItemError("wrong_type", f"{where}: expected a message object, got {json_type_name(messages[i])}")
        if messages[i].get("role") == "user":
            yield _joined_contents(_parts(messages[i], where), "text", where)


def _refuse_older_content(span: Span) -> None:
    """A span with no v1.37 content but content the older ways is refused, not read as content-free."""
    older = sorted({name for name, _ in span.events()} & _OLDER_CONTENT_EVENTS)
    older += [f"attribute {key}" for key in span.attribute_keys()
              if any(key == prefix or key.startswith(prefix + ".") for prefix in _OLDER_CONTENT_ATTRIBUTES)]
    if older:
        raise ItemError("bad_value", f"content as {', '.join(older[:3])} follows the GenAI semantic conventions "
                                     f"before v1.37; Janus reads {INPUT_MESSAGES} and {OUTPUT_MESSAGES} (v1.37+): "
                                     "set OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental or upgrade "
                                     "the instrumentation")
