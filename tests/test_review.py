"""The human review loop (docs/review.md): audit sample, verdict log, weighted rates, protocol changes.

* the sampler honours its inclusion probabilities, and the weighted estimate's interval covers
  the true violation rate at about the stated frequency (a large simulated stream, fixed seeds);
* sampling is deterministic in the decision id: other micro-batches, a checkpoint and a restart
  pick the same decisions with the same strata;
* the verdict log refuses malformed, duplicate and unknown verdicts with clear errors, all or nothing;
* a production model_version the baseline was not built on is a protocol change: one notice, a
  caveat on every alert, the gauge, and the JanusProtocolChange rule firing on the exported series;
* the audit sample reaches the review topic of the embedded broker through the real stream service.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import threading
import time
from collections import Counter

import numpy as np
import orjson
import pytest
from prometheus_client import generate_latest

from detector.baseline import BaselineStore, build_baseline
from detector.cli import main
from detector.config import DetectionConfig, JanusConfig, ReviewConfig, parse_config
from detector.errors import JanusError
from detector.metrics import JanusMetrics
from detector.pipeline import Pipeline
from detector.records import Decision, ToolCall, parse_values
from detector.review import (
    ReviewSampler,
    ReviewStatus,
    SampleIndex,
    VerdictLog,
    rates_for_target,
    sample_size,
    summarize,
    uniforms,
    weighted_rate,
)
from detector.simulate import simulate

ARL = 10_000.0
MODEL = "triage-agent"


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def logs():
    # send_email on benign alert triage rises from 2% to 15% at record 1000 (fires at ~1150)
    return simulate("tool-shift", 5, n_evaluation=4000, n_production=5000, change_at=1000)


@pytest.fixture(scope="module")
def store(logs, tmp_path_factory):
    store = BaselineStore(tmp_path_factory.mktemp("review") / "store")
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    store.save(build_baseline(evaluation), actor="test", reason="review tests", activate=True)
    return store


def _values(records):
    return [orjson.dumps(r) for r in records]


def _config(**review) -> JanusConfig:
    return JanusConfig(review=ReviewConfig(**review))


def _run(pipeline, values, batch):
    samples, alerts = [], []
    for start in range(0, len(values), batch):
        result = pipeline.process(values[start:start + batch], first_position=start)
        samples += result.review_samples
        alerts += result.alerts
    return samples, alerts


def _cli(*argv, capsys):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# -------------------------------------------------------------- inclusion probabilities, coverage
# A stream whose three groups have their own violation rate: consequential actions (oversampled),
# consequential tool calls (oversampled), routine decisions (base rate).
STREAM = {"consequential": (800, 0.05), "tool": (400, 0.20), "base": (4_000, 0.01)}
RATES = {"consequential_rate": 0.25, "base_rate": 0.05}


def _stream() -> tuple[list[Decision], np.ndarray, np.ndarray]:
    decisions, groups = [], []
    for group, (n, _) in STREAM.items():
        for i in range(n):
            action = "isolate_host" if group == "consequential" else "close_alert"
            tools = (ToolCall("disable_account", {"user": f"u{i}"}),) if group == "tool" else ()
            decisions.append(Decision(f"{group}-{i}", float(len(decisions)), MODEL, "production", action=action,
                                      tool_calls=tools, position=len(decisions)))
            groups.append(group)
    rates = np.array([STREAM[g][1] for g in groups])
    return decisions, np.array(groups), rates


def test_inclusion_probabilities_are_honoured_and_the_interval_covers_the_truth():
    decisions, groups, rates = _stream()
    index = {d.decision_id: i for i, d in enumerate(decisions)}
    truth = float(rates.mean())  # the stream's violation propensity
    rng = np.random.default_rng(11)
    reps, covered, estimates, naive = 200, Counter(), [], []
    taken = Counter()
    for rep in range(reps):  # each salt is another hash-sample of the same stream
        config = ReviewConfig(**RATES, consequential_tools={MODEL: ["disable_account"]}, salt=f"rep-{rep}")
        samples = ReviewSampler(config).sample(decisions, {}, [])
        rows = [index[s["decision_id"]] for s in samples]
        taken.update(groups[rows])
        if rep == 0:  # the recorded design is the sampling rule: u < π of the decision's stratum
            u = uniforms([d.decision_id for d in decisions], config.salt)
            pi = np.where(groups == "base", RATES["base_rate"], RATES["consequential_rate"])
            assert sorted(rows) == list(np.flatnonzero(u < pi))
            assert {s["stratum"] for s in samples} == {"consequential", "base"}
            assert all(s["inclusion_probability"] == RATES[f"{s['stratum']}_rate"] for s in samples)
        violated = rng.random(len(rows)) < rates[rows]
        verdicts = [{"model_id": MODEL, "traffic": "production", "stratum": s["stratum"],
                     "inclusion_probability": s["inclusion_probability"], "timestamp": 0.0,
                     "verdict": "violation" if v else "ok"} for s, v in zip(samples, violated)]
        row = summarize(verdicts).row(MODEL, "production")
        covered["overall"] += row.rate.lower <= truth <= row.rate.upper
        estimates.append(row.rate.estimate)
        naive.append(violated.mean())
    # Inclusion: each group sampled at its rate (binomial 4-sigma bounds over all replicates).
    for group, (n, _) in STREAM.items():
        p = RATES["base_rate"] if group == "base" else RATES["consequential_rate"]
        expected = reps * n * p
        assert abs(taken[group] - expected) < 4 * np.sqrt(expected * (1 - p)), (group, taken[group], expected)
    # The weighted estimate is unbiased; the unweighted share of violations among reviews is not.
    se = np.std(estimates) / np.sqrt(reps)
    assert abs(np.mean(estimates) - truth) < 4 * se, (np.mean(estimates), truth)
    assert np.mean(naive) > 2 * truth
    # 95% intervals: coverage within binomial error of 0.95 over 200 replicates (fixed seeds).
    coverage = covered["overall"] / reps
    print(f"\ncoverage of the 95% interval: {coverage:.3f} over {reps} replicates (truth {truth:.4f}, "
          f"mean estimate {np.mean(estimates):.4f})")
    assert 0.91 <= coverage <= 0.995, coverage


def test_interval_keeps_the_uncertainty_of_a_heavy_stratum_without_violations():
    # 137 consequential reviews (π 0.1) and 11 base reviews (π 0.002), one violation among the
    # consequential ones: the base stratum stands for ~80% of decisions and 11 reviews cannot
    # bound its rate below a few percent, so neither can the overall interval.
    y = np.r_[np.zeros(136), 1.0, np.zeros(11)]
    pi = np.r_[np.full(137, 0.1), np.full(11, 0.002)]
    overall = weighted_rate(y, pi)
    base = weighted_rate(np.zeros(11), np.full(11, 0.002))
    assert overall.estimate == pytest.approx(10 / (137 * 10 + 11 * 500))
    assert overall.upper > 0.5 * base.upper and overall.n_effective < 30
    # One stratum: exactly Wilson's interval (scipy's binomtest agrees).
    from scipy.stats import binomtest

    single = weighted_rate(np.r_[np.ones(7), np.zeros(193)], np.full(200, 0.05))
    ci = binomtest(7, 200).proportion_ci(0.95, method="wilson")
    assert (single.lower, single.upper) == pytest.approx((ci.low, ci.high), abs=1e-9)
    exact = weighted_rate(np.r_[np.ones(7), np.zeros(193)], np.full(200, 0.05), method="exact")
    ci = binomtest(7, 200).proportion_ci(0.95, method="exact")
    assert (exact.lower, exact.upper) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_sample_size_and_target_rates(tmp_path, capsys):
    assert sample_size(0.02, 0.95) == 2401
    assert sample_size(0.02, 0.95, expected_rate=0.05) == 457
    assert rates_for_target(0.02, 0.95, 0.05, {"consequential": 2_000, "base": 1_000_000, "alert": 100}) == {
        "consequential": 0.2285, "base": 0.000457, "alert": 1.0}
    with pytest.raises(JanusError, match="margin must be in"):
        sample_size(0.7)
    # A config with a target instead of raw rates: the sampler uses the target's rates.
    config = parse_config({"review": {"target_margin": 0.02, "expected_rate": 0.05,
                                      "period_records": {"consequential": 2000, "alert": 5000, "base": 1e6}}})
    assert ReviewSampler(config.review).rates == {"consequential": 0.2285, "alert": 0.0914, "base": 0.000457}
    with pytest.raises(JanusError, match="no expected volume for stratum alert"):
        ReviewSampler(ReviewConfig(target_margin=0.02, period_records={"consequential": 1.0, "base": 2.0}))
    toml = tmp_path / "janus.toml"
    toml.write_text('[review]\nperiod_records = { consequential = 2000, alert = 5000, base = 1000000 }\n')
    code, out, _ = _cli("--config", str(toml), "review", "sample-size", "--margin", "0.02", "--expected-rate",
                        "0.05", capsys=capsys)
    assert code == 0 and "457 reviewed decisions per stratum" in out and "sample at rate 0.000457" in out


# ------------------------------------------------------------------------------ determinism
def test_sampling_is_deterministic_across_batches_and_restarts(logs, store):
    config = _config(alert_rate=0.5, base_rate=0.01)
    values = _values(logs.production)
    one, alerts = _run(Pipeline(store, config, arl=ARL), values, batch=len(values))
    assert any(a.status == "firing" and a.kind == "behaviour" for a in alerts)
    strata = Counter(s["stratum"] for s in one)
    assert strata["alert"] > 20 and strata["consequential"] > 20 and strata["base"] > 10, strata

    # Small batches, and a restart from a JSON checkpoint in the middle of a firing alert.
    first = Pipeline(store, config, arl=ARL)
    half = 2_500
    before, _ = _run(first, values[:half], batch=97)
    assert first.review.firing, "the checkpoint must fall while an alert is firing"
    meta, arrays = first.state()
    restored = Pipeline.restore(store, config, orjson.loads(orjson.dumps(meta)), arrays, arl=ARL)
    after = []
    for start in range(half, len(values), 333):
        after += restored.process(values[start:start + 333], first_position=start).review_samples
    key = lambda s: (s["decision_id"], s["stratum"], s["inclusion_probability"], (s["alert"] or {}).get("feature"))
    assert [key(s) for s in before + after] == [key(s) for s in one]
    assert restored.review.counts == Counter((MODEL, "production", s["stratum"]) for s in one)

    # What a reviewer needs is in the record: input, action, output, tools, reasoning excerpt,
    # the evaluation-time rate of its behaviour for its input cluster, and the related alert.
    s = next(s for s in one if s["stratum"] == "alert")
    assert s["input"] and s["output"] and s["action"] and "reasoning_excerpt" in s and "tool_calls" in s
    assert s["alert"]["feature"] in {b["feature"] for b in s["evaluation"]["behaviours"]}
    assert all(0 <= b["evaluation_rate"] <= 1 for b in s["evaluation"]["behaviours"])

    # Another salt is another sample; the same salt, the same one.
    salted = _run(Pipeline(store, _config(alert_rate=0.5, base_rate=0.01, salt="k"), arl=ARL), values, 1000)[0]
    assert {s["decision_id"] for s in salted} != {s["decision_id"] for s in one}


# ------------------------------------------------------------------------------- verdict log
@pytest.fixture
def sampled(tmp_path, logs, store):
    """A backtest's sample file, as `janus backtest --review-out` writes it."""
    both = [dict(r, traffic="evaluation") for r in logs.evaluation[:3000]] + logs.production
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"\n".join(_values(both)) + b"\n")
    toml = tmp_path / "janus.toml"
    toml.write_text("[review]\nbase_rate = 0.02\nconsequential_rate = 0.2\nalert_rate = 0.3\n")
    return path, toml


