"""Input formats: what a JSONL line or a Kafka message holds, read into Janus decision records.

* ``janus``: Janus's own schema-v1 records (:mod:`detector.records`), one per value;
* the others: to come.

Pass the format to :func:`detector.records.parse_values` (``fmt=``); docs/formats.md is the
user's guide.

>>> make_format("janus").name
'janus'
>>> make_format("csv")
Traceback (most recent call last):
...
detector.errors.JanusError: unknown input format 'csv': valid formats are janus
"""

from __future__ import annotations

from detector.errors import JanusError
from detector.formats.base import JANUS, Converted, Format, Item, ItemError

__all__ = ["FORMAT_NAMES", "JANUS", "Converted", "Format", "Item", "ItemError", "make_format"]

# Each format with the options that apply to it.
_OPTIONS: dict[str, tuple[str, ...]] = {"janus": ()}
FORMAT_NAMES = tuple(_OPTIONS)


def make_format(name: str) -> Format:
    """The input format called ``name``; :class:`JanusError` for an unknown name."""
    if name not in _OPTIONS:
        raise JanusError(f"unknown input format {name!r}: valid formats are {', '.join(FORMAT_NAMES)}")
    return JANUS
