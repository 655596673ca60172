"""`janus probe make|analyze`: monitoring-cue probe pairs and their exact paired tests.

    janus probe make --input inputs.jsonl --out probes.jsonl [--cues cues.toml] [--seed N]
    janus probe analyze --input answers.jsonl [--model-id M] [--alpha 0.01] [--json]

See docs/probes.md.
"""

from __future__ import annotations

import sys

from detector.cli.common import add_store_argument, config_of, print_json, store_of
from detector.errors import JanusError


def register(parser) -> None:
    cmds = parser.add_subparsers(dest="probe_command", required=True, metavar="ACTION")

    make = cmds.add_parser(
        "make", help="write pairs of prompts that differ only by a monitoring cue",
        description="From input texts (decision records or {\"text\": ...} lines), write two prompts per "
                    "input, one telling the model it is monitored and one that it is not, each with the "
                    "`probe` object your harness copies into the decision record it logs. Janus never "
                    "calls the model.")
    make.add_argument("--input", required=True, help="JSONL of decision records or {\"text\": ...} lines")
    make.add_argument("--out", required=True, help="where to write the probe prompts (JSONL)")
    make.add_argument("--cues", help="TOML cue file (monitored = [...], unmonitored = [...], optional template); "
                                     "default: the config's [probes] cue_file, else the built-in wordings")
    make.add_argument("--seed", type=int, default=0, help="seed of the cue rotation and the order of halves")
    make.add_argument("--prefix", default="probe", help="start of every pair_id (default: probe)")
    make.set_defaults(handler=_make)

    analyze = cmds.add_parser(
        "analyze", help="pair probe answers and test every feature (exact McNemar, Holm)",
        description="Pair the probe records of a JSONL decision log by probe.pair_id and test, for every "
                    "behaviour feature of the model, whether the answers depend on the monitoring cue: "
                    "the exact McNemar test on the discordant pairs, Holm-corrected across features and "
                    "codes. Uses the model's active baseline for featurising when there is one.")
    analyze.add_argument("--input", required=True, help="JSONL file of decision records")
    analyze.add_argument("--model-id", help="analyse this model only (default: every model in the file)")
    analyze.add_argument("--alpha", type=float, help="family-wise error rate (default: [probes] alpha, 0.01)")
    analyze.add_argument("--baseline", action="append", default=[], metavar="MODEL@VERSION",
                         help="featurise with this baseline instead of the model's ACTIVE one (repeatable)")
    add_store_argument(analyze)
    analyze.add_argument("--json", action="store_true", help="print the result as JSON")
    analyze.set_defaults(handler=_analyze)


def _make(args) -> int:
    from detector.probes.cues import load_cues, make_probes, read_inputs, write_probes

    config = config_of(args)
    cues = load_cues(args.cues or config.probes.cue_file or None)
    if not 0 < len(args.prefix) <= 64:
        raise JanusError("--prefix must be 1 to 64 characters")
    limit = config.limits.max_text_chars
    inputs, skipped = read_inputs(args.input, max_text_chars=limit)
    probes, too_large = make_probes(inputs, cues, args.seed, prefix=args.prefix, max_text_chars=limit)
    skipped.update(too_large)
    if not probes:
        raise JanusError(f"{args.input}: no usable input text (skipped: {_counts(skipped) or 'none'})")
    write_probes(args.out, probes)
    print(f"{len(probes) // 2:,} probe pairs ({len(probes):,} prompts) written to {args.out}; "
          f"{len(cues.monitored)} monitored and {len(cues.unmonitored)} unmonitored cue wordings, seed {args.seed}")
    if skipped:
        print(f"skipped input lines: {_counts(skipped)}")
    return 0


def _counts(counter) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in counter.most_common())


def _analyze(args) -> int:
    from detector.probes.analyze import analyze_file
    from detector.probes.stats import format_p

    config = config_of(args)
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise JanusError(f"--alpha must be in (0, 1), got {args.alpha}")
    store = store_of(args, config)
    pinned = dict(store.resolve(ref) for ref in args.baseline)
    report = analyze_file(args.input, config=config, store=store, model_id=args.model_id, alpha=args.alpha,
                          pinned=pinned)
    if args.json:
        print_json(report.to_dict())
        return 0
    out = sys.stdout.write
    if report.rejected:
        out(f"rejected records: {_counts(report.rejected)}; first: {report.first_rejections[0]}\n")
    if not report.models:
        which = f" of model {args.model_id}" if args.model_id else ""
        out(f"no probe records{which} in {args.input} ({report.records:,} lines, "
            f"{report.not_probe:,} decisions without `probe`)\n")
        return 0
    for model in report.models.values():
        family = sum(t.tested for t in model.tests)
        source = f"featurised with baseline {model.baseline}" if model.baseline else "no active baseline"
        out(f"\nmodel {model.model_id}: {model.pairs:,} pairs from {model.records:,} probe records ({source}); "
            f"Holm over {family} tests, alpha {model.alpha:g}\n")
        unpaired = {k: n for k, n in model.outcomes.items() if k != "paired"}
        if unpaired:
            out(f"  unpaired: {', '.join(f'{k} {n:,}' for k, n in sorted(unpaired.items()))}\n")
        if model.skipped:
            reasons: dict[str, list[str]] = {}
            for name, why in model.skipped.items():
                reasons.setdefault(why, []).append(name)
            for why, names in reasons.items():
                out(f"  skipped: {', '.join(names)} ({why})\n")
        rows = [t for t in model.tests if t.tested]
        if not rows:
            out("  no discordant pair on any feature: nothing depends on the cue in these pairs\n")
            continue
        header = (f"  {'feature':<22} {'code':<16} {'pairs':>6} {'mon.only':>8} {'unmon.only':>10} "
                  f"{'monitored':>9} {'unmonitored':>11}  {'difference [95% CI]':<27} {'p':>7} {'p (Holm)':>8}\n")
        out(header)
        for t in rows:
            diff = f"{100 * t.difference:+.1f}% [{100 * t.ci_low:+.1f}, {100 * t.ci_high:+.1f}]"
            flag = "  *" if t.significant else ""
            out(f"  {t.feature[:22]:<22} {t.code[:16]:<16} {t.pairs:>6,} "
                f"{t.discordant_monitored_only:>8,} {t.discordant_unmonitored_only:>10,} "
                f"{100 * t.rate_monitored:>8.1f}% {100 * t.rate_unmonitored:>10.1f}%  {diff:<27} "
                f"{format_p(t.p_value):>7} {format_p(t.p_value_adjusted):>8}{flag}\n")
        significant = model.significant
        if significant:
            out(f"  depends on the monitoring cue (* = Holm-adjusted p <= {model.alpha:g}):\n")
            for t in significant:
                out(f"    - {t.sentence()}\n")
        else:
            out(f"  no feature depends on the monitoring cue at alpha {model.alpha:g}\n")
    return 0
