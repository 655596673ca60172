"""Behaviour of the decision-record parser (schema v1): reasons, messages, limits, fuzzing, round trip."""

from __future__ import annotations

import json
import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.config import LimitsConfig, parse_config
from detector.records import (
    REASONS,
    Decision,
    ToolCall,
    iter_jsonl_chunks,
    line_locator,
    parse_values,
    read_decisions,
)

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def record(**overrides) -> dict:
    base = {"decision_id": "d1", "timestamp": 1_700_000_000, "model_id": "m", "traffic": "evaluation"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def one(value, **kwargs):
    """Parse a single value; return (decision, None) or (None, rejection)."""
    result = parse_values([value], **kwargs)
    assert len(result.decisions) + len(result.rejections) == 1
    if result.decisions:
        return result.decisions[0], None
    return None, result.rejections[0]


# ---- every reason code, with a message naming the field and the place --------------------------

REASON_CASES = [
    ("empty", b"", "empty value"),
    ("empty", None, "empty value"),
    ("empty", b"  \t \r\n", "empty value"),
    ("not_utf8", b'{"decision_id": "\xff\xfe"}', "UTF-8"),
    ("not_utf8", '{"decision_id": "\ud800"}', "UTF-8"),
    ("not_json", b"not json", "not JSON"),
    ("not_json", b'{"decision_id": "d1",', "not JSON"),
    ("not_object", b"[1, 2]", "expected a JSON object, got list"),
    ("not_object", b'"text"', "expected a JSON object, got string"),
    ("missing_field", orjson.dumps(record(decision_id=_DROP)), "decision_id: required field is missing"),
    ("missing_field", orjson.dumps(record(timestamp=_DROP)), "timestamp: required field is missing"),
    ("missing_field", orjson.dumps(record(model_id=_DROP)), "model_id: required field is missing"),
    ("missing_field", orjson.dumps(record(traffic=_DROP)), "traffic: required field is missing"),
    ("missing_field", orjson.dumps(record(output={"tool_calls": [{"arguments": {}}]})),
     "output.tool_calls[0].name: required field is missing"),
    ("missing_field", orjson.dumps(record(probe={"condition": "monitored"})), "probe.pair_id: required field"),
    ("wrong_type", orjson.dumps(record(output={"refused": "yes"})), "output.refused: expected bool, got string"),
    ("wrong_type", orjson.dumps(record(model_id=7)), "model_id: expected string, got number"),
    ("wrong_type", orjson.dumps(record(input="prompt")), "input: expected object, got string"),
    ("wrong_type", orjson.dumps(record(input={"text": ["a"]})), "input.text: expected string, got list"),
    ("wrong_type", orjson.dumps(record(output={"confidence": "high"})), "output.confidence: expected number"),
    ("wrong_type", orjson.dumps(record(output={"confidence": True})), "output.confidence: expected number, got bool"),
    ("wrong_type", orjson.dumps(record(output={"tool_calls": {"name": "x"}})), "output.tool_calls: expected list"),
    ("wrong_type", orjson.dumps(record(output={"tool_calls": ["x"]})), "output.tool_calls[0]: expected object"),
    ("wrong_type", orjson.dumps(record(attributes={"k": [1]})), "attributes.k: expected string, number or bool"),
    ("wrong_type", orjson.dumps(record(attributes={"k": None})), "attributes.k: expected string, number or bool"),
    ("wrong_type", orjson.dumps(record(latency_ms="fast")), "latency_ms: expected number, got string"),
    ("bad_value", orjson.dumps(record(decision_id="")), "decision_id: must not be empty"),
    ("bad_value", orjson.dumps(record(output={"confidence": 1.5})), "output.confidence: 1.5 is outside [0.0, 1.0]"),
    ("bad_value", orjson.dumps(record(latency_ms=-1)), "latency_ms: -1.0 is outside"),
    ("bad_value", orjson.dumps(record(probe={"pair_id": "p", "condition": "watched"})),
     "probe.condition: 'watched' is not 'monitored' or 'unmonitored'"),
    ("bad_timestamp", orjson.dumps(record(timestamp="2024-01-01T00:00:00")), "has no UTC offset"),
    ("bad_timestamp", orjson.dumps(record(timestamp="yesterday")), "is not an RFC 3339 time"),
    ("bad_timestamp", orjson.dumps(record(timestamp=-5)), "out of range"),
    ("bad_timestamp", orjson.dumps(record(timestamp=True)), "timestamp: expected RFC 3339"),
    ("bad_timestamp", orjson.dumps(record(timestamp=None)), "timestamp: expected RFC 3339"),
    ("bad_timestamp", orjson.dumps(record(timestamp="0001-01-01T00:00:00Z")), "out of range"),
    ("bad_timestamp", orjson.dumps(record(timestamp="9999-12-31T23:59:59Z")), "out of range"),
    ("bad_traffic", orjson.dumps(record(traffic="staging")), "traffic: 'staging' is not 'evaluation' or 'production'"),
    ("bad_traffic", orjson.dumps(record(traffic=1)), "traffic: 'number' is not"),
    ("too_large", orjson.dumps(record(output={"text": "x" * 100_001})), "output.text: 100001 characters, limit 100000"),
    ("too_large", orjson.dumps(record(decision_id="d" * 129)), "decision_id: 129 characters, limit 128"),
    ("too_large", b'{"pad": "' + b"x" * 1_048_576 + b'"}', "bytes, limit 1048576"),
    ("too_large", orjson.dumps(record(output={"tool_calls": [{"name": "t"}] * 65})),
     "output.tool_calls: 65 calls, limit 64"),
    ("too_large", orjson.dumps(record(attributes={f"k{i}": i for i in range(65)})), "attributes: 65 keys, limit 64"),
    ("too_deep", orjson.dumps(record(output={"tool_calls": [{"name": "t", "arguments": nested(9)}]})),
     "output.tool_calls[0].arguments: nested deeper than 8"),
    ("too_deep", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
]


@pytest.mark.parametrize(("reason", "value", "fragment"), REASON_CASES)
def test_each_rejection_has_its_reason_and_a_message_naming_field_and_place(reason, value, fragment):
    good = orjson.dumps(record())
    result = parse_values([good, good, good, value, good])
    assert [d.position for d in result.decisions] == [0, 1, 2, 4]
    (rej,) = result.rejections
    assert (rej.position, rej.reason) == (3, reason), rej.message
    assert rej.message.startswith("record 3: ")
    assert fragment in rej.message
    expected_raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else (value or b"")
    assert rej.raw == expected_raw  # sent to the dead-letter topic unchanged


def test_every_reason_code_is_reachable():
    # 'duplicate' needs the pipeline's de-duplication window: tests/test_pipeline.py reaches it.
    assert {reason for reason, _, _ in REASON_CASES} | {"duplicate"} == set(REASONS)


def test_message_example_from_the_brief_exactly():
    values = [orjson.dumps(record(decision_id=f"d{i}")) for i in range(3)]
    values.append(orjson.dumps(record(output={"refused": "no"})))
    (rej,) = parse_values(values).rejections
    assert rej.message == "record 3: output.refused: expected bool, got string"


def test_first_position_offsets_positions_and_messages():
    result = parse_values([orjson.dumps(record()), b"{}"], first_position=1000)
    assert result.decisions[0].position == 1000
    assert result.rejections[0].position == 1001
    assert result.rejections[0].message.startswith("record 1001: ")


def test_line_locator_names_file_and_one_based_line(tmp_path):
    path = tmp_path / "decisions.jsonl"
    lines = [orjson.dumps(record()), b"", orjson.dumps(record(output={"refused": 1})), b"{oops"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = read_decisions(path)
    assert [(r.position, r.reason) for r in result.rejections] == [(1, "empty"), (2, "wrong_type"), (3, "not_json")]
    assert result.rejections[1].message == f"{path}:3: output.refused: expected bool, got number"
    assert result.rejections[0].message == f"{path}:2: empty value"
    assert result.rejections[2].message.startswith(f"{path}:4: not JSON")
    # parse_values with the same locator says the same
    (rej,) = parse_values([lines[2]], first_position=2, locate=line_locator("x.jsonl")).rejections
    assert rej.message == "x.jsonl:3: output.refused: expected bool, got number"


def test_a_gzip_compressed_log_is_read_as_its_lines(tmp_path):
    import gzip

    path = tmp_path / "decisions.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join([orjson.dumps(record()), b"", b"{oops"]) + b"\n"))
    result = read_decisions(path)
    assert [d.decision_id for d in result.decisions] == ["d1"]
    assert [(r.message.split(": ")[0], r.reason) for r in result.rejections] == [
        (f"{path}:2", "empty"), (f"{path}:3", "not_json")]


@pytest.mark.parametrize("compressed", [False, True])
def test_a_byte_order_mark_before_the_first_line_is_not_part_of_the_record(tmp_path, compressed):
    import gzip

    data = b"\xef\xbb\xbf" + b"\n".join([orjson.dumps(record()), orjson.dumps(record(decision_id="d2"))])
    path = tmp_path / ("bom.jsonl.gz" if compressed else "bom.jsonl")
    path.write_bytes(gzip.compress(data) if compressed else data)
    result = read_decisions(path)
    assert [d.decision_id for d in result.decisions] == ["d1", "d2"] and not result.rejections


@pytest.mark.parametrize("value, hint", [
    (orjson.dumps({"resourceSpans": [{"scopeSpans": []}]}), "read it with `--format otlp-json`"),
    (orjson.dumps([record(), record(decision_id="d2")]), "a JSON array: Janus reads one record per line"),
    (b"[", "the file looks like indented JSON"),
    (b"  {  ", "the file looks like indented JSON"),
    (b'{"decision_id": "d1", "latency_ms": NaN}', "NaN and Infinity are not JSON numbers"),
    (b'{"decision_id": "d1", "latency_ms": -Infinity}', "NaN and Infinity are not JSON numbers"),
    (b"\x1f\x8b\x08\x00garbage", "gzip-compressed"),
])
def test_a_value_that_is_something_else_says_what_it_looks_like(value, hint):
    (rej,) = parse_values([value]).rejections
    assert hint in rej.message, rej.message


def test_no_hint_where_the_value_is_only_a_broken_record():
    (rej,) = parse_values([b'{"decision_id": "d1", "note": "NaN"} trailing']).rejections
    assert rej.reason == "not_json" and "are not JSON numbers" not in rej.message  # "NaN" inside a string


# ---- traffic from the topic ------------------------------------------------------------------------


def test_topic_traffic_fills_a_missing_field_and_rejects_a_conflict():
    values = [
        orjson.dumps(record(traffic=_DROP)),
        orjson.dumps(record(traffic="production")),
        orjson.dumps(record(traffic="evaluation")),  # claims evaluation on a production topic
    ]
    result = parse_values(values, traffic="production")
    assert [(d.position, d.traffic) for d in result.decisions] == [(0, "production"), (1, "production")]
    (rej,) = result.rejections
    assert rej.reason == "bad_traffic"
    assert rej.message == "record 2: traffic: record says 'evaluation' but its topic carries 'production'"


# ---- field values ----------------------------------------------------------------------------------


def test_valid_record_fields_are_read():
    rec = record(
        timestamp="2024-03-01T12:00:00+01:00",
        segment="triage",
        model_version="2.0",
        input={"text": "hi"},
        output={"text": "ok", "action": "escalate", "refused": False, "confidence": 1,
                "tool_calls": [{"name": "lookup_ip", "arguments": {"ip": "10.0.0.1"}}, {"name": "x"}]},
        reasoning="because",
        latency_ms=12,
        attributes={"tier": "gold", "n": 3, "flag": True, "f": 0.5},
        probe={"pair_id": "p1", "condition": "unmonitored", "cue": "no one is watching"},
        unknown_field={"ignored": True},
    )
    d, rej = one(orjson.dumps(rec))
    assert rej is None
    assert d.timestamp == 1709290800.0
    assert (d.segment, d.model_version, d.input_text, d.output_text) == ("triage", "2.0", "hi", "ok")
    assert (d.action, d.refused, d.confidence, d.reasoning, d.latency_ms) == ("escalate", False, 1.0, "because", 12.0)
    assert d.tool_calls == (ToolCall("lookup_ip", {"ip": "10.0.0.1"}), ToolCall("x", None))
    assert d.attributes == {"tier": "gold", "n": 3, "flag": True, "f": 0.5}
    assert (d.probe.pair_id, d.probe.condition, d.probe.cue) == ("p1", "unmonitored", "no one is watching")


def test_defaults_for_optional_fields():
    d, _ = one(orjson.dumps(record(segment="")))
    assert d.segment == "default"
    assert (d.refused, d.tool_calls, d.attributes, d.probe) == (None, (), {}, None)


def test_str_values_are_accepted_like_bytes():
    d, _ = one(json.dumps(record()))
    assert d.decision_id == "d1"


# ---- blank lines and chunks ------------------------------------------------------------------------


def test_blank_lines_keep_positions_in_chunks(tmp_path):
    path = tmp_path / "in.jsonl"
    good = [orjson.dumps(record(decision_id=f"d{i}")) for i in range(4)]
    raw = good[0] + b"\n\n" + good[1] + b"\r\n   \n" + good[2] + b"\n" + b"\n" + good[3]  # no final newline
    path.write_bytes(raw)
    chunks = list(iter_jsonl_chunks(path, chunk_size=3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    lines = [line for chunk in chunks for line in chunk]
    assert lines == [good[0], b"", good[1], b"   ", good[2], b"", good[3]]
    position, decisions, rejections = 0, [], []
    for chunk in chunks:
        result = parse_values(chunk, first_position=position, locate=line_locator(path))
        decisions += result.decisions
        rejections += result.rejections
        position += len(chunk)
    assert [(d.decision_id, d.position) for d in decisions] == [("d0", 0), ("d1", 2), ("d2", 4), ("d3", 6)]
    assert [(r.position, r.reason) for r in rejections] == [(1, "empty"), (3, "empty"), (5, "empty")]
    whole = read_decisions(path)
    assert [d.position for d in whole.decisions] == [0, 2, 4, 6]
    assert [r.message for r in whole.rejections] == [f"{path}:{n}: empty value" for n in (2, 4, 6)]


# ---- size limits are configurable -----------------------------------------------------------------


def _limits(**kw) -> LimitsConfig:
    return parse_config({"limits": kw}).limits


@pytest.mark.parametrize(
    ("limits", "at_limit", "over_limit", "fragment"),
    [
        ({"max_text_chars": 10}, record(reasoning="r" * 10), record(reasoning="r" * 11),
         "reasoning: 11 characters, limit 10"),
        ({"max_text_chars": 10}, record(input={"text": "i" * 10}), record(input={"text": "i" * 11}),
         "input.text: 11 characters, limit 10"),
        ({"max_id_chars": 5}, record(model_id="m" * 5), record(model_id="m" * 6), "model_id: 6 characters, limit 5"),
        ({"max_id_chars": 5}, record(attributes={"kkkkk": 1}), record(attributes={"kkkkkk": 1}),
         "attributes: key of 6 characters, limit 5"),
        ({"max_tool_calls": 2}, record(output={"tool_calls": [{"name": "a"}] * 2}),
         record(output={"tool_calls": [{"name": "a"}] * 3}), "output.tool_calls: 3 calls, limit 2"),
        ({"max_attributes": 2}, record(attributes={"a": 1, "b": 2}), record(attributes={"a": 1, "b": 2, "c": 3}),
         "attributes: 3 keys, limit 2"),
        ({"max_depth": 3}, record(output={"tool_calls": [{"name": "a", "arguments": nested(3)}]}),
         record(output={"tool_calls": [{"name": "a", "arguments": nested(4)}]}), "nested deeper than 3"),
    ],
)
def test_size_limits_are_configurable(limits, at_limit, over_limit, fragment):
    cfg = _limits(**limits)
    d, rej = one(orjson.dumps(at_limit), limits=cfg)
    assert rej is None, rej.message
    _, rej = one(orjson.dumps(over_limit), limits=cfg)
    assert rej.reason in ("too_large", "too_deep")
    assert fragment in rej.message
    # The default limits accept both.
    assert one(orjson.dumps(over_limit))[1] is None


def test_record_byte_limit_is_configurable():
    value = orjson.dumps(record())
    cfg = _limits(max_record_bytes=len(value))
    assert one(value, limits=cfg)[1] is None
    _, rej = one(value + b" ", limits=cfg)
    assert rej.reason == "too_large"
    assert rej.message == f"record 0: {len(value) + 1} bytes, limit {len(value)}"


# ---- property-based: the parser never raises and accounts for every value -------------------------

_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_any_char = st.one_of(st.characters(codec=None, exclude_categories=()), _surrogate)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # includes integers far beyond 64 bits
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN / Infinity literals
    st.text(_any_char, max_size=20),
)
_json_value = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(_any_char, max_size=10), children, max_size=5),
    ),
    max_leaves=25,
)

FIELD_PATHS = [
    ("decision_id",), ("timestamp",), ("model_id",), ("model_version",), ("traffic",), ("segment",),
    ("input",), ("input", "text"), ("output",), ("output", "text"), ("output", "action"),
    ("output", "refused"), ("output", "tool_calls"), ("output", "confidence"), ("reasoning",),
    ("latency_ms",), ("attributes",), ("probe",), ("probe", "pair_id"), ("probe", "condition"), ("probe", "cue"),
]


def _set_path(obj: dict, path: tuple, value) -> dict:
    if len(path) == 1:
        obj[path[0]] = value
    else:
        inner = obj.get(path[0])
        obj[path[0]] = _set_path(dict(inner) if isinstance(inner, dict) else {}, path[1:], value)
    return obj


@st.composite
def _mutated_record(draw):
    rec = record(output={"refused": True, "tool_calls": [{"name": "t", "arguments": {"a": 1}}]},
                 probe={"pair_id": "p", "condition": "monitored"}, attributes={"k": "v"})
    for path in draw(st.lists(st.sampled_from(FIELD_PATHS), min_size=1, max_size=4)):
        rec = _set_path(rec, path, draw(_json_value))
    return json.dumps(rec, ensure_ascii=draw(st.booleans()), allow_nan=True)


def _deep(depth: int, kind: str):
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


_raw_value = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.text(_any_char, max_size=200),
    _json_value.map(lambda v: json.dumps(v, allow_nan=True, ensure_ascii=False)),
    _mutated_record(),
    st.builds(_deep, st.integers(1, 6000), st.sampled_from(["list", "object"])),
    st.builds(lambda d: json.dumps(record(output={"tool_calls": [{"name": "t", "arguments": "ARGS"}]}))
              .replace('"ARGS"', "[" * d + "]" * d), st.integers(0, 3000)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '{"timestamp": NaN}', "1e999", "-1e999",
                     json.dumps(record(timestamp=10**400)), json.dumps(record(latency_ms=float("inf"))),
                     json.dumps(record(output={"confidence": float("nan")})),
                     json.dumps(record(attributes={"x": float("nan")}))]),
)


