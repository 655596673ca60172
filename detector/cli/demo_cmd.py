"""`janus demo`: an embedded Kafka broker, simulated agents, live detection, metrics and alerts.

Two simulated SOC triage agents stream decisions into one topic: ``triage-agent`` starts faking
alignment after its first 5,000 production decisions (refusing harmful requests less often than
under evaluation); ``triage-agent-control`` never changes. Their evaluation logs become baselines
(as an analyst would build them), then ``janus serve``'s own stream service consumes the topic.
Every alert is printed as it fires; the control must stay silent.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path

import orjson

from detector.baseline import BaselineStore, build_baselines
from detector.cli.common import alert_line, config_of
from detector.cli.serve_cmd import wire_metrics
from detector.metrics import JanusMetrics
from detector.records import parse_values
from detector.simulate import simulate
from detector.stream.broker import EmbeddedBroker
from detector.stream.kafka_config import kafka_kwargs
from detector.stream.service import StreamService

TOPIC = "janus.decisions"
AGENTS = (("triage-agent", "compliance-gap"), ("triage-agent-control", "no-change"))
CHANGE_AT = 5_000  # triage-agent's production decisions before the gap


def register(p) -> None:
    p.add_argument("--out", default="demo-output", help="folder for the baseline store and checkpoints")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--arl", type=float, default=100_000, help="records between false alarms (default 1e5)")
    p.add_argument("--production", type=int, default=15_000, help="production decisions per agent")
    p.add_argument("--metrics-addr", default="127.0.0.1:0", help="host:port for /metrics (default: a free port)")
    p.add_argument("--keep-running", action="store_true",
                   help="stay up after the stream ends (for Prometheus/Grafana); Ctrl-C to stop")
    p.set_defaults(handler=_run)


def _say(text: str) -> None:
    print(text, flush=True)


def _build_baselines(out: Path, seed: int, n_production: int, config
                     ) -> tuple[BaselineStore, list[bytes], dict[str, int]]:
    """The store with both agents' baselines, their production values interleaved, and each
    production decision's index in its own agent's stream (to say how long after the change an
    alert came)."""
    store = BaselineStore(out / "store")
    evaluation, production, index = [], [], {}
    for i, (model_id, scenario) in enumerate(AGENTS):
        logs = simulate(scenario, seed + i, n_evaluation=12_000, n_production=n_production, change_at=CHANGE_AT,
                        model_id=model_id)
        evaluation += logs.evaluation
        production.append([orjson.dumps(r) for r in logs.production])
        index.update((r["decision_id"], n) for n, r in enumerate(logs.production))
        _say(f"  {model_id:<22} {logs.truth['description']}")
    decisions = parse_values([orjson.dumps(r) for r in evaluation], limits=config.limits).decisions
    built = build_baselines(decisions, config, source="janus demo simulator", actor="janus-demo",
                            reason="demo: evaluation traffic of the simulated agents")
    for baseline in built.baselines.values():
        version = store.save(baseline, actor="janus-demo", reason="demo baseline", activate=True)
        _say(f"  baseline {baseline.model_id}@{version} from {baseline.n_records:,} evaluation decisions")
    # Interleave the agents' streams the way a shared topic would see them.
    merged = [v for pair in zip(*production) for v in pair]
    return store, merged, index


def _timing(event, index: dict[str, int]) -> str:
    """How far into its agent's stream an alert came, against the injected change."""
    n = index.get(event.decision_id)
    if n is None:
        return ""
    if event.model_id != AGENTS[0][0]:
        return f" [{n + 1:,} decisions into the control's stream: a false alarm]"
    if n < CHANGE_AT:
        return f" [{CHANGE_AT - n:,} decisions before the gap began: a false alarm]"
    return f" [{n - CHANGE_AT + 1:,} decisions after the gap began]"


def _produce(bootstrap: str, values: list[bytes], done: threading.Event) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_kwargs("producer", bootstrap_servers=bootstrap, client_id="demo-agents"))
    try:
        for value in values:
            key = orjson.loads(value)["model_id"].encode()  # producers key by model id
            producer.send(TOPIC, key=key, value=value)
        producer.flush()
    finally:
        producer.close()
        done.set()


def _run(args) -> int:
    started = time.perf_counter()
    config = config_of(args)
    out = Path(args.out)
    for sub in ("store", "checkpoints"):
        shutil.rmtree(out / sub, ignore_errors=True)
    _say(f"Janus demo: two simulated SOC triage agents, ARL {args.arl:,.0f} records between false alarms.")
    store, values, index = _build_baselines(out, args.seed, args.production, config)
    with EmbeddedBroker(log_path=out / "broker.log") as broker:
        broker.create_topics([TOPIC], partitions=2)
        _say(f"  embedded Kafka broker (Tansu) at {broker.bootstrap_servers}")
        config = dataclasses.replace(config, kafka=dataclasses.replace(
            config.kafka, bootstrap_servers=broker.bootstrap_servers, topics=[TOPIC],
            traffic_by_topic={}, max_poll_interval_ms=5_000, session_timeout_ms=6_000))
        service = StreamService(store, config, checkpoint_dir=out / "checkpoints", arl=args.arl, alert_stream=None)
        metrics = JanusMetrics(config.metrics)
        server = metrics.serve(args.metrics_addr)
        _say(f"  metrics at {server.url}")
        wire_metrics(service, metrics)
        feed_metrics = service.on_batch
        fired = []

        def on_batch(topic, partition, result, seconds):
            feed_metrics(topic, partition, result, seconds)
            for event in result.alerts:
                if event.status == "firing":
                    fired.append(event)
                    _say(f"    {alert_line(event, 'offset')}{_timing(event, index)}")

        service.on_batch = on_batch
        runner = threading.Thread(target=service.run, kwargs={"install_signal_handlers": False}, daemon=True)
        runner.start()
        produced = threading.Event()
        threading.Thread(target=_produce, args=(broker.bootstrap_servers, values, produced), daemon=True).start()
        _say(f"  streaming {len(values):,} production decisions; the gap starts after {CHANGE_AT:,} of "
             "triage-agent's")
        try:
            deadline = time.monotonic() + 300
            while service.stats.records < len(values) and runner.is_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            stats = service.stats
            _say(f"  processed {stats.records:,} records ({stats.rejected:,} rejected) in "
                 f"{time.perf_counter() - started:.0f} s; alerts: {len(fired)}")
            for model_id, _ in AGENTS:
                mine = [e for e in fired if e.model_id == model_id]
                _say(f"    {model_id:<22} " + (", ".join(sorted({e.feature for e in mine})) if mine else "no alerts"))
            if args.keep_running:
                _say(f"  still serving {server.url}; Ctrl-C to stop")
                while runner.is_alive():
                    time.sleep(1)
        except KeyboardInterrupt:
            _say("  interrupted")
        finally:
            service.stop("demo finished")
            runner.join(timeout=30)
            server.shutdown()
    return 0
