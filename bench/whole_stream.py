"""Whole decision streams: ``janus backtest`` against a River pipeline a user would assemble.

Each run simulates a scenario (``detector.simulate``: evaluation log → baseline, production log
with the change at ``CHANGE_AT``) and replays the production log through Janus's backtest (the
pipeline of ``janus backtest``: parse, featurise, detect; every feature of the model, judged given
the input, ARL ``ARL``, no tuning). The peer is one River PageHinkley detector per marginal feature
stream (refusal, one-hot action, each tool's presence, output and reasoning length, latency,
confidence, tool-call count), each stream standardised by the evaluation log's mean and standard
deviation, the pipeline alarming when any one fires, with one shared threshold tuned by bisection
on no-change runs (seeds no scenario uses) to Janus's pipeline-wide ARL as *measured* on the
scenario seeds' no-change runs (its lower bound, records watched, when Janus raised no behaviour
alarm there: the peer then gets at least Janus's false-alarm rate). Both sides' records/s are
measured on the same JSONL files: Janus's backtest, and the peer reading, decoding and cutting
its streams from the same bytes, then running every detector over every record. The same
pipeline also runs over long no-change logs (``LONG_NULL_RECORDS``), counting every alert: the
false-alarm rate of steady operation, which the first alarm of a fresh start (all statistics at
0) overstates. PageHinkley rather than ADWIN
because ADWIN costs ~30 µs a record per stream once its window is long: twenty streams of it
would not fit the time budget. Alibi's online detectors take thresholds from bootstrap quantiles
(n_bootstraps ≈ 10 × ERT per stream, ×20 streams): kept to the single-stream rows.

    .venv-bench/bin/python bench/whole_stream.py --quick --out /tmp/whole.json
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from budget import budget_use
from single_stream import ArlEstimate

SCENARIOS = ["no-change", "input-shift", "compliance-gap", "tool-shift", "reasoning-unmonitored", "length-shift",
             "gradual-ramp"]
CHANGE_AT = 5_000
N_PRODUCTION = 20_000
N_EVALUATION = 20_000
ARL = 1e4
# Steady operation: alerts fire, resolve and fire again; each no-change log is long enough that the
# statistics leave their start at 0 (each is held to ARL × n_tests, 4e5 records here).
LONG_NULL_RECORDS = 200_000
# Where the budget goes: one no-change log at an ARL low enough that each feature alarms tens of times.
BUDGET_RECORDS = 400_000
BUDGET_ARL = 300.0


# ---- the peer: marginal streams --------------------------------------------------------------
def marginal_streams(records: list[dict], actions: list[str], tools: list[str]) -> tuple[list[str], np.ndarray]:
    """The per-feature streams a user would cut from the records: (names, records × streams)."""
    names = (["refused"] + [f"action={a}" for a in actions] + [f"tool:{t}" for t in tools]
             + ["output_length", "reasoning_length", "latency_ms", "confidence", "tool_call_count"])
    out = np.zeros((len(records), len(names)))
    a_index = {a: 1 + i for i, a in enumerate(actions)}
    t_index = {t: 1 + len(actions) + i for i, t in enumerate(tools)}
    tail = 1 + len(actions) + len(tools)
    for r, rec in enumerate(records):
        o = rec.get("output") or {}
        row = out[r]
        row[0] = bool(o.get("refused"))
        if o.get("action") in a_index:
            row[a_index[o["action"]]] = 1.0
        calls = o.get("tool_calls") or []
        for c in calls:
            if c.get("name") in t_index:
                row[t_index[c["name"]]] = 1.0
        row[tail] = len(o.get("text") or "")
        row[tail + 1] = len(rec.get("reasoning") or "")
        row[tail + 2] = rec.get("latency_ms") or 0.0
        row[tail + 3] = o.get("confidence") or 0.0
        row[tail + 4] = len(calls)
    return names, out


class RiverPipeline:
    """PageHinkley per standardised stream; the pipeline's alarm is the first stream's alarm."""

    def __init__(self, evaluation: list[dict]):
        actions = sorted({(r.get("output") or {}).get("action") for r in evaluation} - {None})
        tools = sorted({c["name"] for r in evaluation for c in (r.get("output") or {}).get("tool_calls") or []})
        self.actions, self.tools = actions, tools
        self.names, ref = marginal_streams(evaluation, actions, tools)
        self.mean = ref.mean(axis=0)
        self.std = np.where(ref.std(axis=0) > 0, ref.std(axis=0), 1.0)

    def standardise(self, records: list[dict]) -> np.ndarray:
        return (marginal_streams(records, self.actions, self.tools)[1] - self.mean) / self.std

    def first_alarm(self, z: np.ndarray, threshold: float) -> tuple[int | None, str | None]:
        from river.drift import PageHinkley

        best, which = None, None
        for j, name in enumerate(self.names):
            det = PageHinkley(threshold=threshold)
            stop = len(z) if best is None else best
            for i, v in enumerate(z[:stop, j].tolist()):
                det.update(v)
                if det.drift_detected:
                    best, which = i, name
                    break
        return best, which


def tune_pipeline(peer: RiverPipeline, nulls: list[np.ndarray], target: float, steps: int) -> float:
    """Bisect log(threshold) so the pipeline's null ARL (exposure / alarms) is ``target``."""
    lo, hi = math.log(1.0), math.log(2000.0)
    for _ in range(steps):
        mid = (lo + hi) / 2
        arl = ArlEstimate.of((peer.first_alarm(z, math.exp(mid))[0], len(z)) for z in nulls).arl
        lo, hi = (mid, hi) if arl < target else (lo, mid)
    return math.exp((lo + hi) / 2)


