"""detector/metrics.py: the metric contract fed from a real pipeline, its caps, and a live Prometheus.

* unit: a drifting simulated stream through Pipeline + JanusMetrics.observe_batch; the scrape
  holds every contract series, ``janus_drift_alert{kind="behaviour"}`` is 1 for the firing alert,
  a baseline switch drops the old version's series, and ``promtool check metrics`` accepts it;
* cardinality: 100,000 distinct model ids, segments and reasons stay under the caps, and a
  model with an active baseline still gets its own label after the flood;
* live: a real Prometheus scrapes ``serve(port 0)`` while the stream runs, with the Janus rules
  loaded; every dashboard query parses and returns data (a short, explained list of exceptions),
  and ``JanusBehaviourDrift`` fires;
* basic auth (401 / 200, also over TLS) and the 127.0.0.1 default bind.
"""

from __future__ import annotations

import base64
import inspect
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import orjson
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.baseline.build import build_baseline
from detector.baseline.store import BaselineStore
from detector.config import DetectionConfig, JanusConfig, MetricsConfig
from detector.metrics import MAX_LABEL_CHARS, OTHER, JanusMetrics, parse_address
from detector.pipeline import BatchResult, Pipeline
from detector.records import Rejection, parse_values
from detector.simulate import simulate
from test_dashboards_rules import JANUS_METRICS  # the contract the rules and dashboards use

from promtools import (
    RULES_FILE,
    PromQueryError,
    dashboard_queries,
    janus_scrape_config,
    require_binary,
    running_prometheus,
)

MODEL = "triage-agent"
SHADOW = "shadow-agent"  # a model without a baseline: janus_baseline_missing_total
NEW_VERSION = "2.1"  # a model_version the baseline was not built on: janus_model_version_unbaselined
CONFIG = JanusConfig(detection=DetectionConfig(arl=1e4))

# Every name of the JanusMetrics contract (the subset of tests/test_dashboards_rules.py's
# JANUS_METRICS that detector/metrics.py owns) with its type.
CONTRACT = {
    "janus_decisions": "counter",
    "janus_records_rejected": "counter",
    "janus_drift_statistic": "gauge",
    "janus_drift_threshold": "gauge",
    "janus_drift_alert": "gauge",
    "janus_feature_share": "gauge",
    "janus_baseline_info": "gauge",
    "janus_baseline_missing": "counter",
    "janus_batch_processing_seconds": "histogram",
    "janus_consumer_lag_records": "gauge",
    "janus_last_checkpoint_timestamp_seconds": "gauge",
    "janus_checkpoint_bytes": "gauge",
    "janus_checkpoint_write_seconds": "gauge",
    "janus_model_partitions": "gauge",
    "janus_labels_folded": "counter",
    "janus_model_version_unbaselined": "gauge",
    "janus_probe_pairs": "counter",
    "janus_probe_discordance": "gauge",
}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """(baseline store root, production values): compliance-gap from record 2,000, plus a few
    rejected lines, records of a model without a baseline and of an unbaselined model version,
    and ~600 monitoring-cue probe pairs of a cue-sensitive model (docs/probes.md) interleaved."""
    logs = simulate("compliance-gap", 1, n_evaluation=6000, n_production=12000, change_at=2000)
    cue = simulate("cue-sensitive", 2, n_evaluation=0, n_production=12000, change_at=0).production
    parsed = parse_values([orjson.dumps(r) for r in logs.evaluation])
    assert not parsed.rejections
    root = tmp_path_factory.mktemp("baselines")
    BaselineStore(root).save(build_baseline(parsed.decisions, CONFIG), actor="t", reason="t", activate=True)
    values: list[bytes] = []
    for i, record in enumerate(logs.production):
        if i % 400 == 7:
            record = {**record, "model_version": NEW_VERSION}
        values.append(orjson.dumps(record))
        if cue[i].get("probe"):
            values.append(orjson.dumps({**cue[i], "decision_id": f"probe-{cue[i]['decision_id']}"}))
        if i % 500 == 3:
            values.append(b"{not json")
        if i % 700 == 5:
            values.append(orjson.dumps({**record, "decision_id": f"shadow-{i}", "model_id": SHADOW}))
    return root, values


