"""A support agent's logs as OTLP/JSON GenAI spans, without a refusal label, evaluation and
production told apart by ``deployment.environment.name``, through the CLI a user runs: the
baseline reads refusals from the output text, and a refusal drop on one request kind (10% of
traffic, 0.92 → 0.50) is found; nothing fires before it."""

from __future__ import annotations

import json

import orjson

from clirun import run_cli
from detector.formats.otlp_export import export_requests
from detector.realistic import SUPPORT, Change, generate

N_EVALUATION, CHANGE_AT = 10_000, 3000


def test_otlp_spans_without_labels_build_a_baseline_and_a_refusal_drop_is_found(tmp_path):
    logs = generate(SUPPORT, seed=5, n_evaluation=N_EVALUATION, n_production=6_000,
                    changes=[Change(at=CHANGE_AT, kind="refund_override", refusal=0.5)])
    export = tmp_path / "spans.jsonl"
    export.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in export_requests(logs.evaluation + logs.production)))
    assert b'"refused"' not in export.read_bytes()
    otlp = ["--format", "otlp-json", "--segment-attribute", "app.channel", "--store", str(tmp_path / "store")]

    rc, out, err = run_cli(["baseline", "build", "--input", str(export), *otlp, "--reason", "eval", "--activate"])
    assert rc == 0, err
    assert out.startswith(f"built support-agent@1 from {N_EVALUATION:,} evaluation records")

    alerts = tmp_path / "alerts.jsonl"
    rc, out, err = run_cli(["backtest", "--input", str(export), *otlp, "--alerts-out", str(alerts)])
    assert rc == 0, err
    events = [json.loads(line) for line in alerts.read_text().splitlines()]
    behaviour = [e for e in events if e["kind"] == "behaviour" and e["status"] == "firing"]
    first_index = N_EVALUATION + CHANGE_AT  # record_index counts decisions over the whole export
    assert behaviour and all(e["record_index"] >= first_index for e in behaviour), [e["message"] for e in behaviour]
    refused = next(e for e in behaviour if e["feature"] == "refused")
    assert refused["record_index"] - first_index < 1500
    assert "recognised in the output" in refused["message"] and "refund" in refused["message"]
    assert refused["segment"] in ("web", "email", "(all)")