@FUZZ
@given(values=st.lists(_raw_value, max_size=8), first=st.integers(0, 2**40),
       traffic=st.sampled_from([None, "evaluation", "production"]))
def test_fuzz_never_raises_and_accounts_for_every_value(values, first, traffic):
    result = parse_values(values, traffic=traffic, first_position=first)
    assert len(result.decisions) + len(result.rejections) == len(values)
    positions = sorted([d.position for d in result.decisions] + [r.position for r in result.rejections])
    assert positions == list(range(first, first + len(values)))
    for rej in result.rejections:
        assert rej.reason in REASONS
        assert rej.message.startswith(f"record {rej.position}: ")
        assert isinstance(rej.raw, bytes)
    for d in result.decisions:
        assert d.traffic in ("evaluation", "production")
        assert traffic is None or d.traffic == traffic
        assert math.isfinite(d.timestamp) and 0 <= d.timestamp < 1e11
        assert d.confidence is None or 0 <= d.confidence <= 1
        assert d.latency_ms is None or 0 <= d.latency_ms <= 1e9
        assert all(isinstance(v, (str, int, float, bool)) for v in d.attributes.values())
        orjson.dumps(d.to_dict())  # every accepted decision serialises again


def test_nan_and_infinity_literals_are_rejected_not_raised():
    values = ["NaN", '{"decision_id": NaN}', json.dumps(record(latency_ms=float("inf")), allow_nan=True),
              json.dumps(record(output={"confidence": float("nan")}), allow_nan=True), "1e400"]
    result = parse_values(values)
    assert not result.decisions
    assert [r.reason for r in result.rejections] == ["not_json"] * 5


