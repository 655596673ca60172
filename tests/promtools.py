"""Reusable helpers for tests that use the real Prometheus toolchain.

Everything here drives real binaries (Debian's ``prometheus``, ``promtool``, ``amtool``,
``prometheus-alertmanager``); nothing is mocked. Import from a test module::

    from promtools import dashboard_queries, janus_scrape_config, running_prometheus

    def test_dashboards_against_live_janus(tmp_path):
        with running_prometheus([janus_scrape_config("127.0.0.1:9464")], workdir=tmp_path) as prom:
            prom.wait_for_target("janus")
            for q in dashboard_queries({"model_id": "demo-agent", "__rate_interval": "30s"}):
                data = prom.run(q)          # raises PromQueryError on a bad query

Main entry points:

* :func:`require_binary` — the path of a binary; skips the test when it is missing, but fails it
  when the environment variable ``CI`` is set (CI must never silently skip).
* :func:`dashboard_queries` — every PromQL query of the Grafana dashboards (panel targets,
  annotation queries, and the selectors of ``label_values`` variables), with the dashboard's
  template variables and Grafana's built-ins (``$__rate_interval``...) substituted.
* :func:`start_prometheus` / :func:`running_prometheus` — a real Prometheus on a free localhost
  port with its own empty TSDB, the given scrape configs and (by default) the Janus rule file;
  returns a :class:`PrometheusServer` whose ``url`` is the base URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO / "dashboards"
GRAFANA_DIR = DASHBOARDS_DIR / "grafana"
RULES_FILE = DASHBOARDS_DIR / "prometheus" / "janus-rules.yml"
RULES_TEST_FILE = DASHBOARDS_DIR / "prometheus" / "janus-rules.test.yml"
PROMETHEUS_EXAMPLE = DASHBOARDS_DIR / "prometheus" / "prometheus.example.yml"
ALERTMANAGER_EXAMPLE = DASHBOARDS_DIR / "alertmanager" / "alertmanager.example.yml"
RUNBOOKS = REPO / "docs" / "runbooks.md"

JANUS_JOB = "janus"

# Values for Grafana's built-in variables when a query runs outside Grafana. Override any of
# them through the ``variables`` argument of dashboard_queries (e.g. a shorter $__rate_interval
# for a Prometheus that has only scraped for a few seconds).
GRAFANA_BUILTINS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


# ------------------------------------------------------------------------------------ binaries


def require_binary(*names: str) -> str:
    """Return the path of the first of ``names`` found on PATH.

    When none is installed: skip the calling test with the reason, unless the environment
    variable ``CI`` is set, in which case fail it (``make system-deps`` installs them).
    """
    import pytest

    for name in names:
        path = shutil.which(name)
        if path:
            return path
    wanted = " or ".join(names)
    hint = "install Debian's prometheus / prometheus-alertmanager (make system-deps)"
    if os.environ.get("CI"):
        pytest.fail(f"{wanted} not found on PATH and CI is set: {hint}", pytrace=False)
    pytest.skip(f"{wanted} not found on PATH ({hint}); this skip would be a failure with CI set")
    raise AssertionError("unreachable")  # pragma: no cover


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------- dashboards


@dataclass(frozen=True)
class DashboardQuery:
    """One PromQL query of a Grafana dashboard, variables substituted.

    ``kind`` is ``"panel"`` (a panel target), ``"annotation"`` (an annotation query, run as a
    range query) or ``"variable"`` (a ``label_values(selector, label)`` template variable: ``expr``
    is the selector, possibly empty, and ``label`` the label).
    """

    dashboard: str  # file stem, e.g. "janus-model"
    uid: str
    kind: str
    panel_id: int | None
    title: str  # panel title, annotation name or variable name
    ref_id: str
    expr: str
    instant: bool = False
    legend: str = ""
    label: str | None = None
    raw_expr: str = ""

    def describe(self) -> str:
        where = f"panel {self.panel_id} {self.title!r}" if self.kind == "panel" else f"{self.kind} {self.title!r}"
        return f"{self.dashboard}.json {where} ref {self.ref_id}: {self.expr}"


class UndefinedVariable(KeyError):
    """A query uses a $variable the dashboard does not define."""


def load_dashboards(directory: Path = GRAFANA_DIR) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` dashboard in ``directory``, by file stem."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(directory).glob("*.json"))}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """All panels, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _variable_query(var: Mapping[str, Any]) -> str:
    query = var.get("query", "")
    if isinstance(query, Mapping):
        query = query.get("query", "")
    return str(query or var.get("definition", ""))


