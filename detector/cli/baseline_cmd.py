"""`janus baseline build|list|show|diff|promote|rollback|audit`."""

from __future__ import annotations

import sys
import warnings
from collections import Counter

from detector.cli.common import (
    add_format_arguments, add_rejects_argument, add_store_argument, config_of, default_actor, print_json,
    rejections_text, rejects_writer, store_of
)
from detector.cli.kafka_range import add_range_arguments
from detector.errors import JanusError
from detector.formats import format_of
from detector.records import read_decisions


def register(parser) -> None:
    cmds = parser.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")

    b = cmds.add_parser("build", help="build a baseline per model from evaluation records")
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="JSONL file of decision records")
    source.add_argument("--from-kafka", action="store_true",
                        help="read the records of a time range of a Kafka topic (--topic, --since, --until)")
    b.add_argument("--model-id", help="only this model (default: every model in the file)")
    b.add_argument("--reason", required=True, help="why this baseline is being built (audit log)")
    b.add_argument("--actor", default=None, help="who builds it (default: $JANUS_ACTOR or the login name)")
    b.add_argument("--activate", action="store_true", help="make the new version ACTIVE")
    b.add_argument("--allow-production", action="store_true",
                   help="also learn from production records (refused unless asked: it would hide drift)")
    b.add_argument("--force", action="store_true",
                   help="build from fewer records per model than the configured minimum ([baseline] min_records, "
                        "default 200)")
    b.add_argument("--json", action="store_true")
    add_rejects_argument(b)
    add_format_arguments(b)
    add_range_arguments(b)
    b.set_defaults(handler=_build)

    ls = cmds.add_parser("list", help="models, versions and which is ACTIVE")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)

    show = cmds.add_parser("show", help="one baseline: metadata and per-feature shares")
    show.add_argument("ref", metavar="MODEL[@VERSION]")
    show.add_argument("--json", action="store_true")
    show.add_argument("--arl", type=float, help="ARL for the sample-size advice (default: the configured one)")
    show.add_argument("--effect", type=float, help="odds ratio of the change for the sample-size advice "
                                                   "(default: the smallest configured tilt)")
    show.set_defaults(handler=_show)

    diff = cmds.add_parser("diff", help="compare two baselines feature by feature")
    diff.add_argument("a", metavar="MODEL@VERSION")
    diff.add_argument("b", metavar="MODEL@VERSION")
    diff.add_argument("--top", type=int, default=5, help="codes shown per feature (default 5)")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(handler=_diff)

    for name, func, text in (("promote", _promote, "make a version ACTIVE"),
                             ("rollback", _rollback, "return ACTIVE to the previous version")):
        p = cmds.add_parser(name, help=text)
        p.add_argument("model_id")
        p.add_argument("version", nargs="?" if name == "rollback" else None,
                       help="target version" + (" (default: the previously active one)" if name == "rollback" else ""))
        p.add_argument("--reason", required=True)
        p.add_argument("--actor", default=None)
        p.set_defaults(handler=func)

    promote = cmds.choices["promote"]
    promote.add_argument("--max-js-distance", type=float, default=0.1, metavar="D",
                         help="a feature whose code shares moved more than this Jensen-Shannon distance from "
                              "the ACTIVE version counts as a large change (default 0.1)")
    promote.add_argument("--accept-large-change", action="store_true",
                         help="promote although the new version differs strongly from the ACTIVE one "
                              "(recorded in the audit entry)")

    audit = cmds.add_parser("audit", help="the audit log (and a check of its hash chain)")
    audit.add_argument("--model-id")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=_audit)

    for p in (b, ls, show, diff, audit, *[cmds.choices[n] for n in ("promote", "rollback")]):
        add_store_argument(p)


FIRST_REJECTIONS = 5  # rejections named in the --json summary (as `janus backtest --json`); --rejects-out has all


