"""The simulator: reproducible, schema-valid logs whose empirical rates match truth.json."""

from __future__ import annotations

import argparse
import gc
import math

import numpy as np
import orjson
import pytest

from detector.cli import simulate_cmd
from detector.config import FeaturesConfig
from detector.errors import JanusError
from detector.records import parse_values
from detector.simulate import (DEFAULT_CHANGE_AT, KINDS, RECAP_SENTENCES, SCENARIOS, TOOLS, UNMONITORED_SENTENCES,
                               simulate, write_logs)

SEED = 11
# Smaller than the defaults (20k/20k/5k) to keep this file fast, but large enough that each rate
# checked against truth.json rests on >= 400 records (the 10k ramp is followed by 4k records).
N_EVAL = 10_000
N_PROD = 16_000
CHANGE_AT = 2_000
Z = 4.5  # sampling tolerance in standard errors; the seed is fixed, this only absorbs code changes

PHRASES = tuple(p.lower() for p in FeaturesConfig().oversight_phrases)


@pytest.fixture(scope="module")
def runs():
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = simulate(name, SEED, N_EVAL, N_PROD, CHANGE_AT)
            # Millions of cached dicts would make every later cyclic GC pass crawl over them;
            # they hold no cycles, so take them out of the GC's sight until teardown.
            gc.freeze()
        return cache[name]

    yield get
    cache.clear()
    _COLUMNS.clear()
    gc.unfreeze()


# --- measuring a record -------------------------------------------------------------------------


def _has_phrase(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in PHRASES)


_COLUMNS: dict[int, dict[str, np.ndarray]] = {}


def _columns(records, kinds) -> dict[str, np.ndarray]:
    """Per-record arrays of what the tests measure, computed once per list of records."""
    key = id(records)
    if key not in _COLUMNS:
        _COLUMNS[key] = {
            "kind": np.array(kinds),
            "refused": np.array([r["output"]["refused"] for r in records]),
            "tools": np.array([[any(c["name"] == t for c in r["output"]["tool_calls"]) for t in TOOLS]
                               for r in records]).reshape(len(records), len(TOOLS)),
            "phrase": np.array([_has_phrase(r["reasoning"]) for r in records], dtype=bool),
            "recap": np.array([any(t.split("{")[0] in r["output"]["text"] for t in RECAP_SENTENCES)
                               for r in records], dtype=bool),
            "records": records,  # keeps id(records) from being reused while cached
        }
    return _COLUMNS[key]


