"""`janus simulate`: synthetic decision logs with an injected evaluation/production gap.

    janus simulate --scenario compliance-gap --seed 7 --out demo-output/sim

writes ``evaluation.jsonl``, ``production.jsonl`` and ``truth.json`` into ``--out``
(see :mod:`detector.simulate`).
"""

from __future__ import annotations

import argparse

from detector.simulate import (
    DEFAULT_CHANGE_AT,
    DEFAULT_MODEL_ID,
    DEFAULT_N_EVALUATION,
    DEFAULT_N_PRODUCTION,
    SCENARIOS,
    simulate,
    write_logs,
)


def register(p: argparse.ArgumentParser) -> None:
    scenarios = "\n".join(f"  {name:<22} {text}" for name, text in SCENARIOS.items())
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Simulate a SOC triage agent's decision records (schema v1) under evaluation and in\n"
        "production, with a scenario's change starting at a given production record.\n"
        "Writes DIR/evaluation.jsonl, DIR/production.jsonl and DIR/truth.json."
    )
    p.epilog = f"scenarios:\n{scenarios}"
    p.add_argument("--scenario", required=True, metavar="NAME", help=f"one of: {', '.join(SCENARIOS)}")
    p.add_argument("--seed", required=True, type=int, metavar="N", help="random seed; same seed, same files")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument(
        "--evaluation", type=int, default=DEFAULT_N_EVALUATION, metavar="N",
        help=f"number of evaluation records (default {DEFAULT_N_EVALUATION})",
    )
    p.add_argument(
        "--production", type=int, default=DEFAULT_N_PRODUCTION, metavar="N",
        help=f"number of production records (default {DEFAULT_N_PRODUCTION})",
    )
    p.add_argument(
        "--change-at", type=int, default=None, metavar="N",
        help=f"0-based production index where the change starts (default {DEFAULT_CHANGE_AT}, or a quarter "
             "of --production when that is shorter)",
    )
    p.add_argument("--model-id", default=DEFAULT_MODEL_ID, metavar="M", help=f"model_id (default {DEFAULT_MODEL_ID})")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logs = simulate(
        args.scenario,
        seed=args.seed,
        n_evaluation=args.evaluation,
        n_production=args.production,
        change_at=args.change_at if args.change_at is not None else min(DEFAULT_CHANGE_AT, args.production // 4),
        model_id=args.model_id,
    )
    paths = write_logs(logs, args.out)
    truth = logs.truth
    print(f"scenario {truth['scenario']} (seed {truth['seed']}, model {truth['model_id']}): {truth['description']}")
    print(f"  {len(logs.evaluation):>9,} evaluation records  {paths['evaluation']}")
    print(f"  {len(logs.production):>9,} production records  {paths['production']}")
    if truth["change_index"] is None:
        print("  no change injected")
    else:
        ramp = f", ramping over {truth['ramp_records']:,} records" if truth["ramp_records"] else ""
        print(f"  {truth['change_kind']} change from production index {truth['change_index']:,}{ramp}")
        for change in truth["changes"]:
            print(f"    {change['what']}: {change['before']:g} -> {change['after']:g}")
    print(f"  ground truth                  {paths['truth']}")
    return 0
