"""The input-format interface: one decoded JSON value → the Janus records it holds.

A value is one JSONL line or one Kafka message, already decoded by :mod:`detector.records`. A
:class:`Format` turns it into :class:`Converted`: schema-v1 record dicts, or per-item rejections
(reason code and detail), in the value's order, plus a count of items it skipped on purpose.
Formats only reshape: every field of a record is still validated by :mod:`detector.records`,
whose messages the format completes with where the field was read (:meth:`Format.source`).

>>> class Upper(Format):
...     name = "upper"
...     sources = {"model_id": "read from 'm'", "output": "read from 'out'"}
...     def convert(self, value, traffic):
...         return Converted([Item("", {"decision_id": value["id"], "timestamp": 0, "model_id": value["m"]})])
>>> Upper().convert({"id": "d1", "m": "M"}, None).items[0].record["model_id"]
'M'
>>> Upper().source("model_id"), Upper().source("output.tool_calls"), Upper().source("segment")
("read from 'm'", "read from 'out'", None)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """One record a value holds: a record dict to validate, or rejected when ``reason`` is set.

    ``where`` names the item within its value for messages (``"span 2 (spanId …)"``); it is empty
    when the value itself is the item.
    """

    where: str
    record: Any = None  # a schema-v1 dict (the janus format passes any JSON value on, to be rejected there)
    reason: str = ""  # a detector.records.REASONS code: the item is rejected
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Converted:
    items: list[Item]
    skipped: int = 0  # items the format ignores by design (e.g. non-GenAI spans), neither records nor errors


class ItemError(Exception):
    """Raised while converting one item; the format turns it into a rejected :class:`Item`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def item(self, where: str) -> Item:
        return Item(where, reason=self.reason, detail=self.detail)


class Format(ABC):
    """Base of the input formats (see :func:`detector.formats.make_format`).

    ``one_record_per_value``: each value holds exactly one record, so a decision keeps its value's
    position (a line index or Kafka offset); otherwise positions count decisions.
    ``sources`` maps a Janus field (``"model_id"``, ``"output.tool_calls"``) to where the format reads it.
    """

    name: str = ""
    one_record_per_value: bool = True
    identity: bool = False  # values are Janus records already: the parser skips convert() (its fast path)
    sources: Mapping[str, str] = MappingProxyType({})

    @abstractmethod
    def convert(self, value: Any, traffic: str | None) -> Converted:
        """Records held by ``value``; ``traffic`` is the one the caller gives for all values, if any.

        Never raises on bad input: whatever cannot be read is a rejected :class:`Item`.
        """

    def source(self, janus_field: str) -> str | None:
        """Where this format reads ``janus_field`` (or the nearest enclosing field), for messages."""
        name = janus_field
        while True:
            if name in self.sources:
                return self.sources[name]
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]


class Janus(Format):
    """Janus's own schema-v1 records: each value is a record, as it is.

    >>> Janus().convert({"decision_id": "d1"}, None).items
    [Item(where='', record={'decision_id': 'd1'}, reason='', detail='')]
    """

    name = "janus"
    identity = True

    def convert(self, value: Any, traffic: str | None) -> Converted:
        # The reference meaning of the parser's fast path (tests/test_formats.py checks both agree).
        return Converted([Item("", value)])


JANUS = Janus()
