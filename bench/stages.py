"""Where the Janus hot path spends its time: records/s per stage, the backtest, serve vs a bare consumer.

All figures come from one run on one simulated log (so their ratios hold on a shared machine):

* ``parse``: raw JSONL lines → decisions (:func:`detector.records.parse_values`);
* ``featurise``: decisions → feature codes (:meth:`Featurizer.transform`, text caches cold at start);
* ``detect``: feature codes → alerts (:meth:`Monitor.update_matrix`);
  the three run chained per micro-batch of 2,048 lines, as the pipeline runs them;
* ``featurise_long_text``: ``featurise`` again, with every output and reasoning text replaced by a
  distinct text of 2,000 characters (the simulator's own words, redrawn per record): real model
  output is long and never repeats, so no text cache helps; this is the rate to plan capacity with;
* ``backtest``: the whole :func:`detector.backtest.run_backtest` (parse, de-duplicate, featurise,
  detect, review sample) with a fresh pipeline;
* ``serve`` vs ``bare``: the same records produced to a topic of an embedded Tansu broker; a bare
  kafka-python loop that only polls and decodes each value (orjson and json, ``bench/bare_consume.py``),
  then :class:`~detector.stream.service.StreamService` with the metrics wiring of ``janus serve``,
  timed from the start of its first micro-batch to the end of its last (the group join, which a
  bare ``assign()`` consumer never does, is left out).

Stage rates are per core: records / CPU seconds of this process (``cpu``), and records / wall
seconds (``wall``); each stage runs ``repeat`` times and the best run is kept. Serve and bare rates
are wall-clock (the broker and kafka-python's IO thread are part of what is measured).

    .venv/bin/python bench/stages.py                      # 60,000 production records
    .venv/bin/python bench/stages.py -n 20000 --no-serve

``run_stages(records=..., serve=True)`` returns the result dict (for ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# --tree DIR measures another checkout's detector package (e.g. a snapshot from before a change).
_TREE = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--tree"), str(HERE.parent))
sys.path.insert(0, _TREE)

from detector.backtest import run_backtest  # noqa: E402
from detector.baseline.build import build_baseline  # noqa: E402
from detector.baseline.store import BaselineStore  # noqa: E402
from detector.config import JanusConfig  # noqa: E402
try:
    from detector.heap import gc_paused  # noqa: E402
except ImportError:  # a --tree from before the pipeline paused the GC per batch
    from contextlib import nullcontext as gc_paused  # type: ignore[assignment]
from detector.monitor import Monitor  # noqa: E402
from detector.pipeline import Pipeline  # noqa: E402
from detector.records import Decision, iter_jsonl_chunks, parse_values, read_decisions  # noqa: E402
from detector.simulate import simulate, write_logs  # noqa: E402

CHUNK = 2048  # run_backtest's micro-batch
STAGES = ("parse", "featurise", "detect")
LONG_TEXT_CHARS = 2_000  # a long answer: past features.text_prefix_chars (512), the most of a text Janus reads


def prepare(workdir: Path, records: int, *, scenario: str = "compliance-gap", seed: int = 11,
            evaluation: int = 20_000, config: JanusConfig = JanusConfig()) -> tuple[Path, BaselineStore, str]:
    """Simulated logs and an ACTIVE baseline built from their evaluation part; returns log, store, model."""
    logs = simulate(scenario, seed=seed, n_evaluation=evaluation, n_production=records, change_at=records // 3)
    paths = write_logs(logs, workdir / "logs")
    store = BaselineStore(workdir / "store")
    baseline = build_baseline(read_decisions(paths["evaluation"]).decisions, config,
                              source=str(paths["evaluation"]), reason="stage bench", actor="bench")
    store.save(baseline, actor="bench", reason="stage bench", activate=True)
    return paths["production"], store, baseline.model_id


class _Clock:
    """Wall and CPU seconds, summed over the spans timed."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> _Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def _rate(n: int, clocks: list[_Clock]) -> dict[str, float]:
    return {"cpu": round(n / min(c.cpu for c in clocks)), "wall": round(n / min(c.wall for c in clocks))}


