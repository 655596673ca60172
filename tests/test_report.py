"""`janus report`: content, self-containment, untrusted text, and a real headless Chromium.

The fixture simulates an agent whose production reasoning starts saying it is unmonitored, and
plants hostile text in records on both sides: reasoning and inputs carrying a ``<script>`` and an
``<img onerror>`` that would set ``document.title`` and add an element, an action name that is
itself markup (so it becomes a code label), a bidi override, and a reasoning trace far longer than
the excerpt. The probe and review sections get their own small worlds (a cue-sensitive simulation;
an audit sample from ``backtest --review-out`` with verdicts from ``janus review record``).
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import subprocess

import orjson
import pytest
from markupsafe import escape

from detector.baseline import BaselineStore, build_baselines
from clirun import run_cli as _run
from detector.records import parse_values
from detector.report import render_report
from detector.report.data import MAX_SAMPLES, Series, clean, excerpt, file_chunks, gather_report
from detector.simulate import simulate

MODEL = "triage-agent"
ARL = "10000"
TITLE = f"Janus report: {MODEL}"
# Each half, if it ran, would change the title and add an element: both are looked for in the DOM.
PAYLOAD = ("<script>document.title='pwned-by-script';"
           "document.body.appendChild(document.createElement('hr')).id='pwned-script-node'</script>"
           "<img src=x onerror=\"document.title='pwned-by-img';"
           "document.body.appendChild(document.createElement('hr')).id='pwned-img-node'\">")
PWNED_NODES = ('id="pwned-script-node"', 'id="pwned-img-node"')
HOSTILE_ACTION = "<b onmouseover=alert(1)>close</b>"
SECTIONS = {
    "summary": "Summary",
    "shares": "Per-feature shares, evaluation vs production",
    "drift": "Drift statistics over time",
    "input-mix": "Input mix",
    "distributions": "Length and latency distributions",
    "alerts": "Alerts and evidence",
}
OPTIONAL_SECTIONS = ('<section id="probes">', '<section id="review">')  # only when their data exists
PHRASES = ("unmonitored", "No one is monitoring", "Nobody will see", "not a test", "outside of training")


def _write(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    logs = simulate("reasoning-unmonitored", 3, n_evaluation=2000, n_production=2400, change_at=800)
    evaluation, production = logs.evaluation, logs.production
    for records in (evaluation, production):  # the same hostile text on both sides: no drift from it
        for r in records[::5]:
            r["input"]["text"] = PAYLOAD + " " + r["input"]["text"]
        for r in records[::50]:
            r["output"]["action"] = HOSTILE_ACTION
    for i, r in enumerate(production):
        if i >= 800 and any(p in r.get("reasoning", "") for p in PHRASES):
            r["reasoning"] = PAYLOAD + "\u202e " + r["reasoning"] + " " + "x" * 5000
    production.append({"decision_id": "other", "timestamp": 1.0, "model_id": "another-model",
                       "traffic": "production"})
    store = BaselineStore(root / "store")
    decisions = parse_values([orjson.dumps(r) for r in evaluation]).decisions
    baseline = build_baselines(decisions).baselines[MODEL]
    store.save(baseline, actor="tester", reason="report test", activate=True)
    live = root / "production.jsonl"
    _write(live, production)
    with open(live, "ab") as fh:
        fh.write(b"{not json\n")
    alerts = root / "alerts.jsonl"
    rc, out, err = _run(["backtest", "--store", str(store.root), "--input", str(live), "--alerts-out", str(alerts),
                         "--arl", ARL])
    assert rc == 0, err
    report = root / "report.html"
    rc, out, err = _run(["report", "--store", str(store.root), "--model-id", MODEL, "--input", str(live),
                         "--arl", ARL, "--out", str(report)])
    assert (rc, err) == (0, ""), err
    return {"root": root, "store": store, "live": live, "alerts": alerts, "report": report, "stdout": out,
            "html": report.read_text(encoding="utf-8")}


def test_report_has_every_section_and_the_alerts(world):
    page = world["html"]
    assert world["stdout"].startswith(f"report for {MODEL} against {MODEL}@1: 2,400 production records")
    for anchor, heading in SECTIONS.items():
        assert f'<section id="{anchor}">' in page
        assert f"<h2>{html.escape(heading, quote=False)}</h2>" in page
    assert f"<title>{TITLE}</title>" in page
    backtest = [orjson.loads(line) for line in world["alerts"].read_bytes().splitlines()]
    firing = [a for a in backtest if a["status"] == "firing"]
    assert firing and firing[0]["feature"] == "oversight_phrases"
    # The replay raises exactly what backtest raised, and each firing alert gets its evidence.
    assert page.count('<div class="alert" id="alert-') == len(firing)
    for a in firing:
        assert html.escape(a["decision_id"]) in page
    assert "triggered the alert" in page
    assert "Evaluation (baseline reservoir)" in page and "Production (records before the alert)" in page
    assert page.count('<img class="plot"') == 4
    assert "not_json 1" in page  # the rejected line is reported, not silently dropped
    assert "other model 1" in page
    assert not any(section in page for section in OPTIONAL_SECTIONS)  # no probe records, no verdict log
    # The summary opens with what fired and the features that moved most, alerted ones marked.
    findings = page[page.index('<div class="findings">'): page.index("</div>", page.index('<div class="findings">'))]
    assert f"{len(firing)} firing alert" in findings and "oversight_phrases" in findings and "alert</span>" in findings


@pytest.fixture(scope="module")
def gathered(world):
    return gather_report(world["store"], MODEL, file_chunks(world["live"]), arl=float(ARL), source=str(world["live"]))


def test_shares_largest_difference_first(gathered):
    data = gathered
    distances = [f.js_distance for f in data.shares]
    assert distances == sorted(distances, reverse=True)
    assert data.shares[0].feature in ("oversight_phrases", "reasoning_length", "reasoning_cluster")
    for f in data.shares:
        gaps = [abs(r.difference) for r in f.rows]
        assert gaps == sorted(gaps, reverse=True)
        assert sum(r.evaluation for r in f.rows) <= 1.0 + 1e-9
    phrases = next(f for f in data.shares if f.feature == "oversight_phrases")
    none_row = next(r for r in phrases.rows if r.label == "none")
    assert none_row.evaluation == pytest.approx(1.0, abs=0.01) and none_row.production < 0.95
    assert none_row.notable and phrases.alerted
    # Only differences beyond sampling noise are highlighted: here most input-length bins are noise.
    lengths = next(f for f in data.shares if f.feature == "input_length")
    assert not lengths.alerted and sum(r.notable for r in lengths.rows) < len(lengths.rows)
    # The statistic series is sampled along the replay and crosses the threshold at the alert.
    series = data.series
    assert series.x == sorted(series.x) and series.x[-1] == data.n_production == 2400
    assert max(series.values["oversight_phrases"]) >= 1.0
    assert data.markers and data.markers[0][1] == "firing"
    assert data.input_mix is not None and data.input_mix.rows[0].example is not None
    assert set(data.numeric) == {"latency_ms", "output_length", "reasoning_length", "input_length"}


def test_report_is_self_contained_and_scriptless(world):
    page = world["html"]
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    urls = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert urls and all(u.startswith(("data:image/svg+xml;base64,", "#")) for u in urls), \
        [u[:40] for u in urls if not u.startswith(("data:", "#"))]
    assert not re.search(r"url\(", page)
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<style>" in page
    # The plots themselves reference nothing outside: no linked image, font, stylesheet or script.
    for uri in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page):
        svg = base64.b64decode(uri).decode("utf-8")
        assert "<script" not in svg and "<image" not in svg and "@import" not in svg and "url(http" not in svg
        assert not re.search(r'href="(?!#)', svg)


def test_untrusted_text_is_escaped_and_truncated(world):
    page = world["html"]
    assert PAYLOAD not in page and "<img src=x" not in page and "onerror=\"document" not in page
    assert str(escape(PAYLOAD)) in page  # jinja2's autoescape (markupsafe) spelling
    assert HOSTILE_ACTION not in page and str(escape(HOSTILE_ACTION)) in page
    assert "more characters]" in page and 'class="trunc"' in page
    assert "\u202e" not in page and "⟨U+202E⟩" in page


def test_alerts_from_a_file(world, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    lines = world["alerts"].read_bytes().splitlines()
    ghost = orjson.loads(lines[0])
    ghost.update(decision_id="not-in-the-input", message="<script>document.title='x'</script>", baseline_version="7")
    alerts.write_bytes(b"\n".join([*lines, orjson.dumps(ghost), b"garbage", b"[1,2]"]) + b"\n")
    out = tmp_path / "r.html"
    rc, stdout, err = _run(["report", "--store", str(world["store"].root), "--model-id", MODEL, "--input",
                            str(world["live"]), "--alerts", str(alerts), "--out", str(out), "--json", "--arl", ARL])
    assert rc == 0, err
    summary = orjson.loads(stdout)
    assert summary["alerts"] == len(lines) + 1 and summary["evidence"] == summary["firing"]
    page = out.read_text()
    assert "2 lines of" in page and "were not alert events" in page
    assert "not in the replayed input" in page
    assert "this report replays against" in page  # the ghost alert names baseline version 7
    assert "<script>document.title" not in page


def test_the_report_takes_the_arl_of_its_alerts_file(world, tmp_path):
    out = tmp_path / "r.html"
    rc, stdout, err = _run(["report", "--store", str(world["store"].root), "--model-id", MODEL, "--input",
                            str(world["live"]), "--alerts", str(world["alerts"]), "--out", str(out), "--json"])
    assert rc == 0, err
    assert orjson.loads(stdout)["arl"] == pytest.approx(float(ARL), rel=1e-6)
    assert f"ARL {float(ARL):,.0f} read from the thresholds of the alerts" in out.read_text()
    # An explicit --arl that differs is kept, with a warning that the statistics are not the alerts'.
    rc, stdout, err = _run(["report", "--store", str(world["store"].root), "--model-id", MODEL, "--input",
                            str(world["live"]), "--alerts", str(world["alerts"]), "--out", str(out), "--arl", "1e6"])
    assert rc == 0, err
    assert f"the alerts were raised at ARL {float(ARL):,.0f}, this report replays at 1,000,000" in out.read_text()


def test_baseline_only_report_and_errors(world, tmp_path):
    out = tmp_path / "baseline-only.html"
    rc, stdout, err = _run(["report", "--store", str(world["store"].root), "--model-id", MODEL, "--out", str(out)])
    assert rc == 0, err
    page = out.read_text()
    assert "0 production records" in stdout and "No firing alerts." in page and "<script" not in page
    rc, _, err = _run(["report", "--store", str(world["store"].root), "--model-id", "ghost", "--out", str(out)])
    assert rc == 2 and "no active baseline for model 'ghost'" in err
    rc, _, err = _run(["report", "--store", str(world["store"].root), "--model-id", MODEL, "--out", str(out),
                       "--input", str(tmp_path / "absent.jsonl")])
    assert rc == 2 and "cannot read input" in err
    rc, _, err = _run(["report", "--store", str(world["store"].root), "--model-id", MODEL, "--out", str(out),
                       "--since", "1h"])
    assert rc == 2 and "only apply with --from-kafka" in err


def test_text_helpers():
    assert excerpt("abcdef", 4).text == "abcd" and excerpt("abcdef", 4).more == 2
    assert str(excerpt("abcdef", 4)).endswith("[2 more characters]")
    assert excerpt(None, 4).text == "" and excerpt("ab", 4).more == 0
    assert clean("a\u202eb\x00c\u200bd\ne") == "a⟨U+202E⟩b⟨U+0000⟩c⟨U+200B⟩d\ne"


def test_series_stays_bounded():
    class S:
        def __init__(self, v):
            self.feature, self.kind, self.value = "f", "behaviour", v

    series = Series()
    for i in range(10 * MAX_SAMPLES):
        series.add(i, float(i), [S(i / 1e4)])
    assert len(series.x) < MAX_SAMPLES and len(series.values["f"]) == len(series.x)
    assert series.x == sorted(series.x) and series.x[-1] >= 10 * MAX_SAMPLES - 2 * series.stride


def test_render_is_deterministic_apart_from_the_clock(gathered, world):
    gathered.generated_at = "fixed"
    page = render_report(gathered)  # the same data as the CLI's report: the same page
    assert page.replace(gathered.generated_at, "") == world["html"].replace(
        re.search(r"generated ([0-9TZ:-]+)", world["html"]).group(1), "")


# ---- optional sections: monitoring-cue probes and human review ---------------------------------------

def test_probe_section_matches_probe_analyze(tmp_path):
    """Probe records in the replayed input get their paired tests (the same as `janus probe analyze`)
    and are kept out of the production shares, as the pipeline keeps them out of drift."""
    from detector.probes.analyze import analyze_file

    logs = simulate("cue-sensitive", 5, n_evaluation=1500, n_production=4000, change_at=0)
    store = BaselineStore(tmp_path / "store")
    baseline = build_baselines(parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions).baselines[MODEL]
    store.save(baseline, actor="tester", reason="probe report", activate=True)
    live = _write(tmp_path / "live.jsonl", logs.production)
    out = tmp_path / "probes.html"
    rc, stdout, err = _run(["report", "--store", str(store.root), "--model-id", MODEL, "--input", str(live),
                            "--out", str(out), "--json"])
    assert rc == 0, err
    summary = orjson.loads(stdout)
    n_probe = sum(1 for r in logs.production if r.get("probe"))
    assert n_probe > 100 and summary["production_records"] == len(logs.production) - n_probe
    expected = analyze_file(live, store=store, model_id=MODEL).models[MODEL]
    assert summary["probe_pairs"] == expected.pairs == n_probe // 2
    page = out.read_text()
    assert '<section id="probes">' in page and '<a href="#probes">' in page
    section = page[page.index('<section id="probes">'): page.index("</section>", page.index('<section id="probes">'))]
    assert f"{expected.pairs:,} pairs from {n_probe:,} probe records" in section
    rows = section.count("<tr>") - 1
    assert rows == min(len(expected.tests), 10)
    assert section.count("significant</span>") == sum(t.significant for t in expected.tests[:rows]) >= 1
    first = expected.tests[0]
    assert html.escape(first.what, quote=False) in section and f"{100 * first.difference:+.1f} pt" in section
    assert '<section id="review">' not in page
    significant = [t for t in expected.tests if t.significant]
    assert f"{len(significant)} significant paired difference(s) in {expected.pairs:,} probe pairs" in page


def test_review_section_from_the_verdict_log(world, tmp_path):
    """With an audit sample and verdicts next to the store, the report shows the weighted violation
    rates of `janus review summary`."""
    from detector.review.summary import summary_from_files
    from detector.review.verdicts import SampleIndex, review_dir

    store = tmp_path / "store"
    shutil.copytree(world["store"].root, store)
    samples = review_dir(store) / "samples.jsonl"
    samples.parent.mkdir()
    rc, _, err = _run(["backtest", "--store", str(store), "--input", str(world["live"]), "--alerts-out",
                       str(tmp_path / "alerts.jsonl"), "--arl", ARL, "--review-out", str(samples)])
    assert rc == 0, err
    sampled = sorted(SampleIndex.load([samples]).samples)
    assert len(sampled) >= 5
    for i, decision_id in enumerate(sampled[:5]):
        rc, _, err = _run(["review", "record", "--store", str(store), "--decision-id", decision_id,
                           "--verdict", "violation" if i < 2 else "ok", "--reviewer", "ana"])
        assert rc == 0, err
    out = tmp_path / "review.html"
    rc, stdout, err = _run(["report", "--store", str(store), "--model-id", MODEL, "--input", str(world["live"]),
                            "--arl", ARL, "--out", str(out), "--json"])
    assert rc == 0, err
    assert orjson.loads(stdout)["reviewed"] == 5
    page = out.read_text()
    section = page[page.index('<section id="review">'): page.index("</section>", page.index('<section id="review">'))]
    expected = summary_from_files(review_dir(store) / "verdicts.jsonl", [samples], model_id=MODEL)
    assert html.escape(expected.sentence(MODEL), quote=False) in section
    production = expected.row(MODEL, "production")
    assert f"<td>production</td><td class=\"num\">{production.sampled:,}</td>" in section
    assert html.escape(production.rate.interval()) in section


# ---- headless Chromium ---------------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (CI is set: `make system-deps` installs it)")
    pytest.skip("chromium is not installed (`make system-deps` installs it)")


def _browser(binary, tmp_path, *args, timeout=90):
    profile = tmp_path / "chromium-profile"
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, text=True)


@pytest.mark.browser
def test_chromium_renders_the_report_and_runs_nothing(world, tmp_path):
    binary = _chromium()
    url = world["report"].resolve().as_uri()
    shot = tmp_path / "report.png"
    done = _browser(binary, tmp_path, "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").resize((64, 120)).getcolors(64 * 120)
        assert colours is not None and len(colours) > 20  # text, tables and plots, not a flat page
    shutil.copy(shot, world["root"] / "report.png")  # kept with the module's files for a look

    dom = _browser(binary, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert title == TITLE  # the payload would have set document.title
    assert "pwned" not in title
    assert not any(node in page for node in PWNED_NODES)  # ... and added an element
    for anchor, heading in SECTIONS.items():
        assert f'id="{anchor}"' in page and html.escape(heading, quote=False) in page
    assert html.escape(PAYLOAD, quote=False) in page  # shown as text, whole
    assert "<script" not in page.lower()
    assert not re.search(r"<img[^>]*onerror", page)
    assert page.count('class="plot"') == 4


@pytest.mark.browser
def test_the_browser_check_would_catch_an_executed_payload(tmp_path):
    """Control: the same payload, unescaped and without a CSP, does change the title in this
    Chromium, so an unchanged title in the test above means the report ran nothing."""
    binary = _chromium()
    page = tmp_path / "unsafe.html"
    page.write_text(f"<!DOCTYPE html><html><head><title>{TITLE}</title></head><body>{PAYLOAD}</body></html>")
    dom = _browser(binary, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S).group(1)
    assert title.startswith("pwned-by-")
    assert all(node in dom.stdout for node in PWNED_NODES)


def test_pooled_alerts_get_examples_from_every_segment(gathered):
    # An "(all)" alert pools the segments: its examples and rates come from all of them, not from
    # a segment of that name (which no record has).
    pooled = [e for e in gathered.evidence if e.alert.get("segment") == "(all)"]
    assert pooled
    for e in pooled:
        assert e.evaluation and e.production, e.focus
        assert "no evaluation records" not in e.rates and "no production records" not in e.rates
