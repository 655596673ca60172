"""Input formats: what a JSONL line or a Kafka message holds, read into Janus decision records.

* ``janus``: Janus's own schema-v1 records (:mod:`detector.records`), one per value;
* ``otlp-json``: OpenTelemetry trace exports in OTLP/JSON, one GenAI inference span per decision
  (:mod:`.genai`);
* ``mapped``: the user's own JSON records, one per value, read through a TOML file of JSON
  pointers (:mod:`.mapped`).

Pass the format to :func:`detector.records.parse_values` (``fmt=``); docs/formats.md is the
user's guide.

>>> make_format("otlp-json", model_from="gen_ai.agent.name").name
'otlp-json'
>>> make_format("csv")
Traceback (most recent call last):
...
detector.errors.JanusError: unknown input format 'csv': valid formats are janus, otlp-json, mapped
"""

from __future__ import annotations

from pathlib import Path

from detector.config import INPUT_FORMATS, InputConfig
from detector.errors import JanusError
from detector.formats.base import JANUS, Converted, Format, Item, ItemError
from detector.formats.genai import OtlpJson
from detector.formats.mapped import Mapped

__all__ = ["FORMAT_NAMES", "JANUS", "Converted", "Format", "Item", "ItemError", "Mapped", "OtlpJson", "format_of",
           "make_format"]

# Each format with the options that apply to it.
_OPTIONS = {"janus": (), "otlp-json": ("segment_attribute", "model_from"), "mapped": ("mapping_path",)}
FORMAT_NAMES = INPUT_FORMATS  # the configuration validates [input] format against the same names
assert tuple(_OPTIONS) == FORMAT_NAMES


def make_format(name: str, *, mapping_path: str | Path | None = None, segment_attribute: str | None = None,
                model_from: str | None = None) -> Format:
    """The input format called ``name``, with its options; :class:`JanusError` for a bad name or option.

    ``mapping_path``: the TOML mapping of the ``mapped`` format (required there). For
    ``otlp-json``: ``segment_attribute``, an attribute of the span or its resource whose value is
    the decision's segment; ``model_from``, an attribute (``gen_ai.agent.name``, ``service.name``…)
    to read the model id from instead of ``gen_ai.request.model``.
    """
    if name not in _OPTIONS:
        raise JanusError(f"unknown input format {name!r}: valid formats are {', '.join(FORMAT_NAMES)}")
    given = {"mapping_path": mapping_path, "segment_attribute": segment_attribute, "model_from": model_from}
    for option, value in given.items():
        if value is None:
            continue
        if option not in _OPTIONS[name]:
            owner = next(f for f, options in _OPTIONS.items() if option in options)
            raise JanusError(f"{option} applies to the {owner} format, not to {name}")
        if not str(value).strip():
            raise JanusError(f"{option}: must not be empty")
    if name == "otlp-json":
        return OtlpJson(segment_attribute=segment_attribute, model_from=model_from)
    if name == "mapped":
        if mapping_path is None:
            raise JanusError("the mapped format needs a mapping file (mapping_path): see docs/formats.md")
        return Mapped.load(mapping_path)
    return JANUS


def format_of(config: InputConfig) -> Format:
    """The format a configuration's ``[input]`` table names (empty options: not given)."""
    return make_format(config.format, mapping_path=config.mapping or None,
                       segment_attribute=config.segment_attribute or None, model_from=config.model_from or None)
