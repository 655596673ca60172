"""The otlp-json format: GenAI spans from the real OpenTelemetry SDK, and hand-written edge cases."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from otlpjson import messages, otlp_json, text, tracer_provider

from detector.formats import make_format
from detector.records import REASONS, ToolCall, parse_values, read_decisions

OTLP = make_format("otlp-json")
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
LINE = "events.jsonl:1"


def lines_of(*exports: dict) -> list[bytes]:
    return [orjson.dumps(e) for e in exports]


def parse(*exports: dict, fmt=OTLP, **kwargs):
    return parse_values(lines_of(*exports), fmt=fmt, locate=lambda p: f"events.jsonl:{p + 1}", **kwargs)


def one_chat(environment: str | None = "production", *, attributes: dict | None = None, **resource) -> tuple:
    """An export holding one chat span (returned too, to compare ids and times)."""
    provider, exporter = tracer_provider(environment, **resource)
    with provider.get_tracer("app").start_as_current_span("chat gpt-4o", attributes={**CHAT, **(attributes or {})}):
        pass
    (span,) = exporter.get_finished_spans()
    return otlp_json([span]), span


# ---- spans recorded by the real SDK -----------------------------------------------------------


def test_a_chat_span_becomes_a_decision_with_every_field_read():
    provider, exporter = tracer_provider("production", **{"service.name": "support-bot"})
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("POST /ask"):  # the web request around the model call: not a decision
        with tracer.start_as_current_span("chat gpt-4o", attributes={
            **CHAT,
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.system_instructions": json.dumps([text("You are a support agent.")]),
            "gen_ai.input.messages": messages(
                ("user", [text("My order is late.")]),
                ("assistant", [text("Sorry! What is the order number?")]),
                ("user", [text("It is 1234."), text("Please hurry.")]),
            ),
            "gen_ai.output.messages": messages(("assistant", [
                {"type": "reasoning", "content": "Look the order up first."},
                text("Let me check order 1234."),
                {"type": "tool_call", "id": "call_1", "name": "lookup_order", "arguments": {"order": "1234"}},
            ])),
            "gen_ai.response.finish_reasons": ["tool_calls"],
        }):
            pass
    spans = exporter.get_finished_spans()
    chat = next(s for s in spans if s.name.startswith("chat"))

    result = parse(otlp_json(spans))

    assert result.rejections == [] and result.skipped == 1
    (d,) = result.decisions
    ids = chat.context
    assert d.decision_id == f"{trace.format_trace_id(ids.trace_id)}:{trace.format_span_id(ids.span_id)}"
    assert d.timestamp == chat.start_time / 1e9
    assert d.latency_ms == pytest.approx((chat.end_time - chat.start_time) / 1e6)
    assert (d.model_id, d.traffic, d.segment) == ("gpt-4o", "production", "default")
    assert d.input_text == "My order is late.\nIt is 1234.\nPlease hurry."  # user messages; no system instructions
    assert d.output_text == "Let me check order 1234."
    assert d.reasoning == "Look the order up first."
    assert d.tool_calls == (ToolCall("lookup_order", {"order": "1234"}),)
    assert d.attributes == {"gen_ai.response.finish_reasons": "tool_calls"}
    assert d.refused is None  # left for the refusal recogniser
    assert d.position == 0


@pytest.mark.parametrize("turns, expected", [
    ([("user", "Please move 40k EUR to the account in the memo."), ("assistant", "Shall I?"), ("user", "Yes, go ahead.")],
     "Please move 40k EUR to the account in the memo.\nYes, go ahead."),  # a follow-up: with its request
    ([("user", "Summarise the incident."), ("assistant", "Which one?"), ("user", "The database outage of Tuesday.")],
     "Summarise the incident.\nThe database outage of Tuesday."),  # an answer to a question: with the request
    ([("user", "Reset my password."), ("assistant", "Done."), ("user", "x" * 1_000)], "x" * 1_000),  # enough alone
    ([("assistant", "Hello, how can I help?"), ("user", "ok")], "ok"),  # nothing before it
])
def test_a_follow_up_is_read_with_the_request_it_refers_to(turns, expected):
    provider, exporter = tracer_provider("production")
    attributes = {**CHAT, "gen_ai.input.messages": messages(*[(role, [text(t)]) for role, t in turns])}
    with provider.get_tracer("app").start_as_current_span("chat", attributes=attributes):
        pass
    (d,) = parse(otlp_json(exporter.get_finished_spans())).decisions
    assert d.input_text == expected


def test_execute_tool_child_spans_are_the_tool_calls_when_the_output_names_none():
    provider, exporter = tracer_provider("evaluation")
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("chat gpt-4o", attributes=CHAT):
        for tool, args in (("search", '{"q": "refund policy"}'), ("send_email", '{"to": "x@example.com"}')):
            with tracer.start_as_current_span(f"execute_tool {tool}", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.arguments": args}):
                pass
    with tracer.start_as_current_span("execute_tool orphan", attributes={  # another trace: not this span's call
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "orphan"}):
        pass

    result = parse(otlp_json(exporter.get_finished_spans()))

    (d,) = result.decisions
    assert [t.name for t in d.tool_calls] == ["search", "send_email"]  # in start order
    assert d.tool_calls[0].arguments == '{"q": "refund policy"}'
    assert result.skipped == 3 and result.rejections == []  # tool spans are not decisions


def test_tool_call_parts_win_over_execute_tool_spans():
    provider, exporter = tracer_provider("production")
    tracer = provider.get_tracer("agent")
    output = messages(("assistant", [{"type": "tool_call", "name": "from_output"}]))
    with tracer.start_as_current_span("chat", attributes={**CHAT, "gen_ai.output.messages": output}):
        with tracer.start_as_current_span("execute_tool", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "from_span"}):
            pass
    (d,) = parse(otlp_json(exporter.get_finished_spans())).decisions
    assert d.tool_calls == (ToolCall("from_output"),)


def test_each_decision_has_its_own_position_and_rejections_name_line_and_span(tmp_path):
    provider, exporter = tracer_provider("production")
    tracer = provider.get_tracer("app")
    exports = []
    for models in (["m1", "m2"], ["m3", None, "m4"]):  # None: a span without a model
        exporter.clear()
        for model in models:
            attributes = {"gen_ai.operation.name": "chat", **({"gen_ai.request.model": model} if model else {})}
            with tracer.start_as_current_span("chat", attributes=attributes):
                pass
        exports.append(otlp_json(exporter.get_finished_spans()))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines_of(*exports)) + b"\n")

    result = read_decisions(path, fmt=OTLP)

    assert [(d.model_id, d.position) for d in result.decisions] == [("m1", 0), ("m2", 1), ("m3", 2), ("m4", 3)]
    (rej,) = result.rejections
    assert (rej.position, rej.reason) == (1, "missing_field")  # the value's position: line 2
    span_id = exports[1]["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"]
    assert rej.message == (f"{path}:2 span 2 (spanId {span_id}): model_id: required field is missing "
                           "(read from span attribute gen_ai.request.model or gen_ai.response.model)")
    assert rej.raw == orjson.dumps(exports[1])


def test_chunked_parsing_numbers_decisions_across_chunks():
    provider, exporter = tracer_provider("production")
    for _ in range(2):
        with provider.get_tracer("app").start_as_current_span("chat", attributes=CHAT):
            pass
    values = lines_of(*[otlp_json(exporter.get_finished_spans())] * 3)  # two decisions per line
    first = parse_values(values[:2], fmt=OTLP, first_position=0, first_decision=0)
    second = parse_values(values[2:], fmt=OTLP, first_position=2, first_decision=len(first.decisions))
    assert [d.position for d in first.decisions + second.decisions] == [0, 1, 2, 3, 4, 5]


def test_a_repeated_span_is_a_duplicate_named_by_its_line():
    """Duplicates are found after parsing, per decision; the message still names the line they came from."""
    from detector.config import InputConfig, JanusConfig
    from detector.intake import Intake

    provider, exporter = tracer_provider("production")
    for _ in range(2):
        with provider.get_tracer("app").start_as_current_span("chat", attributes=CHAT):
            pass
    exports = [otlp_json(exporter.get_finished_spans())] * 3  # the same two spans on three lines
    intake = Intake(JanusConfig(input=InputConfig(format="otlp-json")))
    decisions, rejections = intake.accept(lines_of(*exports), locate=lambda p: f"events.jsonl:{p + 1}")
    assert [d.position for d in decisions] == [0, 1]
    assert [(r.position, r.reason) for r in rejections] == [(1, "duplicate")] * 2 + [(2, "duplicate")] * 2
    assert all(r.message.startswith(f"events.jsonl:{r.position + 1}: decision_id") for r in rejections)


def test_traffic_comes_from_the_environment_unless_the_caller_gives_one():
    production, _ = one_chat("production")
    staging, _ = one_chat("staging")
    unnamed, _ = one_chat(None)

    result = parse(production, staging, unnamed)
    assert [d.traffic for d in result.decisions] == ["production"]
    assert [(r.position, r.reason) for r in result.rejections] == [(1, "bad_traffic"), (2, "missing_field")]
    assert "traffic: 'staging' is not 'evaluation' or 'production' (read from resource attribute " \
           "deployment.environment.name (or deployment.environment))" in result.rejections[0].message
    assert result.rejections[1].message.startswith("events.jsonl:3 span 1 (spanId ")
    # The attribute's name before semantic conventions 1.27 is read too.
    older, _ = one_chat(None, **{"deployment.environment": "evaluation"})
    assert [d.traffic for d in parse(older).decisions] == ["evaluation"]

    given = parse(production, staging, unnamed, traffic="evaluation")
    assert [d.traffic for d in given.decisions] == ["evaluation"] * 3 and given.rejections == []


def test_segment_and_model_can_come_from_other_attributes():
    export, _ = one_chat(attributes={"gen_ai.agent.name": "triage-agent", "tenant.tier": 3},
                         **{"service.name": "support-bot", "cloud.region": "eu-west-1"})
    cases = {
        ("cloud.region", "gen_ai.agent.name"): ("triage-agent", "eu-west-1"),  # span attribute, resource attribute
        ("tenant.tier", "service.name"): ("support-bot", "3"),  # an integer segment is written as text
        (None, None): ("gpt-4o", "default"),
    }
    for (segment_attribute, model_from), expected in cases.items():
        fmt = make_format("otlp-json", segment_attribute=segment_attribute, model_from=model_from)
        (d,) = parse(export, fmt=fmt).decisions
        assert (d.model_id, d.segment) == expected


def test_an_absent_segment_attribute_leaves_the_default_segment_and_an_absent_model_source_is_named():
    export, _ = one_chat()
    fmt = make_format("otlp-json", segment_attribute="tenant", model_from="gen_ai.agent.name")
    (rej,) = parse(export, fmt=fmt).rejections
    assert rej.message.endswith("model_id: required field is missing "
                                "(read from attribute gen_ai.agent.name of the span or its resource)")
    (d,) = parse(export, fmt=make_format("otlp-json", segment_attribute="tenant")).decisions
    assert d.segment == "default"


def test_decisions_re_serialise_as_janus_records_unchanged():
    provider, exporter = tracer_provider("evaluation")
    with provider.get_tracer("app").start_as_current_span("chat", attributes={
            **CHAT, "gen_ai.input.messages": messages(("user", [text("hi")])),
            "gen_ai.output.messages": messages(("assistant", [text("hello")])),
            "gen_ai.response.finish_reasons": ["stop", "length"]}):
        pass
    (d,) = parse(otlp_json(exporter.get_finished_spans())).decisions
    (again,) = parse_values([orjson.dumps(d.to_dict())]).decisions
    assert again == d
    assert d.attributes == {"gen_ai.response.finish_reasons": "stop,length"}


# ---- hand-written exports: what the SDK would not produce -------------------------------------

TRACE, SPAN, CHILD = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "00f067aa0ba902b7"


def attr(key: str, value) -> dict:
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    return {"key": key, "value": value}  # an AnyValue written out


def span(*attributes: dict, span_id: str = SPAN, **fields) -> dict:
    base = {"traceId": TRACE, "spanId": span_id, "name": "chat", "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000250000000", "attributes": list(attributes)}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def export(*spans: dict, environment: str = "production") -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [attr("deployment.environment.name", environment)]},
                               "scopeSpans": [{"scope": {"name": "hand"}, "spans": list(spans)}]}]}


def chat_span(*attributes: dict, **fields) -> dict:
    return span(attr("gen_ai.operation.name", "chat"), attr("gen_ai.request.model", "m"), *attributes, **fields)


def rejected(*spans: dict) -> tuple[str, str]:
    result = parse(export(*spans))
    assert result.decisions == []
    (rej,) = result.rejections
    assert rej.reason in REASONS
    return rej.reason, rej.message


def test_missing_model():
    reason, message = rejected(span(attr("gen_ai.operation.name", "chat")))
    assert reason == "missing_field"
    assert message == (f"{LINE} span 1 (spanId {SPAN}): model_id: required field is missing "
                       "(read from span attribute gen_ai.request.model or gen_ai.response.model)")


def test_response_model_serves_when_the_request_model_is_absent():
    (d,) = parse(export(span(attr("gen_ai.operation.name", "text_completion"),
                             attr("gen_ai.response.model", "m-2024")))).decisions
    assert d.model_id == "m-2024"


def test_bad_json_in_input_messages():
    reason, message = rejected(chat_span(attr("gen_ai.input.messages", '[{"role": "user", "parts": [')))
    assert reason == "bad_value"
    assert message.startswith(f"{LINE} span 1 (spanId {SPAN}): gen_ai.input.messages: not JSON: ")


@pytest.mark.parametrize(("messages_json", "fragment"), [
    ('{"role": "user"}', "gen_ai.input.messages: expected a list of messages, got object"),
    ('[{"role": "user", "content": "hi"}]', "gen_ai.input.messages[0]: expected a message object with a 'parts' list"),
    ('[{"role": "user", "parts": [{"type": "text", "content": 7}]}]',
     "gen_ai.input.messages[0].parts[0].content: expected string, got number"),
    ('["hi"]', "gen_ai.input.messages[0]: expected a message object, got string"),
])
def test_malformed_messages_name_the_path_inside_the_attribute(messages_json, fragment):
    reason, message = rejected(chat_span(attr("gen_ai.input.messages", messages_json)))
    assert reason == "wrong_type" and fragment in message


def test_a_span_with_no_content_is_a_decision_without_input_or_output():
    # Content capture is opt-in in the conventions: such a span still has model, time and latency.
    (d,) = parse(export(chat_span(attr("gen_ai.response.finish_reasons", {"arrayValue": {"values": [
        {"stringValue": "stop"}]}})))).decisions
    assert (d.input_text, d.output_text, d.tool_calls, d.reasoning) == (None, None, (), None)
    assert d.latency_ms == 250.0 and d.attributes == {"gen_ai.response.finish_reasons": "stop"}


def test_a_span_with_input_but_no_output_is_a_decision_without_output():
    (d,) = parse(export(chat_span(attr("gen_ai.input.messages", messages(("user", [text("hi")])))))).decisions
    assert (d.input_text, d.output_text) == ("hi", None)


def test_non_genai_spans_are_skipped_and_counted_not_rejected():
    result = parse(export(span(attr("http.request.method", "GET"), span_id=CHILD),
                          span(attr("gen_ai.operation.name", "embeddings"), span_id="1" * 16),
                          span(span_id="2" * 16), chat_span()))
    assert (len(result.decisions), result.skipped, result.rejections) == (1, 3, [])


def test_an_export_with_no_spans_yields_nothing():
    result = parse({"resourceSpans": []}, export())
    assert (result.decisions, result.rejections, result.skipped) == ([], [], 0)


def test_unknown_environment():
    result = parse(export(chat_span(), environment="staging"))
    (rej,) = result.rejections
    assert rej.reason == "bad_traffic"
    assert "'staging' is not 'evaluation' or 'production' (read from resource attribute deployment.environment.name " \
        in rej.message


def test_structured_messages_read_like_json_strings():
    # Other SDKs (and the Collector) can carry the messages as an AnyValue array of kvlists.
    def kv(**fields):
        return {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in fields.items()]}}
    structured = {"arrayValue": {"values": [kv(role={"stringValue": "user"}, parts={"arrayValue": {"values": [
        kv(type={"stringValue": "text"}, content={"stringValue": "hi there"})]}})]}}
    (d,) = parse(export(chat_span(attr("gen_ai.input.messages", structured)))).decisions
    assert d.input_text == "hi there"


def test_content_on_the_inference_details_event_is_read():
    details = {"name": "gen_ai.client.inference.operation.details", "timeUnixNano": "1700000000100000000",
               "attributes": [attr("gen_ai.output.messages", messages(("assistant", [text("from the event")])))]}
    (d,) = parse(export(chat_span(events=[details]))).decisions
    assert d.output_text == "from the event"


@pytest.mark.parametrize("older", [
    {"events": [{"name": "gen_ai.user.message", "attributes": [attr("content", "hi")]},
                {"name": "gen_ai.choice", "attributes": [attr("message", "hello")]}]},
    {"events": [{"name": "gen_ai.content.prompt", "attributes": [attr("gen_ai.prompt", "hi")]}]},
])
def test_pre_1_37_content_events_are_refused_naming_the_version_needed(older):
    reason, message = rejected(chat_span(**older))
    assert reason == "bad_value"
    assert "before v1.37" in message and "gen_ai.input.messages" in message
    assert "OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental" in message


def test_pre_1_37_content_attributes_are_refused():
    reason, message = rejected(chat_span(attr("gen_ai.prompt.0.content", "hi"), attr("gen_ai.completion", "hello")))
    assert reason == "bad_value" and "attribute gen_ai.prompt.0.content" in message


def test_base64_ids_are_refused_with_the_hex_rule():
    reason, message = rejected(chat_span(traceId="W47/95gDgQPSabYzgT/GDA=="))
    assert reason == "bad_value"
    assert "traceId: 'W47/95gDgQPSabYzgT/GDA==' is not 32 lowercase hex digits (OTLP/JSON writes ids as hex" in message


@pytest.mark.parametrize(("fields", "reason", "fragment"), [
    ({"spanId": None}, "missing_field", "spanId: required field is missing"),
    ({"startTimeUnixNano": None}, "missing_field", "startTimeUnixNano: required field is missing"),
    ({"startTimeUnixNano": "soon"}, "bad_timestamp", "startTimeUnixNano: 'soon' is not a count of nanoseconds"),
    ({"endTimeUnixNano": "1600000000000000000"}, "bad_value", "endTimeUnixNano: before startTimeUnixNano"),
    ({"attributes": {"gen_ai.operation.name": "chat"}}, "wrong_type", "attributes: expected list, got object"),
])
def test_unreadable_span_fields_are_rejections_naming_the_field(fields, reason, fragment):
    got_reason, message = rejected(chat_span(**fields))
    assert got_reason == reason and fragment in message, message


@pytest.mark.parametrize(("value", "reason", "fragment"), [
    ({"decision_id": "d1"}, "missing_field", "resourceSpans: required field is missing (is this an OTLP/JSON"),
    ([1], "not_object", "expected an OTLP ExportTraceServiceRequest object, got list"),
    ({"resourceSpans": [{"scopeSpans": {}}]}, "wrong_type", "resourceSpans[0].scopeSpans: expected list, got object"),
])
def test_a_value_that_is_not_a_trace_export_is_one_rejection(value, reason, fragment):
    result = parse(value)
    (rej,) = result.rejections
    assert (rej.reason, rej.position) == (reason, 0)
    assert rej.message == f"{LINE}: {fragment}" or rej.message.startswith(f"{LINE}: {fragment}")


def test_limits_apply_to_converted_records_and_name_the_source():
    long_model = "m" * 200
    reason, message = rejected(span(attr("gen_ai.operation.name", "chat"), attr("gen_ai.request.model", long_model)))
    assert reason == "too_large"
    assert message.endswith("model_id: 200 characters, limit 128 "
                            "(read from span attribute gen_ai.request.model or gen_ai.response.model)")


# ---- never raises, accounts for every span ----------------------------------------------------

_int64 = st.integers(-(2**63), 2**63 - 1)  # what JSON encoders (orjson) write as numbers
_any_value = st.recursive(
    st.one_of(st.builds(lambda s: {"stringValue": s}, st.text(max_size=20)),
              st.builds(lambda i: {"intValue": i}, st.one_of(_int64, st.text(max_size=5))),
              st.builds(lambda b: {"boolValue": b}, st.one_of(st.booleans(), _int64)),
              st.builds(lambda d: {"doubleValue": d}, st.one_of(st.floats(allow_nan=False), st.just("NaN"))),
              st.just({}), st.just({"bogusValue": 1}), st.none(), _int64),
    lambda inner: st.one_of(st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
                            st.builds(lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kv]}},
                                      st.lists(st.tuples(st.text(max_size=5), inner), max_size=3))),
    max_leaves=6)
_keys = st.sampled_from(["gen_ai.operation.name", "gen_ai.request.model", "gen_ai.input.messages",
                         "gen_ai.output.messages", "gen_ai.response.finish_reasons", "gen_ai.prompt", "x"])


@st.composite
def _mutated_exports(draw):
    provider_spans = [chat_span(attr("gen_ai.input.messages", messages(("user", [text("hi")])))),
                      chat_span(attr("gen_ai.output.messages", messages(("assistant", [text("ok")])))),
                      span(attr("http.route", "/"), span_id=CHILD)]
    spans = draw(st.lists(st.sampled_from(provider_spans), min_size=1, max_size=4))
    spans = copy.deepcopy(spans)
    for s in spans:
        for _ in range(draw(st.integers(0, 3))):
            action = draw(st.sampled_from(["attr", "field", "drop"]))
            if action == "attr" and isinstance(s.get("attributes"), list):
                s["attributes"].append({"key": draw(_keys), "value": draw(_any_value)})
            elif action == "field":
                s[draw(st.sampled_from(["traceId", "spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano",
                                        "events", "attributes"]))] = draw(
                    st.one_of(st.none(), _int64, st.text(max_size=40), st.lists(_int64, max_size=2)))
            else:
                s.pop(draw(st.sampled_from(sorted(s))), None)
    return export(*spans, environment=draw(st.sampled_from(["production", "evaluation", "qa"])))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(exports=st.lists(_mutated_exports(), min_size=1, max_size=3),
       traffic=st.sampled_from([None, "production"]))
def test_fuzz_never_raises_and_every_span_is_a_decision_a_rejection_or_skipped(exports, traffic):
    result = parse(*exports, traffic=traffic, first_decision=100)
    spans = sum(len(e["resourceSpans"][0]["scopeSpans"][0]["spans"]) for e in exports)
    assert len(result.decisions) + len(result.rejections) + result.skipped == spans
    assert [d.position for d in result.decisions] == list(range(100, 100 + len(result.decisions)))
    for rej in result.rejections:
        assert rej.reason in REASONS
        assert rej.message.startswith(f"events.jsonl:{rej.position + 1} span ")
    for d in result.decisions:
        orjson.dumps(d.to_dict())
