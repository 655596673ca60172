"""Helpers shared by the command modules: configuration, store, actor, printing."""

from __future__ import annotations

import getpass
import os
import sys

import orjson

from detector.config import JanusConfig, load_config


def config_of(args) -> JanusConfig:
    return load_config(getattr(args, "config", None))


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

