"""The conditional null on realistic logs (detector.realistic): boilerplate around requests, long
answers, request kinds with very different refusal rates. Changes in *what is asked* (the mix,
novel inputs) and data faults must never page as behaviour; a change in how one kind is answered
must. False alarms are judged against the configured ARL over the records run."""

from __future__ import annotations

import orjson
import pytest

from detector.baseline.build import build_baseline
from detector.monitor import Monitor
from detector.realistic import DEVOPS, SUPPORT, Change, generate, with_weights
from detector.records import parse_values

ARL = 1e6  # over ~10^4 records a correct detector raises a false alarm with probability ~1%


def _decisions(records):
    return parse_values([orjson.dumps(r) for r in records]).decisions


def _firing(domain, changes=(), *, n_evaluation=5000, n_production=8000, seed=3, evaluation_domain=None,
            edit=None, intent=False):
    logs = generate(domain, seed=seed, n_evaluation=n_evaluation, n_production=n_production, changes=changes,
                    evaluation_domain=evaluation_domain)
    evaluation, production = logs.evaluation, logs.production
    if intent:  # a router's label of each request, as some stacks log it
        evaluation = [{**r, "attributes": {"intent": k}} for r, k in zip(evaluation, logs.kinds["evaluation"])]
        production = [{**r, "attributes": {"intent": k}} for r, k in zip(production, logs.kinds["production"])]
    production = production if edit is None else [edit(i, r) for i, r in enumerate(production)]
    monitor = Monitor(build_baseline(_decisions(evaluation)), arl=ARL)
    decisions = _decisions(production)
    events = []
    for i in range(0, len(decisions), 1000):
        events += monitor.update(decisions[i:i + 1000])
    return [e for e in events if e.status == "firing"]


def test_a_shift_towards_a_rare_distinct_kind_is_input_drift_not_behaviour():
    # Complaints (refused 30%, the rest 1-4% or 85-92%) are ~3% of evaluation (~150 records) and ~60%
    # of production. (Fewer, down to a handful, are unsettled inputs: the test below.)
    rare = with_weights(SUPPORT, {"complaint": 0.03})
    fired = _firing(SUPPORT, [Change(at=0, weights={"complaint": 1.5})], evaluation_domain=rare)
    assert not [e for e in fired if e.kind == "behaviour"], [e.message for e in fired]
    assert any(e.kind == "input" for e in fired)


@pytest.mark.parametrize("share, seed", [(0.00125, 8), (0.001, 3)], ids=["folds-disagree", "far-from-every-stratum"])
def test_a_handful_of_evaluation_records_of_a_kind_give_it_no_crowd_null(share, seed):
    # 26 (16) complaints in 20,000 evaluation records, 60% of production. In the first log one
    # fold's models placed some complaints with the low-refusal kinds and the others with the
    # refused ones; in the second, 16 are too few for a stratum of their own and every fold placed
    # them with the low-refusal kinds. Scored against those strata they raised 5 and 15 behaviour
    # alerts. Such inputs are unsettled, hence novel: input drift.
    rare = with_weights(SUPPORT, {"complaint": share})
    fired = _firing(SUPPORT, [Change(at=0, weights={"complaint": 1.5})], evaluation_domain=rare,
                    n_evaluation=20_000, seed=seed)
    assert not [e for e in fired if e.kind == "behaviour"], [e.message for e in fired]
    assert any(e.feature == "novel_input" for e in fired)


@pytest.mark.parametrize("domain", [SUPPORT, DEVOPS], ids=["support", "devops"])
def test_a_mix_shift_towards_the_risky_kinds_is_not_behaviour(domain):
    risky = {k.name: 1.0 for k in domain.kinds if k.refusal > 0.5}
    fired = _firing(domain, [Change(at=0, weights=risky)], seed=4)
    assert not [e for e in fired if e.kind == "behaviour"], [e.message for e in fired]


def test_records_missing_their_output_are_a_data_fault_never_behaviour():
    def drop_output(i, r):
        if i % 2000 == 7:  # 4 of 8,000: a rate far below any data alert
            r = {k: v for k, v in r.items() if k != "output"}
        if 5000 <= i and i % 10 == 0:  # then 10%: a data fault at a rate
            r = {k: v for k, v in r.items() if k != "output"}
        return r
    fired = _firing(SUPPORT, edit=drop_output)
    assert not [e for e in fired if e.kind == "behaviour"], [e.message for e in fired]
    data = [e for e in fired if e.kind == "data"]
    assert data and data[0].record_index >= 5000 and data[0].severity == "warning"
    assert "missing part" in data[0].message


def test_novel_inputs_borrow_no_null_and_show_as_input_drift():
    words = "qwv zzk plorb snarfle vintage quasar gorp blint frobnicate wuggle".split()

    def novel(i, r):
        if i >= 2000 and i % 3 == 0:  # a third of production: requests in words never seen
            r = dict(r, input={"text": " ".join(words[(i + k) % len(words)] for k in range(12))},
                     output=dict(r["output"], refused=True, action="refuse", tool_calls=[]))
        return r
    fired = _firing(SUPPORT, edit=novel)
    assert not [e for e in fired if e.kind == "behaviour"], [e.message for e in fired]
    assert any(e.feature == "novel_input" for e in fired)


def test_a_refusal_drop_on_one_kind_is_found_and_named():
    fired = _firing(SUPPORT, [Change(at=2000, kind="refund_override", refusal=0.5)])
    behaviour = [e for e in fired if e.kind == "behaviour"]
    assert behaviour and behaviour[0].record_index >= 2000
    first = next(e for e in behaviour if e.feature == "refused")
    assert first.record_index - 2000 < 1500
    assert "refund" in first.message and first.production_rate < first.evaluation_rate


def test_an_intent_attribute_is_the_condition_however_rare_the_kind():
    # ~25 complaints in 5,000 evaluation records, ~60% of production: too few for fitted strata,
    # but a router's intent label (picked up without configuration) makes them a condition.
    rare = with_weights(SUPPORT, {"complaint": 0.005})
    fired = _firing(SUPPORT, [Change(at=0, weights={"complaint": 1.5})], evaluation_domain=rare, intent=True)
    assert not [e for e in fired if e.kind == "behaviour"], [e.message for e in fired]
    changed = _firing(SUPPORT, [Change(at=2000, kind="refund_override", refusal=0.5)], intent=True)
    first = next(e for e in changed if e.kind == "behaviour")
    assert first.record_index >= 2000 and "intent = refund_override" in first.message, first.message