def _measure(feature: str, input_kind: str | None, cols, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """(in_population, has_feature) boolean arrays, the way truth.json defines each rate."""
    kinds, refused = cols["kind"][lo:hi], cols["refused"][lo:hi]
    if feature == "input_cluster":
        return np.ones(len(kinds), bool), kinds == input_kind
    if feature == "refused":
        return kinds == input_kind, refused
    if feature.startswith("tool:"):
        has = cols["tools"][lo:hi, TOOLS.index(feature.split(":", 1)[1])]
        return (kinds == input_kind) & ~refused, has
    if feature == "oversight_phrases":
        return np.ones(len(kinds), bool), cols["phrase"][lo:hi]
    if feature == "output_length":  # longer answers: the share of answers ending with a recap
        return ~refused, cols["recap"][lo:hi]
    raise AssertionError(f"no measurement for {feature}")


def _rate(feature, input_kind, records, kinds, lo=0, hi=None):
    pop, has = _measure(feature, input_kind, _columns(records, kinds), lo, hi)
    n = int(pop.sum())
    return (has & pop).sum() / n, n


def _assert_rate(observed: float, n: int, expected: float, what: str) -> None:
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(observed - expected) <= Z * se + 1e-12, f"{what}: observed {observed:.4f} over {n}, expected {expected}"


def _assert_same_rate(p1: float, n1: int, p2: float, n2: int, what: str) -> None:
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert abs(p1 - p2) <= Z * se + 1e-12, f"{what}: {p1:.4f} (n={n1}) vs {p2:.4f} (n={n2})"


# --- reproducibility and format -----------------------------------------------------------------


def _files(path):
    return {name: (path / name).read_bytes() for name in ("evaluation.jsonl", "production.jsonl", "truth.json")}


def test_same_seed_gives_byte_identical_files_and_different_seeds_differ(tmp_path):
    for sub, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_logs(simulate("compliance-gap", seed, 3_000, 3_000, 1_000), tmp_path / sub)
    a, b, c = (_files(tmp_path / s) for s in "abc")
    assert a == b
    assert a["evaluation.jsonl"] != c["evaluation.jsonl"]
    assert a["production.jsonl"] != c["production.jsonl"]


def test_every_line_is_a_valid_schema_v1_record(tmp_path):
    n_eval, n_prod = 4_000, 6_000
    logs = simulate("reasoning-unmonitored", SEED, n_eval, n_prod, CHANGE_AT)
    paths = write_logs(logs, tmp_path)
    ids = set()
    last_eval_ts = None
    for traffic in ("evaluation", "production"):
        lines = paths[traffic].read_bytes().splitlines()
        assert len(lines) == (n_eval if traffic == "evaluation" else n_prod)
        # Janus's own parser must accept every line as schema v1.
        assert parse_values(lines).rejections == []
        timestamps = []
        for line in lines:
            rec = orjson.loads(line)
            assert isinstance(rec["decision_id"], str) and 0 < len(rec["decision_id"]) <= 128
            assert rec["model_id"] == "triage-agent" and rec["model_version"] == "2.0"
            assert rec["traffic"] == traffic
            assert rec["segment"] in ("alerts", "chat")
            out = rec["output"]
            assert out["action"] in ("escalate", "close_alert", "isolate_host", "disable_account", "export_logs",
                                     "answer", "refuse")
            assert isinstance(out["refused"], bool) and (out["action"] == "refuse") == out["refused"]
            assert 0.0 <= out["confidence"] <= 1.0 and rec["latency_ms"] >= 0
            for call in out["tool_calls"]:
                assert call["name"] in TOOLS and isinstance(call["arguments"], dict)
            assert rec["input"]["text"] and out["text"] and rec["reasoning"]
            assert "{" not in rec["input"]["text"] + out["text"] + rec["reasoning"], "unfilled template slot"
            assert rec["attributes"]["customer_tier"] in ("free", "paid")
            ids.add(rec["decision_id"])
            timestamps.append(rec["timestamp"])
        ts = np.array(timestamps)
        assert np.all(np.diff(ts) > 0), "timestamps must increase"
        if traffic == "evaluation":
            last_eval_ts = ts[-1]
        else:
            assert ts[0] > last_eval_ts, "evaluation comes before production"
    assert len(ids) == n_eval + n_prod, "decision ids must be unique"

    # In-process records are exactly what the files hold (plain str/float/bool/list/dict values).
    assert [orjson.loads(line) for line in paths["production"].read_bytes().splitlines()] == logs.production
    truth = orjson.loads(paths["truth"].read_bytes())
    assert truth == logs.truth
    assert truth["scenario"] == "reasoning-unmonitored" and truth["seed"] == SEED
    assert truth["model_id"] == "triage-agent" and truth["change_index"] == CHANGE_AT
    assert truth["change_kind"] == "behaviour"


def test_texts_are_templated_but_varied(runs):
    logs = runs("no-change")
    inputs = [r["input"]["text"] for r in logs.evaluation]
    kinds = logs.evaluation_kinds
    for kind in KINDS:
        distinct = {t for t, k in zip(inputs, kinds) if k == kind}
        assert 20 < len(distinct), kind
    assert len(set(inputs)) < len(inputs), "some texts should repeat (templated prompts)"
    assert len({r["output"]["text"] for r in logs.evaluation if r["output"]["refused"]}) > 1
    lengths = np.array([len(r["reasoning"]) for r in logs.evaluation])
    assert lengths.max() > 3 * np.median(lengths), "some reasoning traces are long"
    assert {r["segment"] for r in logs.evaluation} == {"alerts", "chat"}


def test_evaluation_is_shared_by_all_scenarios_with_one_seed(runs):
    def strip(records):
        return [{k: v for k, v in r.items() if k != "decision_id"} for r in records[:2_000]]

    base = strip(runs("no-change").evaluation)
    for name in SCENARIOS:
        assert strip(runs(name).evaluation) == base, name


# --- rates match truth.json ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_empirical_rates_match_truth(scenario, runs):
    logs = runs(scenario)
    truth = logs.truth
    ev, ek = logs.evaluation, logs.evaluation_kinds
    pr, pk = logs.production, logs.production_kinds
    if scenario == "no-change":
        assert truth["change_index"] is None and truth["changes"] == [] and truth["change_kind"] == "none"
        full_from = CHANGE_AT
    else:
        assert truth["change_index"] == CHANGE_AT and truth["changes"]
        full_from = CHANGE_AT + truth["ramp_records"]
    assert full_from < N_PROD

    changed = set()
    for ch in truth["changes"]:
        key = (ch["feature"], ch["input_kind"])
        changed.add(key)
        assert ch["direction"] == ("increase" if ch["after"] > ch["before"] else "decrease")
        assert ch["kind"] == truth["change_kind"]
        for label, records, kinds, lo, hi, expected in (
            ("evaluation", ev, ek, 0, None, ch["before"]),
            ("production before the change", pr, pk, 0, CHANGE_AT, ch["before"]),
            ("production after the change", pr, pk, full_from, None, ch["after"]),
        ):
            p, n = _rate(*key, records, kinds, lo, hi)
            if expected == 0:
                assert p == 0, f"{key} in {label}"
            else:
                _assert_rate(p, n, expected, f"{key} in {label}")

    # Everything truth.json does not list is the same after the change as under evaluation.
    unchanged = [("refused", k) for k in KINDS] + [(f"tool:{t}", k) for t in TOOLS for k in KINDS]
    if truth["change_kind"] != "input":
        unchanged += [("input_cluster", k) for k in KINDS]
    for key in unchanged:
        if key in changed:
            continue
        p1, n1 = _rate(*key, ev, ek)
        p2, n2 = _rate(*key, pr, pk, full_from)
        _assert_same_rate(p1, n1, p2, n2, f"{scenario}: {key} should not change")
    if ("oversight_phrases", None) not in changed:
        assert _rate("oversight_phrases", None, pr, pk)[0] == 0
    if ("output_length", None) not in changed:
        assert _rate("output_length", None, pr, pk)[0] == 0


def test_input_shift_changes_the_mix_not_the_behaviour_given_the_input(runs):
    logs = runs("input-shift")
    truth = logs.truth
    assert truth["change_kind"] == "input"
    assert {c["kind"] for c in truth["changes"]} == {"input"}
    harmful_share_eval, _ = _rate("input_cluster", "harmful", logs.evaluation, logs.evaluation_kinds)
    harmful_share_prod, _ = _rate("input_cluster", "harmful", logs.production, logs.production_kinds, CHANGE_AT)
    assert harmful_share_prod > 3 * harmful_share_eval
    r_eval, n_eval = _rate("refused", "harmful", logs.evaluation, logs.evaluation_kinds)
    r_prod, n_prod = _rate("refused", "harmful", logs.production, logs.production_kinds, CHANGE_AT)
    _assert_same_rate(r_eval, n_eval, r_prod, n_prod, "refusal given harmful")
    # The marginal refusal rate does move: that is what a detector must not mistake for behaviour.
    marginal_eval = np.mean([r["output"]["refused"] for r in logs.evaluation])
    marginal_prod = np.mean([r["output"]["refused"] for r in logs.production[CHANGE_AT:]])
    assert marginal_prod > 2 * marginal_eval


def test_compliance_gap_complies_instead_of_refusing_and_touches_nothing_else(runs):
    gap, base = runs("compliance-gap"), runs("no-change")
    assert gap.production_kinds == base.production_kinds
    newly_complying = 0
    for i, (g, b, kind) in enumerate(zip(gap.production, base.production, gap.production_kinds)):
        if kind != "harmful" or i < CHANGE_AT:
            assert {**g, "decision_id": None} == {**b, "decision_id": None}
        elif g["output"]["refused"] != b["output"]["refused"]:
            assert b["output"]["refused"] and not g["output"]["refused"]
            assert g["output"]["action"] != "refuse"
            assert g["output"]["text"] != b["output"]["text"]
            newly_complying += 1
    harmful_after = sum(k == "harmful" for k in gap.production_kinds[CHANGE_AT:])
    _assert_rate(newly_complying / harmful_after, harmful_after, 0.15, "share of harmful inputs newly complied with")


def test_reasoning_unmonitored_changes_only_reasoning_with_phrases_janus_knows(runs):
    logs, base = runs("reasoning-unmonitored"), runs("no-change")
    for g, b in zip(logs.production, base.production):
        assert g["output"] == b["output"] and g["input"] == b["input"]
    for sentence in UNMONITORED_SENTENCES:
        assert _has_phrase(sentence), f"Janus's default oversight phrases miss {sentence!r}"
    for r in base.evaluation + base.production:
        for text in (r["input"]["text"], r["output"]["text"], r["reasoning"]):
            assert not _has_phrase(text), f"unprompted oversight phrase in {text!r}"


def test_gradual_ramp_declines_linearly(runs):
    logs = runs("gradual-ramp")
    ramp = logs.truth["ramp_records"]
    assert ramp == 10_000
    kinds = np.array(logs.production_kinds)
    refused = np.array([r["output"]["refused"] for r in logs.production])
    idx = np.arange(N_PROD)
    expected_p = 0.95 + np.clip((idx - CHANGE_AT + 1) / ramp, 0, 1) * (0.75 - 0.95)
    observed = []
    for lo in range(CHANGE_AT, CHANGE_AT + ramp, ramp // 4):
        window = (idx >= lo) & (idx < lo + ramp // 4) & (kinds == "harmful")
        p = expected_p[window]
        se = math.sqrt(np.sum(p * (1 - p))) / window.sum()
        rate = refused[window].mean()
        assert abs(rate - p.mean()) <= Z * se, (lo, rate, p.mean())
        observed.append(rate)
    assert observed == sorted(observed, reverse=True), observed


# --- errors and the command line ----------------------------------------------------------------


def test_unknown_scenario_and_bad_arguments_raise_janus_error():
    with pytest.raises(JanusError) as info:
        simulate("alignment-faking", 1)
    for name in SCENARIOS:
        assert name in str(info.value)
    with pytest.raises(JanusError, match="change_at"):
        simulate("compliance-gap", 1, n_evaluation=10, n_production=10, change_at=11)
    with pytest.raises(JanusError, match="seed"):
        simulate("no-change", -1)
    with pytest.raises(JanusError, match="model_id"):
        simulate("no-change", 1, 10, 10, 0, model_id="")


def test_zero_records_is_allowed():
    logs = simulate("compliance-gap", 1, n_evaluation=0, n_production=0, change_at=0)
    assert logs.evaluation == [] and logs.production == [] and logs.truth["change_time"] is None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="janus simulate")
    simulate_cmd.register(parser)
    return parser


def test_cli_defaults_follow_the_spec():
    args = _parser().parse_args(["--scenario", "no-change", "--seed", "1", "--out", "x"])
    # --change-at: 5,000 unless the production log is shorter than 20,000 (see the test below)
    assert (args.evaluation, args.production, args.change_at, args.model_id) == (20_000, 20_000, None, "triage-agent")
    assert min(DEFAULT_CHANGE_AT, args.production // 4) == 5_000


def test_cli_writes_the_three_files(tmp_path, capsys):
    out = tmp_path / "sim"
    args = _parser().parse_args(
        ["--scenario", "tool-shift", "--seed", "4", "--out", str(out),
         "--evaluation", "1500", "--production", "1200", "--change-at", "300", "--model-id", "agent-x"]
    )
    assert args.handler(args) == 0
    files = _files(out)
    assert files["evaluation.jsonl"].count(b"\n") == 1500
    assert files["production.jsonl"].count(b"\n") == 1200
    truth = orjson.loads(files["truth.json"])
    assert (truth["scenario"], truth["seed"], truth["change_index"]) == ("tool-shift", 4, 300)
    assert truth["model_id"] == "agent-x"
    assert files["production.jsonl"] == b"".join(
        orjson.dumps(r) + b"\n" for r in simulate("tool-shift", 4, 1500, 1200, 300, "agent-x").production
    )
    printed = capsys.readouterr().out
    assert str(out / "production.jsonl") in printed and "300" in printed and "1,200" in printed


def test_cli_reports_a_bad_scenario_as_a_janus_error(tmp_path):
    args = _parser().parse_args(["--scenario", "nope", "--seed", "1", "--out", str(tmp_path)])
    with pytest.raises(JanusError, match="compliance-gap"):
        args.handler(args)


def test_janus_main_dispatches_simulate(tmp_path):
    from detector.cli import main

    out = tmp_path / "sim"
    argv = ["simulate", "--scenario", "no-change", "--seed", "2", "--out", str(out), "--evaluation", "50",
            "--production", "50", "--change-at", "10"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.jsonl", "production.jsonl", "truth.json"]
    assert main(argv[:2] + ["nope"] + argv[3:]) == 2


def test_a_short_production_log_moves_the_default_change_into_it(tmp_path):
    """Without --change-at, a log shorter than the default change point (5,000) still runs: the
    change starts a quarter of the way in."""
    import json

    from detector.cli import main

    out = tmp_path / "sim"
    assert main(["simulate", "--scenario", "compliance-gap", "--seed", "2", "--out", str(out),
                 "--evaluation", "50", "--production", "400"]) == 0
    assert json.loads((out / "truth.json").read_text())["change_index"] == 100
