"""`janus backtest`: the stream detector over a JSONL file."""

from __future__ import annotations

import contextlib

from detector.cli.common import add_store_argument, config_of, print_json, store_of


def register(p) -> None:
    p.add_argument("--input", required=True, help="JSONL file of decision records")
    p.add_argument("--alerts-out", required=True, help="where to write alert events, one JSON per line")
    add_store_argument(p)
    p.add_argument("--baseline", action="append", default=[], metavar="MODEL@VERSION",
                   help="use this baseline version instead of the model's ACTIVE one (repeatable)")
    p.add_argument("--arl", type=float, help="override the configured ARL (records between false alarms)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--review-out", metavar="FILE.jsonl",
                   help="also write the audit sample for human review (docs/review.md), one JSON per line")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from detector.backtest import run_backtest, write_alerts
    from detector.pipeline import Pipeline

    config = config_of(args)
    store = store_of(args, config)
    pinned = dict(store.resolve(ref) for ref in args.baseline)
    pipeline = Pipeline(store, config, arl=args.arl, pinned=pinned)
    with write_alerts(args.alerts_out) as on_alert, contextlib.ExitStack() as stack:
        on_batch = None
        if args.review_out:
            from detector.review.sampler import SampleWriter

            writer = stack.enter_context(SampleWriter(args.review_out, append=False))
            on_batch = (lambda result: writer.write(result.review_samples))
        summary = run_backtest(args.input, pipeline, on_alert=on_alert, on_batch=on_batch)
    if args.json:
        out = summary.to_dict()
        if args.review_out:
            out["review_samples"] = writer.written
        print_json(out)
        return 0
    print(f"records: {summary.records:,} ({summary.accepted:,} accepted) in {summary.seconds:.1f} s "
          f"= {summary.records_per_second:,.0f} records/s")
    if summary.rejected:
        reasons = ", ".join(f"{r} {n:,}" for r, n in summary.rejected.most_common())
        print(f"rejected: {sum(summary.rejected.values()):,} ({reasons}); first: {summary.first_rejections[0]}")
    for model_id, n in summary.baseline_missing.items():
        print(f"baseline_missing: {model_id}: {n:,} production records had no active baseline")
    if not summary.alerts:
        print("alerts: none")
    for (kind, feature, status), n in sorted(summary.alerts.items()):
        print(f"alerts: {kind:<9} {feature:<24} {status:<8} {n}")
    print(f"alerts written to {args.alerts_out}")
    if args.review_out:
        print(f"review samples: {writer.written:,} written to {args.review_out}")
    return 0
