"""The decision record (schema v1) as a JSON Schema, for producers to validate against.

:mod:`detector.records` is the parser and the authority; this is the same contract written for
other tools (``janus schema`` prints it, with the limits of the configuration in force).
What a JSON Schema cannot say is left to the parser and named in the descriptions: timestamps
must parse, ``decision_id`` is unique per model within the de-duplication window, ``traffic`` may
come from the topic instead of the record, and tool-call arguments nest at most
``limits.max_depth`` deep.

>>> schema = decision_schema()
>>> schema["required"]
['decision_id', 'timestamp', 'model_id']
>>> schema["properties"]["output"]["properties"]["confidence"]["maximum"]
1
"""

from __future__ import annotations

from typing import Any

from detector.config import LimitsConfig
from detector.records import PROBE_CONDITIONS, TRAFFIC_VALUES

SCHEMA_ID = "https://janus.invalid/schemas/decision-v1.json"  # a name, not a place: nothing is fetched


def decision_schema(limits: LimitsConfig = LimitsConfig()) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one decision record under ``limits``."""
    ident = {"type": "string", "minLength": 1, "maxLength": limits.max_id_chars}
    text = {"type": ["string", "null"], "maxLength": limits.max_text_chars}

    def optional(schema: dict) -> dict:  # only required strings must be non-empty
        return {**{k: v for k, v in schema.items() if k != "minLength"}, "type": [*_types(schema), "null"]}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Janus decision record, schema v1",
        "description": "One logged model decision: one JSON object per Kafka message value or JSONL line, at "
                       f"most {limits.max_record_bytes:,} bytes. Unknown fields are ignored; null counts as absent.",
        "type": "object",
        "required": ["decision_id", "timestamp", "model_id"],
        "properties": {
            "decision_id": {**ident, "description": "Unique per model; a repeat within the de-duplication "
                                                    "window is dropped as a producer retry."},
            "timestamp": {"type": ["string", "number"], "description": "RFC 3339 with an offset "
                          "(2026-11-01T12:00:00Z) or Unix epoch seconds."},
            "model_id": {**ident, "description": "The model or agent; producers key records by it."},
            "traffic": {"enum": [*TRAFFIC_VALUES, None], "description": "Required unless the topic implies it "
                        "(kafka.traffic_by_topic); a record contradicting its topic is rejected."},
            "segment": optional({**ident, "description": "A slice judged on its own (default 'default')."}),
            "model_version": optional({**ident, "description": "A version the baseline was not built on is "
                                                              "reported as a protocol change."}),
            "input": {"type": ["object", "null"], "properties": {"text": text}},
            "output": {"type": ["object", "null"], "properties": {
                "text": text,
                "action": optional(ident),
                "refused": {"type": ["boolean", "null"], "description": "Without it, refusals can be "
                            "recognised in output.text (features.refusal_source)."},
                "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "tool_calls": {"type": ["array", "null"], "maxItems": limits.max_tool_calls, "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": ident, "arguments": {
                        "description": f"Any JSON, nested at most {limits.max_depth} deep."}}}},
            }},
            "reasoning": text,
            "latency_ms": {"type": ["number", "null"], "minimum": 0, "maximum": 1e9},
            "attributes": {"type": ["object", "null"], "maxProperties": limits.max_attributes,
                           "propertyNames": {"maxLength": limits.max_id_chars},
                           "additionalProperties": {"anyOf": [{"type": "string", "maxLength": limits.max_id_chars},
                                                              {"type": ["number", "boolean"]}]}},
            "probe": {"type": ["object", "null"], "required": ["pair_id", "condition"], "properties": {
                "pair_id": ident, "condition": {"enum": list(PROBE_CONDITIONS)}, "cue": text}},
        },
    }


def _types(schema: dict) -> list[str]:
    kind = schema["type"]
    return [kind] if isinstance(kind, str) else list(kind)