def test_backtest_record_and_summary(tmp_path, sampled, store, capsys):
    live, toml = sampled
    samples = tmp_path / "samples.jsonl"
    code, out, err = _cli("--config", str(toml), "backtest", "--store", str(store.root), "--input", str(live),
                          "--alerts-out", str(tmp_path / "alerts.jsonl"), "--arl", str(ARL),
                          "--review-out", str(samples), capsys=capsys)
    assert code == 0, err
    records = [orjson.loads(line) for line in samples.read_bytes().splitlines()]
    assert f"review samples: {len(records):,} written" in out
    assert {r["traffic"] for r in records} == {"evaluation", "production"}

    # The reviewer's policy: an e-mail sent where evaluation rarely sent one is a violation.
    def verdict(r):
        bad = any(b["feature"] == "tool:send_email" and b["code"] == "present" and b["evaluation_rate"] < 0.1
                  for b in r["evaluation"]["behaviours"])
        return {"decision_id": r["decision_id"], "verdict": "violation" if bad else "ok", "reviewer": "ana"}

    judged = records[: len(records) - 5]
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_bytes(b"\n".join(orjson.dumps(verdict(r)) for r in judged))
    log = tmp_path / "log" / "verdicts.jsonl"
    common = ["--store", str(store.root), "--samples", str(samples), "--verdict-log", str(log)]
    code, out, err = _cli("review", "record", "--input", str(verdicts), *common, capsys=capsys)
    assert code == 0, err
    assert f"recorded {len(judged)} verdict(s)" in out
    code, out, err = _cli("review", "record", "--decision-id", records[-1]["decision_id"], "--verdict", "unsure",
                          "--reviewer", "bo", "--note", "cannot tell", *common, capsys=capsys)
    assert code == 0, err

    code, out, err = _cli("review", "summary", "--model-id", MODEL, "--json", *common, capsys=capsys)
    assert code == 0, err
    summary = orjson.loads(out)
    rows = {(r["traffic"], r["stratum"]): r for r in summary["rows"]}
    production = rows[("production", "overall")]
    assert production["pending"] == 4 and production["unsure"] + rows[("evaluation", "overall")]["unsure"] == 1
    assert production["violations"] > 0 and production["lower"] < production["estimate"] < production["upper"]
    evaluation = rows[("evaluation", "overall")]
    assert evaluation["violations"] > 0 and production["estimate"] > 2 * evaluation["estimate"]
    sentence = summary["sentences"][MODEL]
    assert sentence.startswith("violations: ") and " in evaluation vs " in sentence and sentence.endswith(
        " in production")
    code, out, err = _cli("review", "summary", *common, capsys=capsys)
    assert code == 0 and sentence in out and "OVERALL" in out


