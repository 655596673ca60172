"""The audit sample: a stratified, hash-deterministic sample of decisions for human review.

Design (recorded with every sampled record, so that estimates from the reviews are unbiased):

* each decision gets ``u = H(salt, decision_id)``, a uniform number in [0, 1) from a keyed
  BLAKE2b hash, so a replay, a restart or another instance picks exactly the same decisions;
* its **stratum** is the one of largest rate among those it qualifies for: ``consequential`` (its
  action, or a tool it called, is listed as consequential for its model), ``alert`` (a production
  decision contributing to a behaviour alert of its model that is firing at that record: same
  segment, and the alerted code when the alert went up, another code when it went down) and
  ``base`` (every decision);
* it is sampled when ``u < π``, its stratum's rate: its **inclusion probability** ``π``.

Decisions are sampled independently given their strata (Poisson sampling), so a reviewed
decision stands for ``1/π`` decisions (:mod:`detector.review.summary`). Strata depend only on the
record stream (the alert state at each record is independent of micro-batch boundaries and is
part of the checkpoint), so sampling is deterministic whatever the batching.

Only the candidates (``u`` below the largest rate) are featurised and copied; the per-record cost
is one hash.

>>> sampler = ReviewSampler(ReviewConfig(base_rate=0.5, consequential_rate=1.0))
>>> from detector.records import Decision
>>> ds = [Decision(f"d{i}", 0.0, "m", "production", action="isolate_host" if i < 3 else "close")
...       for i in range(8)]
>>> [(s["decision_id"], s["stratum"], s["inclusion_probability"]) for s in sampler.sample(ds, {}, [])]
[('d0', 'consequential', 1.0), ('d1', 'consequential', 1.0), ('d2', 'consequential', 1.0), ('d3', 'base', 0.5), ('d4', 'base', 0.5), ('d5', 'base', 0.5), ('d7', 'base', 0.5)]
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detector.config import REVIEW_STRATA, ReviewConfig
from detector.dedup import digests
from detector.errors import JanusError
from detector.features import BEHAVIOUR
from detector.features.featurizer import FeatureRows
from detector.monitor.alerts import AlertEvent, iso_time
from detector.monitor.monitor import ALL_SEGMENTS
from detector.records import Decision
from detector.review.sample_size import rates_for_target

SCHEMA = "janus.review.v1"
CONSEQUENTIAL, ALERT, BASE = REVIEW_STRATA
_PRECEDENCE = {CONSEQUENTIAL: 0, ALERT: 1, BASE: 2}  # ties between equal rates
UNUSUAL = 0.5  # an outcome evaluation saw less often than this, given the input, is "the change"
MAX_COUNTED_MODELS = 1_000  # sampled counts per model are kept for this many model ids (hostile producers)


def uniforms(decision_ids: Sequence[str], salt: str = "") -> np.ndarray:
    """``u`` in [0, 1) per id: the top 53 bits of an 8-byte keyed BLAKE2b digest."""
    key = salt.encode()
    if len(key) > 64:  # BLAKE2b keys are at most 64 bytes
        key = hashlib.blake2b(key).digest()
    return (np.frombuffer(digests(decision_ids, key), dtype="<u8") >> np.uint64(11)).astype(np.float64) * 2.0**-53


def stratum_rates(config: ReviewConfig) -> dict[str, float]:
    """The inclusion probability of each stratum: the raw rates, or the target's."""
    if config.target_margin > 0:
        missing = [s for s in REVIEW_STRATA if s not in config.period_records]
        if missing:
            raise JanusError(f"review.target_margin is set, but review.period_records gives no expected volume "
                             f"for stratum {', '.join(missing)} (records per review period)")
        return rates_for_target(config.target_margin, config.target_confidence, config.expected_rate,
                                config.period_records)
    return {CONSEQUENTIAL: config.consequential_rate, ALERT: config.alert_rate, BASE: config.base_rate}


def _clip(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit], True