def dashboard_variables(dashboard: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values to substitute for a dashboard's template variables.

    Defaults: Grafana's built-ins (:data:`GRAFANA_BUILTINS`); for a variable with "All" its
    ``allValue`` (so ``=~"$feature"`` matches everything, as in Grafana); else its current value,
    its first option, or the placeholder ``janus-test``. ``overrides`` wins over all of these.
    """
    values = dict(GRAFANA_BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        name = var["name"]
        value: Any = None
        if var.get("type") == "datasource":
            value = "${%s}" % name  # only ever used in datasource fields
        elif var.get("includeAll") and var.get("allValue"):
            value = var["allValue"]
        else:
            current = (var.get("current") or {}).get("value")
            options = var.get("options") or []
            value = current if current not in (None, "", []) else (options[0].get("value") if options else None)
            if isinstance(value, list):
                value = value[0] if value else None
            if value in (None, "", "$__all"):
                value = "janus-test"
        values[name] = str(value)
    values.update(overrides or {})
    return values


_VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute_variables(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]`` like Grafana does.

    Raises :class:`UndefinedVariable` for a name not in ``values``.
    """

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise UndefinedVariable(f"${name} is not a variable of the dashboard (in {expr!r})")
        return values[name]

    return _VAR_RE.sub(repl, expr)


_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<sel>.+?)\s*,\s*)?(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.S)


def dashboard_queries(
    variables: Mapping[str, str] | None = None,
    *,
    directory: Path = GRAFANA_DIR,
    include_annotations: bool = True,
    include_variables: bool = True,
) -> list[DashboardQuery]:
    """Every PromQL query of every dashboard in ``directory``, variables substituted.

    ``variables`` overrides :func:`dashboard_variables`' defaults in every dashboard, e.g.
    ``{"model_id": "demo-agent", "__rate_interval": "30s"}``. A target without ``expr`` is
    returned with ``expr == ""`` so that callers can flag it. Grafana's built-in annotation
    (``-- Grafana --``) is skipped.
    """
    out: list[DashboardQuery] = []
    for stem, dash in load_dashboards(directory).items():
        uid = dash.get("uid", "")
        values = dashboard_variables(dash, variables)
        for panel in iter_panels(dash):
            for target in panel.get("targets", []) or []:
                raw = target.get("expr", "") or ""
                out.append(
                    DashboardQuery(
                        dashboard=stem,
                        uid=uid,
                        kind="panel",
                        panel_id=panel.get("id"),
                        title=panel.get("title", ""),
                        ref_id=target.get("refId", ""),
                        expr=substitute_variables(raw, values),
                        instant=bool(target.get("instant")) and not target.get("range", False),
                        legend=target.get("legendFormat", "") or "",
                        raw_expr=raw,
                    )
                )
        if include_annotations:
            for ann in dash.get("annotations", {}).get("list", []):
                if ann.get("builtIn"):
                    continue
                raw = ann.get("expr") or (ann.get("target") or {}).get("expr", "")
                out.append(
                    DashboardQuery(
                        dashboard=stem, uid=uid, kind="annotation", panel_id=None, title=ann.get("name", ""),
                        ref_id="Anno", expr=substitute_variables(raw, values), legend=ann.get("titleFormat", ""),
                        raw_expr=raw,
                    )
                )
        if include_variables:
            for var in dash.get("templating", {}).get("list", []):
                if var.get("type") != "query":
                    continue
                raw = _variable_query(var)
                match = _LABEL_VALUES_RE.match(raw)
                if match:
                    expr, label = substitute_variables(match.group("sel") or "", values), match.group("label")
                else:  # query_result(...) or a plain expression
                    inner = re.match(r"^\s*query_result\((.*)\)\s*$", raw, re.S)
                    expr, label = substitute_variables(inner.group(1) if inner else raw, values), None
                out.append(
                    DashboardQuery(
                        dashboard=stem, uid=uid, kind="variable", panel_id=None, title=var["name"],
                        ref_id="Var", expr=expr, label=label, raw_expr=raw,
                    )
                )
    return out


