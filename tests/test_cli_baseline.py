"""`janus baseline build|list|show|diff|promote|rollback|audit` end to end through detector.cli.main."""

from __future__ import annotations

import json
import shutil
import warnings

import orjson
import pytest

from detector.baseline.store import AUDIT_FILE, META_FILE, model_dirname
from clirun import run_cli as _run
from detector.cli import main
from detector.simulate import simulate

MODEL = "triage-agent"


def _write(path, records, extra_lines=()):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"".join(line + b"\n" for line in extra_lines))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store with two versions of the triage agent built through the CLI: 1 (ACTIVE) and 2."""
    root = tmp_path_factory.mktemp("cli")
    logs = simulate("no-change", 5, n_evaluation=1500, n_production=200, change_at=0)
    other = simulate("no-change", 6, n_evaluation=800, n_production=0, change_at=0)
    first = _write(root / "first.jsonl", logs.evaluation + logs.production,
                   extra_lines=[b"", b"{not json", orjson.dumps({"decision_id": "x"})])
    second = _write(root / "second.jsonl", other.evaluation)
    _write(root / "prod.jsonl", simulate("no-change", 9, n_evaluation=0, n_production=40, change_at=0).production)
    store = root / "store"
    a = _run(["baseline", "build", "--input", str(first), "--store", str(store), "--reason", "initial eval run",
              "--actor", "alice", "--activate"])
    b = _run(["baseline", "build", "--input", str(second), "--store", str(store), "--reason", "second eval run",
              "--actor", "bob", "--json"])
    return {"root": root, "store": store, "first": first, "second": second, "a": a, "b": b}


@pytest.fixture
def store(built, tmp_path):
    """A private copy of the built store, free to promote and roll back."""
    copy = tmp_path / "store"
    shutil.copytree(built["store"], copy)
    return str(copy)


def test_build_activate_prints_a_summary(built):
    rc, out, err = built["a"]
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"built {MODEL}@1 from 1,500 evaluation records (now ACTIVE)"
    assert lines[1] == "skipped 200 production records (use --allow-production with a reason)"
    first = built["first"]
    assert lines[2] == (f"rejected: 3 (empty 1, not_json 1, missing_field 1); first: {first}:1701: empty value; "
                        "--rejects-out FILE writes every one with its reason")


def test_build_json_summary(built):
    rc, out, err = built["b"]
    assert (rc, err) == (0, "")
    assert json.loads(out) == {"built": [{"model_id": MODEL, "version": "2", "records": 800, "active": False}],
                               "skipped_production": 0, "rejected": {}, "first_rejections": []}


def test_build_rejects_out_holds_every_rejected_line_even_when_nothing_is_built(built, tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_bytes((built["root"] / "prod.jsonl").read_bytes() + b'{"decision_id": "x"}\n{not json\n\n')
    rejects = tmp_path / "rejects.jsonl"
    rc, out, err = _run(["baseline", "build", "--input", str(log), "--store", str(tmp_path / "s"), "--reason", "r",
                         "--rejects-out", str(rejects)])
    assert (rc, out) == (2, "")
    assert err == (f"janus: error: {log}: no evaluation records to build a baseline from: read 43 records, "
                   f"0 evaluation and 40 production, rejected 3 (missing_field 1, not_json 1, empty 1); first: {log}:41: timestamp: "
                   f"required field is missing; all written to {rejects}. Production records are left out, as a "
                   "baseline learned from them would hide the drift it must catch: to include them anyway, add "
                   "--allow-production and a --reason saying why\n")
    assert [orjson.loads(line) for line in rejects.read_bytes().splitlines()] == [
        {"source": str(log), "line": 41, "reason": "missing_field", "raw": '{"decision_id": "x"}',
         "message": f"{log}:41: timestamp: required field is missing"},
        {"source": str(log), "line": 42, "reason": "not_json", "raw": "{not json",
         "message": f"{log}:42: not JSON: unexpected character, expected a string key: line 1 column 2 (char 1)"},
        {"source": str(log), "line": 43, "reason": "empty", "raw": "", "message": f"{log}:43: empty value"},
    ]


def test_build_allow_production_needs_a_real_reason_and_records_it(built, tmp_path, capsys):
    store = str(tmp_path / "s")
    argv = ["baseline", "build", "--input", str(built["root"] / "prod.jsonl"), "--store", store, "--allow-production",
            "--force"]  # 40 records: below the minimum
    assert main([*argv, "--reason", "   "]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("janus: error: --allow-production needs a --reason") and err.count("\n") == 1
    assert main(["baseline", "list", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing was stored

    assert main([*argv, "--reason", "no evaluation data yet", "--actor", "zoe", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["built"] == [{"model_id": MODEL, "version": "1", "records": 40, "active": False}]
    assert summary["skipped_production"] == 0
    assert main(["baseline", "show", f"{MODEL}@1", "--store", store, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["traffic"], info["reason"], info["actor"]) == ("evaluation+production", "no evaluation data yet", "zoe")


def _head(path, n, tmp_path):
    head = tmp_path / f"head{n}.jsonl"
    head.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:n]))
    return head


def test_a_baseline_from_too_few_records_needs_force_and_shows_no_library_warning(built, tmp_path):
    tiny = _head(built["second"], 2, tmp_path)
    argv = ["baseline", "build", "--input", str(tiny), "--store", str(tmp_path / "s"), "--reason", "r"]
    rc, out, err = _run(argv)
    assert (rc, out) == (2, "")
    assert err == (f"janus: error: {tiny}: too few evaluation records for a baseline: {MODEL} has 2, fewer than the "
                   "minimum of 200 ([baseline] min_records): rates estimated from so few make detection slow and "
                   "unreliable; build from more records, or anyway with --force\n")
    assert not (tmp_path / "s").exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, out, err = _run([*argv, "--force"])
    assert (rc, err) == (0, "")
    assert out.startswith(f"built {MODEL}@1 from 2 evaluation records\n")
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []  # scikit-learn's, e.g. ConvergenceWarning


def test_the_minimum_is_configurable(built, tmp_path):
    small = _head(built["second"], 20, tmp_path)
    config = tmp_path / "janus.toml"
    argv = ["--config", str(config), "baseline", "build", "--input", str(small), "--store", str(tmp_path / "s"),
            "--reason", "r"]
    config.write_text("[baseline]\nmin_records = 20\n")
    rc, out, err = _run(argv)
    assert (rc, err) == (0, "") and out.startswith(f"built {MODEL}@1 from 20 evaluation records\n")
    config.write_text("[baseline]\nmin_records = 21\n")
    rc, out, err = _run(argv)
    assert rc == 2 and f"{MODEL} has 20, fewer than the minimum of 21 " in err


def test_list_text_and_json(built, capsys):
    store = str(built["store"])
    assert main(["baseline", "list", "--store", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(MODEL) and "versions 1, 2" in out[0] and out[0].endswith("ACTIVE 1")
    assert main(["baseline", "list", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"model_id": MODEL, "versions": ["1", "2"], "active": "1"}]
    assert main(["baseline", "list", "--store", str(built["root"] / "empty")]) == 0
    assert capsys.readouterr().out.startswith("no baselines in ")


def test_show_text_and_json(built, capsys):
    store = str(built["store"])
    assert main(["baseline", "show", MODEL, "--store", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{MODEL}@1  ACTIVE"
    assert out[1].endswith("by alice: initial eval run")
    assert out[2].startswith(f"  1,500 evaluation records from {built['first']}; model versions: 2.0")
    assert out[3] == "  refusal: the records' output.refused label"
    assert any(line.split()[0] == "refused" for line in out[4:])

    assert main(["baseline", "show", f"{MODEL}@2", "--store", store, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["model_id"], info["version"], info["records"], info["active"]) == (MODEL, "2", 800, False)
    assert (info["actor"], info["reason"], info["traffic"]) == ("bob", "second eval run", "evaluation")
    assert info["model_versions"] == ["2.0"] and info["refusal"]["source"] == "label"
    names = [f["feature"] for f in info["features"]]
    assert "refused" in names and len(names) == len(set(names))
    for feature in info["features"]:
        assert feature["kind"] in ("behaviour", "input", "data")
        assert sum(feature["shares"].values()) == pytest.approx(1.0)


def test_diff_text_and_json(built, capsys):
    store = str(built["store"])
    assert main(["baseline", "diff", f"{MODEL}@1", f"{MODEL}@2", "--store", store, "--json"]) == 0
    diffs = json.loads(capsys.readouterr().out)
    comparable = [d["comparable"] for d in diffs]
    assert comparable == sorted(comparable, reverse=True), "refitted features come last"
    distances = [d["js_distance"] for d in diffs if d["comparable"]]
    assert distances == sorted(distances, reverse=True) and distances[0] > 0
    assert all(0 <= d["js_distance"] <= 1 for d in diffs)
    refused = next(d for d in diffs if d["feature"] == "refused")
    assert sum(c["a"] for c in refused["codes"]) == pytest.approx(1.0)
    assert sum(c["b"] for c in refused["codes"]) == pytest.approx(1.0)

    assert main(["baseline", "diff", f"{MODEL}@1", f"{MODEL}@2", "--store", store, "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["feature", "JS", "dist", "code:", f"{MODEL}@1", "→", f"{MODEL}@2"]
    assert len(out) == 1 + len(diffs)
    assert out[1].split()[0] == diffs[0]["feature"]

    # A baseline compared with itself: nothing moved. MODEL alone means its ACTIVE version.
    assert main(["baseline", "diff", MODEL, f"{MODEL}@1", "--store", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.endswith("no change") and " 0.000 " in line for line in out[1:])


def test_promote_rollback_and_audit(store, capsys):
    assert main(["baseline", "promote", MODEL, "2", "--store", store, "--reason", "better", "--actor", "carol"]) == 0
    assert capsys.readouterr().out == f"{MODEL}: ACTIVE 1 → 2\n"
    assert main(["baseline", "list", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["active"] == "2"
    assert main(["baseline", "show", MODEL, "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "2"

    assert main(["baseline", "rollback", MODEL, "--store", store, "--reason", "false alarms", "--actor", "dave"]) == 0
    assert capsys.readouterr().out == f"{MODEL}: ACTIVE 2 → 1 (rollback)\n"
    assert main(["baseline", "rollback", MODEL, "2", "--store", store, "--reason", "explicit", "--actor", "erin"]) == 0
    assert capsys.readouterr().out == f"{MODEL}: ACTIVE 1 → 2 (rollback)\n"

    assert main(["baseline", "audit", "--store", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "audit chain intact (6 entries)"
    rows = [line.split() for line in out[:-1]]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("alice", "build", f"{MODEL}@1"), ("alice", "promote", f"{MODEL}@1"), ("bob", "build", f"{MODEL}@2"),
        ("carol", "promote", f"{MODEL}@2"), ("dave", "rollback", f"{MODEL}@1"), ("erin", "rollback", f"{MODEL}@2"),
    ]
    assert out[4].endswith("false alarms")

    assert main(["baseline", "audit", "--store", store, "--json", "--model-id", MODEL]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in entries] == ["build", "promote", "build", "promote", "rollback", "rollback"]
    assert entries[3]["previous"] == "1" and entries[0]["records"] == 1500
    assert main(["baseline", "audit", "--store", store, "--json", "--model-id", "nobody"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_the_config_store_is_used_without_store(built, tmp_path, capsys):
    config = tmp_path / "janus.toml"
    config.write_text(f'store = "{built["store"]}"\n')
    assert main(["--config", str(config), "baseline", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["versions"] == ["1", "2"]


# ---- errors: exit 2 and one line ------------------------------------------------------------------


def _tamper_meta(store: str) -> None:
    path = f"{store}/{model_dirname(MODEL)}/1/{META_FILE}"
    with open(path, "ab") as fh:
        fh.write(b" ")


def _tamper_audit(store: str) -> None:
    path = f"{store}/{AUDIT_FILE}"
    with open(path, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    del lines[1]
    with open(path, "wb") as fh:
        fh.write(b"".join(lines))


ERRORS = [
    (["show", "ghost"], None, "no active baseline for model 'ghost'"),
    (["show", f"{MODEL}@9"], None, f"{MODEL}@9: no such baseline"),
    (["show", f"{MODEL}@latest"], None, "versions are whole numbers"),
    (["diff", f"{MODEL}@1", f"{MODEL}@7"], None, f"{MODEL}@7: no such baseline"),
    (["promote", MODEL, "5", "--reason", "r"], None, f"{MODEL}@5: no such baseline"),
    (["promote", MODEL, "../1", "--reason", "r"], None, "versions are whole numbers"),
    (["rollback", "ghost", "--reason", "r"], None, "ghost: no earlier active version"),
    (["show", MODEL], _tamper_meta, "SHA-256 does not match the manifest"),
    (["promote", MODEL, "1", "--reason", "r"], _tamper_meta, "refusing a tampered baseline"),
    (["audit"], _tamper_audit, "audit chain broken"),
    (["build", "--input", "{root}/absent.jsonl", "--reason", "r"], None,
     "absent.jsonl: no such file or folder; check the path"),
    (["build", "--input", "{root}/prod.jsonl", "--reason", "r"], None, "prod.jsonl: no evaluation records"),
    (["build", "--input", "{root}/first.jsonl", "--reason", "r", "--model-id", "ghost"], None,
     "no evaluation records of model 'ghost' to build a baseline from: read 1,703 records, 0 evaluation and 0 "
     "production of model 'ghost', rejected 3 (empty 1, not_json 1, missing_field 1); first: "),
    (["build", "--input", "{root}/first.jsonl", "--reason", "r", "--model-id", "ghost"], None,
     "writes every one with its reason. Models in the input: triage-agent"),
]


@pytest.mark.parametrize(("argv", "tamper", "fragment"), ERRORS, ids=[" ".join(e[0][:2]) for e in ERRORS])
def test_errors_exit_2_with_one_line(built, store, capsys, argv, tamper, fragment):
    root = built["root"]
    if tamper:
        tamper(store)
    active_before = (built["store"] / model_dirname(MODEL) / "ACTIVE").read_text()
    rc = main(["baseline", *[a.format(root=root) for a in argv], "--store", store])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert err.startswith("janus: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert (built["store"] / model_dirname(MODEL) / "ACTIVE").read_text() == active_before


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["baseline", "build", "--input", "x.jsonl"])  # --reason is required
    assert exc.value.code == 2
    assert "--reason" in capsys.readouterr().err


def test_build_and_show_warn_when_many_evaluation_inputs_are_novel(built, tmp_path):
    """With 5% of evaluation inputs novel (features.novelty_rate = 0.05), behaviour on a twentieth
    of the traffic would never be tested: build and show both say so; the default (0.1%) does not."""
    store = tmp_path / "s"
    config = tmp_path / "janus.toml"
    config.write_text("[features]\nnovelty_rate = 0.05\n")
    rc, out, err = _run(["--config", str(config), "baseline", "build", "--input", str(built["second"]),
                         "--store", str(store), "--reason", "r", "--activate"])
    assert (rc, err) == (0, "")
    warning = [line for line in out.splitlines() if "evaluation inputs are novel or unsettled" in line]
    assert len(warning) == 1 and float(warning[0].split("%")[0].removeprefix("warning: ")) >= 5.0
    assert "never tested" in warning[0]
    rc, out, _ = _run(["--config", str(config), "baseline", "show", MODEL, "--store", str(store)])
    assert rc == 0 and "evaluation inputs are novel or unsettled" in out
    assert "novel or unsettled" not in built["a"][1]  # the default rate, on the same agent's logs
