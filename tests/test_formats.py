"""The format interface as the parser uses it: choosing a format, the janus fast path, doctests."""

from __future__ import annotations

import doctest
import importlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import JanusError
from detector.formats import FORMAT_NAMES, JANUS, Converted, Format, Item, Mapped, OtlpJson, make_format
from detector.formats.base import Janus
from detector.records import parse_values


def test_make_format_builds_each_format():
    assert make_format("janus") is JANUS
    assert isinstance(make_format("otlp-json", segment_attribute="tenant", model_from="service.name"), OtlpJson)
    assert FORMAT_NAMES == ("janus", "otlp-json", "mapped")


def test_make_format_reads_the_mapping_file(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[fields]\ndecision_id = "/id"\ntimestamp = "/t"\nmodel_id = "/m"\n')
    assert isinstance(make_format("mapped", mapping_path=path), Mapped)


@pytest.mark.parametrize(("name", "options", "message"), [
    ("csv", {}, "unknown input format 'csv': valid formats are janus, otlp-json, mapped"),
    ("OTLP", {}, "unknown input format 'OTLP': valid formats are janus, otlp-json, mapped"),
    ("janus", {"segment_attribute": "x"}, "segment_attribute applies to the otlp-json format, not to janus"),
    ("mapped", {"model_from": "x", "mapping_path": "m.toml"},
     "model_from applies to the otlp-json format, not to mapped"),
    ("otlp-json", {"mapping_path": "m.toml"}, "mapping_path applies to the mapped format, not to otlp-json"),
    ("mapped", {}, "the mapped format needs a mapping file (mapping_path): see docs/formats.md"),
    ("otlp-json", {"segment_attribute": " "}, "segment_attribute: must not be empty"),
])
def test_make_format_refuses_what_it_cannot_build_saying_why(name, options, message):
    with pytest.raises(JanusError) as caught:
        make_format(name, **options)
    assert str(caught.value) == message


# ---- the janus fast path is the identity format, optimised ------------------------------------


class _IdentityThroughConversion(Janus):
    identity = False  # the same format, read the general way


_values = st.one_of(
    st.none(), st.binary(max_size=30), st.sampled_from([b"[]", b"null", b"{}", b"{oops", b'"x"']),
    st.fixed_dictionaries({
        "decision_id": st.one_of(st.text(max_size=5), st.integers(-5, 5)),
        "timestamp": st.one_of(st.integers(-5, 2_000_000_000), st.text(max_size=5)),
        "model_id": st.sampled_from(["m", "", None]),
        "traffic": st.sampled_from(["evaluation", "production", "qa", None]),
    }, optional={"output": st.fixed_dictionaries({"refused": st.one_of(st.booleans(), st.integers(0, 1))})}
    ).map(orjson.dumps),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(values=st.lists(_values, max_size=6), first=st.integers(0, 10**6),
       traffic=st.sampled_from([None, "production"]))
def test_the_fast_path_reads_exactly_as_the_identity_conversion_would(values, first, traffic):
    fast = parse_values(values, first_position=first, traffic=traffic)
    general = parse_values(values, first_position=first, traffic=traffic, fmt=_IdentityThroughConversion())
    assert fast == general
    assert len(fast.decisions) + len(fast.rejections) == len(values) and fast.skipped == 0


def test_a_format_rejection_and_a_record_from_the_same_value_both_count():
    class TwoItems(Format):
        name = "two"
        one_record_per_value = False
        sources = {"model_id": "read from 'model'"}

        def convert(self, value, traffic):
            record = {"decision_id": "d", "timestamp": 0, "model_id": "m", "traffic": "evaluation"}
            return Converted([Item("item 1", reason="bad_value", detail="x: broken"),
                              Item("item 2", {**record, "model_id": 5}),
                              Item("item 3", record)],
                             skipped=2)

    result = parse_values([b"{}", b"{}"], fmt=TwoItems(), first_position=7, first_decision=40)
    assert result.skipped == 4
    assert [d.position for d in result.decisions] == [40, 41]
    assert [(r.position, r.message) for r in result.rejections] == [
        (7, "record 7 item 1: x: broken"),
        (7, "record 7 item 2: model_id: expected string, got number (read from 'model')"),
        (8, "record 8 item 1: x: broken"),
        (8, "record 8 item 2: model_id: expected string, got number (read from 'model')"),
    ]


@pytest.mark.parametrize("module", ["detector.formats", "detector.formats.base", "detector.formats.pointer",
                                    "detector.formats.otlp", "detector.formats.genai", "detector.formats.mapped",
                                    "detector.records"])
def test_docstring_examples_run(module):
    failed, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0 and failed == 0