# ---------------------------------------------------------------------------------- prometheus


class PromQueryError(RuntimeError):
    """Prometheus answered a query with an error (bad syntax, bad types, execution error)."""


@dataclass
class PrometheusServer:
    """A running Prometheus started by :func:`start_prometheus`. ``url`` has no trailing slash."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    config_file: Path
    log_file: Path
    _owned_tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    # -- HTTP API ------------------------------------------------------------------------------
    def api(self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str] = ()) -> Any:
        """GET ``/api/v1/<path>``; return its ``data`` or raise :class:`PromQueryError`."""
        query = urllib.parse.urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400 bad_data, 422 execution, 503 timeout...
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise PromQueryError(f"{url}: HTTP {exc.code}") from None
        if body.get("status") != "success":
            raise PromQueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """Instant query; returns ``{"resultType": ..., "result": [...]}``."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", params)

    def query_range(self, expr: str, start: float, end: float, step: float = 15.0) -> dict[str, Any]:
        return self.api("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)})

    def run(self, q: DashboardQuery, *, window: float = 300.0) -> dict[str, Any]:
        """Run a dashboard query the way Grafana would.

        Panel targets: a range query over the last ``window`` seconds (Grafana rejects an
        expression that returns a range vector), or an instant query for instant targets.
        Annotations: a range query. Variables: ``/api/v1/series`` for the selector (or
        ``/api/v1/label/<label>/values``); returns ``{"resultType": "labels", "result": [...]}``.
        """
        if q.kind == "variable":
            if q.label and q.expr:
                return {"resultType": "labels", "result": self.api(f"label/{q.label}/values", [("match[]", q.expr)])}
            if q.label:
                return {"resultType": "labels", "result": self.api(f"label/{q.label}/values")}
            return self.query(q.expr)
        if q.instant:
            return self.query(q.expr)
        end = time.time()
        return self.query_range(q.expr, end - window, end, step=max(1.0, window / 60))

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def rule_groups(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def wait_for_target(self, job: str = JANUS_JOB, *, scrapes: int = 1, timeout: float = 30.0) -> None:
        """Wait until every target of ``job`` is up and ``up{job=...}`` has ``scrapes`` samples."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            targets = [t for t in self.targets() if t["labels"].get("job") == job]
            last = [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in targets]
            if targets and all(t["health"] == "up" for t in targets):
                result = self.query(f'count_over_time(up{{job="{job}"}}[5m])')["result"]
                if result and min(float(r["value"][1]) for r in result) >= scrapes:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"job {job!r} not scraped {scrapes}x within {timeout}s: {last}\n{self.log_tail()}")

    def wait_for_rule_evaluation(self, after: float, *, timeout: float = 30.0) -> None:
        """Wait until every rule group was last evaluated at or after ``after`` (epoch seconds)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            last = {g["name"]: g["lastEvaluation"] for g in self.rule_groups()}
            if last and all(rfc3339_seconds(t) >= after for t in last.values()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"rule groups not evaluated after {after} within {timeout}s: {last}\n{self.log_tail()}")

    # -- lifecycle -----------------------------------------------------------------------------
    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._owned_tmp is not None:
            self._owned_tmp.cleanup()
            self._owned_tmp = None

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rfc3339_seconds(text: str) -> float:
    """Prometheus's RFC 3339 times (nanoseconds, ``Z``) as epoch seconds.

    >>> round(rfc3339_seconds("2024-06-01T12:00:00.123456789Z") - rfc3339_seconds("2024-06-01T12:00:00Z"), 6)
    0.123456
    """
    microseconds = re.sub(r"(\.\d{6})\d+", r"\1", text)  # datetime keeps microseconds
    return datetime.fromisoformat(microseconds.replace("Z", "+00:00")).timestamp()


def janus_scrape_config(target: str = "127.0.0.1:9464", *, interval: str = "1s", job: str = JANUS_JOB) -> dict[str, Any]:
    """A scrape config for one Janus metrics endpoint (``host:port``), job ``janus``."""
    return {
        "job_name": job,
        "scrape_interval": interval,
        "scrape_timeout": interval if _seconds(interval) < 10 else "10s",
        "static_configs": [{"targets": [target]}],
    }


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if not match:
        return 60.0
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def start_prometheus(
    scrape_configs: Sequence[Mapping[str, Any]] | Mapping[str, Any] = (),
    *,
    workdir: Path | str | None = None,
    rule_files: Sequence[Path | str] = (RULES_FILE,),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    timeout: float = 30.0,
) -> PrometheusServer:
    """Start a real Prometheus on a free 127.0.0.1 port, with an empty TSDB under ``workdir``.

    ``scrape_configs``: a list of Prometheus ``scrape_configs`` entries (e.g. from
    :func:`janus_scrape_config`), or one entry. ``rule_files`` default to the Janus rules, so the
    recording rules the dashboards use are evaluated (every second by default). ``workdir``
    defaults to a temporary directory removed by :meth:`PrometheusServer.stop`. Returns once
    ``/-/ready`` answers; the caller must call ``stop()`` (or use :func:`running_prometheus`).
    """
    binary = require_binary("prometheus")
    owned = None
    if workdir is None:
        owned = tempfile.TemporaryDirectory(prefix="janus-prometheus-")
        workdir = owned.name
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(scrape_configs, Mapping):
        scrape_configs = [scrape_configs]
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [dict(c) for c in scrape_configs],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    log_file = workdir / "prometheus.log"

    last_error = ""
    for attempt in range(5):
        port = free_port()
        data_dir = workdir / f"data-{attempt}"
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=info",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, workdir, config_file, log_file, owned)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        last_error = server.log_tail()
        if process.poll() is None:  # timed out while running: give up
            server._owned_tmp = None
            server.stop()
            break
        if "address already in use" not in last_error:
            break  # a real failure (bad config...): do not retry
    if owned is not None:
        owned.cleanup()
    raise RuntimeError(f"prometheus did not become ready:\n{last_error}")


@contextlib.contextmanager
def running_prometheus(
    scrape_configs: Sequence[Mapping[str, Any]] | Mapping[str, Any] = (), **kwargs: Any
) -> Iterator[PrometheusServer]:
    """Context manager around :func:`start_prometheus`; stops the server on exit."""
    server = start_prometheus(scrape_configs, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------------------------- alertmanager


@dataclass
class AlertmanagerServer:
    """A running Alertmanager started by :func:`running_alertmanager`."""

    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST alerts (``{"labels": {...}, "annotations": {...}}``) to ``/api/v2/alerts``."""
        req = urllib.request.Request(
            f"{self.url}/api/v2/alerts", data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v2/alerts``: each alert with ``status.state`` and ``status.inhibitedBy``."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as resp:
            return json.loads(resp.read())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def running_alertmanager(
    config_file: Path | str = ALERTMANAGER_EXAMPLE, *, workdir: Path | str, timeout: float = 30.0
) -> Iterator[AlertmanagerServer]:
    """A real Alertmanager (clustering off) on a free 127.0.0.1 port, stopped on exit."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "alertmanager.log"
    last = ""
    for attempt in range(5):
        port = free_port()
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={config_file}", f"--storage.path={workdir / f'data-{attempt}'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        server = AlertmanagerServer(f"http://127.0.0.1:{port}", process, log_file)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, OSError):
                    time.sleep(0.1)
            else:
                last = server.log_tail()
                if process.poll() is not None and "address already in use" in last:
                    continue
                raise RuntimeError(f"alertmanager did not become ready:\n{last}")
            yield server
            return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
    raise RuntimeError(f"alertmanager did not start:\n{last}")
