"""The versioned baseline store: round trip, versions, ACTIVE, rollback, tamper and path safety, audit."""

from __future__ import annotations

import copy
import hashlib
import multiprocessing
import os
import random
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from detector.baseline import BaselineStore, build_baseline, build_baselines
from detector.baseline.store import (ACTIVE_FILE, ARRAYS_FILE, AUDIT_FILE, FORMAT, MANIFEST_FILE, META_FILE,
                                    model_dirname)
from detector.config import parse_config
from detector.errors import JanusError
from detector.records import parse_values
from detector.simulate import simulate

MODEL = "triage-agent"


@pytest.fixture(scope="module")
def data():
    logs = simulate("no-change", 11, n_evaluation=3000, n_production=500, change_at=100)
    evaluation = parse_values([orjson.dumps(r) for r in logs.evaluation])
    production = parse_values([orjson.dumps(r) for r in logs.production])
    assert not evaluation.rejections and not production.rejections
    # Production records are mixed in: the builder must skip and count them.
    result = build_baselines(evaluation.decisions + production.decisions, reason="test", actor="tester")
    return evaluation.decisions, production.decisions, result


# Small arrays keep the many-saves tests fast; the store treats every baseline alike.
SMALL = parse_config({"features": {"hashing_features": 256, "embedding_dim": 4, "input_clusters": 4,
                                   "output_clusters": 4, "reasoning_clusters": 4, "reservoir_size": 20}})


@pytest.fixture
def full(data):
    return copy.copy(data[2].baselines[MODEL])


@pytest.fixture(scope="module")
def _small(data):
    return build_baseline(data[0][:300], SMALL, reason="small", actor="tester")


@pytest.fixture
def baseline(_small):
    return copy.copy(_small)


@pytest.fixture
def store(tmp_path):
    return BaselineStore(tmp_path / "store")


def _save(store, baseline, n=1, activate=False):
    return [store.save(baseline, actor="tester", reason=f"save {i}", activate=activate) for i in range(n)]


# ---- building ------------------------------------------------------------------------------------


def test_build_skips_and_counts_production(data):
    evaluation, production, result = data
    assert result.skipped_production == len(production) == 500
    assert result.per_model_records == {MODEL: 3000}
    b = result.baselines[MODEL]
    assert (b.n_records, b.traffic, b.model_id) == (3000, "evaluation", MODEL)
    assert b.time_range == (min(d.timestamp for d in evaluation), max(d.timestamp for d in evaluation))
    assert all(int(c.sum()) == 3000 for c in b.counts)  # every record counted once per feature


@pytest.mark.parametrize("reason", ["", "   "])
def test_allow_production_without_a_reason_is_refused(data, reason):
    evaluation, production, _ = data
    with pytest.raises(JanusError, match="--reason"):
        build_baselines(evaluation[:50] + production[:50], allow_production=True, reason=reason)


def test_allow_production_with_a_reason_learns_from_both(data):
    evaluation, production, _ = data
    result = build_baselines(evaluation[:150] + production[:50], SMALL, allow_production=True, reason="bootstrap")
    b = result.baselines[MODEL]
    assert (result.skipped_production, b.n_records, b.traffic) == (0, 200, "evaluation+production")


def test_build_from_nothing_is_refused(data):
    with pytest.raises(JanusError):
        build_baseline([])
    assert build_baselines(data[1]).baselines == {}  # production only: nothing to build
    assert build_baselines(data[0], model_id="another-model").baselines == {}


# ---- save / load ---------------------------------------------------------------------------------