def _build(args) -> int:
    from detector.baseline import build_baselines
    from detector.cli.kafka_range import check_range_arguments, read_range_from_args
    from detector.stream.topic_range import iso

    config = config_of(args)
    store = store_of(args, config)
    kafka_range = check_range_arguments(args, config)
    if kafka_range is not None:
        if args.allow_production and not args.reason.strip():  # refuse before reading the whole range
            raise JanusError("--allow-production needs a --reason: a baseline from production hides drift")
        parsed = read_range_from_args(args, config, kafka_range)
        where, source = f"topic {kafka_range[0]} {iso(kafka_range[1])}..{iso(kafka_range[2])}", parsed.source()
    else:
        parsed = read_decisions(args.input, config.limits, fmt=format_of(config.input))
        where = source = str(args.input)
    # Before building: the rejected records matter most when nothing could be built.
    with rejects_writer(args.rejects_out, kafka_range[0] if kafka_range else args.input,
                        lines=kafka_range is None) as write_rejects:
        write_rejects(parsed.rejections)
    # Fitting a small sample makes scikit-learn warn (e.g. ConvergenceWarning) in terms a user cannot act
    # on; the minimum and the sample-size warning below say what matters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = build_baselines(parsed.decisions, config, model_id=args.model_id,
                                 allow_production=args.allow_production, source=source,
                                 reason=args.reason, actor=args.actor or default_actor(),
                                 min_records=1 if args.force else config.baseline.min_records)
    if not result.baselines:
        raise JanusError(_nothing_to_build(where, args, parsed.decisions, parsed.rejections))
    rejected = Counter(r.reason for r in parsed.rejections)
    built = []
    for model_id, baseline in result.baselines.items():
        version = store.save(baseline, actor=baseline.actor, reason=args.reason, activate=args.activate)
        built.append({"model_id": model_id, "version": version, "records": baseline.n_records,
                      "active": args.activate})
    summary = {"built": built, "skipped_production": result.skipped_production, "rejected": dict(rejected),
               "first_rejections": [r.message for r in parsed.rejections[:FIRST_REJECTIONS]]}
    if kafka_range is not None:
        summary["kafka"] = {"topic": parsed.topic, "since": iso(parsed.since), "until": iso(parsed.until),
                            "messages": parsed.messages, "skipped_before_since": parsed.skipped_before,
                            "partitions": [p.to_dict() for p in parsed.partitions]}
    if args.json:
        print_json(summary)
        return 0
    if kafka_range is not None:
        print(f"read {parsed.messages:,} records of {where} from {parsed.bootstrap_servers} ("
              + ", ".join(f"partition {p.partition}: {p.messages:,}" for p in parsed.partitions) + ")")
    for b in built:
        print(f"built {b['model_id']}@{b['version']} from {b['records']:,} evaluation records"
              + (" (now ACTIVE)" if b["active"] else ""))
    if result.skipped_production:
        print(f"skipped {result.skipped_production:,} production records (use --allow-production with a reason)")
    if rejected:
        print(f"rejected: {rejections_text(rejected, parsed.rejections[0].message, args.rejects_out)}")
    for baseline in result.baselines.values():
        for line in _sample_size_warning(baseline, config) + _untested_warning(baseline):
            print(line)
    return 0


def _nothing_to_build(where: str, args, decisions, rejections) -> str:
    """Why no baseline could be built: what was read, by traffic and rejection reason, and the way out."""
    mine = [d for d in decisions if args.model_id is None or d.model_id == args.model_id]
    traffic = Counter(d.traffic for d in mine)
    of = f" of model {args.model_id!r}" if args.model_id else ""
    text = (f"{where}: no evaluation records{of} to build a baseline from: read {len(decisions) + len(rejections):,} "
            f"records, {traffic['evaluation']:,} evaluation and {traffic['production']:,} production{of}")
    if rejections:
        first = rejections[0].message
        text += f", rejected {rejections_text(Counter(r.reason for r in rejections), first, args.rejects_out)}"
    if traffic["production"] and not args.allow_production:
        text += (". Production records are left out, as a baseline learned from them would hide the drift it must "
                 "catch: to include them anyway, add --allow-production and a --reason saying why")
    if args.model_id and not mine and decisions:
        models = sorted({d.model_id for d in decisions})
        text += f". Models in the input: {', '.join(models[:10])}{', …' if len(models) > 10 else ''}"
    return text


# Codes rarer than this are left out of the build warning (they always need large samples; `show`
# lists them); the warning fires when a code at least this common would be detected more than
# `slack` times slower than with an exactly known evaluation rate.
WARN_MIN_RATE = 0.02


def _sample_size_warning(baseline, config, arl: float | None = None) -> list[str]:
    """Lines warning that the evaluation sample is small: the baseline's uncertainty (the null is its
    posterior predictive) would stretch detection delays by more than 1.5x for common codes, as
    estimated by detector.report.advice."""
    from detector.report.advice import sample_size_advice

    arl = arl if arl is not None else config.detection.arl_for(baseline.model_id)
    advice = sample_size_advice(baseline, arl=arl, config=config.detection, min_rate=WARN_MIN_RATE)
    short = [a for a in advice if not a.sufficient]
    if not short:
        return []
    first = short[0]
    lines = [f"warning: {baseline.ref} was built from {baseline.n_records:,} evaluation records: for {len(short)} of "
             f"{len(advice)} codes seen in >= {100 * WARN_MIN_RATE:g}% of evaluation, the baseline's uncertainty "
             f"would make a x{first.effect:g} change in their odds take more than {first.slack:g}x the production "
             f"records it would with an exact baseline; about {first.needed:,} evaluation records would fix that. "
             f"Delays at ARL {arl:,.0f}, most demanding first:"]
    shown = short[:3] + [a for a in short[3:] if a.feature == "refused"][:1]
    lines += [f"  {a.sentence()}" for a in shown]
    lines.append("  (delay ~ (log(ARL*F) + log K) / drift per record; `janus baseline show --json` lists every code; "
                 "see docs/analyst-guide.md)")
    return lines


