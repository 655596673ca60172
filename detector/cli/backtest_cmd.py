"""`janus backtest`: the stream detector over a JSONL file."""

from __future__ import annotations

import contextlib
import sys

import orjson

from detector.cli.common import (
    add_format_arguments, add_rejects_argument, add_store_argument, alert_line, config_of, print_json,
    rejections_text, rejects_writer, store_of
)
from detector.errors import JanusError


def register(p) -> None:
    p.add_argument("--input", required=True, help="JSONL file of decision records")
    p.add_argument("--alerts-out", metavar="FILE.jsonl",
                   help="also write every alert event (firing and resolved), one JSON per line; '-' for standard "
                        "output (the summary then goes to standard error)")
    add_store_argument(p)
    add_format_arguments(p)
    p.add_argument("--baseline", action="append", default=[], metavar="MODEL@VERSION",
                   help="use this baseline version instead of the model's ACTIVE one (repeatable)")
    p.add_argument("--arl", type=float, help="override the configured ARL (records between false alarms)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--review-out", metavar="FILE.jsonl",
                   help="also write the audit sample for human review (docs/review.md), one JSON per line")
    add_rejects_argument(p)
    p.add_argument("--fail-on-all-rejected", action="store_true",
                   help="exit with status 2 when the input has records and every one was rejected")
    p.set_defaults(handler=_run)


def _alert_writer(stack: contextlib.ExitStack, path: str | None):
    """Where alert events go: nowhere, standard output ('-') or a file."""
    if path is None:
        return lambda event: None
    if path == "-":
        return lambda event: sys.stdout.write(orjson.dumps(event.to_dict()).decode() + "\n")
    from detector.backtest import write_alerts

    return stack.enter_context(write_alerts(path))


def _run(args) -> int:
    from detector.backtest import run_backtest
    from detector.pipeline import Pipeline

    if args.json and args.alerts_out == "-":
        raise JanusError("--json and --alerts-out - would both write to standard output: give --alerts-out a file")
    config = config_of(args)
    store = store_of(args, config)
    pinned = dict(store.resolve(ref) for ref in args.baseline)
    pipeline = Pipeline(store, config, arl=args.arl, pinned=pinned)
    firing = []
    with contextlib.ExitStack() as stack:
        write_alert = _alert_writer(stack, args.alerts_out)

        def on_alert(event):
            write_alert(event)
            if event.status == "firing":
                firing.append(event)

        write_rejects = stack.enter_context(rejects_writer(args.rejects_out, args.input, lines=True))
        samples = None
        if args.review_out:
            from detector.review.sampler import SampleWriter

            samples = stack.enter_context(SampleWriter(args.review_out, append=False))

        def on_batch(result):
            write_rejects(result.rejections)
            if samples is not None:
                samples.write(result.review_samples)

        summary = run_backtest(args.input, pipeline, on_alert=on_alert, on_batch=on_batch)
    if args.json:
        out = summary.to_dict()
        out["first_rejections"] = summary.first_rejections
        out["firing"] = [event.to_dict() for event in firing]
        if samples is not None:
            out["review_samples"] = samples.written
        print_json(out)
    else:
        # With the alert events on standard output, the summary keeps out of their way.
        stream = sys.stderr if args.alerts_out == "-" else sys.stdout
        for line in _summary_lines(summary, firing, args):
            print(line, file=stream)
        if samples is not None:
            print(f"review samples: {samples.written:,} written to {args.review_out}", file=stream)
    if args.fail_on_all_rejected and summary.records and not summary.accepted:
        raise JanusError(f"{args.input}: every record was rejected: "
                         + rejections_text(summary.rejected, summary.first_rejections[0], args.rejects_out))
    return 0


def _summary_lines(summary, firing, args) -> list[str]:
    lines = [f"records: {summary.records:,} ({summary.accepted:,} accepted) in {summary.seconds:.1f} s "
             f"= {summary.records_per_second:,.0f} records/s"]
    if summary.rejected:
        lines.append(f"rejected: {rejections_text(summary.rejected, summary.first_rejections[0], args.rejects_out)}")
    if summary.traffic.get("evaluation"):
        lines.append(f"evaluation: {summary.traffic['evaluation']:,} accepted records are evaluation traffic: "
                     "not monitored (a baseline is built from them with `janus baseline build`)")
    lines += [f"baseline_missing: {model_id}: {n:,} production records had no active baseline"
              for model_id, n in summary.baseline_missing.items()]
    if not summary.alerts:
        lines.append("alerts: none")
    lines += [f"alerts: {kind:<9} {feature:<24} {status:<8} {n}"
              for (kind, feature, status), n in sorted(summary.alerts.items())]
    lines += [alert_line(event) for event in firing]
    if args.alerts_out not in (None, "-"):
        lines.append(f"alerts written to {args.alerts_out}")
    return lines
