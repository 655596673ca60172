"""One busy model across cores and hosts (docs/runbooks.md, "Scale-out of one busy model").

* ``--role all``: a model whose records arrive on several partitions is reported (log line,
  ``janus_model_partitions``), since each partition's Monitor spends the model's whole ARL.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from test_stream_plumbing import _produce, _Runner, _service, drift_data  # noqa: F401


@pytest.mark.kafka
def test_a_model_on_two_partitions_is_reported(kafka_bootstrap, unique_topic, unique_name, tmp_path, drift_data,
                                               caplog):  # noqa: F811
    from detector.cli.serve_cmd import wire_metrics
    from detector.metrics import JanusMetrics

    store, values, model_id = drift_data
    topic = unique_topic("spread", partitions=3)
    _produce(kafka_bootstrap, topic, values[:600], partition_of=lambda i: i % 2)  # not keyed by model
    service = _service(store, kafka_bootstrap, topic, unique_name("g"), tmp_path / "ckpt")
    metrics = JanusMetrics()
    wire_metrics(service, metrics)
    with caplog.at_level(logging.WARNING, logger="janus.stream"):
        runner = _Runner(service)
        runner.wait_for(lambda: service.stats.records >= 600, what="all records")
        _produce(kafka_bootstrap, topic, values[600:800], partition_of=lambda i: i % 2)
        runner.wait_for(lambda: service.stats.records >= 800, what="more records")
        assert service.model_partitions() == {model_id: [(topic, 0), (topic, 1)]}
        scrape = generate_latest(metrics.registry).decode()
        runner.stop()
    assert f'janus_model_partitions{{model_id="{model_id}"}} 2.0' in scrape
    warnings = [r.getMessage() for r in caplog.records if "is seen on" in r.getMessage()]
    assert warnings == [f"model {model_id} is seen on 2 partitions of this instance ({topic}[0], {topic}[1]): each "
                        f"has a Monitor of its own that spends the whole ARL budget, so it gets up to 2 times the "
                        f"false alarms its ARL allows, and evidence split 2 ways. Have producers key its records by "
                        f"model_id, or run janus serve --role featurise / --role detect "
                        f"(docs/runbooks.md#janusmodelonmanypartitions)"], "once, not per batch"