UNTESTED_WARN = 0.05  # share of evaluation inputs novel or unsettled above which build and show warn


def _untested_warning(baseline) -> list[str]:
    """A line warning that many evaluation inputs are novel or unsettled: behaviour on inputs like
    them is never scored, so a change confined to them shows only as input drift."""
    j = baseline.featurizer.feature_index("novel_input")
    share = float(baseline.shares(j)[-1])  # the "yes" code
    if share <= UNTESTED_WARN:
        return []
    return [f"warning: {100 * share:.1f}% of {baseline.ref}'s evaluation inputs are novel or unsettled (too few like "
            "them to judge behaviour by): behaviour on such inputs is never tested, only counted by novel_input "
            "(docs/detection.md, Limits, \"Novel inputs are blind spots\")"]


def _list(args) -> int:
    store = store_of(args, config_of(args))
    rows = [{"model_id": m, "versions": store.versions(m), "active": store.active_version(m)} for m in store.models()]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no baselines in {store.root}")
    for r in rows:
        print(f"{r['model_id']:<32} versions {', '.join(r['versions']):<20} ACTIVE {r['active'] or '-'}")
    return 0


def _show(args) -> int:
    config = config_of(args)
    store = store_of(args, config)
    baseline = store.load(*store.resolve(args.ref))
    features = []
    for j, spec in enumerate(baseline.specs):
        shares = baseline.shares(j)
        features.append({"feature": spec.name, "kind": spec.kind,
                         "shares": {label: float(s) for label, s in zip(spec.labels, shares)}})
    info = {"model_id": baseline.model_id, "version": baseline.version, "records": baseline.n_records,
            "time_range": baseline.time_range, "model_versions": baseline.model_versions,
            "built_at": baseline.built_at, "actor": baseline.actor, "reason": baseline.reason,
            "traffic": baseline.traffic, "source": baseline.source,
            "active": store.active_version(baseline.model_id) == baseline.version, "features": features,
            "refusal": _refusal_reading(baseline.featurizer)}
    from detector.report.advice import sample_size_advice

    arl = args.arl if args.arl is not None else config.detection.arl_for(baseline.model_id)
    if arl <= 1 or (args.effect is not None and args.effect <= 1):
        raise JanusError("--arl and --effect must be > 1")
    advice = sample_size_advice(baseline, arl=arl, config=config.detection, effect=args.effect)
    info["sample_size"] = {"arl": arl, "effect": advice[0].effect if advice else args.effect,
                           "codes": [a.to_dict() for a in advice]}
    if args.json:
        print_json(info)
        return 0
    print(f"{baseline.ref}  {'ACTIVE' if info['active'] else ''}")
    print(f"  built {baseline.built_at} by {baseline.actor}: {baseline.reason}")
    print(f"  {baseline.n_records:,} {baseline.traffic} records from {baseline.source or '?'}; "
          f"model versions: {', '.join(baseline.model_versions) or 'not recorded'}")
    print(f"  refusal: {info['refusal']['how']}")
    for f in features:
        top = sorted(f["shares"].items(), key=lambda kv: -kv[1])[:4]
        print(f"  {f['feature']:<24} {f['kind']:<9} " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in top if v > 0))
    short = [a for a in advice if not a.sufficient]
    print(f"  sample size at ARL {arl:,.0f}: {len(advice) - len(short)} of {len(advice)} codes seen in >= 1% of "
          f"evaluation are within {advice[0].slack if advice else 1.5:g}x of the exact-baseline delay"
          + (f"; the most demanding needs ~{short[0].needed:,} evaluation records:" if short else ""))
    for a in short[:3]:
        print(f"    {a.sentence()}")
    for line in _untested_warning(baseline):
        print(f"  {line}")
    return 0


def _refusal_reading(featurizer) -> dict:
    """How the baseline reads refusals, and whether a rebuild would read more languages."""
    from detector.features.refusal import ENGLISH_REFUSAL_PATTERNS

    if featurizer.refusal_source != "text":
        return {"source": featurizer.refusal_source, "how": "the records' output.refused label"}
    patterns = featurizer.refusal_patterns
    how = f"recognised in the output text ({len(patterns)} patterns)"
    if patterns == tuple(ENGLISH_REFUSAL_PATTERNS):
        how += ("; English only: this baseline was built before other languages were recognised, "
                "rebuild it to read them (production is read with the same patterns as evaluation)")
    return {"source": "text", "patterns": len(patterns), "how": how}