def stage_rates(path: Path, store: BaselineStore, model_id: str, *, repeat: int = 2,
                config: JanusConfig = JanusConfig()) -> dict[str, Any]:
    """records/s (per core and wall) of parse, featurise, detect and the whole backtest on ``path``."""
    chunks = list(iter_jsonl_chunks(path, CHUNK))
    n = sum(len(c) for c in chunks)
    version = store.active_version(model_id)
    runs: dict[str, list[_Clock]] = {name: [] for name in (*STAGES, "backtest")}
    alerts: dict[str, int] = {}
    for _ in range(repeat):
        monitor = Monitor(store.load(model_id, version), config=config.detection)  # cold text caches
        clocks = {name: _Clock() for name in STAGES}
        position = 0
        batches = []  # each chunk's production decisions, for the long-text stage below
        for chunk in chunks:
            with gc_paused():  # as Pipeline.process runs a batch
                with clocks["parse"]:
                    decisions = parse_values(chunk, limits=config.limits, first_position=position).decisions
                position += len(chunk)
                production = [d for d in decisions if d.traffic == "production"]
                batches.append(production)
                with clocks["featurise"]:
                    matrix = monitor.featurizer.transform(production)
                ids = [d.decision_id for d in production]
                positions = np.array([d.position for d in production])
                stamps = np.array([d.timestamp for d in production])
                with clocks["detect"]:
                    monitor.update_matrix(matrix, ids, positions, stamps)
        for name in STAGES:
            runs[name].append(clocks[name])
        pipeline = Pipeline(store, config)
        with _Clock() as clock:
            summary = run_backtest(path, pipeline, chunk_size=CHUNK)
        runs["backtest"].append(clock)
        alerts = {f"{k}/{f}/{s}": c for (k, f, s), c in sorted(summary.alerts.items())}
    runs["featurise_long_text"] = long_text_clocks(batches, store, model_id, repeat=repeat, config=config)
    out: dict[str, Any] = {"records": n}
    for name, clocks in runs.items():
        out[name] = {"records_per_s": _rate(n, clocks)}
    out["backtest"]["alerts"] = alerts
    return out