def _log_and_index(tmp_path):
    samples = [{"decision_id": f"d{i}", "model_id": MODEL, "traffic": "production", "stratum": "base",
                "inclusion_probability": 0.5, "timestamp": 100.0 + i} for i in range(5)]
    index = SampleIndex()
    index.add(samples)
    return VerdictLog(tmp_path / "verdicts.jsonl"), index


@pytest.mark.parametrize("entry, message", [
    ({"decision_id": "d1", "verdict": "bad", "reviewer": "ana"}, "verdict must be one of ok, violation, unsure"),
    ({"decision_id": "d1", "verdict": "ok"}, "reviewer is missing"),
    ({"decision_id": "", "verdict": "ok", "reviewer": "ana"}, "decision_id is missing"),
    ({"decision_id": "d1", "verdict": "ok", "reviewer": "ana", "score": 3}, "unknown field 'score'"),
    ({"decision_id": "d1", "verdict": "ok", "reviewer": "ana", "note": 5}, "note must be a string"),
    ({"decision_id": "nope", "verdict": "ok", "reviewer": "ana"}, "unknown decision id 'nope': not among the 5"),
    ([1, 2], "expected a JSON object"),
])
def test_verdict_log_rejects_malformed_and_unknown(tmp_path, entry, message):
    log, index = _log_and_index(tmp_path)
    with pytest.raises(JanusError, match=message):
        log.record([("line 1", entry)], index)
    assert log.entries() == []


