"""Helpers shared by the command modules: configuration, store, actor, printing."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import orjson

from detector.config import INPUT_FORMATS, JanusConfig, load_config


def config_of(args) -> JanusConfig:
    """The configuration file's settings, with the input-format options given on the command line."""
    config = load_config(getattr(args, "config", None))
    given = {key: value for key in _FORMAT_OPTIONS if (value := getattr(args, key, None)) is not None}
    return dataclasses.replace(config, input=dataclasses.replace(config.input, **given)) if given else config


_FORMAT_OPTIONS = ("format", "mapping", "segment_attribute", "model_from")


def add_format_arguments(parser) -> None:
    """--format and its options (docs/formats.md); they override the configuration's [input] table."""
    parser.add_argument("--format", choices=INPUT_FORMATS,
                        help="what each line or message holds: Janus decision records (default), OTLP/JSON trace "
                             "exports of GenAI spans, or your own JSON read through a --mapping file")
    parser.add_argument("--mapping", metavar="FILE.toml", help="mapped format: the TOML file of JSON pointers")
    parser.add_argument("--segment-attribute", metavar="KEY",
                        help="otlp-json: the span or resource attribute whose value is the segment")
    parser.add_argument("--model-from", metavar="KEY",
                        help="otlp-json: read the model id from this attribute (default gen_ai.request.model)")


def add_store_argument(parser) -> None:
    parser.add_argument("--store", help="baseline store folder (default: the config's `store`, 'baselines')")


def store_of(args, config: JanusConfig):
    from detector.baseline.store import BaselineStore  # numpy and scikit-learn: only for commands using a store

    return BaselineStore(args.store or config.store)


def default_actor() -> str:
    try:
        return os.environ.get("JANUS_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def alert_line(event, position: str = "record") -> str:
    """A firing alert as one readable line: severity, model/segment, feature, where, the sentence."""
    return (f"ALERT [{event.severity}] {event.model_id}/{event.segment} {event.feature} at {position} "
            f"{event.record_index:,}: {event.message}")


def add_rejects_argument(parser) -> None:
    parser.add_argument("--rejects-out", metavar="FILE.jsonl",
                        help="write every rejected record, with its reason, to this file (one JSON per line)")


def rejection_record(rejection, source: str, *, lines: bool) -> dict:
    """A rejected record as a line of ``--rejects-out``: ``line`` is 1-based for a file (None for a
    Kafka topic, whose partition and offset the ``message`` names); ``raw`` is the value as read
    (bytes that are not UTF-8 as ``\\x..`` escapes)."""
    return {"source": source, "line": rejection.position + 1 if lines else None, "reason": rejection.reason,
            "message": rejection.message, "raw": rejection.raw.decode("utf-8", "backslashreplace")}


def rejections_text(counts: Counter, first: str, rejects_out: str | None) -> str:
    """``3 (not_json 2, empty 1); first: a.jsonl:7: not JSON: …; all written to r.jsonl``: the counts by
    reason, the first rejection, and where the others are (or how to get them)."""
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in counts.most_common())
    rest = f"all written to {rejects_out}" if rejects_out else "--rejects-out FILE writes every one with its reason"
    return f"{sum(counts.values()):,} ({reasons}); first: {first}; {rest}"


@contextlib.contextmanager
def rejects_writer(path: str | None, source: str, *, lines: bool) -> Iterator[Callable[[Iterable], None]]:
    """``write(rejections)`` into a new ``--rejects-out`` file (a no-op without the option)."""
    if path is None:
        yield lambda rejections: None
        return
    with open(path, "wb") as fh:
        yield lambda rejections: fh.writelines(
            orjson.dumps(rejection_record(r, source, lines=lines)) + b"\n" for r in rejections)
