"""The ``--from-kafka`` options of `janus baseline build` and `janus report`: ``--topic --since
--until`` and the connection options, their checks, and the progress shown while reading the range
(the reading itself is :mod:`detector.stream.topic_range`)."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from detector.cli.serve_cmd import add_kafka_arguments, kafka_config_from_args
from detector.errors import JanusError

# Imported where used: building the parsers needs no numerical or Kafka library.
if TYPE_CHECKING:
    from detector.stream.topic_range import KafkaRange

RANGE_OPTIONS = ("topic", "since", "until", "bootstrap_servers")


def add_range_arguments(parser) -> None:
    """``--topic --since --until`` plus the Kafka connection options, used with ``--from-kafka``
    (checked by :func:`check_range_arguments`)."""
    parser.add_argument("--topic", help="with --from-kafka: the topic to read (default: the config's only topic)")
    parser.add_argument("--since", metavar="TIME",
                        help="with --from-kafka: start of the range (RFC 3339, epoch seconds, or a duration "
                             "before now such as 24h)")
    parser.add_argument("--until", metavar="TIME", help="with --from-kafka: end of the range, exclusive (default: now)")
    add_kafka_arguments(parser)


_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: float | None = None, label: str = "time") -> float:
    """``--since`` / ``--until`` values → epoch seconds.

    RFC 3339 with an offset (``2025-01-06T00:00:00Z``), epoch seconds (``1736121600``), ``now``,
    or a duration before now (``2h``, ``-30m``, ``7d``; units s, m, h, d, w).

    >>> parse_time("2025-01-06T00:00:00Z")
    1736121600.0
    >>> parse_time("90m", now=10_000.0), parse_time("now", now=5.0), parse_time("1736121600")
    (4600.0, 5.0, 1736121600.0)
    """
    value = text.strip()
    now = time.time() if now is None else now
    if value.lower() == "now":
        return float(now)
    match = _RELATIVE.match(value.lower())
    if match:
        return float(now) - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise JanusError(f"{label} {text!r}: expected RFC 3339 (2025-01-06T00:00:00Z), epoch seconds, "
                             "'now' or a duration before now (2h, 30m, 7d)") from None
        if parsed.tzinfo is None:
            raise JanusError(f"{label} {text!r} has no UTC offset (add 'Z' or '+00:00')")
        seconds = parsed.timestamp()
    if not 0 <= seconds < 1e11:
        raise JanusError(f"{label} {text!r} is out of range")
    return seconds


def check_range_arguments(args, config) -> tuple[str, float, float] | None:
    """Validate the range options: (topic, since, until) with ``--from-kafka``, else None."""
    if not getattr(args, "from_kafka", False):
        given = [f"--{name.replace('_', '-')}" for name in RANGE_OPTIONS if getattr(args, name, None) is not None]
        if given:
            raise JanusError(f"{', '.join(given)} only apply with --from-kafka")
        return None
    topic = args.topic
    if topic is None:
        if len(config.kafka.topics) != 1:
            raise JanusError("--from-kafka needs --topic (the config names "
                             f"{len(config.kafka.topics)} topics)")
        topic = config.kafka.topics[0]
    if args.since is None:
        raise JanusError("--from-kafka needs --since (start of the time range)")
    now = time.time()
    since = parse_time(args.since, now=now, label="--since")
    until = parse_time(args.until, now=now, label="--until") if args.until is not None else now
    if until <= since:
        from detector.stream.topic_range import iso

        raise JanusError(f"--until ({iso(until)}) must be after --since ({iso(since)})")
    return topic, since, until


def kafka_settings_for(args, config) -> dict[str, Any]:
    """:func:`kafka_kwargs` settings from the config's ``[kafka]`` section and the command line."""
    from detector.stream.kafka_config import kafka_settings_from_config

    return kafka_settings_from_config(kafka_config_from_args(config, args))


class ProgressReporter:
    """A ``progress`` callback: a tqdm bar when ``stream`` is a terminal, otherwise a plain line at
    most every ``every`` seconds (and one at the end). Use as a context manager."""

    def __init__(self, label: str, stream=None, every: float = 5.0, tty: bool | None = None):
        import sys

        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.tty = self.stream.isatty() if tty is None else tty
        self._bar = None
        self._last = 0.0
        self._read = 0
        self._total: int | None = None

    def __enter__(self) -> ProgressReporter:
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(desc=self.label, unit=" records", file=self.stream, dynamic_ncols=True)
        self._last = time.monotonic()
        return self

    def __call__(self, read: int, total: int | None) -> None:
        self._read, self._total = read, total if total is not None else self._total
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
                self._bar.refresh()
            self._bar.update(read - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._line()

    def _line(self) -> None:
        of = f" of ~{self._total:,}" if self._total else ""
        self.stream.write(f"janus: {self.label}: {self._read:,}{of} records read\n")
        self.stream.flush()

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
        elif exc[0] is None:
            self._line()


def read_range_from_args(args, config, range_: tuple[str, float, float], *, traffic: str | None = None,
                         stream=None) -> KafkaRange:
    from detector.formats import format_of
    from detector.stream.topic_range import iso, read_topic_range

    topic, since, until = range_
    settings = kafka_settings_for(args, config)
    if traffic is None:
        traffic = config.kafka.traffic_by_topic.get(topic)
    with ProgressReporter(f"reading {topic} {iso(since)}..{iso(until)}", stream=stream) as progress:
        return read_topic_range(topic, since, until, kafka_settings=settings, limits=config.limits,
                                traffic=traffic, progress=progress, fmt=format_of(config.input))
