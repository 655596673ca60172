"""A support agent's logs as OTLP/JSON GenAI spans, without a refusal label, evaluation and
production told apart by ``deployment.environment.name``: the baseline reads refusals from the
output text, and a refusal drop on one request kind (10% of traffic, 0.92 → 0.50) is found."""

from __future__ import annotations

import orjson

from detector.baseline.build import build_baseline
from detector.formats import make_format
from detector.formats.otlp_export import export_requests
from detector.monitor import Monitor
from detector.realistic import SUPPORT, Change, generate
from detector.records import parse_values

CHANGE_AT = 3000


def test_a_refusal_drop_in_otlp_spans_without_labels_is_found_and_nothing_before_it():
    logs = generate(SUPPORT, seed=5, n_evaluation=10_000, n_production=6_000,
                    changes=[Change(at=CHANGE_AT, kind="refund_override", refusal=0.5)])
    lines = [orjson.dumps(request) for request in export_requests(logs.evaluation + logs.production)]
    assert b'"refused"' not in b"".join(lines)
    parsed = parse_values(lines, fmt=make_format("otlp-json", segment_attribute="app.channel"))
    assert not parsed.rejections and len(parsed.decisions) == 16_000
    evaluation = [d for d in parsed.decisions if d.traffic == "evaluation"]
    production = [d for d in parsed.decisions if d.traffic == "production"]
    assert {d.segment for d in production} == {"web", "email"}

    baseline = build_baseline(evaluation)
    assert baseline.featurizer.refusal_source == "text"
    monitor = Monitor(baseline, arl=1e6)
    fired = []
    for i in range(0, len(production), 500):
        fired += [e for e in monitor.update(production[i:i + 500]) if e.status == "firing"]
    behaviour = [e for e in fired if e.kind == "behaviour"]
    first_index = len(evaluation) + CHANGE_AT  # record_index counts decisions over the whole export
    assert behaviour and all(e.record_index >= first_index for e in behaviour), [e.message for e in behaviour]
    refused = next(e for e in behaviour if e.feature == "refused")
    assert refused.record_index - first_index < 1500
    assert "recognised in the output" in refused.message and "refund" in refused.message
