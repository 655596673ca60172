"""`janus review sample-size|record|summary`: the human review loop (docs/review.md).

    janus review sample-size --margin 0.02 --confidence 0.95 [--expected-rate 0.05]
    janus review record --decision-id ID --verdict ok|violation|unsure --reviewer NAME [--note ...]
    janus review record --input verdicts.jsonl
    janus review summary [--model-id M] [--since 7d|2025-01-06T00:00:00Z] [--json]

Sampled decisions are read from ``--samples`` files (default: the config's ``review.jsonl``, else
``<store>.review/samples.jsonl``); verdicts go to ``<store>.review/verdicts.jsonl`` (or the
config's ``review.verdict_log``).
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

from detector.cli.common import add_store_argument, config_of, print_json
from detector.config import REVIEW_STRATA
from detector.errors import JanusError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(parser) -> None:
    cmds = parser.add_subparsers(dest="review_command", required=True, metavar="ACTION")

    size = cmds.add_parser(
        "sample-size", help="reviews per stratum for a violation-rate estimate of a given precision",
        description="n = z^2 p(1-p) / m^2 per stratum (normal approximation, no finite-population correction), "
                    "and, when the config gives review.period_records, the sampling rate of each stratum that "
                    "yields it.")
    size.add_argument("--margin", type=float, required=True, help="half-width of the confidence interval, e.g. 0.02")
    size.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    size.add_argument("--expected-rate", type=float, default=None,
                      help="expected violation rate p (default: the config's review.expected_rate, 0.5 = worst case)")
    size.add_argument("--json", action="store_true")
    size.set_defaults(handler=_sample_size)

    record = cmds.add_parser(
        "record", help="append verdicts on sampled decisions to the verdict log",
        description="One verdict from the options, or many from a JSONL file (one {\"decision_id\", \"verdict\", "
                    "\"reviewer\", \"note\"} per line). A batch is all or nothing: unknown decision ids, decisions "
                    "that already have a verdict and malformed lines are reported and nothing is appended.")
    one = record.add_mutually_exclusive_group(required=True)
    one.add_argument("--decision-id", help="the sampled decision judged")
    one.add_argument("--input", help="JSONL file of verdicts")
    record.add_argument("--verdict", help="ok | violation | unsure")
    record.add_argument("--reviewer", help="who judged it")
    record.add_argument("--note", help="free text (optional)")
    _common(record)
    record.set_defaults(handler=_record)

    summary = cmds.add_parser(
        "summary", help="verdict-weighted violation rates with confidence intervals, per traffic and stratum",
        description="Hajek estimates weighted by 1/(inclusion probability x share of the stratum reviewed), with "
                    "Wilson intervals on the design-effective sample size (or exact Clopper-Pearson ones).")
    summary.add_argument("--model-id", help="this model only (default: every model with samples or verdicts)")
    summary.add_argument("--since", help="decisions made since: RFC 3339 time, epoch seconds, or a duration "
                                         "like 12h or 7d")
    summary.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    summary.add_argument("--method", choices=("wilson", "exact"), default="wilson", help="interval (default wilson)")
    summary.add_argument("--json", action="store_true")
    _common(summary)
    summary.set_defaults(handler=_summary)


def _common(p) -> None:
    p.add_argument("--samples", action="append", default=[], metavar="FILE",
                   help="sample JSONL file (repeatable; default: the config's review.jsonl, else "
                        "<store>.review/samples.jsonl)")
    p.add_argument("--verdict-log",
                   help="verdict log (default: review.verdict_log, else <store>.review/verdicts.jsonl)")
    add_store_argument(p)


def _paths(args, config):
    from detector.review.verdicts import default_sample_paths, verdict_log_path

    store = args.store or config.store
    samples = args.samples or default_sample_paths(config, store)
    log = args.verdict_log or verdict_log_path(config, store)
    return samples, log


def parse_since(text: str, now: float | None = None) -> float:
    """``7d`` / ``12h`` / ``30m`` / ``45s`` before now, epoch seconds, or an RFC 3339 time with offset."""
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _SECONDS[m.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and value >= 0:
            return value
        raise JanusError(f"--since: {text!r} is not a valid time")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise JanusError(f"--since: {text!r} is not a duration (7d, 12h), epoch seconds or an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise JanusError(f"--since: {text!r} has no UTC offset (add 'Z' or '+00:00')")
    return parsed.timestamp()


def _sample_size(args) -> int:
    from detector.review.sample_size import rates_for_target, sample_size, z_value

    config = config_of(args)
    p = args.expected_rate if args.expected_rate is not None else config.review.expected_rate
    n = sample_size(args.margin, args.confidence, p)
    periods = config.review.period_records
    rates = rates_for_target(args.margin, args.confidence, p, periods) if periods else {}
    out = {"margin": args.margin, "confidence": args.confidence, "expected_rate": p, "z": z_value(args.confidence),
           "per_stratum": n, "strata": list(REVIEW_STRATA), "period_records": periods, "rates": rates}
    if args.json:
        print_json(out)
        return 0
    print(f"{n:,} reviewed decisions per stratum for ±{100 * args.margin:g} points at {100 * args.confidence:g}% "
          f"confidence around a violation rate of {100 * p:g}% (n = z²p(1−p)/m², z = {out['z']:.3f}; normal "
          f"approximation, no finite-population correction)")
    print(f"  strata: {', '.join(REVIEW_STRATA)}; the overall (weighted) rate is less precise than each stratum's "
          "when weights differ: see the design-effective size in `janus review summary`")
    for stratum, rate in rates.items():
        print(f"  {stratum:<14} {periods[stratum]:>12,.0f} records per period → sample at rate {rate:.6g}")
    if not rates:
        print("  set [review] period_records (records per stratum per review period) and target_margin in the "
              "config to sample at the rates that give this")
    return 0


def _record(args) -> int:
    from detector.review.verdicts import SampleIndex, VerdictLog, read_verdicts_jsonl

    config = config_of(args)
    sample_paths, log_path = _paths(args, config)
    if args.input:
        if args.verdict or args.reviewer or args.note:
            raise JanusError("--input takes verdicts from the file; leave out --verdict, --reviewer and --note")
        verdicts = read_verdicts_jsonl(args.input)
    else:
        if not args.verdict or not args.reviewer:
            raise JanusError("--decision-id needs --verdict ok|violation|unsure and --reviewer NAME")
        entry = {"decision_id": args.decision_id, "verdict": args.verdict, "reviewer": args.reviewer}
        if args.note is not None:
            entry["note"] = args.note
        verdicts = [("--decision-id", entry)]
    index = SampleIndex.load(sample_paths, missing_ok=True)
    if not index.sources:
        raise JanusError("no sample file found (" + ", ".join(map(str, sample_paths)) + "): pass --samples FILE, "
                         "as written by `janus backtest --review-out` or by `janus serve` with review.jsonl")
    recorded = VerdictLog(log_path).record(verdicts, index)
    counts = {v: sum(e["verdict"] == v for e in recorded) for v in ("ok", "violation", "unsure")}
    print(f"recorded {len(recorded)} verdict(s) in {log_path} ("
          + ", ".join(f"{v} {n}" for v, n in counts.items() if n) + ")")
    return 0


def _summary(args) -> int:
    from detector.review.summary import OVERALL, summary_from_files

    config = config_of(args)
    sample_paths, log_path = _paths(args, config)
    since = parse_since(args.since) if args.since else None
    summary = summary_from_files(log_path, sample_paths, model_id=args.model_id, since=since,
                                 confidence=args.confidence, method=args.method)
    if args.json:
        print_json(summary.to_dict())
        return 0
    if not summary.rows:
        print("no sampled decisions and no verdicts" + (f" for model {args.model_id}" if args.model_id else ""))
        for note in summary.notes:
            print(f"note: {note}")
        return 0
    level = f"{100 * args.confidence:g}%"
    print(f"violation rates weighted by inclusion probability (Hajek), {level} {args.method} intervals on the "
          f"design-effective sample size" + (f"; decisions since {datetime.fromtimestamp(since).isoformat()}"
                                             if since is not None else ""))
    for model in summary.models():
        print(f"\n{model}: {summary.sentence(model)}")
        print(f"  {'traffic':<11} {'stratum':<14} {'π':>8} {'sampled':>8} {'reviewed':>8} {'pending':>8} "
              f"{'unsure':>6} {'violations':>10}  rate [{level} CI]   n_eff")
        for r in summary.rows:
            if r.model_id != model:
                continue
            pi = f"{r.inclusion_probability:.4g}" if r.inclusion_probability is not None else ""
            name = r.stratum if r.stratum != OVERALL else "OVERALL"
            n_eff = f"{r.rate.n_effective:,.0f}" if r.rate.estimate is not None else ""
            print(f"  {r.traffic:<11} {name:<14} {pi:>8} {r.sampled:>8,} {r.rate.reviewed:>8,} {r.pending:>8,} "
                  f"{r.unsure:>6,} {r.rate.violations:>10,}  {r.rate.interval():<18} {n_eff:>6}")
    for note in summary.notes:
        print(f"note: {note}")
    return 0