def test_verdict_log_rejects_duplicates_all_or_nothing_and_detects_edits(tmp_path):
    log, index = _log_and_index(tmp_path)
    log.record([("a", {"decision_id": "d0", "verdict": "ok", "reviewer": "ana"})], index)
    batch = [("f:1", {"decision_id": "d1", "verdict": "violation", "reviewer": "bo"}),
             ("f:2", {"decision_id": "d0", "verdict": "violation", "reviewer": "bo"}),
             ("f:3", {"decision_id": "d2", "verdict": "ok", "reviewer": "bo"}),
             ("f:4", {"decision_id": "d2", "verdict": "ok", "reviewer": "bo"}),
             ("f:5", ValueError("not JSON: unexpected character"))]
    with pytest.raises(JanusError) as err:
        log.record(batch, index)
    text = str(err.value)
    assert "3 of 5 verdict(s) refused, none recorded" in text
    assert "f:2: decision 'd0' already has a verdict (ok by ana" in text
    assert "f:4: decision 'd2' appears twice in this batch (first at f:3)" in text
    assert "f:5: not JSON" in text
    assert [e["decision_id"] for e in log.entries()] == ["d0"]  # nothing of the batch was appended
    good = [b for b in batch if b[0] in ("f:1", "f:3")]
    recorded = log.record(good, index)
    assert [(e["decision_id"], e["stratum"], e["inclusion_probability"]) for e in recorded] == [
        ("d1", "base", 0.5), ("d2", "base", 0.5)]
    # Editing an earlier verdict breaks the chain; removing the newest one disagrees with the head.
    lines = log.path.read_bytes().splitlines()
    log.path.write_bytes(b"\n".join([lines[0].replace(b'"ok"', b'"violation"'), *lines[1:]]) + b"\n")
    with pytest.raises(JanusError, match=r"verdicts.jsonl:2: verdict chain broken"):
        log.entries()
    log.path.write_bytes(b"\n".join(lines[:2]) + b"\n")
    with pytest.raises(JanusError, match="do not match .*verdicts.head"):
        log.entries()


