"""Configuration: defaults with no file, TOML overrides, and errors that name the dotted key."""

from __future__ import annotations

import json

import orjson
import pytest

from detector.cli import main
from detector.config import JanusConfig, load_config, parse_config
from detector.errors import JanusError


def _json_defaults() -> dict:
    return orjson.loads(orjson.dumps(JanusConfig().to_dict()))


def test_defaults_work_with_no_file():
    cfg = load_config(None)
    assert cfg == JanusConfig()
    assert cfg.detection.arl == 1_000_000.0
    assert cfg.limits.max_record_bytes == 1_048_576
    assert cfg.store == "baselines"
    assert parse_config({}) == JanusConfig()


def test_config_show_prints_the_defaults_as_json(capsys):
    assert main(["config", "show"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    shown = json.loads(out)
    assert shown == _json_defaults()
    assert shown["detection"]["arl"] == 1_000_000.0
    assert shown["limits"]["max_depth"] == 8


def test_a_toml_file_overrides_only_what_it_names(tmp_path, capsys):
    path = tmp_path / "janus.toml"
    path.write_text(
        'store = "/srv/janus/baselines"\n'
        "[detection]\narl = 5000\ntilts = [1.5, 3]\n"
        "[detection.model_arl]\ntriage-agent = 20000\n"
        "[limits]\nmax_text_chars = 2000\n"
        '[kafka]\ntopics = ["a", "b"]\n'
        '[kafka.traffic_by_topic]\n"prod.decisions" = "production"\n'
    )
    cfg = load_config(path)
    assert cfg.store == "/srv/janus/baselines"
    assert cfg.detection.arl == 5000.0 and isinstance(cfg.detection.arl, float)
    assert cfg.detection.tilts == [1.5, 3.0]
    assert cfg.detection.arl_for("triage-agent") == 20000.0
    assert cfg.detection.arl_for("other") == 5000.0
    assert cfg.limits.max_text_chars == 2000
    assert cfg.limits.max_depth == JanusConfig().limits.max_depth
    assert cfg.kafka.topics == ["a", "b"]
    assert cfg.kafka.traffic_by_topic == {"prod.decisions": "production"}
    assert cfg.features == JanusConfig().features

    assert main(["--config", str(path), "config", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    expected = _json_defaults()
    expected["store"] = "/srv/janus/baselines"
    expected["detection"].update(arl=5000.0, tilts=[1.5, 3.0], model_arl={"triage-agent": 20000.0})
    expected["limits"]["max_text_chars"] = 2000
    expected["kafka"].update(topics=["a", "b"], traffic_by_topic={"prod.decisions": "production"})
    assert shown == expected


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"nope": 1}, "unknown configuration key: nope"),
        ({"detection": {"arll": 5}}, "unknown configuration key in [detection]: detection.arll"),
        ({"limits": {"max_bytes": 5, "zeta": 1}}, "limits.max_bytes, limits.zeta"),
    ],
)
def test_unknown_keys_are_errors_naming_the_dotted_key(data, fragment):
    with pytest.raises(JanusError) as exc:
        parse_config(data)
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"detection": {"arl": "x"}}, "detection.arl: expected float"),
        ({"detection": {"arl": -3}}, "detection.arl: must be > 1, got -3"),
        ({"detection": {"arl": 1}}, "detection.arl: must be > 1"),
        ({"detection": {"arl": True}}, "detection.arl: expected float"),
        ({"detection": {"data_tolerance": 0.7}}, "detection.data_tolerance: must be in [0, 0.5)"),
        ({"detection": {"resolve_fraction": 0}}, "detection.resolve_fraction: must be in (0, 1)"),
        ({"detection": {"prior": -1}}, "detection.prior: must be > 0"),
        ({"detection": {"tilts": []}}, "detection.tilts: must be a non-empty list of factors > 1"),
        ({"detection": {"tilts": [2, 0.5]}}, "detection.tilts: must be a non-empty list"),
        ({"detection": {"tilts": [2, "x"]}}, "detection.tilts[1]: expected float"),
        ({"detection": {"tilts": 2}}, "detection.tilts: expected list"),
        ({"detection": {"model_arl": {"m": "x"}}}, "detection.model_arl.m: expected float"),
        ({"detection": {"model_arl": {"m": 0.5}}}, "detection.model_arl: must be a table of model_id"),
        ({"detection": {"shares": [0.1, 1.5]}}, "detection.shares: must be a list of fractions"),
        ({"detection": 5}, "detection: expected a table"),
        ({"limits": {"max_depth": 0}}, "limits.max_depth: must be > 0"),
        ({"limits": {"max_depth": 1.5}}, "limits.max_depth: expected int"),
        ({"limits": {"max_depth": False}}, "limits.max_depth: expected int"),
        ({"features": {"numeric_bins": 1}}, "features.numeric_bins: must be in [2, 64]"),
        ({"features": {"max_codes": 1000}}, "features.max_codes: must be in [4, 256]"),
        ({"features": {"attributes": "tier"}}, "features.attributes: expected list"),
        ({"features": {"attributes": ["tier", 3]}}, "features.attributes[1]: expected str"),
        ({"features": {"embedder": "word2vec:x"}}, "features.embedder: must be \"hashing\", \"model2vec:"),
        ({"features": {"hashing_features": 1 << 20}}, "features.hashing_features: must be in [16, 65536]"),
        ({"features": {"phrase_variants": [["nobody"]]}}, "features.phrase_variants: must be a list of groups"),
        ({"features": {"phrase_variants": [["nobody", " "]]}}, "features.phrase_variants: must be a list of groups"),
        ({"features": {"phrase_max_chars": 0}}, "features.phrase_max_chars: must be > 0"),
        ({"kafka": {"traffic_by_topic": {"t": "staging"}}}, 'kafka.traffic_by_topic: must be a table of topic'),
        ({"kafka": {"topics": "janus.decisions"}}, "kafka.topics: expected list"),
        ({"checkpoint": {"every_seconds": 0}}, "checkpoint.every_seconds: must be > 0"),
        ({"checkpoint": {"backend": "s3"}}, 'checkpoint.backend: must be "kafka" or "directory"'),
        ({"checkpoint": {"max_message_bytes": 1000}}, "checkpoint.max_message_bytes: must be >= 16384"),
        ({"checkpoint": {"replication_factor": 0}}, "checkpoint.replication_factor: must be -1"),
        ({"split": {"block_records": 0}}, "split.block_records: must be > 0"),
        ({"split": {"merge_wait_seconds": -1.0}}, "split.merge_wait_seconds: must be > 0"),
        ({"metrics": {"max_models": -1}}, "metrics.max_models: must be > 0"),
        ({"store": 5}, "store: expected str"),
    ],
)
def test_wrong_types_and_ranges_name_the_dotted_key(data, key):
    with pytest.raises(JanusError) as exc:
        parse_config(data)
    assert str(exc.value).startswith(key), str(exc.value)


