"""Realistic logs (``detector.realistic``): Janus beside the conditional oracle, and the null.

Logs of a customer-support agent and an on-call DevOps agent: requests wrapped in greetings,
fillers, pasted context and sign-offs; long answers that never repeat; request kinds with very
different refusal rates. Two questions:

* **Changes.** A refusal drop on one kind (refund overrides, 10% of traffic) from 0.92 to 0.50 or
  0.75, from production record ``CHANGE_AT`` on, with a 20,000- and a 2,000-record baseline. The
  *conditional oracle* knows each record's kind and the true rates before and after: a
  Shiryaev–Roberts detector on that kind's refusals alone with the exact likelihood ratio and the
  threshold ARL (one test, nothing estimated). Janus knows neither the kind nor the change
  (``janus backtest``'s pipeline, every feature, ARL ``ARL``). Delays count all production records
  after the change; a run that does not alarm within the log counts its length (censored).
* **The ARL.** At a configured 1e4, the measured pipeline-wide ARL of one model on no-change logs
  of each domain (first alarm of any kind per run, censored-exponential estimate), and records per
  alert in steady operation (every alert counted as it fires, resolves and fires again).
* **The budget.** Each feature's false alerts on one long no-change log per domain at ARL 300,
  against its share of the budget (``bench/budget.py``).
* **The null.** No change, a mix shift toward the risky kinds (half of production), a shift toward
  a rare, distinct kind, inputs in words never seen, records missing their output: Janus's
  behaviour alerts per run (the allowance at ARL 1e6 over these records is ≈ 0.01 per statistic).

    .venv-bench/bin/python bench/realistic_logs.py --quick --out /tmp/realistic.json
"""

from __future__ import annotations

import math

import numpy as np

from budget import budget_use, replay
from single_stream import ArlEstimate

from detector.realistic import DEVOPS, SUPPORT, Change, generate, with_weights

ARL = 1e6
ARL_MEASURED = 1e4  # where false alarms are frequent enough to count in minutes
BUDGET_ARL = 300.0  # where each feature's false alarms are frequent enough to count
CHANGE_AT = 2_000
KIND = "refund_override"
BATCH = 500


def janus_alerts(evaluation: list[dict], production: list[dict], arl: float = ARL) -> list:
    """Firing alerts of Janus over ``production`` (the backtest's monitor, in micro-batches)."""
    return replay(evaluation, production, arl, BATCH)[1]


def oracle_delay(production: list[dict], kinds: list[str], p0: float, p1: float) -> int | None:
    """Records after ``CHANGE_AT`` until the oracle's SR statistic on the kind's refusals crosses ARL."""
    log_r = -math.inf
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    for i, (record, kind) in enumerate(zip(production, kinds)):
        if kind != KIND:
            continue
        log_r = (up if record["output"]["refused"] else down) + np.logaddexp(0.0, log_r)
        if log_r >= math.log(ARL):
            return i - CHANGE_AT if i >= CHANGE_AT else None  # None: a false alarm before the change
    return None


def change_runs(seeds: list[int], n_evaluation: int, refusal: float, n_production: int) -> dict:
    rows = []
    for seed in seeds:
        logs = generate(SUPPORT, seed=seed, n_evaluation=n_evaluation, n_production=n_production,
                        changes=[Change(at=CHANGE_AT, kind=KIND, refusal=refusal)])
        fired = janus_alerts(logs.evaluation, logs.production)
        before = [e for e in fired if e.kind == "behaviour" and e.record_index < CHANGE_AT]
        after = [e for e in fired if e.kind == "behaviour" and e.record_index >= CHANGE_AT]
        first = after[0] if after else None
        oracle = oracle_delay(logs.production, logs.kinds_of("production"), SUPPORT.kind(KIND).refusal, refusal)
        rows.append({"seed": seed, "janus": (first.record_index - CHANGE_AT) if first else None,
                     "janus_feature": first.feature if first else "", "janus_message": first.message if first else "",
                     "false_before_change": len(before), "oracle": oracle})
    found = [r for r in rows if r["janus"] is not None]
    censored = n_production - CHANGE_AT
    janus = float(np.median([r["janus"] if r["janus"] is not None else censored for r in rows]))
    oracle = float(np.median([r["oracle"] if r["oracle"] is not None else censored for r in rows]))
    return {"n_evaluation": n_evaluation, "refusal": refusal, "runs": rows, "found": len(found),
            "janus_median": janus, "oracle_median": oracle, "ratio": janus / max(oracle, 1.0)}