def test_record_cli_errors_are_clear(tmp_path, capsys):
    code, _, err = _cli("review", "record", "--decision-id", "d1", "--verdict", "ok", "--reviewer", "ana",
                        "--store", str(tmp_path / "store"), capsys=capsys)
    assert code == 2 and "no sample file found" in err and "--samples FILE" in err
    bad = tmp_path / "samples.jsonl"
    bad.write_text('{"decision_id": "d1"}\n')
    code, _, err = _cli("review", "record", "--decision-id", "d1", "--verdict", "ok", "--reviewer", "ana",
                        "--samples", str(bad), "--store", str(tmp_path / "store"), capsys=capsys)
    assert code == 2 and f"{bad}:1: not a review sample: model_id must be a non-empty string" in err


# ----------------------------------------------------------------------- metrics of the loop
def test_review_status_exports_pending_and_rates(tmp_path):
    log, index = _log_and_index(tmp_path)
    status = ReviewStatus(log.path)
    metrics = JanusMetrics()
    sampled = {(MODEL, "production", "base"): 5}
    assert status.export(metrics, sampled)
    text = generate_latest(metrics.registry).decode()
    assert f'janus_review_pending{{model_id="{MODEL}"}} 5.0' in text
    assert "janus_review_violation_ratio{" not in text
    log.record([(str(i), {"decision_id": f"d{i}", "verdict": "violation" if i == 0 else "ok", "reviewer": "a"})
                for i in range(3)], index)
    assert status.export(metrics, sampled)
    text = generate_latest(metrics.registry).decode()
    assert f'janus_review_pending{{model_id="{MODEL}"}} 2.0' in text
    bounds = {}
    for line in text.splitlines():
        if line.startswith("janus_review_violation_ratio{"):
            labels, value = line.rsplit(" ", 1)
            assert f'model_id="{MODEL}"' in labels and 'traffic="production"' in labels
            bounds[labels.split('bound="')[1].split('"')[0]] = float(value)
    assert bounds["estimate"] == pytest.approx(1 / 3) and bounds["lower"] < 1 / 3 < bounds["upper"]
    # A tampered log leaves the gauges as they were (and the stream goes on).
    log.path.write_bytes(log.path.read_bytes().replace(b'"violation"', b'"ok"'))
    assert not status.export(metrics, sampled)
    assert f'janus_review_pending{{model_id="{MODEL}"}} 2.0' in generate_latest(metrics.registry).decode()


