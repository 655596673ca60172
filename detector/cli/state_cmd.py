"""`janus state`: inspect or drop the partition states `janus serve` keeps in the Kafka state topic."""

from __future__ import annotations

from detector.cli.common import config_of
from detector.cli.serve_cmd import add_kafka_arguments, kafka_config_from_args
from detector.errors import JanusError


def register(p) -> None:
    sub = p.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="each partition's state: offset, owner epoch, writer, time")
    drop = sub.add_parser("drop", help="delete a partition's state: its next owner starts it over from the group's "
                                       "committed offset, its detectors from nothing")
    for q in (show, drop):
        add_kafka_arguments(q)
        q.add_argument("--group-id", help="the consumer group of `janus serve` (default: the config's kafka.group_id)")
        q.add_argument("--role", choices=["all", "featurise", "detect"], default="all",
                       help="whose states: the role's own consumer group (detect: the counts topic's partitions)")
        q.add_argument("--state-topic", help="default: the config's checkpoint.topic")
    show.add_argument("--topic", action="append", help="source topic (repeatable; default: the config's kafka.topics)")
    drop.add_argument("--topic", required=True, help="the source topic of the partition")
    drop.add_argument("--partition", required=True, type=int)
    show.set_defaults(handler=_show)
    drop.set_defaults(handler=_drop)


def _store(args):
    import dataclasses
    import os
    import socket

    from detector.stream.kafka_config import kafka_settings_from_config
    from detector.stream.state_topic import KafkaStateStore
    from detector.stream.tasks import group_for_role

    config = kafka_config_from_args(config_of(args), args)
    checkpoint = config.checkpoint
    if args.state_topic:
        checkpoint = dataclasses.replace(checkpoint, topic=args.state_topic)
    group = group_for_role(args.group_id or config.kafka.group_id, args.role)
    store = KafkaStateStore(checkpoint, group, f"janus-state-{socket.gethostname()}-{os.getpid()}",
                            kafka_settings_from_config(config))
    store.connect()
    return store, config


def _show(args) -> int:
    from detector.monitor.alerts import iso_time

    store, config = _store(args)
    try:
        topics = args.topic or ([config.split.counts_topic] if args.role == "detect" else config.kafka.topics)
        pairs = []
        for topic in topics:
            partitions = store.source_partitions(topic)
            if not partitions:
                raise JanusError(f"topic {topic!r} does not exist (or has no partitions)")
            pairs += [(topic, p) for p in partitions]
        for (topic, partition), stored in zip(pairs, store.read(pairs)):
            if stored is None:
                print(f"{topic}[{partition}]: no state")
            else:
                print(f"{topic}[{partition}]: offset {stored.offset}, epoch {stored.epoch}, written by "
                      f"{stored.writer or '?'} at {iso_time(stored.written_at)}")
    finally:
        store.close()
    return 0


def _drop(args) -> int:
    store, _ = _store(args)
    try:
        n = store.drop(args.topic, args.partition)
    finally:
        store.close()
    print(f"{args.topic}[{args.partition}]: deleted {n} state record{'s' if n != 1 else ''} from {store.topic}"
          if n else f"{args.topic}[{args.partition}]: no state in {store.topic}")
    return 0
