"""Prometheus rules, Alertmanager routing, Grafana dashboards and runbooks, checked with real binaries.

* ``promtool check rules`` / ``promtool test rules`` / ``promtool check config``;
* ``amtool check-config`` and ``amtool config routes test`` for every alert's severity, and a real
  Alertmanager for the inhibition of input drift by behaviour drift;
* every dashboard query run by a real Prometheus: once on an empty TSDB (syntax, types,
  undefined variables), once after scraping a prometheus-client exporter that exposes exactly
  the metric contract below (vector matching on real label sets, legends, recording rules);
* runbook anchors, and no metric name outside the contract.

Tests that need a binary are marked ``prometheus``; a missing binary skips them, or fails
them when the environment variable CI is set.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter

import pytest
import yaml

import promtools
from promtools import (
    ALERTMANAGER_EXAMPLE,
    GRAFANA_DIR,
    PROMETHEUS_EXAMPLE,
    RULES_FILE,
    RULES_TEST_FILE,
    RUNBOOKS,
    PromQueryError,
    dashboard_queries,
    iter_panels,
    janus_scrape_config,
    load_dashboards,
    require_binary,
    running_alertmanager,
    running_prometheus,
)

# The metric contract of detector/metrics.py: name → (type, labels). Rules and dashboards may
# use nothing else with the janus_ prefix (besides recording rules defined in the rule file).
JANUS_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "janus_decisions_total": ("counter", ("model_id", "segment", "traffic")),
    "janus_records_rejected_total": ("counter", ("reason",)),
    "janus_drift_statistic": ("gauge", ("model_id", "segment", "feature", "kind")),
    "janus_drift_threshold": ("gauge", ("model_id",)),
    "janus_drift_alert": ("gauge", ("model_id", "segment", "feature", "kind", "severity")),
    "janus_feature_share": ("gauge", ("model_id", "feature", "code", "traffic")),
    "janus_baseline_info": ("gauge", ("model_id", "version", "built_at", "records")),
    "janus_baseline_missing_total": ("counter", ("model_id",)),
    "janus_batch_processing_seconds": ("histogram", ()),
    "janus_consumer_lag_records": ("gauge", ("topic", "partition")),
    "janus_last_checkpoint_timestamp_seconds": ("gauge", ()),
    "janus_checkpoint_bytes": ("gauge", ()),
    "janus_checkpoint_write_seconds": ("gauge", ()),
    "janus_model_partitions": ("gauge", ("model_id",)),
    "janus_counts_batches_total": ("counter", ("outcome",)),
    "janus_labels_folded_total": ("counter", ("label",)),
    "janus_model_version_unbaselined": ("gauge", ("model_id", "model_version")),
    "janus_review_pending": ("gauge", ("model_id",)),
    "janus_review_violation_ratio": ("gauge", ("model_id", "traffic", "bound")),
    "janus_probe_pairs_total": ("counter", ("model_id", "outcome")),
    "janus_probe_discordance": ("gauge", ("model_id", "feature")),
}

# The alerts the SOC was promised, with their severity.
EXPECTED_ALERTS = {
    "JanusBehaviourDrift": "critical",
    "JanusInputDrift": "warning",
    "JanusMonitoringCueSensitivity": "critical",
    "JanusNoDecisions": "warning",
    "JanusRejectedRecords": "warning",
    "JanusBaselineMissing": "warning",
    "JanusConsumerLag": "warning",
    "JanusCheckpointStale": "warning",
    "JanusModelOnManyPartitions": "warning",
    "JanusProtocolChange": "warning",
    "JanusReviewBacklog": "warning",
    "JanusReviewViolationGap": "critical",
    "JanusDown": "critical",
}
RECEIVER_BY_SEVERITY = {"critical": "soc-critical", "warning": "soc-ticket"}
DASHBOARD_FILES = {"janus-overview", "janus-model", "janus-operations"}


def exposed_names() -> set[str]:
    """Series names the contract exposes (prometheus-client adds suffixes)."""
    names: set[str] = set()
    for name, (kind, _) in JANUS_METRICS.items():
        names.add(name)
        if kind == "counter":
            names.add(name.removesuffix("_total") + "_created")
        if kind == "histogram":
            names.update(name + s for s in ("_bucket", "_sum", "_count", "_created"))
    return names


def load_rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text())


def all_rules() -> list[dict]:
    return [r for g in load_rules()["groups"] for r in g["rules"]]


def alert_rules() -> list[dict]:
    return [r for r in all_rules() if "alert" in r]


def recording_names() -> set[str]:
    return {r["record"] for r in all_rules() if "record" in r}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = re.compile(r"(?<![\w:$.])[A-Za-z_:][\w:]*")


def janus_identifiers(expr: str, *, strip_strings: bool = True) -> set[str]:
    """janus_* metric names and janus recording-rule names referenced in a PromQL expression."""
    text = _STRING.sub('""', expr) if strip_strings else expr
    return {t for t in _IDENT.findall(text) if t.startswith("janus_") or ":janus_" in t or t.startswith("janus:")}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


# ---------------------------------------------------------------------------------- rules


@pytest.mark.prometheus
def test_promtool_check_rules():
    proc = run([require_binary("promtool"), "check", "rules", str(RULES_FILE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_pass():
    proc = run([require_binary("promtool"), "test", "rules", RULES_TEST_FILE.name], cwd=RULES_TEST_FILE.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.prometheus
def test_prometheus_example_config_is_valid():
    proc = run([require_binary("promtool"), "check", "config", str(PROMETHEUS_EXAMPLE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    (janus,) = [c for c in config["scrape_configs"] if c["job_name"] == "janus"]
    assert janus["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    assert config["rule_files"] == ["janus-rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]


def test_every_promised_alert_exists_with_labels_and_annotations():
    rules = {r["alert"]: r for r in alert_rules()}
    assert set(EXPECTED_ALERTS) <= set(rules), f"missing alerts: {set(EXPECTED_ALERTS) - set(rules)}"
    for name, rule in rules.items():
        assert rule.get("for"), f"{name}: no for:"
        assert rule["labels"].get("team") == "soc", name
        assert rule["labels"].get("severity") in RECEIVER_BY_SEVERITY, name
        if name in EXPECTED_ALERTS:
            assert rule["labels"]["severity"] == EXPECTED_ALERTS[name], name
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{name}: no {key} annotation"
        assert "{{" in rule["annotations"]["description"], f"{name}: description not templated"


def test_unit_tests_cover_every_alert_firing_and_not_firing():
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())
    assert tests["rule_files"] == [RULES_FILE.name]
    firing: Counter[str] = Counter()
    silent: Counter[str] = Counter()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent)[case["alertname"]] += 1
    for rule in alert_rules():
        assert firing[rule["alert"]], f"{rule['alert']}: no firing case in {RULES_TEST_FILE.name}"
        assert silent[rule["alert"]], f"{rule['alert']}: no not-firing case in {RULES_TEST_FILE.name}"


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for headings, plus explicit <a id/name> anchors."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and not in_code:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    anchors.update(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    return anchors


def test_every_alert_has_a_runbook_section():
    anchors = github_anchors(RUNBOOKS.read_text())
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        match = re.fullmatch(r"(?:.*/)?docs/runbooks\.md#([\w-]+)", url)
        assert match, f"{rule['alert']}: runbook_url {url!r} does not point into docs/runbooks.md"
        assert match.group(1) in anchors, f"{rule['alert']}: no section #{match.group(1)} in docs/runbooks.md"
        assert match.group(1) == rule["alert"].lower()


def test_runbooks_internal_links_resolve():
    text = RUNBOOKS.read_text()
    anchors = github_anchors(text)
    for target in re.findall(r"\]\(#([\w-]+)\)", text):
        assert target in anchors, f"docs/runbooks.md links to missing #{target}"


def test_only_contract_metrics_are_used():
    allowed = exposed_names() | recording_names()
    used: dict[str, set[str]] = {}

    def note(where: str, text: str, strip_strings: bool = True) -> None:
        for name in janus_identifiers(text, strip_strings=strip_strings):
            used.setdefault(name, set()).add(where)

    for rule in all_rules():
        where = rule.get("alert") or rule.get("record")
        note(f"rule {where}", rule["expr"])
        for value in rule.get("annotations", {}).values():  # queries built inside templates
            note(f"rule {where} annotations", value, strip_strings=False)
    for q in dashboard_queries():
        note(q.describe(), q.raw_expr)
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())
    for group in tests["tests"]:
        for series in group.get("input_series", []):
            note(f"{RULES_TEST_FILE.name} input series", series["series"].split("{")[0])
    unknown = {name: sorted(where) for name, where in used.items() if name not in allowed}
    assert not unknown, f"janus metrics outside the contract: {unknown}"
    # Keep the contract honest in the other direction too: the dashboards show every metric.
    dashboard_text = " ".join(q.raw_expr for q in dashboard_queries())
    unshown = [m for m in JANUS_METRICS if m.removesuffix("_total") not in dashboard_text]
    assert not unshown, f"metrics on no dashboard: {unshown}"


def test_recording_rules_follow_naming_convention():
    for name in recording_names():
        level, metric, ops = name.split(":")
        assert level and metric.startswith("janus_") and ops, name


# ------------------------------------------------------------------------------ alertmanager


@pytest.mark.prometheus
def test_amtool_check_config():
    proc = run([require_binary("amtool"), "check-config", str(ALERTMANAGER_EXAMPLE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.prometheus
def test_every_alert_routes_to_its_severitys_receiver():
    amtool = require_binary("amtool")
    for rule in alert_rules():
        severity = rule["labels"]["severity"]
        labels = [f"alertname={rule['alert']}", f"severity={severity}", "team=soc", "model_id=agent-a"]
        proc = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_EXAMPLE}",
                    f"--verify.receivers={RECEIVER_BY_SEVERITY[severity]}", *labels])
        assert proc.returncode == 0, f"{rule['alert']}: routed to {proc.stdout.strip()!r}, {proc.stderr}"
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    assert set(config["route"]["group_by"]) >= {"alertname", "model_id"}


@pytest.mark.prometheus
def test_behaviour_drift_inhibits_input_drift_of_the_same_model(tmp_path):
    def alert(name: str, model: str, severity: str) -> dict:
        return {"labels": {"alertname": name, "model_id": model, "severity": severity, "team": "soc",
                           "segment": "default", "feature": "x"}}

    with running_alertmanager(ALERTMANAGER_EXAMPLE, workdir=tmp_path) as am:
        am.post_alerts([alert("JanusBehaviourDrift", "agent-a", "critical"),
                        alert("JanusInputDrift", "agent-a", "warning"),
                        alert("JanusInputDrift", "agent-b", "warning")])
        # Alertmanager lists an alert before it has evaluated the inhibitions on it (on a loaded
        # machine, long enough to read "active"): wait for the suppression, up to a deadline.
        deadline = time.monotonic() + 20
        while True:
            state = {(a["labels"]["alertname"], a["labels"]["model_id"]): a["status"] for a in am.alerts()}
            inhibited = state.get(("JanusInputDrift", "agent-a"), {}).get("state") == "suppressed"
            if (len(state) == 3 and inhibited) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert state[("JanusInputDrift", "agent-a")]["state"] == "suppressed"
    assert state[("JanusInputDrift", "agent-a")]["inhibitedBy"]
    assert state[("JanusInputDrift", "agent-b")]["state"] == "active"
    assert state[("JanusBehaviourDrift", "agent-a")]["state"] == "active"


# -------------------------------------------------------------------------------- dashboards


def test_dashboards_are_provisioning_ready():
    dashboards = load_dashboards()
    assert set(dashboards) == DASHBOARD_FILES
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids) and all(uids)
    for stem, dash in dashboards.items():
        assert dash.get("id") is None, f"{stem}: id must be null for provisioning"
        assert 36 <= dash["schemaVersion"] <= 41, stem
        assert dash["title"] and "janus" in dash["tags"], stem
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables.get("DS_PROMETHEUS")
        assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", f"{stem}: no DS_PROMETHEUS variable"
        for var in variables.values():
            if var["type"] == "query":
                assert var["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, (stem, var["name"])
        for ann in dash["annotations"]["list"]:
            if not ann.get("builtIn"):
                assert ann["datasource"]["uid"] == "${DS_PROMETHEUS}", (stem, ann["name"])


def test_panels_have_unique_ids_targets_and_exprs():
    for stem, dash in load_dashboards().items():
        ids = [p["id"] for p in iter_panels(dash)]
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        assert not dupes, f"{stem}: duplicate panel ids {dupes}"
        assert all(isinstance(i, int) for i in ids), stem
        for panel in iter_panels(dash):
            where = f"{stem} panel {panel['id']} {panel.get('title')!r}"
            assert panel.get("title"), where
            if panel["type"] in ("row", "text"):
                continue
            assert panel.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}", where
            targets = panel.get("targets") or []
            assert targets, f"{where}: no targets"
            refs = [t.get("refId") for t in targets]
            assert len(set(refs)) == len(refs) and all(refs), f"{where}: refIds {refs}"
            for t in targets:
                assert (t.get("expr") or "").strip(), f"{where} ref {t.get('refId')}: no expr"
                assert t.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}", where


def test_panels_fit_the_grid_without_overlap():
    for stem, dash in load_dashboards().items():
        cells: dict[tuple[int, int], int] = {}
        for panel in dash["panels"]:
            g = panel["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{stem} panel {panel['id']}"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{stem}: panels {cells[(x, y)]} and {panel['id']} overlap"
                    cells[(x, y)] = panel["id"]


def test_dashboards_show_what_was_asked_for():
    dashboards = load_dashboards()
    text = {stem: json.dumps(d) for stem, d in dashboards.items()}
    overview = text["janus-overview"]
    for needle in ("janus_drift_alert", "janus_drift_statistic", "janus_decisions_total", "janus_records_rejected"):
        assert needle in overview, needle
    model = dashboards["janus-model"]
    (model_var,) = [v for v in model["templating"]["list"] if v["name"] == "model_id"]
    assert model_var["definition"].startswith("label_values(")
    assert any("janus_baseline_info" in (a.get("expr") or "") for a in model["annotations"]["list"])
    for needle in ("janus_feature_share", "janus_probe_discordance", "janus_review_violation_ratio", "janus_drift_statistic"):
        assert needle in text["janus-model"], needle
    for needle in ("janus_batch_processing_seconds_bucket", "janus_consumer_lag_records",
                   "janus_last_checkpoint_timestamp_seconds", "janus_labels_folded_total", "reason"):
        assert needle in text["janus-operations"], needle
    # the threshold line at 1.0 on the drift panels
    drift = [p for p in iter_panels(dashboards["janus-overview"]) if "drift" in p["title"].lower() and p["type"] == "timeseries"]
    assert drift
    for p in drift:
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert any(s.get("value") == 1 for s in steps), p["title"]
        assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off", p["title"]


def test_provisioning_files():
    prov = GRAFANA_DIR / "provisioning"
    dashboards = yaml.safe_load((prov / "dashboards.yml").read_text())
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    datasources = yaml.safe_load((prov / "datasources.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"].startswith("http") and ds["uid"]


def test_undefined_dashboard_variables_are_caught():
    with pytest.raises(promtools.UndefinedVariable):
        promtools.substitute_variables('up{instance=~"$nope"}', {"instance": ".*"})
    assert promtools.substitute_variables('x{a="$a",b="${b}",c="[[a]]"}[$__rate_interval]',
                                          {"a": "1", "b": "2", "__rate_interval": "1m"}) == 'x{a="1",b="2",c="1"}[1m]'


# ------------------------------------------------------------------- queries on a real Prometheus


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory):
    with running_prometheus([], workdir=tmp_path_factory.mktemp("prom-empty")) as prom:
        yield prom


@pytest.mark.prometheus
def test_syntax_check_rejects_a_bad_expression(empty_prometheus):
    """The check below is not vacuous: Prometheus reports what Grafana would fail on."""
    for bad in ("sum(rate(janus_decisions_total[5m])", "rate(janus_decisions_total)", "janus_decisions_total[5m]"):
        with pytest.raises(PromQueryError):
            empty_prometheus.run(promtools.DashboardQuery("t", "t", "panel", 1, "t", "A", bad))


@pytest.mark.prometheus
def test_every_dashboard_query_parses(empty_prometheus):
    queries = dashboard_queries()
    assert len(queries) > 40
    errors = []
    for q in queries:
        try:
            empty_prometheus.run(q)
        except PromQueryError as exc:
            errors.append(f"{q.describe()}\n    → {exc}")
    assert not errors, "\n".join(errors)


@pytest.mark.prometheus
def test_rules_load_and_evaluate_in_a_real_prometheus(empty_prometheus):
    names = {r.get("alert") or r.get("record") for r in all_rules()}
    deadline = time.monotonic() + 15
    while True:
        rules = [r for g in empty_prometheus.rule_groups() for r in g["rules"]]
        if {r["name"] for r in rules} == names and all(r["health"] == "ok" for r in rules):
            break
        bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] == "err"]
        assert not bad, bad
        assert time.monotonic() < deadline, [(r["name"], r["health"]) for r in rules if r["health"] != "ok"]
        time.sleep(0.2)


# A prometheus-client exporter exposing exactly the contract above (with the default process
# collectors), so the dashboards and rules run against real label sets, suffixes and types.


class ContractExporter:
    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry, Counter as PCounter, Gauge, GCCollector, Histogram, PlatformCollector,
            ProcessCollector,
        )

        self.registry = reg = CollectorRegistry()
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        m = {}
        for name, (kind, labels) in JANUS_METRICS.items():
            if kind == "counter":
                m[name] = PCounter(name, name, labels, registry=reg)
            elif kind == "gauge":
                m[name] = Gauge(name, name, labels, registry=reg)
            else:
                m[name] = Histogram(name, name, labels, registry=reg,
                                    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
        self.m = m
        for model in ("agent-a", "agent-b"):
            m["janus_drift_threshold"].labels(model).set(2.3e7)
            for feature, kind in (("refused", "behaviour"), ("action", "behaviour"), ("input_cluster", "input"),
                                  ("refused", "cue")):
                stat = 1.4 if (model, feature, kind) == ("agent-a", "refused", "behaviour") else 0.3
                m["janus_drift_statistic"].labels(model, "default", feature, kind).set(stat)
                sev = "warning" if kind == "input" else "critical"
                m["janus_drift_alert"].labels(model, "default", feature, kind, sev).set(1 if stat >= 1 else 0)
            for feature, codes in (("refused", ("true", "false")), ("action", ("answer", "tool", "other"))):
                for traffic in ("evaluation", "production"):
                    for i, code in enumerate(codes):
                        m["janus_feature_share"].labels(model, feature, code, traffic).set((i + 1) / 6)
            m["janus_probe_discordance"].labels(model, "refused").set(0.2)
            m["janus_review_pending"].labels(model).set(12)
            for traffic, (lo, est, hi) in (("evaluation", (0.01, 0.02, 0.03)), ("production", (0.05, 0.08, 0.12))):
                for bound, v in (("lower", lo), ("estimate", est), ("upper", hi)):
                    m["janus_review_violation_ratio"].labels(model, traffic, bound).set(v)
        m["janus_baseline_info"].labels("agent-a", "v3", "2024-06-01T12:00:00Z", "5000").set(1)
        m["janus_baseline_info"].labels("agent-b", "v1", "2024-05-01T12:00:00Z", "800").set(1)
        m["janus_model_version_unbaselined"].labels("agent-a", "2024-07").set(1)
        m["janus_model_partitions"].labels("agent-a").set(1)
        m["janus_model_partitions"].labels("agent-b").set(2)
        m["janus_checkpoint_bytes"].set(150_000)
        m["janus_checkpoint_write_seconds"].set(0.02)
        for partition in ("0", "1"):
            m["janus_consumer_lag_records"].labels("janus.decisions", partition).set(1500)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        m = self.m
        while not self._stop.is_set():
            for model in ("agent-a", "agent-b"):
                for segment in ("default", "billing"):
                    for traffic in ("evaluation", "production"):
                        m["janus_decisions_total"].labels(model, segment, traffic).inc(7)
                for outcome in ("concordant", "discordant_monitored", "discordant_unmonitored"):
                    m["janus_probe_pairs_total"].labels(model, outcome).inc()
            m["janus_baseline_missing_total"].labels("agent-new").inc(3)
            for reason in ("not_json", "missing_field"):
                m["janus_records_rejected_total"].labels(reason).inc()
            m["janus_labels_folded_total"].labels("model_id").inc()
            for outcome in ("applied", "replayed"):
                m["janus_counts_batches_total"].labels(outcome).inc()
            for v in (0.004, 0.02, 0.3):
                m["janus_batch_processing_seconds"].observe(v)
            m["janus_last_checkpoint_timestamp_seconds"].set(time.time())
            self._stop.wait(0.2)

    def __enter__(self) -> str:
        from prometheus_client import start_http_server

        port = promtools.free_port()
        self._server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._thread.start()
        return f"127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def scraped_prometheus(tmp_path_factory):
    with ContractExporter() as target, running_prometheus(
        [janus_scrape_config(target, interval="1s")], workdir=tmp_path_factory.mktemp("prom-scraped")
    ) as prom:
        prom.wait_for_target("janus", scrapes=4)
        prom.wait_for_rule_evaluation(after=time.time())  # the rules have seen the recorded samples
        yield prom


# Panels that legitimately show nothing with the exporter above: firing alerts need their `for:`.
MAY_BE_EMPTY = re.compile(r'ALERTS\{')


@pytest.mark.prometheus
def test_dashboards_against_a_scraped_contract_exporter(scraped_prometheus):
    """Every query runs on real series; panels return data whose labels fill their legends."""
    variables = {"model_id": "agent-a", "__rate_interval": "4s", "__interval": "1s"}
    problems = []
    for q in dashboard_queries(variables):
        try:
            data = scraped_prometheus.run(q, window=20)
        except PromQueryError as exc:
            problems.append(f"{q.describe()}\n    → {exc}")
            continue
        result = data["result"]
        if q.kind == "variable":
            if not result:
                problems.append(f"{q.describe()}\n    → no values")
            continue
        if not result:
            if not MAY_BE_EMPTY.search(q.expr) and q.kind == "panel":
                problems.append(f"{q.describe()}\n    → no data")
            continue
        legend = q.legend if q.kind == "panel" else ""
        wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        for series in result if isinstance(result, list) else []:
            missing = wanted - set(series.get("metric", {}))
            if missing:
                problems.append(f"{q.describe()}\n    → legend {legend!r} uses labels {sorted(missing)} absent from {series['metric']}")
                break
    assert not problems, "\n".join(problems)


@pytest.mark.prometheus
def test_alert_rules_match_the_exported_series(scraped_prometheus):
    """The alert expressions select the series the exporter really exposes."""
    deadline = time.monotonic() + 10
    want = {"JanusBehaviourDrift", "JanusProtocolChange", "JanusBaselineMissing"}
    while True:
        rules = [r for g in scraped_prometheus.rule_groups() for r in g["rules"]]
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
        assert not bad, bad
        active = {r["name"] for r in rules if r.get("type") == "alerting" and r.get("alerts")}
        if want <= active:
            break
        assert time.monotonic() < deadline, f"alerts not pending: {want - active}"
        time.sleep(0.2)
    (drift,) = [r for r in rules if r["name"] == "JanusBehaviourDrift"]
    assert [a["labels"]["model_id"] for a in drift["alerts"]] == ["agent-a"]
    assert drift["alerts"][0]["labels"]["feature"] == "refused"