class ReviewSampler:
    """Samples the decisions of each micro-batch; its only state is the firing alerts per model."""

    def __init__(self, config: ReviewConfig = ReviewConfig()):
        self.config = config
        self.rates = stratum_rates(config)
        self.p_max = max(self.rates.values())
        # Per configured model (plus "*" for all others): never keyed by producers' model ids, which
        # are unbounded (a cache per id grew ~100 bytes per made-up model id).
        self._actions = _per_model(config.consequential_actions)
        self._tools = _per_model(config.consequential_tools)
        # model_id → {(segment, feature): alert reference}, as of the last record processed.
        self.firing: dict[str, dict[tuple[str, str], dict]] = {}
        # Sampled decisions per (model_id, traffic, stratum) since the checkpoint's beginning: the
        # "sampled" of janus_review_pending and of the adjustment for pending reviews.
        self.counts: Counter = Counter()
        self._counted_models: set[str] = set()

    # ---- configuration ----------------------------------------------------------------------------
    def consequential_actions(self, model_id: str) -> frozenset[str]:
        return self._actions.get(model_id) or self._actions["*"]

    def consequential_tools(self, model_id: str) -> frozenset[str]:
        return self._tools.get(model_id) or self._tools["*"]

    def is_consequential(self, d: Decision) -> bool:
        if d.action is not None and d.action in self.consequential_actions(d.model_id):
            return True
        tools = self.consequential_tools(d.model_id)
        return bool(tools) and any(t.name in tools for t in d.tool_calls)

    # ---- sampling ---------------------------------------------------------------------------------
    def sample(self, decisions: Sequence[Decision], monitors: Mapping[str, Any],
               alerts: Sequence[AlertEvent], features: Mapping[str, FeatureRows] | None = None) -> list[dict]:
        """The sampled records of a micro-batch (in stream order), after its Monitors were updated.

        ``monitors``: model_id → Monitor (used for the evaluation-time rates and the alert state);
        ``alerts``: the batch's alert events, whose behaviour firings/resolutions move the
        ``alert`` stratum from their record on; ``features``: model_id → the feature rows its
        Monitor coded for this batch (sampled records found there are not featurised again).
        """
        features = features or {}
        events: dict[str, list[AlertEvent]] = defaultdict(list)
        for e in alerts:
            if e.kind == BEHAVIOUR and e.status in ("firing", "resolved") and e.record_index >= 0:
                events[e.model_id].append(e)
        candidates: dict[str, list[tuple[Decision, float]]] = defaultdict(list)
        if self.p_max > 0:
            eligible = [d for d in decisions if d.probe is None]  # probe answers are test traffic
            if eligible:
                u = uniforms([d.decision_id for d in eligible], self.config.salt)
                for i in np.flatnonzero(u < self.p_max):
                    candidates[eligible[i].model_id].append((eligible[i], float(u[i])))
        out: list[dict] = []
        for model_id in sorted(set(events) | set(candidates)):
            out.extend(self._model_samples(model_id, candidates.get(model_id, []), monitors.get(model_id),
                                           sorted(events.get(model_id, []), key=lambda e: e.record_index),
                                           features.get(model_id)))
        out.sort(key=lambda s: s["record_index"])
        return out

    def _model_samples(self, model_id: str, candidates: list[tuple[Decision, float]], monitor,
                       events: list[AlertEvent], features: FeatureRows | None) -> list[dict]:
        version = monitor.baseline.version if monitor is not None else None
        firing = {k: v for k, v in self.firing.get(model_id, {}).items() if v["baseline_version"] == version}
        rates = self.rates
        # Pass 1: what each candidate qualifies for without its features, and the alert state at its
        # record (a new dict whenever an event changes it, so earlier snapshots stay valid).
        plan = []
        e = 0
        for d, u in candidates:
            if e < len(events) and events[e].record_index <= d.position:
                firing = dict(firing)
                while e < len(events) and events[e].record_index <= d.position:
                    _apply(firing, events[e])
                    e += 1
            sure = max(rates[BASE], rates[CONSEQUENTIAL] if self.is_consequential(d) else 0.0)
            alerting = monitor is not None and d.traffic == "production" and bool(firing)
            if u < sure or (alerting and u < rates[ALERT]):
                plan.append((d, u, firing if alerting else None))
        if e < len(events):
            firing = dict(firing)
            for event in events[e:]:
                _apply(firing, event)
        if firing:
            self.firing[model_id] = firing
        else:
            self.firing.pop(model_id, None)
        if not plan:
            return []
        # Pass 2: features of only those (the sampled ones and the ones an alert could oversample).
        matrix = None
        if monitor is not None:
            matrix = (features or FeatureRows(monitor.featurizer)).of([d for d, *_ in plan])
        out = []
        for k, (d, u, state) in enumerate(plan):
            related = self._related_alert(monitor, matrix, k, state) if state else None
            qualifies = [BASE]
            if self.is_consequential(d):
                qualifies.append(CONSEQUENTIAL)
            if related is not None:
                qualifies.append(ALERT)
            stratum = min(qualifies, key=lambda s: (-rates[s], _PRECEDENCE[s]))
            p = rates[stratum]
            if u < p:
                out.append(self._record(d, stratum, p, monitor, matrix, k, related))
                self._count(d.model_id, d.traffic, stratum)
        return out

    def _related_alert(self, monitor, matrix, k: int, firing: dict) -> dict | None:
        """The firing behaviour alert this record contributes to: same segment, showing the alerted
        change (the alerted code when it went up, another code when it went down) on an input where
        evaluation made that the exception (evaluation rate of the change < UNUSUAL in its cell)."""
        fz = monitor.featurizer
        segment = fz.segment_name(int(matrix.segments[k]))
        for (seg, feature), ref in sorted(firing.items()):
            if seg not in (segment, ALL_SEGMENTS):
                continue
            try:
                j = fz.feature_index(feature)
                f = monitor.features.index(j)
            except (KeyError, ValueError):
                continue
            labels = fz.specs[j].labels
            if ref["code"] not in labels:
                continue
            c = labels.index(ref["code"])
            expected = float(monitor.expected[f][int(matrix.cells[k, j]), c])
            same = int(matrix.codes[k, j]) == c
            if ref["direction"] != "down":
                if same and expected < UNUSUAL:
                    return ref
            elif not same and expected >= 1 - UNUSUAL:
                return ref
        return None

    # ---- the sampled record -----------------------------------------------------------------------
    def _record(self, d: Decision, stratum: str, p: float, monitor, matrix, k: int, related: dict | None) -> dict:
        cfg = self.config
        truncated = []
        input_text, cut = _clip(d.input_text, cfg.max_text_chars)
        truncated += ["input"] if cut else []
        output_text, cut = _clip(d.output_text, cfg.max_text_chars)
        truncated += ["output"] if cut else []
        reasoning, cut = _clip(d.reasoning, cfg.reasoning_excerpt_chars)
        truncated += ["reasoning"] if cut else []
        tools = []
        for t in d.tool_calls:
            args = orjson.dumps(t.arguments).decode()
            if len(args) > cfg.max_text_chars:
                tools.append({"name": t.name, "arguments_excerpt": args[: cfg.max_text_chars]})
                truncated.append(f"tool_calls.{t.name}")
            else:
                tools.append({"name": t.name, "arguments": t.arguments})
        return {
            "schema": SCHEMA,
            "decision_id": d.decision_id,
            "model_id": d.model_id,
            "model_version": d.model_version,
            "traffic": d.traffic,
            "segment": d.segment,
            "timestamp": d.timestamp,
            "time": iso_time(d.timestamp),
            "record_index": d.position,
            "stratum": stratum,
            "inclusion_probability": p,
            "input": input_text,
            "action": d.action,
            "refused": d.refused,
            "output": output_text,
            "tool_calls": tools,
            "reasoning_excerpt": reasoning,
            "truncated": truncated,
            "evaluation": _evaluation_context(d, monitor, matrix, k, related) if monitor is not None else None,
            "alert": {key: v for key, v in related.items() if key != "baseline_version"} if related else None,
            "caveat": monitor.protocol_caveat() if monitor is not None else "",
        }

    def _count(self, model_id: str, traffic: str, stratum: str) -> None:
        if model_id not in self._counted_models:
            if len(self._counted_models) >= MAX_COUNTED_MODELS:
                return
            self._counted_models.add(model_id)
        self.counts[(model_id, traffic, stratum)] += 1

    # ---- checkpoint state -------------------------------------------------------------------------
    def state(self) -> dict:
        return {"firing": {m: [dict(sorted(dict(ref, segment=s, feature=f).items())) for (s, f), ref in sorted(refs.items())]
                           for m, refs in sorted(self.firing.items())},
                "counts": [[m, t, s, n] for (m, t, s), n in sorted(self.counts.items())]}

    def restore(self, meta: dict | None) -> None:
        meta = meta or {}
        self.firing = {}
        for model_id, refs in (meta.get("firing") or {}).items():
            self.firing[model_id] = {(r["segment"], r["feature"]): dict(r) for r in refs}
        self.counts = Counter({(m, t, s): int(n) for m, t, s, n in meta.get("counts", [])})
        self._counted_models = {m for m, _, _ in self.counts}


