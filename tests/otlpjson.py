"""Real OpenTelemetry SDK spans, encoded as OTLP/JSON the way the Collector writes them.

The Python SDK has no OTLP/JSON encoder: it encodes protobuf only. So a test records spans with
the SDK (:func:`tracer` and its :class:`InMemorySpanExporter`), encodes them with the OTLP exporter's
own ``encode_spans`` into a protobuf ``ExportTraceServiceRequest``, turns that into JSON with
protobuf's ``MessageToDict``, then fixes the one place where OTLP/JSON departs from protobuf's
JSON mapping: trace and span ids (:func:`otlp_json`).

    provider, exporter = tracer_provider("production")
    with provider.get_tracer("app").start_as_current_span("chat gpt-4o", attributes={...}):
        ...
    line = orjson.dumps(otlp_json(exporter.get_finished_spans()))
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def tracer_provider(environment: str | None, **resource: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider whose Resource carries ``deployment.environment.name`` (when given) and ``resource``."""
    attributes = dict(resource)
    if environment is not None:
        attributes["deployment.environment.name"] = environment
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def otlp_json(spans: list[ReadableSpan] | tuple[ReadableSpan, ...]) -> dict[str, Any]:
    """One ``ExportTraceServiceRequest`` in OTLP/JSON."""
    request = MessageToDict(encode_spans(list(spans)), use_integers_for_enums=True)
    return _hex_ids(request)


def _hex_ids(node: Any) -> Any:
    # protobuf's JSON mapping writes every bytes field as base64, but the OTLP/JSON spec makes an
    # exception for traceId, spanId and parentSpanId: lowercase hex. Only those three are changed
    # (an AnyValue's bytesValue stays base64, as the spec says).
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    if isinstance(node, dict):
        return {key: base64.b64decode(value).hex() if key in _ID_FIELDS and isinstance(value, str) else _hex_ids(value)
                for key, value in node.items()}
    return node


def messages(*pairs: tuple[str, list[dict[str, Any]]]) -> str:
    """``gen_ai.input.messages``/``gen_ai.output.messages`` as the SDK carries them: a JSON string
    (span attributes can't hold objects in the Python SDK)."""
    return json.dumps([{"role": role, "parts": parts} for role, parts in pairs])


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}