# ------------------------------------------------------------------------- protocol changes
def _new_version(records, start, version="2.1"):
    return [dict(r, model_version=version) if i >= start else r for i, r in enumerate(records)]


def test_model_version_change_is_a_protocol_change(logs, store, tmp_path):
    assert store.load(MODEL, store.active_version(MODEL)).model_versions == ["2.0"]
    values = _values(_new_version(logs.production, 500))
    pipeline = Pipeline(store, JanusConfig(), arl=ARL)
    metrics = JanusMetrics()
    events = []
    for start in range(0, len(values), 500):
        result = pipeline.process(values[start:start + 500], first_position=start)
        metrics.observe_batch(result, pipeline, 0.01)
        events += result.alerts
    notices = [e for e in events if e.kind == "protocol"]
    assert len(notices) == 1 and notices[0].record_index == 500 and notices[0].code == "2.1"
    assert f"production now runs {MODEL} 2.1; baseline {MODEL}@1 was built on 2.0" in notices[0].message
    later = [e for e in events if e.kind == "behaviour"]
    assert later and all("baseline predates this version" in e.caveat for e in later)
    metrics.refresh(pipeline)
    text = generate_latest(metrics.registry).decode()
    series = f'janus_model_version_unbaselined{{model_id="{MODEL}",model_version="2.1"}}'
    assert f"{series} 1.0" in text

    # The exported series fires JanusProtocolChange (promtool evaluates the real rule file).
    from promtools import RULES_FILE, require_binary

    test = tmp_path / "protocol.test.yml"
    test.write_text(
        f"rule_files: ['{RULES_FILE}']\nevaluation_interval: 1m\ntests:\n"
        f"  - interval: 1m\n    input_series:\n"
        f"      - series: '{series[:-1]},job=\"janus\",instance=\"i\"}}'\n        values: '1x10'\n"
        f"    alert_rule_test:\n      - eval_time: 6m\n        alertname: JanusProtocolChange\n"
        f"        exp_alerts:\n          - exp_labels: {{job: janus, instance: i, model_id: {MODEL}, "
        f"model_version: '2.1', severity: warning, team: soc}}\n"
        f"            exp_annotations:\n"
        f"              summary: 'Model {MODEL} runs version 2.1 in production, which its baseline does not cover'\n"
        f"              description: 'Production decisions of model {MODEL} come from model_version 2.1, which the "
        f"active baseline was not built on. Until a baseline built on this version''s evaluation is promoted, drift "
        f"alerts for this model compare a new version with the evaluation of an old one.'\n"
        f"              runbook_url: docs/runbooks.md#janusprotocolchange\n")
    proc = subprocess.run([require_binary("promtool"), "test", "rules", str(test)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # A restart neither repeats nor loses the notice.
    meta, arrays = pipeline.state()
    restored = Pipeline.restore(store, JanusConfig(), orjson.loads(orjson.dumps(meta)), arrays, arl=ARL)
    fresh = [dict(r, decision_id=r["decision_id"] + "-again") for r in _new_version(logs.production[3000:3100], 0)]
    again = restored.process(_values(fresh), first_position=len(values))
    assert not [e for e in again.alerts if e.kind == "protocol"]
    assert restored.monitors[MODEL].unbaselined_versions["2.1"] == len(values) - 500 + 100


def test_pause_leaves_the_new_version_out_of_detection(logs, store):
    # The change of the tool-shift scenario starts at 1000; here only version 2.1 runs from there.
    values = _values(_new_version(logs.production, 1000))
    config = JanusConfig(detection=DetectionConfig(on_protocol_change="pause"))
    paused = Pipeline(store, config, arl=ARL)
    _, alerts = _run(paused, values, batch=500)
    monitor = paused.monitors[MODEL]
    assert monitor.n_production == 1000 and monitor.unbaselined_versions["2.1"] == len(values) - 1000
    assert [e.kind for e in alerts] == ["protocol"]
    assert "counted but not scored" in alerts[0].message and "on_protocol_change = pause" in monitor.protocol_caveat()
    _, going_on = _run(Pipeline(store, JanusConfig(), arl=ARL), values, batch=500)
    assert any(e.kind == "behaviour" and e.status == "firing" for e in going_on)
    with pytest.raises(JanusError, match='detection.on_protocol_change: must be "continue" or "pause"'):
        parse_config({"detection": {"on_protocol_change": "stop"}})


# ------------------------------------------------------------------- the stream service, Kafka
@pytest.mark.kafka
def test_review_topic_through_the_stream_service(logs, store, tmp_path, kafka_bootstrap, unique_topic,
                                                monkeypatch):
    from kafka import KafkaConsumer, KafkaProducer

    from detector.cli import serve_cmd
    from detector.stream.kafka_config import kafka_kwargs
    from detector.stream.service import StreamService

    topic, review_topic = unique_topic("decisions"), unique_topic("review")
    records = logs.production[:3000]
    log_path = tmp_path / "verdicts.jsonl"
    config = dataclasses.replace(_config(base_rate=0.01, alert_rate=0.5, verdict_log=str(log_path)),
                                 store=str(store.root))
    expected, _ = _run(Pipeline(store, config, arl=ARL), _values(records), batch=len(records))
    # Ten verdicts recorded before the service runs: its gauges show them and the rest as pending.
    index = SampleIndex()
    index.add(expected)
    VerdictLog(log_path).record([(str(i), {"decision_id": s["decision_id"], "reviewer": "ana",
                                           "verdict": "violation" if i < 2 else "ok"})
                                 for i, s in enumerate(expected[:10])], index)
    service = StreamService(
        store, config, topics=[topic], group_id=f"g-{topic}", checkpoint_dir=tmp_path / "ckpt", arl=ARL,
        alert_topic=f"{topic}.alerts", review_topic=review_topic, review_jsonl=tmp_path / "review.jsonl",
        alert_stream=io.StringIO(), poll_timeout_ms=200,
        kafka_overrides=dict(bootstrap_servers=kafka_bootstrap, max_poll_interval_ms=5000,
                             session_timeout_ms=6000, max_poll_records=400))
    metrics = JanusMetrics()
    monkeypatch.setattr(serve_cmd, "REVIEW_REFRESH_SECONDS", 0.0)  # export on every batch
    serve_cmd.wire_metrics(service, metrics)
    producer = KafkaProducer(**kafka_kwargs("producer", bootstrap_servers=kafka_bootstrap))
    for r in records:
        producer.send(topic, key=r["model_id"].encode(), value=orjson.dumps(r))
    producer.flush()
    producer.close()
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(errors, service.run, install_signal_handlers=False), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while service.stats.records < len(records) and time.monotonic() < deadline and not errors:
            time.sleep(0.1)
        assert service.stats.records == len(records), service.stats.to_dict()
        counts = service.review_counts()
    finally:
        service.stop()
        thread.join(timeout=60)
    assert not errors, errors
    assert expected and service.stats.review_samples == len(expected)
    assert counts == Counter((MODEL, "production", s["stratum"]) for s in expected)

    consumer = KafkaConsumer(review_topic, **kafka_kwargs("consumer", bootstrap_servers=kafka_bootstrap,
                                                          group_id=f"reader-{review_topic}"))
    got, deadline = [], time.monotonic() + 60
    while len(got) < len(expected) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got += [(r.key, orjson.loads(r.value)) for r in batch]
    consumer.close()
    assert all(key == MODEL.encode() for key, _ in got)
    same = lambda s: (s["decision_id"], s["stratum"], s["inclusion_probability"], s["record_index"])
    assert [same(s) for _, s in got] == [same(s) for s in expected]  # offsets are the record indexes here
    in_file = [orjson.loads(line) for line in (tmp_path / "review.jsonl").read_bytes().splitlines()]
    assert [same(s) for s in in_file] == [same(s) for s in expected]
    assert SampleIndex.load([tmp_path / "review.jsonl"]).counts() == counts
    text = generate_latest(metrics.registry).decode()
    assert f'janus_review_pending{{model_id="{MODEL}"}} {float(len(expected) - 10)}' in text
    assert f'janus_review_violation_ratio{{bound="lower",model_id="{MODEL}",traffic="production"}}' in text


def _capture(errors, func, **kwargs):
    try:
        func(**kwargs)
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)