# ---- Janus -------------------------------------------------------------------------------------
def janus_run(store_root: Path, production: list[dict], workdir: Path) -> dict:
    """``janus backtest`` in-process: first behaviour and input alarms, records/s."""
    from detector.backtest import run_backtest
    from detector.baseline import BaselineStore
    from detector.config import DetectionConfig, JanusConfig
    from detector.pipeline import Pipeline

    path = workdir / "production.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in production) + b"\n")
    events = []
    cpu = time.process_time()
    pipeline = Pipeline(BaselineStore(store_root), JanusConfig(detection=DetectionConfig(arl=ARL)))
    summary = run_backtest(path, pipeline, on_alert=events.append)
    cpu = time.process_time() - cpu
    firing = [e for e in events if e.status == "firing"]
    out = {"records_per_s": round(summary.records_per_second), "records_per_cpu_s": round(summary.records / cpu),
           "firings": {kind: sum(e.kind == kind for e in firing) for kind in ("behaviour", "input", "data")}}
    for kind in ("behaviour", "input"):
        hits = sorted((e.record_index, e.feature) for e in firing if e.kind == kind)
        out[kind] = {"index": hits[0][0], "feature": hits[0][1]} if hits else None
    return out


def save_baseline(store_root: Path, evaluation: list[dict]) -> None:
    """The active baseline of ``store_root``, built from evaluation records as ``janus baseline build``."""
    from detector.baseline import BaselineStore, build_baseline
    from detector.records import parse_values

    decisions = parse_values([orjson.dumps(r) for r in evaluation]).decisions
    BaselineStore(store_root).save(build_baseline(decisions), actor="bench", reason="bench", activate=True)


def long_null(seeds: range, n_production: int, work: Path) -> dict:
    """Records per false alarm in steady operation: every alert Janus raises on long no-change logs
    (an alert resolves, its statistic restarts, and it can fire again), per alert kind."""
    from detector.simulate import simulate

    firings = {"behaviour": 0, "input": 0, "data": 0}
    for seed in seeds:
        logs = simulate("no-change", seed, n_evaluation=N_EVALUATION, n_production=n_production, change_at=0)
        store_root = work / f"long-null-{seed}"
        save_baseline(store_root, logs.evaluation)
        run = janus_run(store_root, logs.production, work)
        firings = {kind: firings[kind] + run["firings"][kind] for kind in firings}
        print(f"whole streams: long no-change log, seed {seed} done", flush=True)
    records = n_production * len(seeds)
    alarms = sum(firings.values())
    return {"runs": len(seeds), "records_per_run": n_production, "records": records, "firings": firings,
            "records_per_alarm": round(records / alarms) if alarms else None,
            "records_per_behaviour_alarm": round(records / firings["behaviour"]) if firings["behaviour"] else None}


def river_rate(peer: RiverPipeline, path: Path) -> dict:
    """The peer over the same JSONL file Janus's backtest read: decode, cut and standardise the streams,
    run every detector over every record (no early stop). Records/s wall and per CPU-second."""
    wall, cpu = time.perf_counter(), time.process_time()
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    peer.first_alarm(peer.standardise(records), math.inf)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"records_per_s": round(len(records) / wall), "records_per_cpu_s": round(len(records) / cpu)}


def _summarise(first: list[tuple[int | None, str | None]], n: int, change_at: int | None) -> dict:
    """Detection rate, delays and false alarms before the change, over runs."""
    before = [t for t, _ in first if t is not None and change_at is not None and t < change_at]
    if change_at is None:  # no-change: time to the first (false) alarm
        times = [t + 1 for t, _ in first if t is not None]
        return {"runs": len(first), "alarmed": len(times),
                "mean_time_to_first_alarm": round(float(np.mean(times)), 1) if times else None,
                "first_features": sorted({f for _, f in first if f})}
    delays = [t - change_at + 1 for t, _ in first if t is not None and t >= change_at]
    timed = len(first) - len(before)
    out = {"runs": len(first), "false_alarm_before_change": len(before), "detected": len(delays),
           "detection_rate": round(len(delays) / timed, 3) if timed else None,
           "first_features": sorted({f for t, f in first if f and t is not None and t >= change_at})}
    if delays:
        out.update(mean_delay=round(float(np.mean(delays)), 1), median_delay=float(np.median(delays)))
    if timed:  # a miss counted as detected at the end of the log: a lower bound of the mean delay
        out["mean_delay_misses_at_end"] = round(float(np.mean(delays + [n - change_at] * (timed - len(delays)))), 1)
    return out


