"""`janus serve`: the stream service (Kafka consumer group → detection → alerts and metrics)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import TYPE_CHECKING

from detector import logs
from detector.cli.common import add_format_arguments, add_store_argument, config_of, store_of
from detector.errors import JanusError

# Imported where used: `janus baseline` and `janus report` build their parsers with the Kafka options
# defined here (through detector.cli.kafka_range), and need no Kafka or Prometheus library for that.
if TYPE_CHECKING:
    from detector.metrics import JanusMetrics
    from detector.stream.service import StreamService


def add_kafka_arguments(p) -> None:
    """Connection options shared by every command that talks to Kafka."""
    p.add_argument("--bootstrap-servers", help="host:port[,host:port] (default: the config's kafka.bootstrap_servers)")
    p.add_argument("--security-protocol", choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
    p.add_argument("--sasl-mechanism", help="e.g. PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    p.add_argument("--sasl-username")
    p.add_argument("--sasl-password-env", metavar="VAR", help="name of the environment variable holding the password")
    p.add_argument("--ssl-cafile")
    p.add_argument("--ssl-certfile")
    p.add_argument("--ssl-keyfile")
    p.add_argument("--max-poll-interval-ms", type=int,
                   help="consumer max_poll_interval_ms (the embedded Tansu broker needs ~5000)")


def kafka_config_from_args(config, args):
    """The config with command-line Kafka options applied (a new, frozen config)."""
    changes = {}
    for arg, key in (("bootstrap_servers", "bootstrap_servers"), ("security_protocol", "security_protocol"),
                     ("sasl_mechanism", "sasl_mechanism"), ("sasl_username", "sasl_plain_username"),
                     ("ssl_cafile", "ssl_cafile"), ("ssl_certfile", "ssl_certfile"), ("ssl_keyfile", "ssl_keyfile"),
                     ("max_poll_interval_ms", "max_poll_interval_ms")):
        value = getattr(args, arg, None)
        if value is not None:
            changes[key] = value
    if getattr(args, "sasl_password_env", None):
        if args.sasl_password_env not in os.environ:
            raise JanusError(f"--sasl-password-env: environment variable {args.sasl_password_env} is not set")
        changes["sasl_plain_password"] = os.environ[args.sasl_password_env]
    return dataclasses.replace(config, kafka=dataclasses.replace(config.kafka, **changes))


def register(p) -> None:
    add_store_argument(p)
    add_format_arguments(p)
    add_kafka_arguments(p)
    p.add_argument("--role", choices=["all", "featurise", "detect"], default="all",
                   help="all (default): parse, featurise and detect each partition's records in this process; "
                        "featurise: publish per-block count tables of each model to the counts topic (any number of "
                        "instances); detect: own the models' detectors, fed from the counts topic, and emit the "
                        "alerts (docs/runbooks.md, \"Scale-out of one busy model\")")
    p.add_argument("--counts-topic", help="featurise/detect: the counts topic (default: the config's "
                                          "split.counts_topic, janus.counts)")
    p.add_argument("--topic", action="append", help="decision topic (repeatable; default: the config's kafka.topics)")
    p.add_argument("--traffic", action="append", default=[], metavar="TOPIC=TRAFFIC",
                   help="the traffic a topic carries: evaluation or production (repeatable)")
    p.add_argument("--group-id")
    p.add_argument("--alert-topic")
    p.add_argument("--review-topic", help='send the audit sample for human review to this topic (default: the config\'s '
                                          'review.topic, janus.review, when review.enabled; "" = none; '
                                          'docs/review.md)')
    p.add_argument("--review-out", metavar="FILE.jsonl",
                   help="also append the audit sample to this JSONL file (default: the config's review.jsonl)")
    p.add_argument("--checkpoint-dir",
                   help="keep each partition's state in this folder instead of the Kafka state topic (the config's "
                        "checkpoint.backend/topic); every instance of the group must mount the same folder")
    p.add_argument("--arl", type=float, help="override the configured ARL")
    p.add_argument("--metrics-addr", help="host:port for /metrics (default 127.0.0.1:9464; port 0 = any free port)")
    p.add_argument("--metrics-certfile", help="serve /metrics over TLS with this certificate")
    p.add_argument("--metrics-keyfile")
    p.add_argument("--metrics-basic-auth-env", metavar="VAR",
                   help="environment variable holding USER:PASSWORD required to scrape /metrics")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_run)


def metrics_auth(args) -> tuple[str, str] | None:
    var = getattr(args, "metrics_basic_auth_env", None)
    if not var:
        return None
    user, sep, password = os.environ.get(var, "").partition(":")
    if not sep or not user or not password:
        raise JanusError(f"--metrics-basic-auth-env: {var} must hold USER:PASSWORD")
    return user, password


def start_metrics(args, config) -> tuple[JanusMetrics, object]:
    from detector.metrics import JanusMetrics

    metrics = JanusMetrics(config.metrics)
    server = metrics.serve(args.metrics_addr or config.metrics.address, certfile=args.metrics_certfile,
                           keyfile=args.metrics_keyfile, basic_auth=metrics_auth(args))
    return metrics, server


REVIEW_REFRESH_SECONDS = 10.0  # the verdict log is re-read only when it changed; this bounds the summary cost


def wire_metrics(service: StreamService, metrics: JanusMetrics) -> None:
    """Feed the service's batches, lag, checkpoints, partitions per model and review status into the
    metrics (lag, checkpoints and partitions per model after every poll, so they stay current while
    the stream is idle and follow every change of assignment).

    Review gauges: at most every REVIEW_REFRESH_SECONDS (on a batch), the verdict log next to the
    baseline store against the decisions this instance's partitions sampled (docs/review.md).
    """
    from detector.review.summary import ReviewStatus

    review = ReviewStatus.for_config(service.config, service.store.root)
    review_at = [float("-inf")]

    last_batch = [float("inf")]  # monotonic time of the last batch not yet re-exported after going idle

    def on_batch(topic, partition, result, seconds):
        metrics.observe_batch(result, service, seconds)
        now = last_batch[0] = time.monotonic()
        if now - review_at[0] >= REVIEW_REFRESH_SECONDS:
            review_at[0] = now
            review.export(metrics, service.review_counts())

    def on_tick():
        # After every poll, records or not: a drained partition's lag goes to 0 while idle, checkpoints
        # show their time, and partitions per model follow claims, revocations and fencing.
        metrics.set_lags(service.lags())
        if service.last_checkpoint_time is not None:
            metrics.set_checkpoint(service.last_checkpoint_time, size_bytes=service.last_checkpoint_bytes,
                                   seconds=service.last_checkpoint_seconds)
        metrics.set_model_partitions({m: len(tps) for m, tps in service.model_partitions().items()})
        # The last batch before a quiet spell may have been throttled: export it once idle.
        if time.monotonic() - last_batch[0] >= metrics.refresh_seconds:
            metrics.refresh(service)
            last_batch[0] = float("inf")

    service.on_batch = on_batch
    service.on_tick = on_tick


def _traffic_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        topic, sep, traffic = pair.partition("=")
        if not sep or traffic not in ("evaluation", "production"):
            raise JanusError(f"--traffic {pair!r}: expected TOPIC=evaluation or TOPIC=production")
        out[topic] = traffic
    return out


def _run(args) -> int:
    from detector.stream.service import StreamService

    logs.configure(args.log_level)
    config = kafka_config_from_args(config_of(args), args)
    if args.counts_topic:
        config = dataclasses.replace(config, split=dataclasses.replace(config.split, counts_topic=args.counts_topic))
    traffic = {**config.kafka.traffic_by_topic, **_traffic_map(args.traffic)}
    service = StreamService(store_of(args, config), config, role=args.role, topics=args.topic, traffic_by_topic=traffic,
                            group_id=args.group_id, alert_topic=args.alert_topic,
                            review_topic=args.review_topic, review_jsonl=args.review_out,
                            checkpoint_dir=args.checkpoint_dir, arl=args.arl)
    metrics, server = start_metrics(args, config)
    wire_metrics(service, metrics)
    threading.current_thread().name = "janus-serve"
    try:
        return service.run()
    finally:
        server.shutdown()
