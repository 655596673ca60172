"""The ``mapped`` format: the user's own JSON records, read through a TOML file of JSON pointers.

The mapping names, for each Janus field, a JSON pointer (RFC 6901) into the user's record
(``[fields]``) or a value every record shares (``[constants]``)::

    [fields]
    decision_id = "/id"
    timestamp = "/created_at"
    model_id = "/request/model"
    input.text = "/request/messages/0/content"
    attributes.region = "/meta/region"

    [constants]
    traffic = "production"

The file is checked once, up front (:meth:`Mapped.load`); a mistake is a
:class:`~detector.errors.JanusError` naming the key. For each record, a pointer that matches
nothing leaves an optional field absent, and is a rejection naming the field and the pointer for
``decision_id``, ``timestamp`` and ``model_id``. docs/formats.md has the full syntax.

>>> mapped = Mapped.from_tables({"fields": {"decision_id": "/id", "timestamp": "/at", "model_id": "/m",
...                                         "output": {"text": "/reply"}},
...                              "constants": {"traffic": "production"}}, "mapping.toml")
>>> mapped.convert({"id": "d1", "at": 1700000000, "m": "bot", "reply": "hi"}, None).items[0].record
{'traffic': 'production', 'decision_id': 'd1', 'timestamp': 1700000000, 'model_id': 'bot', 'output': {'text': 'hi'}}
>>> mapped.convert({"id": "d2", "at": 1700000000}, None).items[0].detail
"model_id: pointer /m (mapping.toml) matches nothing: no member 'm' in the object at the top"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson

from detector.errors import JanusError
from detector.formats.base import Converted, Format, Item
from detector.formats.pointer import JsonPointer, NoMatch
from detector.records import parse_values

FIELDS = frozenset({
    "decision_id", "timestamp", "model_id", "traffic", "segment", "model_version", "input.text", "output.text",
    "output.refused", "output.action", "output.tool_calls", "output.confidence", "reasoning", "latency_ms",
    "probe.pair_id", "probe.condition", "probe.cue",
})
ATTRIBUTE_PREFIX = "attributes."  # attributes.<name>: one attribute of the record
REQUIRED = ("decision_id", "timestamp", "model_id")  # traffic may come from the caller instead
TABLES = ("fields", "constants")


class Mapped(Format):
    """Records of the user's own shape; see the module docstring."""

    name = "mapped"

    def __init__(self, pointers: dict[str, JsonPointer], constants: dict[str, Any], origin: str):
        self.pointers = pointers
        self.constants = constants
        self.origin = origin  # the mapping file, as messages name it
        self.sources = {name: f"read from pointer {p.text} of {origin}" for name, p in pointers.items()}
        self.sources |= {name: f"set by [constants] of {origin}" for name in constants}
        if "traffic" not in self.sources:
            self.sources["traffic"] = f"unmapped in {origin}"

    @classmethod
    def load(cls, path: str | Path) -> Mapped:
        """Read and check a mapping file; :class:`JanusError` names what is wrong and where."""
        try:
            with Path(path).open("rb") as fh:
                tables = tomllib.load(fh)
        except FileNotFoundError:
            raise JanusError(f"{path}: mapping file not found") from None
        except OSError as exc:
            raise JanusError(f"{path}: cannot read mapping file: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:  # its message gives the line and column
            raise JanusError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_tables(tables, str(path))

    @classmethod
    def from_tables(cls, tables: dict[str, Any], origin: str) -> Mapped:
        """Check a parsed mapping (``origin`` names it in messages) and compile its pointers."""
        for key in tables:
            if key not in TABLES:
                raise JanusError(f"{origin}: unknown table [{key}]: a mapping has [fields] and [constants]")
        fields = _field_table(tables, "fields", origin)
        # Through JSON, as records are: a TOML date becomes the RFC 3339 text records carry.
        constants = orjson.loads(orjson.dumps(_field_table(tables, "constants", origin)))
        pointers = {}
        for name, text in fields.items():
            if name in constants:
                raise JanusError(f"{origin}: {name} is both in [fields] and in [constants]: keep one")
            if not isinstance(text, str):
                raise JanusError(f"{origin}: [fields] {name}: expected a JSON pointer string, got {text!r}")
            try:
                pointers[name] = JsonPointer.parse(text)
            except ValueError as exc:
                raise JanusError(f"{origin}: [fields] {name}: {exc}") from None
        for name in REQUIRED:
            if name not in pointers and name not in constants:
                raise JanusError(f"{origin}: {name} is unmapped: give it a pointer in [fields] "
                                 "or a value in [constants]")
        _check_constants(constants, origin)
        return cls(pointers, constants, origin)

    def convert(self, value: Any, traffic: str | None) -> Converted:
        record: dict[str, Any] = {}
        for name, constant in self.constants.items():
            _put(record, name, constant)
        for name, pointer in self.pointers.items():
            try:
                found = pointer.resolve(value)
            except NoMatch as exc:
                if name in REQUIRED:
                    detail = f"{name}: pointer {pointer.text} ({self.origin}) matches nothing: {exc}"
                    return Converted([Item("", reason="missing_field", detail=detail)])
                continue  # an optional field this record doesn't have
            _put(record, name, found)
        return Converted([Item("", record)])


def _field_table(tables: dict[str, Any], table: str, origin: str) -> dict[str, Any]:
    """``[fields]`` or ``[constants]`` as {Janus field: value}, dotted keys (``input.text``) flattened."""
    content = tables.get(table, {})
    if not isinstance(content, dict):
        raise JanusError(f"{origin}: {table} must be a table ([{table}]), got {content!r}")
    flat: dict[str, Any] = {}
    pending = list(content.items())
    while pending:
        name, value = pending.pop(0)
        if isinstance(value, dict):  # no Janus field holds an object: it is a TOML table of fields
            pending[:0] = [(f"{name}.{k}", v) for k, v in value.items()]  # keep the file's order
            continue
        if not _is_field(name):
            raise JanusError(f"{origin}: [{table}] {name}: not a Janus field (fields: "
                             f"{', '.join(sorted(FIELDS))}, attributes.<name>)")
        if name in flat:  # "input.text" quoted and input.text dotted are the same field
            raise JanusError(f"{origin}: [{table}] {name} is given twice")
        flat[name] = value
    return flat


def _is_field(name: str) -> bool:
    return name in FIELDS or (name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX))


def _put(record: dict[str, Any], name: str, value: Any) -> None:
    top, _, inner = name.partition(".")
    if inner:
        record.setdefault(top, {})[inner] = value
    else:
        record[top] = value


def _check_constants(constants: dict[str, Any], origin: str) -> None:
    """Parse the constants as a record, with placeholders for the rest, so a bad one fails now, not per record."""
    record: dict[str, Any] = {"decision_id": "x", "timestamp": 0, "model_id": "x", "traffic": "evaluation"}
    for name, constant in constants.items():
        _put(record, name, constant)
    rejected = parse_values([orjson.dumps(record)], locate=lambda _: origin).rejections
    if rejected:
        raise JanusError(f"{origin}: [constants] {rejected[0].message.removeprefix(f'{origin}: ')}")