def test_round_trip_keeps_counts_and_featurizer_output(store, full, data):
    baseline = full
    (version,) = _save(store, baseline)
    loaded = store.load(MODEL, version)
    assert (loaded.model_id, loaded.version, loaded.n_records) == (MODEL, "1", baseline.n_records)
    assert loaded.time_range == tuple(baseline.time_range)
    assert loaded.model_versions == baseline.model_versions
    assert (loaded.actor, loaded.reason, loaded.traffic) == ("tester", "save 0", "evaluation")
    assert len(loaded.counts) == len(baseline.counts)
    for a, b in zip(loaded.counts, baseline.counts):
        assert a.dtype == np.int64 and np.array_equal(a, b)
    assert loaded.reservoir == baseline.reservoir
    assert np.array_equal(loaded.reservoir_codes, baseline.reservoir_codes)
    assert [s.name for s in loaded.specs] == [s.name for s in baseline.specs]
    assert [s.labels for s in loaded.specs] == [s.labels for s in baseline.specs]
    evaluation, production, _ = data
    for sample in (evaluation[:400], production):
        m1 = baseline.featurizer.transform(sample)
        m2 = loaded.featurizer.transform(sample)
        assert np.array_equal(m1.codes, m2.codes)
        assert np.array_equal(m1.cells, m2.cells)
        assert np.array_equal(m1.segments, m2.segments)
    # Stored as JSON + npz, never pickle.
    folder = store.root / model_dirname(MODEL) / version
    assert sorted(p.name for p in folder.iterdir()) == sorted([META_FILE, ARRAYS_FILE, MANIFEST_FILE])
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_versions_increment_and_active_switches_on_promote(store, full):
    baseline = full
    assert store.versions(MODEL) == [] and store.active_version(MODEL) is None
    assert store.load_active(MODEL) is None
    assert _save(store, baseline, 3) == ["1", "2", "3"]
    assert store.versions(MODEL) == ["1", "2", "3"]
    assert store.models() == [MODEL]
    assert store.active_version(MODEL) is None
    with pytest.raises(JanusError, match="no active baseline"):
        store.resolve(MODEL)
    assert store.promote(MODEL, "2", actor="a", reason="go") is None
    assert store.active_version(MODEL) == "2"
    assert (store.root / model_dirname(MODEL) / ACTIVE_FILE).read_text() == "2\n"
    assert store.resolve(MODEL) == (MODEL, "2")
    assert store.resolve(f"{MODEL}@3") == (MODEL, "3")
    assert store.promote(MODEL, "3", actor="a", reason="go") == "2"
    assert store.load_active(MODEL).version == "3"
    assert store.load(MODEL).version == "3"
    assert _save(store, baseline, activate=True) == ["4"]
    assert store.active_version(MODEL) == "4"


def test_rollback_returns_to_the_previous_version(store, baseline):
    _save(store, baseline, 3)
    with pytest.raises(JanusError, match="no earlier active version"):
        store.rollback(MODEL, actor="a", reason="r")
    for v in ("1", "2", "3"):
        store.promote(MODEL, v, actor="a", reason="r")
    assert store.rollback(MODEL, actor="a", reason="bad v3") == "2"
    assert store.active_version(MODEL) == "2"
    assert store.rollback(MODEL, actor="a", reason="explicit", to="1") == "1"
    assert store.active_version(MODEL) == "1"
    actions = [(e["action"], e["version"], e.get("previous")) for e in store.audit(MODEL)][3:]
    assert actions == [("promote", "1", None), ("promote", "2", "1"), ("promote", "3", "2"),
                       ("rollback", "2", "3"), ("rollback", "1", "2")]


@pytest.mark.parametrize("version", ["9", "abc", "../1", "-1", ""])
def test_promoting_a_missing_or_malformed_version_is_refused(store, baseline, version):
    _save(store, baseline, activate=True)
    with pytest.raises(JanusError):
        store.promote(MODEL, version, actor="a", reason="r")
    assert store.active_version(MODEL) == "1"


# ---- tamper refusal --------------------------------------------------------------------------------


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    data[i] = data[i] ^ 0x01
    path.write_bytes(bytes(data))