def run(quick: bool) -> dict:
    from detector.simulate import simulate

    seeds = range(100, 101) if quick else range(100, 106)
    tune_seeds = range(900, 901) if quick else range(900, 906)
    steps = 4 if quick else 8
    # quick: shorter logs (the slow gradual ramp may go undetected in them)
    n_evaluation, n_production = (10_000, 12_000) if quick else (N_EVALUATION, N_PRODUCTION)
    results: dict[str, dict] = {}
    janus_first: dict[str, list] = {s: [] for s in SCENARIOS}
    janus_input: dict[str, list] = {s: [] for s in SCENARIOS}
    river_first: dict[str, list] = {s: [] for s in SCENARIOS}
    rates: dict[str, list] = {"janus": [], "river": []}
    # Each run's peer (its streams cut by that seed's evaluation log) and streams, scored once the threshold is tuned
    river_z: dict[str, list] = {s: [] for s in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="janus-bench-") as tmp:
        work = Path(tmp)
        for seed in seeds:
            store_root = work / f"store-{seed}"
            for scenario in SCENARIOS:
                logs = simulate(scenario, seed, n_evaluation=n_evaluation, n_production=n_production,
                                change_at=CHANGE_AT)
                if scenario == SCENARIOS[0]:  # evaluation logs are the same for every scenario of a seed
                    save_baseline(store_root, logs.evaluation)
                    peer = RiverPipeline(logs.evaluation)
                j = janus_run(store_root, logs.production, work)
                janus_first[scenario].append(((j["behaviour"] or {}).get("index"), (j["behaviour"] or {}).get("feature")))
                janus_input[scenario].append(((j["input"] or {}).get("index"), (j["input"] or {}).get("feature")))
                if scenario == "no-change":  # throughput, both sides on the same file
                    rates["janus"].append({k: j[k] for k in ("records_per_s", "records_per_cpu_s")})
                    rates["river"].append(river_rate(peer, work / "production.jsonl"))
                river_z[scenario].append((peer, peer.standardise(logs.production)))
            print(f"whole streams: seed {seed} done", flush=True)
        # The peer's threshold: tuned on no-change runs of seeds no scenario run uses, to Janus's measured ARL.
        janus_null = ArlEstimate.of((t, n_production) for t, _ in janus_first["no-change"])
        target = janus_null.target
        first_eval = simulate("no-change", tune_seeds[0], n_evaluation=n_evaluation, n_production=0, change_at=0)
        tuner = RiverPipeline(first_eval.evaluation)
        nulls = [tuner.standardise(simulate("no-change", s, n_evaluation=n_evaluation, n_production=n_production,
                                            change_at=0).production) for s in tune_seeds]
        threshold = tune_pipeline(tuner, nulls, target, steps)
        for scenario in SCENARIOS:
            river_first[scenario] = [p.first_alarm(z, threshold) for p, z in river_z[scenario]]
        steady = long_null(range(300, 301) if quick else range(300, 303),
                           n_production if quick else LONG_NULL_RECORDS, work)
        budget_log = simulate("no-change", 310, n_evaluation=n_evaluation,
                              n_production=n_production if quick else BUDGET_RECORDS, change_at=0)
        budget = budget_use(budget_log.evaluation, budget_log.production, BUDGET_ARL,
                            label="the simulator's no-change scenario, seed 310")
    for scenario in SCENARIOS:
        change = None if scenario == "no-change" else CHANGE_AT
        results[scenario] = {
            "janus": _summarise(janus_first[scenario], n_production, change),
            "janus_input_alarm": _summarise(janus_input[scenario], n_production, change),
            "river": _summarise(river_first[scenario], n_production, change),
        }
        for key, suffix in (("mean_delay", ""), ("mean_delay_misses_at_end", "_misses_at_end")):
            j, r = results[scenario]["janus"].get(key), results[scenario]["river"].get(key)
            if j and r:
                results[scenario]["river_over_janus" + suffix] = round(r / j, 2)
    return {"arl": ARL, "change_at": CHANGE_AT, "n_production": n_production, "n_evaluation": n_evaluation,
            "runs_per_scenario": len(seeds), "tune_runs": len(tune_seeds), "river_streams": peer.names,
            "river_threshold": round(threshold, 3), "scenarios": results,
            "janus_measured_arl": janus_null.to_dict(), "janus_steady_null": steady, "janus_budget": budget, "river_target_arl": round(target),
            "river_measured_arl": ArlEstimate.of((t, n_production) for t, _ in river_first["no-change"]).to_dict(),
            "rates": {side: {k: float(np.median([r[k] for r in rs])) for k in ("records_per_s", "records_per_cpu_s")}
                      for side, rs in rates.items()}}


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__))