def _diff(args) -> int:
    from detector.baseline.compare import diff_baselines
    from detector.report.advice import CLUSTER_FEATURES, promotion_check

    store = store_of(args, config_of(args))
    a = store.load(*store.resolve(args.a))
    b = store.load(*store.resolve(args.b))

    # Text clusters and quantile bins are fitted per baseline: between two versions the same label
    # ("#3", "[96, 103)") means different things, so a distance by label is not a change. Such
    # features are flagged (``comparable: false``) instead of shown with a misleading distance.
    refitted = set(promotion_check(a, b)[1]) if a.ref != b.ref else set()
    # Comparable features first (largest distance first within each group: the sort is stable).
    diffs = sorted(diff_baselines(a, b), key=lambda d: d.feature in refitted)
    if args.json:
        print_json([{"feature": d.feature, "kind": d.kind, "comparable": d.feature not in refitted,
                     "js_distance": d.js_distance,
                     "codes": [{"code": c, "a": x, "b": y} for c, x, y in d.codes]} for d in diffs])
        return 0
    print(f"{'feature':<24} {'JS dist':>7}   code: {a.ref} → {b.ref}")
    for d in diffs:
        if d.feature in refitted:
            what = "clusters" if d.feature in CLUSTER_FEATURES else "bins"
            print(f"{d.feature:<24} {'refit':>7}   {what} fitted per baseline: same labels, different meaning; "
                  "not compared")
            continue
        moved = sorted(d.codes, key=lambda c: -abs(c[1] - c[2]))[: args.top]
        changes = "  ".join(f"{c}: {100 * x:.1f}%→{100 * y:.1f}%" for c, x, y in moved if abs(x - y) >= 0.0005)
        print(f"{d.feature:<24} {d.js_distance:7.3f}   {changes or 'no change'}")
    return 0


def _promote(args) -> int:
    store = store_of(args, config_of(args))
    reason = _large_change_reason(store, args)
    previous = store.promote(args.model_id, args.version, actor=args.actor or default_actor(), reason=reason)
    print(f"{args.model_id}: ACTIVE {previous or '-'} → {args.version}")
    return 0


def _large_change_reason(store, args) -> str:
    """The audit reason for a promotion: refused when the new version moved any comparable feature by
    more than --max-js-distance from the ACTIVE one, unless --accept-large-change (then noted)."""
    from detector.report.advice import promotion_check

    if not 0 < args.max_js_distance <= 1:
        raise JanusError(f"--max-js-distance must be in (0, 1], got {args.max_js_distance:g}")
    current_version = store.active_version(args.model_id)
    if current_version is None or current_version == args.version:
        return args.reason
    current = store.load(args.model_id, current_version)
    candidate = store.load(args.model_id, args.version)
    distances, _ = promotion_check(current, candidate)
    large = [d for d in distances if d.js_distance > args.max_js_distance]
    if not large:
        return args.reason
    what = "; ".join(f"{d.feature} {d.js_distance:.3f} ({d.moved[0][0]} {100 * d.moved[0][1]:.1f}% → "
                     f"{100 * d.moved[0][2]:.1f}%)" for d in large[:3])
    note = (f"large change accepted: JS distance > {args.max_js_distance:g} from ACTIVE {current_version} on "
            f"{len(large)} feature(s): {what}")
    if not args.accept_large_change:
        raise JanusError(f"{args.model_id}@{args.version} differs strongly from ACTIVE {current_version} "
                         f"(JS distance > {args.max_js_distance:g}: {what}); review `janus baseline diff "
                         f"{args.model_id}@{current_version} {args.model_id}@{args.version}` and, if intended, "
                         f"promote with --accept-large-change and a --reason saying why")
    if not args.reason.strip():
        raise JanusError("--accept-large-change needs a --reason saying why the large change is intended")
    print(f"warning: {args.model_id}@{args.version}: {note}", file=sys.stderr)
    return f"{args.reason} [{note}]"


def _rollback(args) -> int:
    store = store_of(args, config_of(args))
    previous = store.active_version(args.model_id)
    to = store.rollback(args.model_id, actor=args.actor or default_actor(), reason=args.reason, to=args.version)
    print(f"{args.model_id}: ACTIVE {previous or '-'} → {to} (rollback)")
    return 0


def _audit(args) -> int:
    store = store_of(args, config_of(args))
    n = store.verify_audit()
    entries = store.audit(args.model_id)
    if args.json:
        print_json(entries)
        return 0
    for e in entries:
        built_on = ""
        if e["action"] == "build":  # the model versions the baseline covers (a protocol change is any other)
            built_on = f"  [model versions: {', '.join(e.get('model_versions') or []) or 'not recorded'}]"
        print(f"{e['time']}  {e['actor']:<12} {e['action']:<8} {e['model_id']}@{e['version']}  {e['reason']}"
              f"{built_on}")
    print(f"audit chain intact ({n} entries)")
    return 0