TAMPER = {
    "edit baseline.json": (META_FILE, _flip_byte, "SHA-256 does not match"),
    "truncate arrays.npz": (ARRAYS_FILE, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                            "SHA-256 does not match"),
    "delete baseline.json": (META_FILE, Path.unlink, "listed in the manifest but missing"),
    "delete arrays.npz": (ARRAYS_FILE, Path.unlink, "listed in the manifest but missing"),
    "delete manifest": (MANIFEST_FILE, Path.unlink, "manifest missing"),
    "extra file": ("extra.npz", lambda p: p.write_bytes(b"PK\x03\x04"), "file not in the manifest"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampered_baselines_are_refused_naming_the_file(store, baseline, case):
    _save(store, baseline, 2)
    store.promote(MODEL, "1", actor="a", reason="r")
    name, tamper, fragment = TAMPER[case]
    path = store.root / model_dirname(MODEL) / "2" / name
    tamper(path)
    with pytest.raises(JanusError) as exc:
        store.load(MODEL, "2")
    assert str(path) in str(exc.value) and fragment in str(exc.value)
    with pytest.raises(JanusError, match=str(path).replace(".", r"\.")):
        store.promote(MODEL, "2", actor="a", reason="r")
    assert store.active_version(MODEL) == "1"
    store.load(MODEL, "1")  # the untouched version still loads


def test_a_baseline_of_an_older_format_is_refused_with_rebuild_advice(store, baseline):
    """Format 2 stored the old text projection: its codes would mean something else now."""
    (version,) = _save(store, baseline)
    folder = store.root / model_dirname(MODEL) / version
    meta = orjson.loads((folder / META_FILE).read_bytes())
    assert meta["format"] == FORMAT == 3
    meta["format"] = 2
    (folder / META_FILE).write_bytes(orjson.dumps(meta))
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in (META_FILE, ARRAYS_FILE)]
    (folder / MANIFEST_FILE).write_text("".join(lines))  # a genuine old baseline, not a tampered one
    with pytest.raises(JanusError, match=r"baseline format 2, this Janus reads format 3: rebuild it"):
        store.load(MODEL, version)


# ---- path safety -----------------------------------------------------------------------------------

HOSTILE_IDS = ["../../etc", "/abs", "a/b", "..", ".", "", "a\\b", "../", "./x", ".hidden", "~root",
               "模型/../../x", "e\u0301", "\u00e9", "nul\x00byte", "x" * 300, AUDIT_FILE, "ACTIVE", "1", ".lock"]


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_hostile_model_ids_stay_inside_the_store(tmp_path, baseline):
    root = tmp_path / "deep" / "store"
    store = BaselineStore(root)
    outside_before = _snapshot(tmp_path)
    names = set()
    for model_id in HOSTILE_IDS:
        name = model_dirname(model_id)
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert name not in ("", ".", "..", AUDIT_FILE) and not name.startswith(".")
        names.add(name)
        b = copy.copy(baseline)
        b.model_id = model_id
        version = store.save(b, actor="a", reason="r", activate=True)
        assert version == "1"
        assert store.load(model_id).model_id == model_id
        store.promote(model_id, "1", actor="a", reason="again")
    assert len(names) == len(HOSTILE_IDS)  # distinct ids never share a folder
    outside_after = _snapshot(tmp_path)
    created = outside_after - outside_before
    assert all(p == "deep" or p.startswith(os.path.join("deep", "store")) for p in created), created
    assert not (tmp_path / "etc").exists() and not Path("/abs").exists()
    assert sorted(store.models()) == sorted(HOSTILE_IDS)
    assert store.verify_audit() == 3 * len(HOSTILE_IDS)


# ---- symbolic links ---------------------------------------------------------------------------------


def test_symlinked_version_folder_is_refused(store, baseline, tmp_path):
    _save(store, baseline, activate=True)
    model_dir = store.root / model_dirname(MODEL)
    outside = tmp_path / "outside"
    shutil.copytree(model_dir / "1", outside)
    (model_dir / "2").symlink_to(outside, target_is_directory=True)
    with pytest.raises(JanusError, match="symbolic links"):
        store.load(MODEL, "2")
    with pytest.raises(JanusError, match="symbolic links"):
        store.promote(MODEL, "2", actor="a", reason="r")
    assert store.active_version(MODEL) == "1"


def test_symlinked_active_file_is_refused(store, baseline, tmp_path):
    _save(store, baseline, activate=True)
    active = store.root / model_dirname(MODEL) / ACTIVE_FILE
    target = tmp_path / "elsewhere"
    target.write_text("1\n")
    active.unlink()
    active.symlink_to(target)
    for call in (lambda: store.active_version(MODEL), lambda: store.load_active(MODEL), lambda: store.load(MODEL)):
        with pytest.raises(JanusError, match="symbolic links"):
            call()


@pytest.mark.parametrize("name", [META_FILE, ARRAYS_FILE, MANIFEST_FILE])
def test_symlinked_file_is_refused_even_with_matching_content(store, baseline, tmp_path, name):
    _save(store, baseline)
    path = store.root / model_dirname(MODEL) / "1" / name
    copy_ = tmp_path / f"copy-{name}"
    shutil.copyfile(path, copy_)
    path.unlink()
    path.symlink_to(copy_)
    with pytest.raises(JanusError) as exc:
        store.load(MODEL, "1")
    assert name in str(exc.value)


def test_symlinked_model_folder_is_refused_and_nothing_is_written_through_it(store, baseline, tmp_path):
    store.root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / model_dirname(MODEL)).symlink_to(outside, target_is_directory=True)
    with pytest.raises(JanusError, match="symbolic links"):
        store.save(baseline, actor="a", reason="r")
    with pytest.raises(JanusError, match="symbolic links"):
        store.promote(MODEL, "1", actor="a", reason="r")
    assert list(outside.iterdir()) == []


# ---- audit log -------------------------------------------------------------------------------------


def _history(store, baseline):
    _save(store, baseline, 2)
    store.promote(MODEL, "1", actor="alice", reason="first")
    store.promote(MODEL, "2", actor="bob", reason="second")
    store.rollback(MODEL, actor="carol", reason="regression")
    return store.root / AUDIT_FILE