def run_stream(pipeline: Pipeline, metrics: JanusMetrics, values: list[bytes], *, chunk: int = 500,
               pace: float = 0.0, shell: bool = False) -> BatchResult:
    """Feed ``values`` in micro-batches like the stream service; returns the merged result.

    ``shell``: also report consumer lag and checkpoints, the calls the Kafka shell
    (detector/stream/service.py) is meant to make; it does not call JanusMetrics yet.
    """
    total = BatchResult()
    for start in range(0, len(values), chunk):
        t0 = time.perf_counter()
        result = pipeline.process(values[start:start + chunk], first_position=start)
        metrics.observe_batch(result, pipeline, time.perf_counter() - t0)
        total.merge(result)
        if shell:
            metrics.set_lag("janus.decisions", 0, len(values) - start - chunk)
            if (start // chunk) % 4 == 0:
                metrics.set_checkpoint(time.time(), size_bytes=150_000, seconds=0.02)
            metrics.set_model_partitions({model_id: 1 for model_id in pipeline.monitors})
        if pace:
            time.sleep(pace)
    metrics.refresh(pipeline)  # what the service should do when the consumer goes idle
    return total


def firing_keys(result: BatchResult) -> set[tuple[str, str, str, str]]:
    """(model, segment, feature, kind) of the alerts still firing at the end of the stream."""
    state: dict[tuple, str] = {}
    for event in result.alerts:
        state[event.key] = event.status
    return {key for key, status in state.items() if status == "firing"}


def samples(text: str) -> dict[str, list]:
    """Metric family name → its samples, from an exposition text (parsed by prometheus-client)."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def scrape(metrics: JanusMetrics) -> str:
    return generate_latest(metrics.registry).decode()


# -------------------------------------------------------------------------------------- unit


@pytest.fixture(scope="module")
def streamed(stream):
    root, values = stream
    store = BaselineStore(root)
    pipeline = Pipeline(store, CONFIG)
    metrics = JanusMetrics()
    result = run_stream(pipeline, metrics, values, chunk=1000, shell=True)
    return store, pipeline, metrics, result


def test_a_drifting_stream_exports_the_contract(streamed, stream):
    _, pipeline, metrics, result = streamed
    text = scrape(metrics)
    families = samples(text)
    for name, kind in CONTRACT.items():
        assert name in families, f"{name} missing from the scrape"
        assert families[name], f"{name} has no samples"
    # (the 0.0.4 text format has counters' and histograms' _created samples as families of their own)
    names = {n.removesuffix("_created") for n in families if n.startswith("janus_")}
    assert names == set(CONTRACT), "exactly the contract's names"
    # ... with the types and labels that the rules and dashboards were written against
    for name, (kind, labels) in JANUS_METRICS.items():
        family = name.removesuffix("_total")
        if family not in CONTRACT:
            continue
        assert CONTRACT[family] == kind, name
        keys = {k for s in families[family] for k in s.labels if k != "le"}
        assert keys == set(labels), f"{name}: labels {sorted(keys)}, contract {labels}"
    assert "process_resident_memory_bytes" in text and "python_info" in text

    # Counters match what the pipeline saw.
    decisions = {s.labels["model_id"]: 0 for s in families["janus_decisions"]}
    for s in families["janus_decisions"]:
        if s.name == "janus_decisions_total":
            decisions[s.labels["model_id"]] += s.value
    assert decisions[MODEL] == sum(n for (m, _, _), n in result.decisions.items() if m == MODEL)
    assert decisions[SHADOW] == result.baseline_missing[SHADOW] > 0
    rejected = {s.labels["reason"]: s.value for s in families["janus_records_rejected"] if s.name.endswith("_total")}
    assert rejected == dict(Counter(r.reason for r in result.rejections)) == {"not_json": 24}
    missing = {s.labels["model_id"]: s.value for s in families["janus_baseline_missing"] if s.name.endswith("_total")}
    assert missing == {SHADOW: result.baseline_missing[SHADOW]}
    batches = {s.name: s.value for s in families["janus_batch_processing_seconds"]}
    assert batches["janus_batch_processing_seconds_count"] == len(range(0, len(stream[1]), 1000))
    pairs = {s.labels["outcome"]: s.value for s in families["janus_probe_pairs"] if s.name.endswith("_total")}
    assert pairs == {o: n for (m, o), n in result.probes.items() if m == MODEL} and pairs["paired"] > 500

    # The behaviour alert: 1 exactly for the detectors whose last event is "firing".
    firing = firing_keys(result)
    assert any(kind == "behaviour" for *_, kind in firing), "the compliance gap raised no behaviour alert"
    alerts = {(s.labels["model_id"], s.labels["segment"], s.labels["feature"], s.labels["kind"]): s.value
              for s in families["janus_drift_alert"]}
    assert {k for k, v in alerts.items() if v == 1} == firing
    for key in firing:
        assert alerts[key] == 1
    behaviour = [s for s in families["janus_drift_alert"] if s.labels["kind"] == "behaviour" and s.value == 1]
    assert behaviour and all(s.labels["severity"] == "critical" for s in behaviour)

    # Monitor views.
    monitor, cue = pipeline.monitors[MODEL], pipeline.cue_detectors[MODEL]
    stats = {(s.labels["segment"], s.labels["feature"], s.labels["kind"]): s.value
             for s in families["janus_drift_statistic"]}
    assert stats == {(st.segment, st.feature, st.kind): pytest.approx(st.value)
                     for st in [*monitor.statistics(), *cue.statistics()]}
    assert any(kind == "cue" for *_, kind in firing), "the cue-sensitive probe pairs raised no cue alert"
    cue_alerts = [s for s in families["janus_drift_alert"] if s.labels["kind"] == "cue"]
    assert {s.labels["segment"] for s in cue_alerts} == {"(all)"}
    assert all(s.labels["severity"] == "critical" for s in cue_alerts)
    discordance = {s.labels["feature"]: s.value for s in families["janus_probe_discordance"]}
    assert discordance == pytest.approx(cue.discordance()) and discordance["refused"] > 0.05
    assert set(stats) == {k[1:] for k in alerts}, "an alert series per detector (0 or 1)"
    (threshold,) = families["janus_drift_threshold"]
    assert threshold.labels == {"model_id": MODEL} and threshold.value == pytest.approx(monitor.threshold)
    (info,) = families["janus_baseline_info"]
    assert info.labels == {"model_id": MODEL, "version": "1", "built_at": monitor.baseline.built_at,
                           "records": "6000"} and info.value == 1
    (unbaselined,) = families["janus_model_version_unbaselined"]
    assert unbaselined.labels == {"model_id": MODEL, "model_version": NEW_VERSION} and unbaselined.value == 1
    shares = families["janus_feature_share"]
    assert {s.labels["traffic"] for s in shares} == {"evaluation", "production"}
    per_feature = Counter((s.labels["feature"], s.labels["traffic"]) for s in shares)
    assert max(per_feature.values()) <= MetricsConfig().max_codes
    # input_cluster's 33 codes fit the default cap of 40: all keep their (text-free) names
    cluster = {s.labels["code"]: s.value for s in shares
               if s.labels["feature"] == "input_cluster" and s.labels["traffic"] == "evaluation"}
    assert len(cluster) == 33 and OTHER not in cluster
    assert all(code == "(missing)" or code.startswith("#") for code in cluster)
    assert sum(cluster.values()) == pytest.approx(1.0)
    folded = {s.labels["label"]: s.value for s in families["janus_labels_folded"] if s.name.endswith("_total")}
    assert "code" not in folded
    lag = {(s.labels["topic"], s.labels["partition"]): s.value for s in families["janus_consumer_lag_records"]}
    assert lag == {("janus.decisions", "0"): 0}


def test_a_restored_monitor_exports_its_firing_alerts(streamed):
    """After a restart from a checkpoint no event repeats the firing: the Monitor's state says it."""
    store, pipeline, _, result = streamed
    meta, arrays = pipeline.state()
    restored = Pipeline.restore(store, CONFIG, meta, arrays)
    metrics = JanusMetrics()
    metrics.observe_batch(BatchResult(), restored, 0.0)
    alerts = samples(scrape(metrics))["janus_drift_alert"]
    firing = {(s.labels["model_id"], s.labels["segment"], s.labels["feature"], s.labels["kind"])
              for s in alerts if s.value == 1}
    assert firing == firing_keys(result) and firing


def test_a_baseline_switch_replaces_the_old_versions_series(streamed, stream):
    store, pipeline, metrics, _ = streamed
    _, values = stream
    old = store.load(MODEL, "1")
    assert store.save(old, actor="t", reason="rebuild", activate=True) == "2"
    assert pipeline.refresh_baselines() == [(MODEL, "1", "2")]
    metrics.observe_batch(BatchResult(), pipeline, 0.0)  # the monitor is gone: its series go too
    families = samples(scrape(metrics))
    assert not families["janus_baseline_info"] and not families["janus_drift_alert"]
    # fresh decision ids: a replay of the same ids would be rejected as producer retries
    run_stream(pipeline, metrics, [v.replace(b'"decision_id":"', b'"decision_id":"again-') for v in values[:1000]])
    families = samples(scrape(metrics))
    assert [s.labels["version"] for s in families["janus_baseline_info"]] == ["2"]
    assert all(s.value == 0 for s in families["janus_drift_alert"]), "a new baseline starts without alerts"


@pytest.mark.prometheus
def test_promtool_check_metrics_accepts_the_scrape(streamed):
    _, _, metrics, _ = streamed
    proc = subprocess.run([require_binary("promtool"), "check", "metrics"], input=generate_latest(metrics.registry),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()


# ------------------------------------------------------------------------------- cardinality


def test_hostile_label_values_stay_under_the_caps(stream):
    root, values = stream
    cfg = MetricsConfig()
    metrics = JanusMetrics(cfg)
    pipeline = Pipeline(BaselineStore(root), CONFIG)
    n = 100_000
    pad = "x" * 300  # untrusted strings are cut to 128 characters
    flood = BatchResult()
    for i in range(n):
        flood.decisions[(f"m{i}-{pad}", "default", "production")] += 1
        flood.decisions[("agent-a", f"s{i}-{pad}", "production")] += 1
        flood.baseline_missing[f"m{i}-{pad}"] += 1
    flood.rejections = [Rejection(i, f"r{i}", "", b"") for i in range(n)]
    t0 = time.perf_counter()
    metrics.observe_batch(flood, pipeline, 0.0)
    seconds = time.perf_counter() - t0
    assert seconds < 5, f"observe_batch took {seconds:.1f}s for 300k label values"

    # Now the real model arrives: it has an active baseline, so it displaces a made-up id.
    run_stream(pipeline, metrics, values[:3000])
    text = scrape(metrics)
    families = samples(text)
    series = sum(len(v) for v in families.values())
    assert series < 3000, f"{series} series"
    for name, fam in families.items():
        for label, cap in (("model_id", cfg.max_models), ("segment", cfg.max_segments)):
            per_model: dict[str, set] = {}
            for s in fam:
                if label in s.labels:
                    key = s.labels["model_id"] if label == "segment" else ""
                    per_model.setdefault(key, set()).add(s.labels[label])
            for key, seen in per_model.items():
                assert len(seen) <= cap, f"{name}: {len(seen)} values of {label} {key}"
        for s in fam:
            assert all(len(v) <= MAX_LABEL_CHARS for v in s.labels.values()), (name, s.labels)
    reasons = {s.labels["reason"] for s in families["janus_records_rejected"]}
    assert OTHER in reasons and len(reasons) <= 32
    models = {s.labels["model_id"] for s in families["janus_decisions"]}
    assert MODEL in models and OTHER in models and len(models) == cfg.max_models
    assert {s.labels["model_id"] for s in families["janus_drift_statistic"]} == {MODEL}
    folded = {s.labels["label"]: s.value for s in families["janus_labels_folded"] if s.name.endswith("_total")}
    assert folded["model_id"] > n - cfg.max_models and folded["segment"] > n - cfg.max_segments
    assert folded["reason"] > 0
    print(f"\nscrape after a 100,000-id flood: {len(text.encode()):,} bytes, {series} samples")


# ------------------------------------------------------------------------------------- live

# Dashboard queries that a batch run of this pipeline cannot fill, and why. (Consumer lag and
# checkpoint panels are not listed: run_stream(shell=True) reports them like the Kafka shell.)
NO_DATA_EXPECTED = {
    # Review gauges come from the verdict log, which only `janus serve` reads (JanusMetrics
    # registers them on its first set_review).
    "janus_review_violation_ratio": "set by janus serve from the verdict log (docs/review.md), not by a batch run",
    "janus_review_pending": "set by janus serve from the verdict log (docs/review.md), not by a batch run",
    # Counts batches exist only in the split roles (janus serve --role detect), never in this pipeline.
    "janus_counts_batches_total": "counted by janus serve --role detect (docs/runbooks.md), not by a batch run",
}


def _shortened_rules(path) -> str:
    """The Janus rules with every `for:` cut to 2s, so that alerts fire within this test.

    JanusBehaviourDrift has `for: 1m` in dashboards/prometheus/janus-rules.yml; the rules are
    otherwise unchanged (promtool test rules covers the real durations).
    """
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return str(path)


@pytest.mark.prometheus
def test_live_prometheus_dashboards_and_alerts(stream, tmp_path):
    root, values = stream
    pipeline = Pipeline(BaselineStore(root), CONFIG)
    metrics = JanusMetrics()
    server = metrics.serve("127.0.0.1:0")
    try:
        assert server.port > 0 and server.host == "127.0.0.1"
        rules = _shortened_rules(tmp_path / "janus-rules-short-for.yml")
        with running_prometheus([janus_scrape_config(server.address, interval="1s")], workdir=tmp_path / "prom",
                                rule_files=[rules]) as prom:
            prom.wait_for_target("janus", scrapes=1)
            started = time.time()
            result = run_stream(pipeline, metrics, values, pace=0.15, shell=True)  # ~7s, scraped meanwhile
            assert any(k[3] == "behaviour" for k in firing_keys(result))

            # The alerts, as Prometheus evaluates the (for-shortened) rules on the scraped series.
            def firing_alert(name: str) -> dict:
                deadline = time.monotonic() + 20
                while True:
                    alerts = [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == name]
                    firing = [a for a in alerts if a["state"] == "firing"]
                    if firing:
                        return firing[0]
                    assert time.monotonic() < deadline, f"{name} not firing: {alerts}\n{prom.log_tail()}"
                    time.sleep(0.3)

            alert = firing_alert("JanusBehaviourDrift")
            assert alert["labels"]["model_id"] == MODEL and alert["labels"]["kind"] == "behaviour"
            assert alert["labels"]["severity"] == "critical"
            assert "Detector statistic" in alert["annotations"]["description"]
            assert NEW_VERSION in alert["annotations"]["description"], "protocol-change caveat"
            assert any(k[3] == "cue" for k in firing_keys(result))
            cue = firing_alert("JanusMonitoringCueSensitivity")
            assert cue["labels"]["model_id"] == MODEL and cue["labels"]["severity"] == "critical"
            assert "Discordance" in cue["annotations"]["description"], "the rule's discordance lookup found nothing"

            # Every dashboard query, as Grafana would run it.
            window = time.time() - started + 5
            variables = {"model_id": MODEL, "__rate_interval": "5s", "__interval": "1s"}
            problems, empty_allowed = [], []
            queries = dashboard_queries(variables)
            assert len(queries) > 40
            for q in queries:
                try:
                    data = prom.run(q, window=window)
                except PromQueryError as exc:
                    problems.append(f"{q.describe()}\n    → {exc}")
                    continue
                result_ = data["result"]
                excused = [why for needle, why in NO_DATA_EXPECTED.items() if needle in q.expr]
                if not result_:
                    if excused:
                        empty_allowed.append(q.describe())
                    else:
                        problems.append(f"{q.describe()}\n    → no data")
                    continue
                if excused and "or vector(0)" not in q.expr:
                    problems.append(f"{q.describe()}\n    → has data, yet NO_DATA_EXPECTED excuses it: shorten the list")
                wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", q.legend if q.kind == "panel" else ""))
                for series in result_ if isinstance(result_, list) else []:
                    if isinstance(series, dict) and wanted - set(series.get("metric", {})):
                        problems.append(f"{q.describe()}\n    → legend {q.legend!r} labels absent from "
                                        f"{series['metric']}")
                        break
            assert not problems, "\n".join(problems)
            unused = [needle for needle in NO_DATA_EXPECTED if not any(needle in d for d in empty_allowed)]
            assert not unused, f"NO_DATA_EXPECTED entries that excuse nothing: {unused}"

            # What Prometheus stored for the model: one model id, bounded series, no "other".
            count = prom.query('count({job="janus", __name__=~"janus_.*"})')["result"]
            print(f"\nlive: {int(float(count[0]['value'][1]))} janus_* series in Prometheus, "
                  f"{len(urllib.request.urlopen(server.url + '/metrics', timeout=10).read()):,} bytes per scrape")
    finally:
        server.shutdown()


# ---------------------------------------------------------------------------------- http / auth


def _get(url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None):
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_basic_auth_and_default_bind():
    assert inspect.signature(JanusMetrics.serve).parameters["address"].default == "127.0.0.1:9464"
    assert MetricsConfig().address == "127.0.0.1:9464"
    assert parse_address(":0") == ("127.0.0.1", 0)
    metrics = JanusMetrics()
    with metrics.serve(":0", basic_auth=("janus", "s3cret:é")) as server:
        assert server.httpd.socket.getsockname()[0] == "127.0.0.1"
        url = server.url + "/metrics"
        status, headers, _ = _get(url)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        assert _get(url, ("janus", "wrong"))[0] == 401
        assert _get(url, ("janus", "s3cret"))[0] == 401
        status, _, body = _get(url, ("janus", "s3cret:é"))
        assert status == 200 and b"# TYPE janus_decisions_total counter" in body
    with metrics.serve("127.0.0.1:0") as plain:  # no credentials configured: prometheus-client's server
        assert _get(plain.url + "/metrics")[0] == 200
    with pytest.raises(ValueError):
        metrics.serve("127.0.0.1:0", certfile="cert.pem")


def test_basic_auth_over_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("openssl not installed")
    context = ssl.create_default_context(cafile=str(cert))
    metrics = JanusMetrics()
    with metrics.serve("127.0.0.1:0", certfile=str(cert), keyfile=str(key), basic_auth=("u", "p")) as server:
        assert server.url.startswith("https://")
        assert _get(server.url + "/metrics", context=context)[0] == 401
        assert _get(server.url + "/metrics", ("u", "p"), context=context)[0] == 200
    with metrics.serve("127.0.0.1:0", certfile=str(cert), keyfile=str(key)) as server:
        assert _get(server.url + "/metrics", context=context)[0] == 200


def test_serve_is_reusable_after_shutdown():
    metrics = JanusMetrics()
    first = metrics.serve("127.0.0.1:0")
    port = first.port
    first.shutdown()
    thread_alive = [t for t in threading.enumerate() if t is first.thread]
    assert not thread_alive
    with metrics.serve(f"127.0.0.1:{port}") as again:
        assert again.port == port


def test_gauge_refresh_is_throttled_per_model(stream):
    root, values = stream
    now = [0.0]
    metrics = JanusMetrics(refresh_seconds=5.0, clock=lambda: now[0])
    pipeline = Pipeline(BaselineStore(root), CONFIG)

    def statistic() -> dict:
        return {tuple(s.labels.values()): s.value for s in samples(scrape(metrics))["janus_drift_statistic"]}

    def feed(chunk: list[bytes]) -> None:
        result = pipeline.process(chunk)
        # a firing/resolved event would force a refresh; the protocol-change notice does not
        assert all(e.status == "notice" for e in result.alerts)
        metrics.observe_batch(result, pipeline, 0.0)

    feed(values[:500])  # a new monitor: exported at once
    first = statistic()
    assert first
    now[0] = 4.0
    feed(values[500:1000])
    assert statistic() == first, "refreshed again within refresh_seconds"
    now[0] = 5.0
    feed(values[1000:1500])
    assert statistic() != first


def test_a_revoked_partitions_lag_stops_being_exported():
    metrics = JanusMetrics()
    lag = lambda p: metrics.registry.get_sample_value(  # noqa: E731
        "janus_consumer_lag_records", {"topic": "janus.decisions", "partition": str(p)})
    metrics.set_lags({("janus.decisions", 0): 5, ("janus.decisions", 1): 3})
    assert (lag(0), lag(1)) == (5.0, 3.0)
    metrics.set_lags({("janus.decisions", 1): 0})  # partition 0 moved to another instance
    assert (lag(0), lag(1)) == (None, 0.0)
