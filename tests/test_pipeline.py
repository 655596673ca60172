"""The shared pipeline: de-duplication of producer retries, exact through checkpoints."""

from __future__ import annotations

import orjson

from detector.baseline import BaselineStore
from detector.config import JanusConfig, LimitsConfig
from detector.pipeline import Pipeline


def _values(ids):
    return [orjson.dumps({"decision_id": i, "timestamp": 0, "model_id": "m", "traffic": "production"}) for i in ids]


def test_retried_decisions_count_once_and_are_accounted_for(tmp_path):
    pipeline = Pipeline(BaselineStore(tmp_path))
    values = _values(["a", "b", "a", "c", "b"])
    result = pipeline.process(values)
    assert sum(result.decisions.values()) == 3
    assert [(r.position, r.reason) for r in result.rejections] == [(2, "duplicate"), (4, "duplicate")]
    assert result.rejections[0].raw == values[2] and "'a' of model 'm' already seen" in result.rejections[0].message
    # accepted + rejected = sent, as everywhere else
    assert len(result.accepted) + len(result.rejections) == len(values)


def test_the_window_is_bounded_and_survives_a_checkpoint(tmp_path):
    config = JanusConfig(limits=LimitsConfig(dedup_window=3))
    pipeline = Pipeline(BaselineStore(tmp_path), config)
    pipeline.process(_values(["a", "b", "c", "d"]))  # "a" falls out of the window of 3
    meta, arrays = pipeline.state()
    restored = Pipeline.restore(BaselineStore(tmp_path), config, orjson.loads(orjson.dumps(meta)), arrays)
    result = restored.process(_values(["a", "d"]))
    assert [r.reason for r in result.rejections] == ["duplicate"] and result.rejections[0].position == 1


def test_a_zero_window_turns_it_off(tmp_path):
    pipeline = Pipeline(BaselineStore(tmp_path), JanusConfig(limits=LimitsConfig(dedup_window=0)))
    assert pipeline.process(_values(["a", "a"])).rejections == []


def test_two_models_may_send_the_same_decision_id(tmp_path):
    values = [orjson.dumps({"decision_id": "42", "timestamp": 0, "model_id": m, "traffic": "production"})
              for m in ("a", "b", "a")]
    result = Pipeline(BaselineStore(tmp_path)).process(values)
    assert sum(result.decisions.values()) == 2 and [r.position for r in result.rejections] == [2]