def serve_vs_bare(path: Path, store: BaselineStore, *, repeat: int = 2, partitions: int = 1,
                  config: JanusConfig = JanusConfig(), timeout: float = 600.0) -> dict[str, Any]:
    """``janus serve`` records/s beside a bare consume + decode loop, on one topic of an embedded broker."""
    from bare_consume import bare_consume_rate
    from kafka import KafkaProducer

    from detector.stream.broker import EmbeddedBroker, create_topics
    from detector.stream.kafka_config import kafka_kwargs

    lines = [line for chunk in iter_jsonl_chunks(path, CHUNK) for line in chunk if line]
    n = len(lines)
    out: dict[str, Any] = {"records": n, "partitions": partitions}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="janus-stages-") as tmp:
        bootstrap = broker.bootstrap_servers
        topic = f"janus-stages-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [topic], partitions)
        kw = kafka_kwargs("producer", bootstrap_servers=bootstrap, client_id="janus-stages-producer")
        kw.update(linger_ms=20, batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
        producer = KafkaProducer(**kw)
        for line in lines:
            producer.send(topic, value=line, key=orjson.loads(line)["model_id"].encode())
        producer.flush()
        producer.close()

        bare = {"bare_orjson": orjson.loads, "bare_json": json.loads}
        rates: dict[str, list[float]] = {name: [] for name in (*bare, "serve")}
        for r in range(repeat):
            for name, decoder in bare.items():
                rates[name].append(bare_consume_rate(bootstrap, topic, n, decoder)["records_per_s"])
            rates["serve"].append(_serve_rate(store, config, bootstrap, topic, n, Path(tmp) / f"run{r}", timeout))
    for name, values in rates.items():
        out[name] = {"records_per_s": round(max(values)), "runs": [round(v) for v in values]}
    for name in bare:
        out[f"serve_vs_{name}"] = round(out["serve"]["records_per_s"] / out[name]["records_per_s"], 3)
    return out


def _serve_rate(store: BaselineStore, config: JanusConfig, bootstrap: str, topic: str, n: int, workdir: Path,
                timeout: float) -> float:
    from detector.cli.serve_cmd import wire_metrics
    from detector.metrics import JanusMetrics
    from detector.stream.service import StreamService

    service = StreamService(
        store, config, topics=[topic], group_id=f"janus-stages-{uuid.uuid4().hex[:8]}",
        alert_topic=f"{topic}.alerts", review_topic="", review_jsonl="", checkpoint_dir=workdir / "ckpt",
        kafka_overrides={"bootstrap_servers": bootstrap, "max_poll_interval_ms": 5000}, alert_stream=None,
    )
    wire_metrics(service, JanusMetrics(config.metrics))
    metered = service.on_batch
    span: dict[str, float] = {}

    def on_batch(topic_: str, partition: int, result: Any, seconds: float) -> None:
        metered(topic_, partition, result, seconds)
        now = time.perf_counter()
        span.setdefault("first", now - seconds)  # the start of the first micro-batch
        span["last"] = now
        if service.stats.records >= n:
            service.stop("benchmark done")

    service.on_batch = on_batch
    thread = threading.Thread(target=service.run, kwargs={"install_signal_handlers": False}, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        service.stop("benchmark timeout")
        thread.join(30)
        raise RuntimeError(f"janus serve processed {service.stats.records} of {n} records in {timeout:.0f} s")
    if service.stats.records < n:
        raise RuntimeError(f"janus serve stopped after {service.stats.records} of {n} records")
    return service.stats.records / (span["last"] - span["first"])


def long_text_clocks(batches: list[list[Decision]], store: BaselineStore, model_id: str, *, repeat: int,
                     config: JanusConfig) -> list[_Clock]:
    """Featurise ``batches`` with distinct long output and reasoning texts (written over theirs)."""
    rng = np.random.default_rng(0)
    # Words drawn as often as the simulator's reasoning uses them, so the texts read like its prose.
    words = np.array([w for batch in batches for d in batch for w in (d.reasoning or "").split()])
    per_text = LONG_TEXT_CHARS // max(1, int(np.mean([len(w) + 1 for w in words])))
    for batch in batches:
        for d in batch:
            d.output_text, d.reasoning = (" ".join(rng.choice(words, per_text))[:LONG_TEXT_CHARS] for _ in range(2))
    version = store.active_version(model_id)
    clocks = []
    for _ in range(repeat):
        featurizer = Monitor(store.load(model_id, version), config=config.detection).featurizer  # cold caches
        with _Clock() as clock, gc_paused():
            for batch in batches:
                featurizer.transform(batch)
        clocks.append(clock)
    return clocks


def run_stages(records: int = 60_000, *, serve: bool = True, repeat: int = 2, scenario: str = "compliance-gap",
               seed: int = 11, workdir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The whole measurement; returns a JSON-ready dict."""
    config = JanusConfig()
    with tempfile.TemporaryDirectory(prefix="janus-stages-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        path, store, model_id = prepare(base, records, scenario=scenario, seed=seed, config=config)
        result: dict[str, Any] = {
            "benchmark": "stages",
            "tree": _TREE,
            "scenario": scenario,
            "seed": seed,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "stages": stage_rates(path, store, model_id, repeat=repeat, config=config),
        }
        if serve:
            result["serve"] = serve_vs_bare(path, store, repeat=repeat, config=config)
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--records", type=int, default=60_000, help="production records (default 60,000)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per stage; the best is kept")
    parser.add_argument("--scenario", default="compliance-gap")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-serve", action="store_true", help="skip the Kafka part")
    parser.add_argument("--workdir", help="keep the simulated logs and baseline here")
    parser.add_argument("--out", help="also write the JSON document here")
    parser.add_argument("--tree", default=_TREE, help="import detector from this checkout (default: this one)")
    args = parser.parse_args(argv)
    result = run_stages(args.records, serve=not args.no_serve, repeat=args.repeat, scenario=args.scenario,
                        seed=args.seed, workdir=args.workdir)
    stages = result["stages"]
    for name in (*STAGES, "featurise_long_text", "backtest"):
        rate = stages[name]["records_per_s"]
        print(f"{name:<19} {rate['cpu']:>9,} records/s per core   {rate['wall']:>9,} wall", file=sys.stderr)
    if "serve" in result:
        s = result["serve"]
        for name in ("bare_json", "bare_orjson", "serve"):
            print(f"{name:<12} {s[name]['records_per_s']:>9,} records/s wall", file=sys.stderr)
        print(f"serve / bare: {s['serve_vs_bare_orjson']:.2f} (orjson), {s['serve_vs_bare_json']:.2f} (json)",
              file=sys.stderr)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
