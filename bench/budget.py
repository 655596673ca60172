"""Where the false-alarm budget goes: each feature's false alerts on a long no-change log at a low
ARL, against its share of the budget (used by the whole-stream and realistic-log parts, which
also replay logs through a Monitor with :func:`replay`).

A model's per-test threshold is ``ARL × n_tests``; each record may move the ``rows`` statistics of
a feature (its segment's and, with several segments, the pooled one) by 1 in expectation, so a
feature that used its whole share would raise ``records × rows / (ARL × n_tests)`` alerts. The ARL
is set low (hundreds) so that every feature's statistics alarm often enough to be counted; a share
used well below 1 is slack at that ARL, which grows with the ARL.
"""

from __future__ import annotations

from collections import Counter

import orjson

from detector.baseline.build import build_baseline
from detector.monitor import Monitor
from detector.records import parse_values

BATCH = 2_048


def replay(evaluation: list[dict], production: list[dict], arl: float, batch: int = BATCH) -> tuple[Monitor, list]:
    """A Monitor on a baseline built from ``evaluation``, fed ``production`` in micro-batches of
    ``batch`` records (the backtest's monitor), and the alerts that fired."""
    monitor = Monitor(build_baseline(parse_values([orjson.dumps(r) for r in evaluation]).decisions), arl=arl)
    values = [orjson.dumps(r) for r in production]
    fired = []
    for i in range(0, len(values), batch):
        fired += [e for e in monitor.update(parse_values(values[i:i + batch], first_position=i).decisions)
                  if e.status == "firing"]
    return monitor, fired


def budget_use(evaluation: list[dict], production: list[dict], arl: float, *, label: str) -> dict:
    """Each monitored feature's firing alerts over ``production`` against its budget share."""
    monitor, fired = replay(evaluation, production, arl)
    alerts = Counter(e.feature for e in fired)
    rows = 1 + (monitor.all_row is not None)
    budget = len(production) * rows / (arl * monitor.n_tests)
    features = [monitor.featurizer.specs[j].name for j in monitor.features]
    return {"log": label, "records": len(production), "arl": arl, "n_tests": monitor.n_tests,
            "budget_per_feature": round(budget, 1), "alerts": len(fired),
            "features": sorted(({"feature": f, "alerts": alerts[f], "share_used": round(alerts[f] / budget, 2)}
                                for f in features), key=lambda r: (-r["alerts"], r["feature"]))}
