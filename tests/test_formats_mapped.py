"""The mapped format: JSON pointers, the mapping file's checks, and records read through it."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from detector.errors import JanusError
from detector.formats import make_format
from detector.formats.pointer import JsonPointer, NoMatch
from detector.records import parse_values, read_decisions

DOCS = Path(__file__).resolve().parent.parent / "docs" / "formats.md"
MINIMAL = '[fields]\ndecision_id = "/id"\ntimestamp = "/at"\nmodel_id = "/model"\n'


def mapping(tmp_path: Path, text: str):
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    return make_format("mapped", mapping_path=path), path


def record(**overrides) -> bytes:
    base = {"id": "d1", "at": 1_700_000_000, "model": "m", "env": "evaluation"}
    base.update(overrides)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


# ---- JSON pointers (RFC 6901) ----------------------------------------------------------------

DOCUMENT = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, "k\"l": 6, " ": 7, "nested": {"list": [{"x": None}]}}


@pytest.mark.parametrize(("text", "expected"), [
    ("", DOCUMENT), ("/foo", ["bar", "baz"]), ("/foo/0", "bar"), ("/", 0), ("/a~1b", 1), ("/m~0n", 8),
    ('/k"l', 6), ("/ ", 7), ("/nested/list/0/x", None),
])
def test_pointers_resolve_as_rfc_6901_examples_say(text, expected):
    assert JsonPointer.parse(text).resolve(DOCUMENT) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("/missing", "no member 'missing' in the object at the top"),
    ("/foo/2", "no item 2 in the list at /foo (it has 2)"),
    ("/foo/01", "'01' is not a list index, at /foo"),
    ("/foo/-", "'-' is not a list index, at /foo"),
    ("/foo/0/x", "/foo/0 is a str, not an object or a list"),
    ("/nested/list/0/x/y", "/nested/list/0/x is a null, not an object or a list"),
])
def test_a_pointer_that_matches_nothing_says_where_it_stopped(text, message):
    with pytest.raises(NoMatch) as caught:
        JsonPointer.parse(text).resolve(DOCUMENT)
    assert str(caught.value) == message


@pytest.mark.parametrize("text", ["foo", "/a~2", "/a~"])
def test_malformed_pointers_are_refused(text):
    with pytest.raises(ValueError, match="is not a JSON pointer"):
        JsonPointer.parse(text)


# ---- the documented example ------------------------------------------------------------------


def test_the_full_example_of_the_docs_reads_as_it_says(tmp_path):
    docs = DOCS.read_text()
    toml_text = re.search(r"```toml\n(.*?)```", docs, re.S).group(1)
    json_text = re.search(r"```json\n(.*?)```", docs, re.S).group(1)
    fmt, _ = mapping(tmp_path, toml_text)
    (d,) = parse_values([json_text.replace("\n", " ")], fmt=fmt).decisions
    assert (d.decision_id, d.model_id, d.traffic, d.segment, d.model_version) == (
        "req_8f2c", "support-bot", "production", "web", "2025-01")
    assert d.timestamp == 1736158500.0
    assert (d.input_text, d.output_text, d.latency_ms) == ("Where is my order?", "It ships tomorrow.", 840.0)
    assert [(t.name, t.arguments) for t in d.tool_calls] == [("lookup_order", {"id": "1234"})]
    assert d.attributes == {"region": "eu", "tier": "gold"}


# ---- records read through a mapping ----------------------------------------------------------


def test_positions_are_line_positions_and_constants_fill_every_record(tmp_path):
    fmt, _ = mapping(tmp_path, MINIMAL + '[constants]\ntraffic = "production"\nsegment = "batch"\n')
    result = parse_values([record(id="a"), b"", record(id="b")], fmt=fmt, first_position=10)
    assert [(d.decision_id, d.position, d.traffic, d.segment) for d in result.decisions] == [
        ("a", 10, "production", "batch"), ("b", 12, "production", "batch")]
    assert [(r.position, r.reason) for r in result.rejections] == [(11, "empty")]


def test_a_required_field_whose_pointer_matches_nothing_names_field_pointer_and_line(tmp_path):
    text = MINIMAL.replace('"/model"', '"/request/model"') + '[constants]\ntraffic = "evaluation"\n'
    fmt, path = mapping(tmp_path, text)
    log = tmp_path / "log.jsonl"
    log.write_bytes(orjson.dumps({"id": "d1", "at": 1, "request": {"model": "m"}}) + b"\n"
                    + orjson.dumps({"id": "d2", "at": 1, "request": {}}) + b"\n")
    result = read_decisions(log, fmt=fmt)
    assert [d.decision_id for d in result.decisions] == ["d1"]
    (rej,) = result.rejections
    assert (rej.position, rej.reason) == (1, "missing_field")
    assert rej.message == (f"{log}:2: model_id: pointer /request/model ({path}) matches nothing: "
                           "no member 'model' in the object at /request")


def test_an_optional_field_whose_pointer_matches_nothing_is_absent(tmp_path):
    fmt, _ = mapping(tmp_path, MINIMAL + 'traffic = "/env"\noutput.text = "/reply/text"\n')
    (d,) = parse_values([record()], fmt=fmt).decisions
    assert d.output_text is None


def test_a_value_of_the_wrong_type_names_the_pointer_it_was_read_from(tmp_path):
    fmt, path = mapping(tmp_path, MINIMAL + 'traffic = "/env"\nlatency_ms = "/timing/ms"\n')
    (rej,) = parse_values([record(timing={"ms": "fast"})], fmt=fmt).rejections
    assert rej.reason == "wrong_type"
    assert rej.message == f"record 0: latency_ms: expected number, got string (read from pointer /timing/ms of {path})"


def test_null_counts_as_absent(tmp_path):
    fmt, path = mapping(tmp_path, MINIMAL + 'traffic = "/env"\n')
    (rej,) = parse_values([orjson.dumps({"id": "d1", "at": 1, "model": None, "env": "production"})],
                          fmt=fmt).rejections
    assert rej.message == f"record 0: model_id: required field is missing (read from pointer /model of {path})"


def test_unmapped_traffic_comes_from_the_caller_or_is_a_rejection_saying_so(tmp_path):
    fmt, path = mapping(tmp_path, MINIMAL)
    (d,) = parse_values([record()], fmt=fmt, traffic="production").decisions
    assert d.traffic == "production"
    (rej,) = parse_values([record()], fmt=fmt).rejections
    assert rej.reason == "missing_field"
    assert rej.message.startswith("record 0: traffic: required field is missing")
    assert rej.message.endswith(f"(unmapped in {path})")


def test_mapped_traffic_conflicting_with_the_callers_is_rejected_as_for_janus_records(tmp_path):
    fmt, _ = mapping(tmp_path, MINIMAL + 'traffic = "/env"\n')
    (rej,) = parse_values([record(env="evaluation")], fmt=fmt, traffic="production").rejections
    assert rej.reason == "bad_traffic" and "record says 'evaluation' but its topic carries 'production'" in rej.message


def test_the_whole_record_and_attributes_with_dots_can_be_mapped(tmp_path):
    fmt, _ = mapping(tmp_path, MINIMAL + 'traffic = "/env"\n"attributes.user.tier" = "/tier"\n"input.text" = "/q"\n')
    (d,) = parse_values([record(tier=2, q="hello")], fmt=fmt).decisions
    assert d.attributes == {"user.tier": 2} and d.input_text == "hello"


def test_a_value_that_is_not_json_is_rejected_before_the_mapping(tmp_path):
    fmt, _ = mapping(tmp_path, MINIMAL)
    (rej,) = parse_values([b"{oops"], fmt=fmt).rejections
    assert rej.reason == "not_json"


# ---- the mapping file is checked up front ----------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("[fields\n", "not valid TOML: "),
    (MINIMAL + "[extra]\n", "unknown table [extra]: a mapping has [fields] and [constants]"),
    ("fields = 3\n", "fields must be a table ([fields]), got 3"),
    (MINIMAL + 'output.txt = "/x"\n', "[fields] output.txt: not a Janus field (fields: decision_id, "),
    (MINIMAL + 'attributes = "/x"\n', "[fields] attributes: not a Janus field"),
    (MINIMAL + "segment = 3\n", "[fields] segment: expected a JSON pointer string, got 3"),
    (MINIMAL + 'segment = "segment"\n', "[fields] segment: 'segment' is not a JSON pointer: it must be empty or "
                                       "start with '/'"),
    (MINIMAL + 'segment = "/a~2"\n', "[fields] segment: '/a~2' is not a JSON pointer: '~' must be followed by 0 or 1"),
    (MINIMAL + '"input.text" = "/a"\ninput.text = "/b"\n', "[fields] input.text is given twice"),
    (MINIMAL + '[constants]\nmodel_id = "m"\n', "model_id is both in [fields] and in [constants]: keep one"),
    ('[fields]\ndecision_id = "/id"\ntimestamp = "/at"\n', "model_id is unmapped: give it a pointer in [fields] "
                                                          "or a value in [constants]"),
    (MINIMAL + '[constants]\ntraffic = "prod"\n', "[constants] traffic: 'prod' is not 'evaluation' or 'production'"),
    (MINIMAL + '[constants]\noutput.refused = "no"\n', "[constants] output.refused: expected bool, got string"),
    (MINIMAL + '[constants]\nsegment = "x"\n[constants.probe]\ncondition = "watched"\npair_id = "p"\n',
     "[constants] probe.condition: 'watched' is not 'monitored' or 'unmonitored'"),
])
def test_mistakes_in_the_mapping_file_name_the_key(tmp_path, text, message):
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    with pytest.raises(JanusError) as caught:
        make_format("mapped", mapping_path=path)
    assert str(caught.value).startswith(f"{path}: {message}"), str(caught.value)


def test_a_toml_syntax_error_names_its_line(tmp_path):
    path = tmp_path / "mapping.toml"
    path.write_text(MINIMAL + "segment = \n")
    with pytest.raises(JanusError, match=r"line 5"):
        make_format("mapped", mapping_path=path)


def test_a_missing_mapping_file_is_named(tmp_path):
    with pytest.raises(JanusError, match=r"nope.toml: mapping file not found"):
        make_format("mapped", mapping_path=tmp_path / "nope.toml")


def test_a_toml_date_constant_becomes_rfc_3339_text(tmp_path):
    fmt, _ = mapping(tmp_path, '[fields]\ndecision_id = "/id"\nmodel_id = "/model"\n'
                               '[constants]\ntimestamp = 2025-01-06T10:15:00Z\ntraffic = "evaluation"\n')
    (d,) = parse_values([record()], fmt=fmt).decisions
    assert d.timestamp == 1736158500.0