def test_audit_log_is_append_only_and_says_who_when_why(store, baseline):
    _save(store, baseline)
    path = store.root / AUDIT_FILE
    before = path.read_bytes()
    store.promote(MODEL, "1", actor="alice", reason="ship it")
    after = path.read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    entries = store.audit(MODEL)
    assert [e["action"] for e in entries] == ["build", "promote"]
    build, promote = entries
    assert (build["actor"], build["reason"], build["records"], build["traffic"]) == ("tester", "save 0", 300,
                                                                                    "evaluation")
    assert (promote["actor"], promote["reason"], promote["version"]) == ("alice", "ship it", "1")
    assert all(e["time"] and e["model_id"] == MODEL for e in entries)
    assert store.verify_audit() == 2
    assert store.audit("someone-else") == []


@pytest.mark.parametrize(
    ("case", "line"),
    [("edit reason", 2), ("delete middle line", 2), ("delete first line", 1), ("truncate a line", 2)],
)
def test_verify_audit_detects_an_edited_or_deleted_line(store, baseline, case, line):
    path = _history(store, baseline)
    assert store.verify_audit() == 5
    lines = path.read_bytes().splitlines(keepends=True)
    if case == "edit reason":
        lines[1] = lines[1].replace(b'"save 1"', b'"save X"')
        broken_at = 3
    elif case == "delete middle line":
        del lines[1]
        broken_at = 2
    elif case == "delete first line":
        del lines[0]
        broken_at = 1
    else:
        lines[1] = lines[1][:20] + b"\n"
        broken_at = 2
    path.write_bytes(b"".join(lines))
    with pytest.raises(JanusError) as exc:
        store.verify_audit()
    assert f"{path}:{broken_at}:" in str(exc.value)


# ---- concurrent promote / rollback ----------------------------------------------------------------


def _promoter(root: str, seed: int, n: int) -> None:
    store = BaselineStore(root)
    rng = random.Random(seed)
    for _ in range(n):
        store.promote(MODEL, rng.choice(["1", "2", "3"]), actor=f"p{seed}", reason="race")


def _roller(root: str, n: int) -> None:
    store = BaselineStore(root)
    for _ in range(n):
        try:
            store.rollback(MODEL, actor="roller", reason="race")
        except JanusError as exc:  # rollbacks walk back a stack; running out is a clean refusal
            assert "no earlier active version" in str(exc)


def test_concurrent_promote_and_rollback_never_break_active(store, baseline):
    _save(store, baseline, 3)
    store.promote(MODEL, "1", actor="a", reason="r")
    store.promote(MODEL, "2", actor="a", reason="r")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_promoter, args=(str(store.root), 7, 50)),
             ctx.Process(target=_roller, args=(str(store.root), 50))]
    for p in procs:
        p.start()
    seen = set()
    active = store.root / model_dirname(MODEL) / ACTIVE_FILE
    while any(p.is_alive() for p in procs):
        text = active.read_text()  # never missing, never empty, never a partial write
        assert text in ("1\n", "2\n", "3\n"), repr(text)
        seen.add(text)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert store.active_version(MODEL) in store.versions(MODEL)
    assert store.load_active(MODEL).version == store.active_version(MODEL)
    rollbacks = sum(e["action"] == "rollback" for e in store.audit(MODEL))
    assert 0 < rollbacks <= 50
    assert store.verify_audit() == 3 + 2 + 50 + rollbacks
    actions = [e["action"] for e in store.audit(MODEL)]
    assert actions.count("promote") == 52 and actions.count("rollback") == rollbacks
    leftovers = [p.name for p in (store.root / model_dirname(MODEL)).iterdir() if p.name.startswith(".") and
                 p.name != ".lock"]
    assert leftovers == []  # no temporary files left behind


def test_repeated_rollbacks_walk_back_through_promotions(store, baseline):
    _save(store, baseline, 3)
    for version in ("1", "2", "3"):
        store.promote(MODEL, version, actor="a", reason="r")
    assert store.rollback(MODEL, actor="a", reason="r") == "2"
    assert store.rollback(MODEL, actor="a", reason="r") == "1"
    with pytest.raises(JanusError, match="no earlier active version"):
        store.rollback(MODEL, actor="a", reason="r")


def test_editing_the_last_audit_entry_is_detected(store, baseline):
    _save(store, baseline, 1)
    store.promote(MODEL, "1", actor="a", reason="r")
    path = store.root / "audit.jsonl"
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n")  # drop the newest entry
    with pytest.raises(JanusError, match="newest entry"):
        store.verify_audit()


def test_hashed_folder_names_cannot_be_forged_by_another_id():
    from detector.baseline.store import model_dirname

    hashed = model_dirname("a/b")
    assert model_dirname(hashed) != hashed
