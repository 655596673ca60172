"""`janus backtest` end to end through detector.cli.main: what it prints and writes."""

from __future__ import annotations

import json
import re

import orjson
import pytest

from clirun import run_cli
from detector.baseline import BaselineStore, build_baseline
from detector.records import parse_values
from detector.simulate import simulate

MODEL = "triage-agent"
ARL = "2000"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with the triage agent's ACTIVE baseline and a production log whose refusals drop
    after record 300 (compliance gap), plus one line that is not JSON."""
    root = tmp_path_factory.mktemp("backtest")
    logs = simulate("compliance-gap", 4, n_evaluation=2000, n_production=2500, change_at=300)
    store = BaselineStore(root / "store")
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    store.save(build_baseline(evaluation), actor="test", reason="test", activate=True)
    log = root / "production.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in logs.production) + b"{not json\n")
    return {"root": root, "store": str(store.root), "log": str(log)}


def _backtest(world, *extra):
    return run_cli(["backtest", "--store", world["store"], "--input", world["log"], "--arl", ARL, *extra])


def test_each_firing_alert_is_one_readable_line_and_alerts_out_is_optional(world):
    rc, out, err = _backtest(world)
    assert (rc, err) == (0, "")
    alert_lines = [line for line in out.splitlines() if line.startswith("ALERT ")]
    assert alert_lines, out
    for line in alert_lines:  # severity, model/segment, feature, record index, the sentence
        assert re.fullmatch(rf"ALERT \[\w+\] {MODEL}/\S+ \S+ at record [\d,]+: .+ in production vs .+ in evaluation .+",
                            line), line
    assert "alerts written to" not in out


def test_alerts_out_file_holds_what_was_printed(world, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    rc, out, err = _backtest(world, "--alerts-out", str(alerts))
    assert (rc, err) == (0, "")
    firing = [e for e in map(orjson.loads, alerts.read_bytes().splitlines()) if e["status"] == "firing"]
    printed = [line for line in out.splitlines() if line.startswith("ALERT ")]
    assert len(printed) == len(firing) > 0
    for line, event in zip(printed, firing):
        assert line == (f"ALERT [{event['severity']}] {event['model_id']}/{event['segment']} {event['feature']} "
                        f"at record {event['record_index']:,}: {event['message']}")
    assert out.splitlines()[-1] == f"alerts written to {alerts}"


def test_alerts_out_dash_writes_the_events_to_stdout_and_the_summary_to_stderr(world, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    assert _backtest(world, "--alerts-out", str(alerts))[0] == 0
    rc, out, err = _backtest(world, "--alerts-out", "-")
    assert rc == 0
    assert [orjson.loads(line) for line in out.splitlines()] == [orjson.loads(line) for line in
                                                                 alerts.read_bytes().splitlines()]
    assert err.startswith("records: 2,501 (2,500 accepted)") and "ALERT [" in err


def test_json_summary_lists_the_firing_alerts(world):
    rc, out, err = _backtest(world, "--json")
    assert (rc, err) == (0, "")
    summary = json.loads(out)
    firing = summary["firing"]
    assert firing and all(e["status"] == "firing" and e["model_id"] == MODEL for e in firing)
    assert len(firing) == sum(a["count"] for a in summary["alerts"] if a["status"] == "firing")


def test_json_and_alerts_out_dash_is_refused(world):
    rc, out, err = _backtest(world, "--json", "--alerts-out", "-")
    assert (rc, out) == (2, "")
    assert err == ("janus: error: --json and --alerts-out - would both write to standard output: "
                   "give --alerts-out a file\n")


# ---- rejected records -------------------------------------------------------------------------------

BAD_LINES = [b'{"decision_id": "x"}', b"{not json", b"", b"\xff\xfe"]


def test_rejects_out_writes_every_rejected_line_with_its_reason(world, tmp_path):
    log = tmp_path / "mixed.jsonl"
    log.write_bytes(open(world["log"], "rb").read() + b"\n".join(BAD_LINES) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    rc, out, err = run_cli(["backtest", "--store", world["store"], "--input", str(log), "--arl", ARL,
                            "--rejects-out", str(rejects), "--fail-on-all-rejected"])
    assert (rc, err) == (0, "")  # some records were accepted
    lines = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["source"], r["line"], r["reason"]) for r in lines] == [
        (str(log), 2501, "not_json"), (str(log), 2502, "missing_field"), (str(log), 2503, "not_json"),
        (str(log), 2504, "empty"), (str(log), 2505, "not_utf8")]
    assert [r["raw"] for r in lines] == ["{not json", '{"decision_id": "x"}', "{not json", "", "\\xff\\xfe"]
    assert lines[1]["message"] == f"{log}:2502: timestamp: required field is missing"
    (rejected,) = [line for line in out.splitlines() if line.startswith("rejected: ")]
    assert rejected.startswith("rejected: 5 (not_json 2, ") and rejected.endswith(f"; all written to {rejects}")


def test_json_summary_names_the_first_rejections(world):
    rc, out, err = _backtest(world, "--json")
    assert json.loads(out)["first_rejections"] == [f"{world['log']}:2501: not JSON: unexpected character, expected "
                                                   "a string key: line 1 column 2 (char 1)"]


def test_fail_on_all_rejected(world, tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_bytes(b"\n".join(BAD_LINES) + b"\n")
    argv = ["backtest", "--store", world["store"], "--input", str(log)]
    assert run_cli(argv)[0] == 0  # without the option, a log of nothing but rejections is not an error
    rc, out, err = run_cli([*argv, "--fail-on-all-rejected"])
    assert rc == 2 and out.startswith("records: 4 (0 accepted)")
    assert err == (f"janus: error: {log}: every record was rejected: 4 (missing_field 1, not_json 1, empty 1, "
                   f"not_utf8 1); first: {log}:1: timestamp: required field is missing; --rejects-out FILE writes "
                   "every one with its reason\n")


def test_evaluation_records_in_a_backtest_are_counted_and_said_not_monitored(world, tmp_path):
    logs = simulate("no-change", 5, n_evaluation=30, n_production=20, change_at=0)
    log = tmp_path / "mixed.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in logs.production + logs.evaluation))
    rc, out, err = run_cli(["backtest", "--store", world["store"], "--input", str(log), "--json"])
    assert rc == 0 and json.loads(out)["traffic"] == {"production": 20, "evaluation": 30}
    rc, out, err = run_cli(["backtest", "--store", world["store"], "--input", str(log)])
    assert "evaluation: 30 accepted records are evaluation traffic: not monitored" in out