def test_a_file_error_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "janus.toml"
    path.write_text("[detection]\narl = -3\n")
    with pytest.raises(JanusError, match=r"janus\.toml: detection\.arl: must be > 1, got -3"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(JanusError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: configuration file not found"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"[detection\narl = 5\n", "not valid TOML"),
        (b"arl = \n", "not valid TOML"),
        (b"[detection]\narl = 5\narl = 6\n", "not valid TOML"),
        (b'store = "\xff\xfe"\n', "not valid TOML"),  # not UTF-8
    ],
)
def test_invalid_toml_is_a_clear_error(tmp_path, content, fragment):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(JanusError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: {fragment}")


def test_a_folder_instead_of_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(JanusError, match="cannot read configuration file"):
        load_config(tmp_path)


# ---- the command line: exit 2 and one line "janus: error: ..." ------------------------------------


def _bad_file(tmp_path, kind: str) -> str:
    path = tmp_path / "janus.toml"
    content = {
        "invalid": b"[detection\n",
        "unknown": b"[detection]\nfoo = 1\n",
        "nested_unknown": b"[kafka]\nbootstrap = 'x'\n",
        "type": b"[limits]\nmax_depth = 'deep'\n",
        "range": b"[detection]\narl = 0.5\n",
        "not_utf8": b"store = '\xff'\n",
    }.get(kind)
    if kind == "missing":
        return str(tmp_path / "absent.toml")
    if kind == "folder":
        return str(tmp_path)
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "configuration file not found"),
        ("folder", "cannot read configuration file"),
        ("invalid", "not valid TOML"),
        ("not_utf8", "not valid TOML"),
        ("unknown", "unknown configuration key in [detection]: detection.foo"),
        ("nested_unknown", "unknown configuration key in [kafka]: kafka.bootstrap"),
        ("type", "limits.max_depth: expected int"),
        ("range", "detection.arl: must be > 1"),
    ],
)
def test_cli_config_errors_exit_2_with_one_line(tmp_path, capsys, kind, fragment):
    path = _bad_file(tmp_path, kind)
    assert main(["--config", path, "config", "show"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith(f"janus: error: {path}: ")
    assert fragment in err