def null_runs(seeds: list[int], n_evaluation: int, n_production: int) -> list[dict]:
    """Behaviour alerts per run on logs whose behaviour given the input never changes."""
    def missing_output(records):
        return [({k: v for k, v in r.items() if k != "output"} if i % 10 == 0 else r) for i, r in enumerate(records)]

    words = "qwv zzk plorb snarfle vintage quasar gorp blint frobnicate wuggle".split()

    def novel_inputs(records):
        return [dict(r, input={"text": " ".join(words[(i + k) % len(words)] for k in range(12))},
                     output=dict(r["output"], refused=True, action="refuse", tool_calls=[])) if i % 3 == 0 else r
                for i, r in enumerate(records)]

    def risky(domain):
        return [Change(at=0, weights={k.name: 1.0 for k in domain.kinds if k.refusal > 0.5})]

    cases = [
        ("support, no change", SUPPORT, None, [], None),
        ("devops, no change", DEVOPS, None, [], None),
        ("support, mix shift to the risky kinds", SUPPORT, None, risky(SUPPORT), None),
        ("devops, mix shift to the risky kinds", DEVOPS, None, risky(DEVOPS), None),
        ("support, a 3% kind becomes 60%", SUPPORT, with_weights(SUPPORT, {"complaint": 0.03}),
         [Change(at=0, weights={"complaint": 1.5})], None),
        ("support, a 1% kind becomes 60%", SUPPORT, with_weights(SUPPORT, {"complaint": 0.01}),
         [Change(at=0, weights={"complaint": 1.5})], None),
        *((f"support, a kind with ~{n} evaluation records becomes 60%", SUPPORT,
           with_weights(SUPPORT, {"complaint": n / n_evaluation}), [Change(at=0, weights={"complaint": 1.5})], None)
          for n in (30, 60)),
        ("support, a third of inputs in unseen words", SUPPORT, None, [], novel_inputs),
        ("support, 10% of records without output", SUPPORT, None, [], missing_output),
    ]
    out = []
    for name, domain, evaluation_domain, changes, edit in cases:
        counts = []
        for seed in seeds:
            logs = generate(domain, seed=seed, n_evaluation=n_evaluation, n_production=n_production,
                            changes=changes, evaluation_domain=evaluation_domain)
            production = logs.production if edit is None else edit(logs.production)
            fired = janus_alerts(logs.evaluation, production)
            counts.append({"behaviour": sum(e.kind == "behaviour" for e in fired),
                           "other": sorted({f"{e.kind}:{e.feature}" for e in fired if e.kind != "behaviour"}),
                           "examples": [e.message for e in fired if e.kind == "behaviour"][:2]})
        out.append({"case": name, "records": n_production, "runs": counts})
    return out


def measured_arl(seeds: list[int], n_evaluation: int, n_production: int) -> dict:
    """Pipeline-wide ARL of one model at a configured ``ARL_MEASURED`` on no-change logs: the
    censored-exponential estimate over the first alarm of any kind (behaviour, input or data) per run,
    and, in steady operation, records per alert with every alert counted as it fires (an alert
    resolves, its statistic restarts from 0, and it can fire again)."""
    out = {}
    for domain in (SUPPORT, DEVOPS):
        runs, alerts = [], 0
        for seed in seeds:
            logs = generate(domain, seed=seed, n_evaluation=n_evaluation, n_production=n_production)
            fired = janus_alerts(logs.evaluation, logs.production, arl=ARL_MEASURED)
            runs.append((min(e.record_index for e in fired) if fired else None, n_production))
            alerts += len(fired)
        records = n_production * len(seeds)
        out[domain.name] = {**ArlEstimate.of(runs).to_dict(), "configured": ARL_MEASURED, "alerts": alerts,
                            "records": records, "records_per_alert": round(records / alerts) if alerts else None}
    return out


def budget_log(domain, n_production: int) -> dict:
    """Where the false-alarm budget goes on one long no-change log of ``domain`` (bench/budget.py)."""
    logs = generate(domain, seed=21, n_evaluation=20_000, n_production=n_production)
    return budget_use(logs.evaluation, logs.production, BUDGET_ARL, label=f"{domain.name} no-change log")


def run(quick: bool = False) -> dict:
    seeds = [11, 12] if quick else [11, 12, 13]
    n_production = 6_000 if quick else 10_000
    return {
        "arl": ARL, "change_at": CHANGE_AT, "kind": KIND,
        "changes": [change_runs(seeds, 20_000 if not quick else 10_000, 0.50, n_production),
                    change_runs(seeds, 2_000, 0.50, n_production),
                    change_runs(seeds, 20_000 if not quick else 10_000, 0.75, n_production)],
        "null": null_runs(seeds[:1], 5_000 if quick else 20_000, n_production),
        "measured_arl": measured_arl(seeds, 5_000 if quick else 20_000, 10_000 if quick else 60_000),
        "budget": [budget_log(domain, 20_000 if quick else 40_000) for domain in (SUPPORT, DEVOPS)],
    }


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__))
