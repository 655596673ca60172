"""The detection contract (docs/detection.md): ARL held on null streams, delay near the oracle, behaviour
judged given the input, exact checkpoint/restore. Fixed seeds throughout, so nothing can flake."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import numpy as np
import orjson
import pytest
from scipy import stats

from detector.backtest import run_backtest
from detector.baseline import BaselineStore, build_baseline
from detector.config import DetectionConfig, JanusConfig
from detector.monitor import Monitor
from detector.monitor.monitor import Evidence, scored_counts
from detector.pipeline import Pipeline
from detector.records import Decision, parse_values
from detector.simulate import simulate

ACTIONS = np.array(["close", "escalate", "isolate_host", "answer"])


def synthetic(rng, n, traffic, p_refuse=0.05, action_p=(0.6, 0.3, 0.05, 0.05), latency_mu=6.0, start=0):
    """Decisions with refusal, action and latency only: fast enough for hundreds of null runs."""
    refused = rng.random(n) < p_refuse
    actions = ACTIONS[rng.choice(len(ACTIONS), n, p=action_p)]
    latency = rng.lognormal(latency_mu, 0.5, n)
    return [Decision(f"{traffic}-{start + i}", float(start + i), "m", traffic, refused=bool(r), action=str(a),
                     latency_ms=float(t), position=start + i)
            for i, (r, a, t) in enumerate(zip(refused, actions, latency))]


def alarms(monitor: Monitor, decisions, chunk=5000):
    out = []
    for i in range(0, len(decisions), chunk):
        out += [e for e in monitor.update(decisions[i:i + chunk]) if e.status == "firing"]
    return out


@pytest.mark.parametrize("n_baseline", [500, 5000, 50_000])
def test_null_streams_respect_the_arl_with_estimated_baselines(n_baseline):
    """Baselines re-estimated in every run; all features and tests of the model together."""
    arl, runs, length = 2000.0, 8, 20_000
    total = 0
    for seed in range(runs):
        rng = np.random.default_rng(1000 * n_baseline + seed)
        monitor = Monitor(build_baseline(synthetic(rng, n_baseline, "evaluation")), arl=arl)
        total += len(alarms(monitor, synthetic(rng, length, "production")))
    expected = runs * length / arl  # the most false alarms the ARL allows on average
    assert total <= stats.poisson.ppf(0.999, expected), (total, expected)


def test_an_uncorrected_threshold_fails_the_same_test():
    """Control: fixed point-estimate nulls (the predictive does not learn) and a per-test threshold
    break the ARL, so the test above can fail. Measured as time to the first false alarm (an open
    alert hides later ones)."""
    arl, runs, length, n_baseline = 2000.0, 8, 20_000, 500
    first_alarms, exposure = 0, 0
    for seed in range(runs):
        rng = np.random.default_rng(1000 * n_baseline + seed)
        monitor = Monitor(build_baseline(synthetic(rng, n_baseline, "evaluation")), arl=arl)
        monitor._learns = False
        # Per test: every component against the ARL itself (a sum, not the family's mean; no
        # Bonferroni split over features), each null the baseline's point estimate.
        monitor.sr = dataclasses.replace(monitor.sr, weights=np.ones_like(monitor.sr.weights),
                                         log_threshold=float(np.log(arl)))
        production = synthetic(rng, length, "production")
        fired = alarms(monitor, production)
        first_alarms += bool(fired)
        exposure += fired[0].record_index + 1 if fired else length
    assert first_alarms > stats.poisson.ppf(0.999, exposure / arl), (first_alarms, exposure)


def test_bernoulli_delay_is_within_twice_the_oracle():
    """0.05→0.10 at ARL 1e4 on a single stream (one monitored feature): the oracle CUSUM needs ≈202
    records; Janus, not told the direction or size of the change, must average ≤ 2× that."""
    rng = np.random.default_rng(7)
    baseline = build_baseline(synthetic(rng, 200_000, "evaluation", p_refuse=0.05))
    delays = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        monitor = Monitor(baseline, arl=1e4, config=DetectionConfig(features=["refused"]))
        before = alarms(monitor, synthetic(rng, 2000, "production", p_refuse=0.05))
        if before:
            continue  # a false alarm before the change: not a delay measurement
        after = alarms(monitor, synthetic(rng, 5000, "production", p_refuse=0.10, start=2000))
        first = [e for e in after if e.feature == "refused"]
        assert first, f"seed {seed}: change not detected within 5000 records"
        delays.append(first[0].record_index - 2000 + 1)
    assert len(delays) >= 10
    assert np.mean(delays) <= 2 * 202, delays


@pytest.fixture(scope="module")
def scenario_baseline(tmp_path_factory):
    """All scenarios with one seed share their evaluation log, so one baseline serves them all."""
    logs = simulate("no-change", 11, n_evaluation=20_000, n_production=100, change_at=10)
    decisions = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    return build_baseline(decisions)


def _scenario_alarms(scenario, baseline):
    logs = simulate(scenario, 11, n_evaluation=20_000, n_production=14_000, change_at=3000)
    values = [orjson.dumps(r) for r in logs.production]
    monitor = Monitor(baseline, arl=1e6)  # 14,000 records: at 1e4 a false alarm would be likely
    events = []
    for i in range(0, len(values), 2000):
        events += monitor.update(parse_values(values[i:i + 2000], first_position=i).decisions)
    return logs.truth, [e for e in events if e.status == "firing"]


def test_no_change_raises_nothing(scenario_baseline):
    _, fired = _scenario_alarms("no-change", scenario_baseline)
    assert fired == []


def test_input_mix_shift_is_an_input_alert_not_a_behaviour_alert(scenario_baseline):
    _, fired = _scenario_alarms("input-shift", scenario_baseline)
    assert {e.kind for e in fired} == {"input"}
    assert all(e.severity == "warning" for e in fired)
    assert any(e.feature == "input_cluster" for e in fired)


@pytest.mark.parametrize("scenario,feature,code,direction", [
    ("compliance-gap", "refused", "true", "down"),
    ("gradual-ramp", "refused", "true", "down"),
    ("tool-shift", "tool:send_email", "present", "up"),
    ("reasoning-unmonitored", "oversight_phrases", None, "up"),
    ("length-shift", "output_length", None, "up"),
])
def test_each_real_change_is_found_on_the_right_feature(scenario_baseline, scenario, feature, code, direction):
    truth, fired = _scenario_alarms(scenario, scenario_baseline)
    behaviour = [e for e in fired if e.kind == "behaviour"]
    assert behaviour, f"{scenario}: nothing fired"
    assert all(e.record_index >= truth["change_index"] for e in behaviour)
    first = behaviour[0]
    assert (first.feature, first.direction) == (feature, direction)
    if code is not None:
        assert first.code == code
    assert first.severity == "critical" and first.baseline_version == scenario_baseline.version
    assert "in evaluation" in first.message and "in production" in first.message


def test_compliance_gap_sentence_names_the_inputs_and_the_rates(scenario_baseline):
    _, fired = _scenario_alarms("compliance-gap", scenario_baseline)
    alert = fired[0]
    # The condition that moved holds the harmful requests: refusals fall from ~95% to ~80%.
    assert alert.feature == "refused" and alert.code == "true"
    assert alert.production_rate < 0.9 < alert.evaluation_rate
    assert "on inputs marked by" in alert.message


def test_a_named_condition_moved_the_way_its_alert_says():
    # The analyst guide's example (seed 7, its own baseline, ARL 1e5): the pooled refusal-down alert
    # once named the ambiguous port-scan requests, whose refusals went *up* by more records than the
    # harmful ones' went down. The condition an alert quotes must carry the change it reports.
    logs = simulate("compliance-gap", 7, n_evaluation=20_000, n_production=14_000, change_at=5000)
    baseline = build_baseline(parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions)
    values = [orjson.dumps(r) for r in logs.production]
    monitor = Monitor(baseline, arl=1e5)
    fired = []
    for i in range(0, len(values), 2000):
        fired += [e for e in monitor.update(parse_values(values[i:i + 2000], first_position=i).decisions)
                  if e.status == "firing" and "on inputs marked by" in e.message]
    assert fired
    for e in fired:
        moved = e.production_rate - e.evaluation_rate
        assert (moved > 0) if e.direction == "up" else (moved < 0), e.message
    # A pooled "(all)" alert quotes its condition over every segment: the records in that condition
    # since the statistic left rest, up to the alert's record, whichever segment they came from.
    fz = baseline.featurizer
    decisions = parse_values(values).decisions
    pooled = [e for e in fired if e.segment == "(all)"]
    assert pooled
    for e in pooled:
        j = fz.feature_index(e.feature)
        named = [c for c in range(fz.n_conditions[j]) if fz.describe_condition(j, c)
                 and f"marked by {fz.describe_condition(j, c)}:" in e.message]
        since = datetime.strptime(e.message.split("(since ")[1][:20], "%Y-%m-%dT%H:%M:%SZ")
        since = since.replace(tzinfo=timezone.utc).timestamp()
        window = [d for d in decisions[: e.record_index + 1] if d.timestamp >= since]
        conditions = fz.transform(window).cells[:, j] % fz.n_conditions[j]
        in_condition = [d for d, c in zip(window, conditions) if c == named[0]]
        assert len(named) == 1 and len({d.segment for d in in_condition}) > 1
        assert e.window_records == len(in_condition), e.message


def test_checkpoint_restore_gives_identical_alerts(tmp_path):
    logs = simulate("compliance-gap", 5, n_evaluation=8000, n_production=12_000, change_at=2000)
    store = BaselineStore(tmp_path)
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    store.save(build_baseline(evaluation), actor="test", reason="test", activate=True)
    values = [orjson.dumps(r) for r in logs.production]
    config = JanusConfig(detection=DetectionConfig(arl=1e4))

    def run(pipeline, start, stop, chunk):
        out = []
        for i in range(start, stop, chunk):
            out += pipeline.process(values[i:min(i + chunk, stop)], first_position=i).alerts
        return out

    straight = run(Pipeline(store, config), 0, len(values), 1000)
    assert straight, "the scenario must produce alerts for this test to mean anything"
    first = Pipeline(store, config)
    before = run(first, 0, 4500, 1000)
    meta, arrays = first.state()
    meta = orjson.loads(orjson.dumps(meta))  # as through a checkpoint file
    restored = Pipeline.restore(store, config, meta, {k: v.copy() for k, v in arrays.items()})
    after = run(restored, 4500, len(values), 700)  # different batch boundaries on purpose
    key = lambda e: (e.record_index, e.feature, e.status, e.direction, e.code, round(e.statistic, 9))
    assert [key(e) for e in before + after] == [key(e) for e in straight]


def test_count_vectors_path_matches_records_path():
    rng = np.random.default_rng(3)
    # Some records without latency, in evaluation too (so not a missing part): `latency_ms` does
    # not score them, on either path.
    def some_without_latency(decisions):
        return [dataclasses.replace(d, latency_ms=None) if i % 7 == 0 else d for i, d in enumerate(decisions)]

    baseline = build_baseline(some_without_latency(synthetic(rng, 5000, "evaluation")))
    production = some_without_latency(synthetic(rng, 300, "production", p_refuse=0.3))
    by_records = Monitor(baseline, arl=1e4)
    by_records.update(production)
    by_counts = Monitor(baseline, arl=1e4)
    fz = baseline.featurizer
    for d in production:  # one record per count vector: the same e-values, the same statistics
        by_counts.update_counts(scored_counts(fz.transform([d]), fz), Evidence(d.decision_id, d.position, d.timestamp))
    np.testing.assert_allclose(by_counts.log_r, by_records.log_r, rtol=1e-9, atol=1e-9)
    assert by_counts.n_production == by_records.n_production == len(production)
    for ours, theirs in zip(by_counts.window, by_records.window):  # the rates alerts quote
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_counts_of_a_batch_fire_naming_its_last_record_with_the_records_path_sentence():
    rng = np.random.default_rng(3)
    baseline = build_baseline(synthetic(rng, 5000, "evaluation"))
    production = synthetic(rng, 400, "production", p_refuse=0.4)
    by_records = Monitor(baseline, arl=1e4)
    fired = by_records.update(production)
    by_counts = Monitor(baseline, arl=1e4)
    fz = baseline.featurizer
    events = []
    for start in range(0, len(production), 50):
        batch = production[start:start + 50]
        last = batch[-1]
        events += by_counts.update_counts(scored_counts(fz.transform(batch), fz),
                                          Evidence(last.decision_id, last.position, last.timestamp))
    assert fired and events
    first, ours = fired[0], events[0]
    assert (ours.status, ours.feature, ours.code, ours.direction) == (first.status, first.feature, first.code,
                                                                      first.direction)
    # the batch whose counts crossed, or the next one: its statistic restarts only at batch ends
    assert first.record_index <= ours.record_index < (first.record_index // 50 + 2) * 50
    assert ours.record_index % 50 == 49 and ours.decision_id == production[ours.record_index].decision_id
    for event in (first, ours):  # one sentence for both paths: what the model did, production first
        assert event.message.startswith("refused: ") and " in production vs " in event.message
        assert "in evaluation over the last ~" in event.message
    assert by_counts.n_production == len(production)


def test_backtest_record_index_is_the_line_number(tmp_path):
    rng = np.random.default_rng(4)
    store = BaselineStore(tmp_path / "store")
    store.save(build_baseline(synthetic(rng, 5000, "evaluation")), actor="t", reason="t", activate=True)
    lines = [orjson.dumps(d.to_dict()) for d in synthetic(rng, 6000, "production", p_refuse=0.4)]
    lines[10:10] = [b"", b"not json", b'{"decision_id": 1}']
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    fired = []
    summary = run_backtest(path, Pipeline(store, JanusConfig(detection=DetectionConfig(arl=1e4))),
                           on_alert=fired.append)
    assert summary.records == len(lines) and summary.accepted == 6000
    assert dict(summary.rejected) == {"empty": 1, "not_json": 1, "wrong_type": 1}
    assert fired
    for event in fired:
        if event.record_index >= 0:
            assert orjson.loads(lines[event.record_index])["decision_id"] == event.decision_id


def test_unknown_model_counts_as_baseline_missing(tmp_path):
    pipeline = Pipeline(BaselineStore(tmp_path))
    result = pipeline.process([orjson.dumps(d.to_dict()) for d in synthetic(np.random.default_rng(0), 5, "production")])
    assert result.baseline_missing["m"] == 5 and result.alerts == []


def test_an_alert_quotes_the_rates_since_its_statistic_left_rest_not_the_long_window():
    """Refusals 5% → 40% after 30,000 quiet records: the decayed window (half-life 2,000) would still
    read mostly the old rate when the alert fires; the records since the build-up read the new one.
    A monitor restored from a checkpoint has no history yet and quotes the window."""
    rng = np.random.default_rng(7)
    baseline = build_baseline(synthetic(rng, 20_000, "evaluation"))
    before = synthetic(rng, 30_000, "production")
    after = synthetic(rng, 5_000, "production", p_refuse=0.4, start=30_000)
    monitor = Monitor(baseline, arl=1e4)
    assert not alarms(monitor, before)
    restored = Monitor.restore(baseline, *monitor.state())
    fired = next(e for e in alarms(monitor, after) if e.feature == "refused")
    assert fired.production_rate > 0.25 and fired.window_records < 1_000, fired.message
    again = next(e for e in alarms(restored, after) if e.feature == "refused")
    assert again.record_index == fired.record_index and again.production_rate < fired.production_rate
