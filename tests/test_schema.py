"""`janus schema`: the JSON Schema of decision records says what the parser accepts.

Checked both ways on records the schema must accept (the simulator's and the realistic
generator's, each traffic) and on the hostile corpus: every JSON object the parser accepts is
schema-valid, and every one it rejects for a reason a schema can express is schema-invalid."""

from __future__ import annotations

import json

import jsonschema
import orjson

from clirun import run_cli
from detector.config import LimitsConfig
from detector.realistic import DEVOPS, generate
from detector.records import parse_values
from detector.schema import decision_schema
from detector.simulate import simulate
from hostile import corpus

# Rejections a JSON Schema cannot express: bytes and syntax, timestamps that must parse, depth
# limits (orjson's, and max_depth of tool arguments), retries, and the topic's traffic.
BEYOND_A_SCHEMA = {"empty", "not_utf8", "not_json", "not_object", "too_deep", "duplicate", "bad_timestamp"}


def test_janus_schema_prints_the_schema_with_the_configured_limits(tmp_path):
    config = tmp_path / "janus.toml"
    config.write_text("[limits]\nmax_tool_calls = 5\n")
    rc, out, err = run_cli(["--config", str(config), "schema"])
    assert rc == 0, err
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["output"]["properties"]["tool_calls"]["maxItems"] == 5


def test_generated_records_are_schema_valid():
    validator = jsonschema.Draft202012Validator(decision_schema())
    logs = simulate("compliance-gap", 1, n_evaluation=300, n_production=300, change_at=100)
    realistic = generate(DEVOPS, seed=1, n_evaluation=300, n_production=300)
    for record in [*logs.evaluation, *logs.production, *realistic.evaluation, *realistic.production]:
        validator.validate(record)


def test_the_schema_and_the_parser_agree_on_the_hostile_corpus():
    limits = LimitsConfig()
    validator = jsonschema.Draft202012Validator(decision_schema(limits))
    valid = simulate("no-change", 2, n_evaluation=10, n_production=200, change_at=0).production
    disagree = []
    for item in corpus(3000, seed=11, valid=valid):
        if item.value is None:
            continue
        try:
            obj = orjson.loads(item.value)
        except orjson.JSONDecodeError:
            continue
        # A record without traffic is valid on a topic that implies it: parse it as from such a topic.
        hint = "production" if isinstance(obj, dict) and obj.get("traffic") is None else None
        parsed = parse_values([item.value], limits=limits, traffic=hint)
        if not isinstance(obj, dict) or (parsed.rejections and parsed.rejections[0].reason in BEYOND_A_SCHEMA):
            continue
        accepted = bool(parsed.decisions)
        if accepted != validator.is_valid(obj):
            disagree.append((item.kind, parsed.rejections[0].message if parsed.rejections else "accepted",
                             [e.message[:80] for e in validator.iter_errors(obj)][:2]))
    assert not disagree, disagree[:10]
