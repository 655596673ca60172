"""`janus baseline build|list|show|diff|promote|rollback|audit`."""

from __future__ import annotations

from collections import Counter

from detector.baseline import build_baselines
from detector.baseline.compare import diff_baselines
from detector.cli.common import add_store_argument, config_of, default_actor, print_json, store_of
from detector.errors import JanusError
from detector.records import read_decisions


def register(sub) -> None:
    parser = sub.add_parser("baseline", help="build, inspect, compare, promote and roll back baselines")
    cmds = parser.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")

    b = cmds.add_parser("build", help="build a baseline per model from evaluation records")
    b.add_argument("--input", required=True, help="JSONL file of decision records")
    b.add_argument("--model-id", help="only this model (default: every model in the file)")
    b.add_argument("--reason", required=True, help="why this baseline is being built (audit log)")
    b.add_argument("--actor", default=None, help="who builds it (default: $JANUS_ACTOR or the login name)")
    b.add_argument("--activate", action="store_true", help="make the new version ACTIVE")
    b.add_argument("--allow-production", action="store_true",
                   help="also learn from production records (refused unless asked: it would hide drift)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=_build)

    ls = cmds.add_parser("list", help="models, versions and which is ACTIVE")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)

    show = cmds.add_parser("show", help="one baseline: metadata and per-feature shares")
    show.add_argument("ref", metavar="MODEL[@VERSION]")
    show.add_argument("--json", action="store_true")
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

    audit = cmds.add_parser("audit", help="the audit log (and a check of its hash chain)")
    audit.add_argument("--model-id")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=_audit)

    for p in (b, ls, show, diff, audit, *[cmds.choices[n] for n in ("promote", "rollback")]):
        add_store_argument(p)


def _build(args) -> int:
    config = config_of(args)
    store = store_of(args, config)
    try:
        parsed = read_decisions(args.input, config.limits)
    except OSError as exc:
        raise JanusError(f"{args.input}: cannot read input: {exc.strerror or exc}") from None
    result = build_baselines(parsed.decisions, config, model_id=args.model_id,
                             allow_production=args.allow_production, source=str(args.input),
                             reason=args.reason, actor=args.actor or default_actor())
    if not result.baselines:
        raise JanusError(f"{args.input}: no evaluation records" + (f" for model {args.model_id!r}" if args.model_id else ""))
    rejected = Counter(r.reason for r in parsed.rejections)
    built = []
    for model_id, baseline in result.baselines.items():
        version = store.save(baseline, actor=baseline.actor, reason=args.reason, activate=args.activate)
        built.append({"model_id": model_id, "version": version, "records": baseline.n_records,
                      "active": args.activate})
    summary = {"built": built, "skipped_production": result.skipped_production, "rejected": dict(rejected)}
    if args.json:
        print_json(summary)
        return 0
    for b in built:
        print(f"built {b['model_id']}@{b['version']} from {b['records']:,} evaluation records"
              + (" (now ACTIVE)" if b["active"] else ""))
    if result.skipped_production:
        print(f"skipped {result.skipped_production:,} production records (use --allow-production with a reason)")
    if rejected:
        print(f"rejected {sum(rejected.values()):,} lines: " + ", ".join(f"{k} {v:,}" for k, v in rejected.most_common())
              + f"; first: {parsed.rejections[0].message}")
    return 0


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
    store = store_of(args, config_of(args))
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
            "active": store.active_version(baseline.model_id) == baseline.version, "features": features}
    if args.json:
        print_json(info)
        return 0
    print(f"{baseline.ref}  {'ACTIVE' if info['active'] else ''}")
    print(f"  built {baseline.built_at} by {baseline.actor}: {baseline.reason}")
    print(f"  {baseline.n_records:,} {baseline.traffic} records from {baseline.source or '?'}; "
          f"model versions: {', '.join(baseline.model_versions) or 'not recorded'}")
    for f in features:
        top = sorted(f["shares"].items(), key=lambda kv: -kv[1])[:4]
        print(f"  {f['feature']:<24} {f['kind']:<9} " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in top if v > 0))
    return 0


def _diff(args) -> int:
    store = store_of(args, config_of(args))
    a = store.load(*store.resolve(args.a))
    b = store.load(*store.resolve(args.b))
    diffs = diff_baselines(a, b)
    if args.json:
        print_json([{"feature": d.feature, "kind": d.kind, "js_distance": d.js_distance,
                     "codes": [{"code": c, "a": x, "b": y} for c, x, y in d.codes]} for d in diffs])
        return 0
    print(f"{'feature':<24} {'JS dist':>7}   code: {a.ref} → {b.ref}")
    for d in diffs:
        moved = sorted(d.codes, key=lambda c: -abs(c[1] - c[2]))[: args.top]
        changes = "  ".join(f"{c}: {100 * x:.1f}%→{100 * y:.1f}%" for c, x, y in moved if abs(x - y) >= 0.0005)
        print(f"{d.feature:<24} {d.js_distance:7.3f}   {changes or 'no change'}")
    return 0


def _promote(args) -> int:
    store = store_of(args, config_of(args))
    previous = store.promote(args.model_id, args.version, actor=args.actor or default_actor(), reason=args.reason)
    print(f"{args.model_id}: ACTIVE {previous or '-'} → {args.version}")
    return 0


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
        print(f"{e['time']}  {e['actor']:<12} {e['action']:<8} {e['model_id']}@{e['version']}  {e['reason']}")
    print(f"audit chain intact ({n} entries)")
    return 0
