"""`janus report`: one self-contained HTML file comparing a model's evaluation and production behaviour.

    janus report --store baselines --model-id triage-agent --input production.jsonl \\
        --alerts alerts.jsonl --out report.html

The production records (a JSONL file, or a time range of a Kafka topic with ``--from-kafka``) are
replayed through the detector against the model's ACTIVE baseline (or ``--baseline VERSION``).
Without ``--alerts`` the report shows the alerts the replay raises (the same as ``janus
backtest``); with it, the alerts of that file (from ``backtest --alerts-out`` or the alert topic),
matched to their records by decision id.

Two sections appear only when their data exists: monitoring-cue probes (probe records of the model
in the replayed input, tested in pairs as by ``janus probe analyze``) and human review (the
verdict log and audit sample next to the store, or ``[review]`` in the config, as read by
``janus review summary``).
"""

from __future__ import annotations

from collections.abc import Iterator

from detector.cli.common import add_format_arguments, add_store_argument, config_of, print_json, store_of
from detector.cli.kafka_range import add_range_arguments
from detector.errors import JanusError

CHUNK = 256


def register(p) -> None:
    p.add_argument("--model-id", required=True, help="the model to report on")
    p.add_argument("--baseline", metavar="VERSION", help="baseline version to compare with (default: ACTIVE)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--input", help="JSONL file of production decision records to replay")
    source.add_argument("--from-kafka", action="store_true",
                        help="replay a time range of a Kafka topic (--topic, --since, --until)")
    add_range_arguments(p)
    p.add_argument("--alerts", metavar="ALERTS.jsonl",
                   help="alert events to show (default: those the replay raises)")
    p.add_argument("--arl", type=float, help="override the configured ARL for the replay")
    p.add_argument("--out", required=True, help="where to write the HTML file")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")
    add_store_argument(p)
    add_format_arguments(p)
    p.set_defaults(handler=_run)


def _kafka_chunks(args, config, kafka_range) -> Iterator:
    from detector.cli.kafka_range import ProgressReporter, kafka_settings_for
    from detector.stream.topic_range import iso, iter_topic_range

    topic, since, until = kafka_range
    traffic = config.kafka.traffic_by_topic.get(topic)
    position = 0
    with ProgressReporter(f"reading {topic} {iso(since)}..{iso(until)}") as progress:
        for batch in iter_topic_range(topic, since, until, kafka_settings=kafka_settings_for(args, config),
                                      progress=progress):
            for i in range(0, len(batch.values), CHUNK):
                offsets = batch.offsets[i: i + CHUNK]
                first = position

                def locate(pos, offsets=offsets, first=first, partition=batch.partition):
                    return f"{topic}/{partition}@{offsets[pos - first]}"

                yield batch.values[i: i + CHUNK], first, locate, traffic
                position += len(offsets)


def _review_summary(config, store, model_id):
    """The model's review summary if a verdict log exists; a broken log becomes a note in the
    report (a tampered log is worth seeing, not a reason to have no report)."""
    from detector.review.summary import summary_from_files
    from detector.review.verdicts import default_sample_paths, verdict_log_path

    log = verdict_log_path(config, store.root)
    if not log.exists():
        return None, ""
    try:
        return summary_from_files(log, default_sample_paths(config, store.root), model_id=model_id), ""
    except JanusError as exc:
        return None, f"human review summary unavailable: {exc}"


def _run(args) -> int:
    from detector.cli.kafka_range import check_range_arguments
    from detector.stream.topic_range import iso
    from detector.report import write_report
    from detector.report.data import file_chunks, gather_report, read_alerts

    config = config_of(args)
    store = store_of(args, config)
    if args.arl is not None and args.arl <= 1:
        raise JanusError(f"--arl must be > 1, got {args.arl:g}")
    kafka_range = check_range_arguments(args, config)
    if kafka_range is not None:
        chunks = _kafka_chunks(args, config, kafka_range)
        source = f"topic {kafka_range[0]} {iso(kafka_range[1])}..{iso(kafka_range[2])}"
    elif args.input is not None:
        chunks = file_chunks(args.input, CHUNK)
        source = str(args.input)
    else:
        chunks, source = iter(()), ""
    alerts, bad = (None, 0)
    if args.alerts:
        alerts, bad = read_alerts(args.alerts, args.model_id)
    review, review_error = _review_summary(config, store, args.model_id)
    data = gather_report(store, args.model_id, chunks, version=args.baseline, config=config, arl=args.arl,
                         alerts=alerts, source=source, alerts_source=f"from {args.alerts}" if args.alerts else "",
                         review=review)
    if review_error:
        data.notes.append(review_error)
    if bad:
        data.notes.append(f"{bad:,} lines of {args.alerts} were not alert events and were ignored")
    out = write_report(data, args.out)
    summary = {"out": str(out), "model_id": args.model_id, "baseline": data.baseline.ref, "arl": data.arl,
               "production_records": data.n_production, "alerts": len(data.alerts),
               "firing": sum(1 for a in data.alerts if a["status"] == "firing"),
               "evidence": len(data.evidence), "rejected": dict(data.rejected),
               "probe_pairs": data.probes.pairs if data.probes is not None else 0,
               "reviewed": sum(r.rate.reviewed for r in data.review)}
    if args.json:
        print_json(summary)
        return 0
    print(f"report for {args.model_id} against {data.baseline.ref}: {data.n_production:,} production records, "
          f"{summary['alerts']} alert event(s) ({summary['firing']} firing) -> {out}")
    return 0