def test_deep_nesting_5000_levels_is_too_deep():
    for value in (b"[" * 5000 + b"]" * 5000, ('{"a":' * 5000 + "1" + "}" * 5000).encode()):
        _, rej = one(value)
        assert rej.reason == "too_deep"
    _, rej = one(orjson.dumps(record(output={"tool_calls": [{"name": "t", "arguments": nested(200)}]})))
    assert rej.reason == "too_deep"


# ---- property-based: a valid record survives parse → to_dict → dumps → parse -------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=40)
_id = st.text(st.characters(codec="utf-8"), min_size=1, max_size=128)


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_finite = st.floats(allow_nan=False, allow_infinity=False)
_arguments = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _finite, _text),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_text, c, max_size=3)),
    max_leaves=8,
).filter(lambda v: _depth(v) <= 8)
_timestamp = st.one_of(
    st.integers(0, 10**11 - 1),
    st.floats(0, 1e11, exclude_max=True),
    st.datetimes(timezones=st.timezones()).filter(lambda t: 0 <= t.timestamp() < 1e11).map(lambda t: t.isoformat()),
)


@st.composite
def valid_records(draw):
    rec = {"decision_id": draw(_id), "timestamp": draw(_timestamp), "model_id": draw(_id),
           "traffic": draw(st.sampled_from(["evaluation", "production"]))}
    optional = {
        "segment": _id,
        "model_version": _id,
        "input": st.fixed_dictionaries({"text": _text}),
        "output": st.fixed_dictionaries({}, optional={
            "text": _text, "action": _id, "refused": st.booleans(), "confidence": st.floats(0, 1),
            "tool_calls": st.lists(st.fixed_dictionaries({"name": _id}, optional={"arguments": _arguments}),
                                   max_size=4)}),
        "reasoning": _text,
        "latency_ms": st.one_of(st.integers(0, 10**9), st.floats(0, 1e9)),
        "attributes": st.dictionaries(_id, st.one_of(_id, st.booleans(), st.integers(-(2**63), 2**63 - 1),
                                                     _finite), max_size=6),
        "probe": st.fixed_dictionaries({"pair_id": _id, "condition": st.sampled_from(["monitored", "unmonitored"])},
                                       optional={"cue": _text}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            rec[key] = draw(strategy)
    return rec


@FUZZ
@given(rec=valid_records())
def test_valid_record_round_trips_unchanged(rec):
    first, rej = one(orjson.dumps(rec))
    assert rej is None, rej.message
    assert isinstance(first, Decision)
    again, rej = one(orjson.dumps(first.to_dict()))
    assert rej is None, rej.message
    assert again == first
    assert again.to_dict() == first.to_dict()
    # and the parse kept what the record said
    assert (first.decision_id, first.model_id, first.traffic) == (rec["decision_id"], rec["model_id"], rec["traffic"])
    assert first.segment == (rec.get("segment") or "default")
    assert first.refused == rec.get("output", {}).get("refused")
    assert len(first.tool_calls) == len(rec.get("output", {}).get("tool_calls", []))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(when=st.datetimes(timezones=st.timezones()))
def test_any_accepted_rfc3339_time_stays_accepted_after_round_trip(when):
    first, rej = one(orjson.dumps(record(timestamp=when.isoformat())))
    if first is None:
        assert rej.reason == "bad_timestamp"
        assert not 0 <= when.timestamp() < 1e11
        return
    again, rej = one(orjson.dumps(first.to_dict()))
    assert rej is None, rej.message
    assert again == first
