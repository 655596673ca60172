"""Janus on a log generator it was not built with (bench/peopledesk_logs.py): the null, and changes.

An HR / benefits / IT-helpdesk assistant's decisions, written by someone who had not read Janus's
code. One baseline from evaluation traffic; production logs that keep behaviour given the request
unchanged (no change; two rare kinds grown to half of traffic; a kind seen a few dozen times in
evaluation grown to 40%) and logs with a change on one kind from production record ``CHANGE_AT``
(refusals 0.90 → 0.45 on a 10% kind; a tool 2% → 15% on one kind; answers three times longer on
one kind). Each runs through a fresh Monitor at ARL 1e6 and 1e4, in the backtest's micro-batches.
Under the null the count of behaviour alerts is what matters (at 1e6 the allowance over these
records is ≈ 0.02; at 1e4, ≈ 2); for a change, the records from the change to the first behaviour
alert.

    .venv-bench/bin/python bench/independent.py --quick --out /tmp/independent.json
"""

from __future__ import annotations

import orjson

from peopledesk_logs import Gen

from detector.baseline.build import build_baseline
from detector.monitor import Monitor
from detector.records import parse_values

CHANGE_AT = 4_000
ARLS = (1e6, 1e4)
BATCH = 2_048
NULL = (("no change", "none"), ("two rare kinds grow to half of traffic", "mix2"),
        ("a kind seen a few dozen times in evaluation grows to 40%", "rare40"))
CHANGES = (("refusals on a 10% kind 0.90 → 0.45", "refusal"), ("a tool 2% → 15% on one kind", "tool"),
           ("answers three times longer on one kind", "longer"))


def records(seed: int, n: int, traffic: str, scenario: str = "none") -> list[bytes]:
    change_at = CHANGE_AT if traffic == "production" else 10**9
    return [orjson.dumps(record) for record, _ in Gen(seed, scenario, change_at).run(n, traffic)]


def behaviour_alerts(baseline, values: list[bytes], arl: float) -> list[int]:
    """Record index of every behaviour alert that fires over ``values``."""
    monitor = Monitor(baseline, arl=arl)
    fired = []
    for i in range(0, len(values), BATCH):
        decisions = parse_values(values[i:i + BATCH], first_position=i).decisions
        fired += [e.record_index for e in monitor.update(decisions) if e.kind == "behaviour" and e.status == "firing"]
    return fired


def run(quick: bool = False) -> dict:
    n_evaluation, n_production = (20_000, 6_000) if quick else (20_000, 20_000)
    seeds = (11,) if quick else (11, 12)
    baseline = build_baseline(parse_values(records(1, n_evaluation, "evaluation")).decisions)
    null, changes = [], []
    for case, scenario in NULL:
        for seed in seeds:
            values = records(seed + 10 * len(null), n_production, "production", scenario)
            null.append({"case": case, "scenario": scenario, "seed": seed, "records": n_production,
                         "behaviour": {f"{arl:g}": len(behaviour_alerts(baseline, values, arl)) for arl in ARLS}})
    for case, scenario in CHANGES:
        values = records(41, n_production, "production", scenario)
        delays = {}
        for arl in ARLS:
            after = [i - CHANGE_AT for i in behaviour_alerts(baseline, values, arl) if i >= CHANGE_AT]
            delays[f"{arl:g}"] = after[0] if after else None
        changes.append({"case": case, "scenario": scenario, "records": n_production, "delay": delays})
    novel = baseline.shares(baseline.featurizer.feature_index("novel_input"))[-1]
    return {"n_evaluation": n_evaluation, "change_at": CHANGE_AT, "novel_share": round(float(novel), 4),
            "null": null, "changes": changes}


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__))