def _per_model(table: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """Configured model id → its names plus the "*" ones; "*" → the "*" ones."""
    common = frozenset(table.get("*", []))
    return {**{m: common | frozenset(names) for m, names in table.items()}, "*": common}


def _apply(firing: dict, event: AlertEvent) -> None:
    key = (event.segment, event.feature)
    if event.status == "firing":
        firing[key] = {"segment": event.segment, "feature": event.feature, "code": event.code,
                       "direction": event.direction, "decision_id": event.decision_id,
                       "record_index": event.record_index, "time": event.time, "message": event.message,
                       "baseline_version": event.baseline_version}
    else:
        firing.pop(key, None)


def _evaluation_context(d: Decision, monitor, matrix, k: int, related: dict | None) -> dict:
    """What evaluation said about this kind of input: the evaluation-time rate of each behaviour of
    the record (refusal, action, the tools it called, the alerted feature) in its condition cell,
    with the recent production rate in the same cell for contrast."""
    fz = monitor.featurizer
    ic = fz.feature_index("input_cluster")
    input_code = int(matrix.codes[k, ic])
    input_spec = fz.specs[ic]
    names = ["refused", "action"]
    for t in d.tool_calls:
        try:
            fz.feature_index(f"tool:{t.name}")
            names.append(f"tool:{t.name}")
        except KeyError:
            names.append("tool:(other)")
    if related is not None:
        names.append(related["feature"])
    behaviours = []
    for name in dict.fromkeys(names):
        try:
            j = fz.feature_index(name)
            f = monitor.features.index(j)
        except (KeyError, ValueError):
            continue
        spec = fz.specs[j]
        code = int(matrix.codes[k, j])
        cell = int(matrix.cells[k, j])
        window_n = float(monitor.window[f][cell].sum())
        behaviours.append({
            "feature": name,
            "code": spec.labels[code],
            "condition": fz.describe_condition(j, fz.condition_of_cell(j, cell)[1]),
            "evaluation_rate": float(monitor.expected[f][cell, code]),
            "evaluation_records": int(monitor.baseline.counts[j][cell].sum()),
            "production_rate": float(monitor.window[f][cell, code] / window_n) if window_n >= 1 else None,
            "production_window_records": round(window_n, 1),
        })
    return {
        "baseline_version": monitor.baseline.version,
        "segment": fz.segment_name(int(matrix.segments[k])),
        "input_cluster": input_spec.labels[input_code],
        "input_example": input_spec.examples[input_code] if input_code < len(input_spec.examples) else "",
        "behaviours": behaviours,
    }


# ---- where samples go -----------------------------------------------------------------------------
def encode_sample(sample: dict) -> tuple[bytes, bytes]:
    """(key, value) of a sample's Kafka message on the review topic: keyed by model_id, JSON value."""
    return sample["model_id"].encode("utf-8", "surrogatepass"), orjson.dumps(sample)


class SampleWriter:
    """Appends samples to a JSONL file (``append=False`` starts it afresh); a context manager.

    >>> import tempfile
    >>> with SampleWriter(Path(tempfile.mkdtemp()) / "samples.jsonl") as writer:
    ...     writer.write([{"decision_id": "d1"}])
    >>> writer.written, writer.path.read_text().splitlines()
    (1, ['{"decision_id":"d1"}'])
    """

    def __init__(self, path: str | Path, append: bool = True):
        self.path = Path(path)
        self.append = append
        self._fh = None
        self.written = 0

    def __enter__(self) -> SampleWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("ab" if self.append else "wb")
        return self

    def write(self, samples: Sequence[dict]) -> None:
        if samples:
            self._fh.write(b"".join(orjson.dumps(s) + b"\n" for s in samples))
            self._fh.flush()  # whole lines on disk per batch: `janus review record` may read it meanwhile
            self.written += len(samples)

    def __exit__(self, *exc) -> None:
        self._fh.close()
