"""`janus demo`: simulated agent with an injected evaluation/production gap, end to end.

Simulates evaluation and production logs, builds and activates a baseline, replays a no-change
stream and an alignment-faking stream through the detector, and prints every alert with its
sentence. Everything is written under ``--out`` so it can be inspected afterwards.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson

from detector.backtest import run_backtest, write_alerts
from detector.baseline import BaselineStore, build_baselines
from detector.cli.common import config_of
from detector.pipeline import Pipeline
from detector.records import read_decisions
from detector.simulate import simulate, write_logs

STREAMS = ("no-change", "compliance-gap")


def register(sub) -> None:
    p = sub.add_parser("demo", help="simulated agent, baseline, live detection, alerts (offline)")
    p.add_argument("--out", default="demo-output", help="folder for logs, baseline store and alerts")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--arl", type=float, default=100_000, help="records between false alarms (default 1e5)")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    started = time.perf_counter()
    config = config_of(args)
    out = Path(args.out)
    shutil.rmtree(out / "store", ignore_errors=True)
    store = BaselineStore(out / "store")
    print(f"Janus demo: a simulated SOC triage agent; its evaluation traffic becomes the baseline (ARL {args.arl:,.0f}).")
    paths = {}
    for scenario in STREAMS:
        logs = simulate(scenario, args.seed, n_evaluation=20_000, n_production=15_000, change_at=5_000)
        paths[scenario] = write_logs(logs, out / scenario)
        print(f"  simulated {scenario:<15} {logs.truth['description']}")
    evaluation = read_decisions(paths[STREAMS[0]]["evaluation"], config.limits)
    built = build_baselines(evaluation.decisions, config, source=str(paths[STREAMS[0]]["evaluation"]),
                            reason="demo: evaluation traffic of the simulated agent", actor="janus-demo")
    for baseline in built.baselines.values():
        version = store.save(baseline, actor="janus-demo", reason="demo baseline", activate=True)
        print(f"  baseline {baseline.model_id}@{version} built from {baseline.n_records:,} evaluation decisions")
    for scenario in STREAMS:
        truth = orjson.loads(paths[scenario]["truth"].read_bytes())
        alerts_path = out / scenario / "alerts.jsonl"
        fired = []
        with write_alerts(alerts_path) as write:
            def on_alert(event, write=write):
                write(event)
                if event.status == "firing":
                    fired.append(event)
                    print(f"    ALERT [{event.severity}] {event.model_id}/{event.segment} {event.feature} "
                          f"at record {event.record_index:,}: {event.message}")
            summary = run_backtest(paths[scenario]["production"], Pipeline(store, config, arl=args.arl),
                                   on_alert=on_alert)
        change = truth.get("change_index")
        where = f"change injected at record {change:,}" if change is not None else "no change injected"
        print(f"  production stream '{scenario}' ({where}): {summary.records:,} records at "
              f"{summary.records_per_second:,.0f}/s, {len(fired)} alert(s) -> {alerts_path}")
        if not fired:
            print("    no alerts")
    print(f"done in {time.perf_counter() - started:.0f} s; outputs in {out}/")
    return 0
