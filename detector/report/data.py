"""Everything a report shows, gathered by replaying production records through the detector.

:func:`gather_report` runs the records through the same :class:`~detector.pipeline.Pipeline` as
``janus backtest`` (so the alerts are the ones backtest would raise), pinned to one baseline
version, and collects along the way — all in bounded memory:

* code counts of the model's production records per feature (the "production" shares);
* the drift statistics (``Monitor.statistics()``, 1.0 = threshold) after every chunk, at most
  ``MAX_SAMPLES`` points (halved by dropping every other point when full);
* a ring of the most recent production decisions with their codes, from which each alert's
  evidence is taken when the replay reaches the alert's record;
* a uniform reservoir of production lengths and latencies for the distribution plots.

Record text is untrusted: it is kept as plain strings, cut to an :class:`Excerpt` (with the number
of characters removed, for a visible marker), stripped of control and bidirectional-override
characters (shown as ``⟨U+202E⟩``), and left to the autoescaping template to escape.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import orjson
from scipy.spatial.distance import jensenshannon

from detector.baseline.model import Baseline
from detector.baseline.store import BaselineStore
from detector.config import JanusConfig
from detector.errors import file_error
from detector.features import BEHAVIOUR, INPUT
from detector.pipeline import Pipeline
from detector.monitor import Monitor
from detector.monitor.monitor import ALL_SEGMENTS
from detector.probes.sequential import KIND as CUE
from detector.probes.sequential import cue_test_count
from detector.records import Decision

MAX_SAMPLES = 1000  # points of the drift-over-time series
MAX_EVIDENCE_ALERTS = 20  # firing alerts that get examples (all are listed)
EXAMPLES_PER_SIDE = 3
NUMERIC_SAMPLE = 5000  # production values kept for the distribution plots
TOP_CODES = 8  # rows per feature in the shares tables
MAX_PROBE_RECORDS = 200_000  # probe answers kept for the paired tests (the rest are counted)
NOTABLE_Z = 3.0  # a share difference this many standard errors from 0 is highlighted
LIMITS = {"input": 400, "output": 500, "reasoning": 700, "message": 600, "label": 80, "id": 128, "example": 160,
          "tools": 200, "meta": 300}

_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


# ---- untrusted text -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Excerpt:
    """A cleaned prefix of untrusted text; ``more`` characters were cut (0: complete)."""

    text: str
    more: int = 0

    def __str__(self) -> str:
        return self.text + (f" … [{self.more:,} more characters]" if self.more else "")


def clean(value: object) -> str:
    """Untrusted text with control, zero-width and bidi-override characters made visible."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def excerpt(value: object, limit: int) -> Excerpt:
    """The first ``limit`` characters of untrusted text, cleaned, and how many were cut.

    >>> excerpt("<b>bold\u202e claim</b>", 9)
    Excerpt(text='<b>bold⟨U+202E⟩ ', more=9)
    """
    text = value if isinstance(value, str) else "" if value is None else str(value)
    more = max(len(text) - limit, 0)
    return Excerpt(clean(text[:limit]), more)


def short(value: object, kind: str = "label") -> str:
    """One-line text for table cells and plot labels: cleaned and cut with a visible '…'."""
    text = clean(value).replace("\n", " ")
    limit = LIMITS[kind]
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- report content --------------------------------------------------------------------------------------

@dataclass
class CodeRow:
    label: str
    evaluation: float
    production: float | None  # all production records of the replay
    recent: float | None  # the detector's decayed recent window
    example: Excerpt | None = None  # input mix: the most frequent evaluation text of the cluster
    notable: bool = False  # the difference is beyond sampling noise (|z| >= NOTABLE_Z)

    @property
    def difference(self) -> float:
        return 0.0 if self.production is None else self.production - self.evaluation


@dataclass
class FeatureShares:
    feature: str
    title: str
    kind: str
    js_distance: float | None  # evaluation vs all production (None without production)
    rows: list[CodeRow]
    hidden: int  # codes not shown (smallest differences)
    alerted: bool = False  # an alert of the report names this feature


@dataclass
class Example:
    side: str  # "evaluation" | "production"
    decision_id: str
    time: str
    segment: str
    code: str  # "feature = code" of the alerted feature for this record
    input: Excerpt
    action: str
    refused: str
    tools: str
    output: Excerpt
    reasoning: Excerpt
    latency: str
    trigger: bool = False


@dataclass
class Evidence:
    number: int
    alert: dict  # the alert event, cleaned for display
    found: bool  # its record was seen in the replayed input
    focus: str  # which inputs the examples are drawn from
    rates: str  # the alerted code's rate on those inputs, evaluation vs the recent production records
    evaluation: list[Example] = field(default_factory=list)
    production: list[Example] = field(default_factory=list)
    note: str = ""


@dataclass
class Series:
    x: list[int] = field(default_factory=list)  # production records of the model processed so far
    times: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # feature → max over segments (1 = threshold)
    kinds: dict[str, str] = field(default_factory=dict)
    stride: int = 1
    _calls: int = 0

    def add(self, x: int, t: float, stats: Sequence) -> None:
        self._calls += 1
        if self._calls % self.stride:
            return
        by_feature: dict[str, float] = {}
        for s in stats:
            by_feature[s.feature] = max(by_feature.get(s.feature, 0.0), float(s.value))
            self.kinds.setdefault(s.feature, s.kind)
        n = len(self.x)
        for feature in by_feature:
            self.values.setdefault(feature, [0.0] * n)
        for feature, values in self.values.items():
            values.append(by_feature.get(feature, 0.0))
        self.x.append(x)
        self.times.append(t)
        if len(self.x) >= MAX_SAMPLES:  # bounded: keep every other point, sample half as often
            self.x, self.times = self.x[::2], self.times[::2]
            self.values = {f: v[::2] for f, v in self.values.items()}
            self.stride *= 2


@dataclass
class ReportData:
    model_id: str
    baseline: Baseline
    arl: float
    threshold: float
    generated_at: str
    source: str
    alerts_source: str
    n_production: int = 0
    n_skipped: Counter = field(default_factory=Counter)  # records of other models / evaluation traffic
    rejected: Counter = field(default_factory=Counter)
    first_rejections: list[str] = field(default_factory=list)
    production_range: tuple[float, float] | None = None
    shares: list[FeatureShares] = field(default_factory=list)
    input_mix: FeatureShares | None = None
    series: Series = field(default_factory=Series)
    alerts: list[dict] = field(default_factory=list)  # every alert event of the model, cleaned
    markers: list[tuple[int, str, str]] = field(default_factory=list)  # (x, status, feature)
    evidence: list[Evidence] = field(default_factory=list)
    numeric: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    caveat: str = ""
    notes: list[str] = field(default_factory=list)
    sample_size: list = field(default_factory=list)
    probes: object = None  # detector.probes.analyze.ModelReport of the replayed probe records, if any
    probes_dropped: int = 0  # probe records beyond MAX_PROBE_RECORDS (not tested)
    review: list = field(default_factory=list)  # detector.review.summary.SummaryRow, overall per traffic
    review_sentence: str = ""
    review_confidence: float = 0.95


# ---- gathering -----------------------------------------------------------------------------------------------

Chunk = tuple[Sequence[bytes | str | None], int, Callable[[int], str] | None, str | None]
"""(values, position of values[0], locate(position) → place, traffic the source implies)."""

NUMERIC_FIELDS = {
    "latency_ms": ("latency (ms)", lambda d: d.latency_ms),
    "output_length": ("output length (characters)", lambda d: None if d.output_text is None else len(d.output_text)),
    "reasoning_length": ("reasoning length (characters)", lambda d: None if d.reasoning is None else len(d.reasoning)),
    "input_length": ("input length (characters)", lambda d: None if d.input_text is None else len(d.input_text)),
}


def _reservoir_numeric(record: dict, name: str) -> float | None:
    out = record.get("output") if isinstance(record.get("output"), dict) else {}
    inp = record.get("input") if isinstance(record.get("input"), dict) else {}
    value = {"latency_ms": record.get("latency_ms"), "output_length": _len(out.get("text")),
             "reasoning_length": _len(record.get("reasoning")), "input_length": _len(inp.get("text"))}[name]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _len(text) -> int | None:
    return len(text) if isinstance(text, str) else None


def iso(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_alerts(path, model_id: str, limit: int = 100_000) -> tuple[list[dict], int]:
    """Alert events of ``model_id`` from a JSONL file (``backtest --alerts-out`` or the alert topic);
    lines that are not alert objects are counted, not fatal."""
    alerts, bad = [], 0
    try:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh):
                if n >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    bad += 1
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("feature"), str):
                    bad += 1
                    continue
                if obj.get("model_id") == model_id:
                    alerts.append(obj)
    except OSError as exc:
        raise file_error(exc, path, "read alerts") from None
    return alerts, bad


def _alert_view(a: dict) -> dict:
    """An alert event with every field safe to show: strings cleaned and cut, numbers as numbers."""
    def num(key):
        v = a.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None

    record_index = a.get("record_index")
    return {
        "status": short(a.get("status", ""), "id"), "kind": short(a.get("kind", ""), "id"),
        "severity": short(a.get("severity", ""), "id"), "segment": short(a.get("segment", ""), "id"),
        "feature": short(a.get("feature", ""), "id"), "code": short(a.get("code", ""), "label"),
        "direction": short(a.get("direction", ""), "id"), "decision_id": short(a.get("decision_id", ""), "id"),
        "record_index": record_index if isinstance(record_index, int) and not isinstance(record_index, bool) else None,
        "time": short(a.get("time", ""), "id"), "baseline_version": short(a.get("baseline_version", ""), "id"),
        "message": excerpt(a.get("message", ""), LIMITS["message"]), "caveat": short(a.get("caveat", ""), "meta"),
        "statistic": num("statistic"), "threshold": num("threshold"),
        "evaluation_rate": num("evaluation_rate"), "production_rate": num("production_rate"),
        "window_records": a.get("window_records") if isinstance(a.get("window_records"), int) else None,
        "evidence": None,  # number of its evidence block, if it has one
    }


class _Gatherer:
    def __init__(self, data: ReportData, pipeline: Pipeline, baseline: Baseline, given_alerts: list[dict] | None,
                 ring_size: int, probe_alpha: float):
        self.data = data
        self.pipeline = pipeline
        self.baseline = baseline
        self.fz = baseline.featurizer
        self.specs = baseline.specs
        self.counts = [np.zeros(s.n_codes, dtype=np.int64) for s in self.specs]
        self.ring: deque = deque(maxlen=ring_size)  # (seq, Decision, codes row)
        self.seq = 0
        self.given = given_alerts
        self.pending: dict[str, list[dict]] = {}  # decision_id → given alerts waiting for their record
        for a in given_alerts or []:
            self.pending.setdefault(str(a.get("decision_id", "")), []).append(a)
        self.rng = np.random.default_rng(0)
        self.numeric = {name: [] for name in NUMERIC_FIELDS}
        self.numeric_seen = 0
        self.t_min, self.t_max = math.inf, -math.inf
        self.firing_evidence = 0
        self.probe_records: list[Decision] = []
        self.probe_alpha = probe_alpha

    def chunk(self, values, first: int, locate, traffic) -> None:
        kwargs = {"locate": locate} if locate is not None else {}
        result = self.pipeline.process(values, traffic=traffic, first_position=first, **kwargs)
        self.data.rejected.update(r.reason for r in result.rejections)
        self.data.first_rejections.extend(clean(r.message)[:200]
                                          for r in result.rejections[: 3 - len(self.data.first_rejections)])
        mine = []
        for d in result.accepted:
            if d.model_id == self.data.model_id and d.probe is not None:
                # Probe answers carry a cue in the prompt: tested in pairs (their own section),
                # never counted in the production shares, as the pipeline keeps them out of drift.
                if len(self.probe_records) < MAX_PROBE_RECORDS:
                    self.probe_records.append(d)
                else:
                    self.data.probes_dropped += 1
            elif d.model_id == self.data.model_id and d.traffic == "production":
                mine.append(d)
            else:
                self.data.n_skipped["other model" if d.model_id != self.data.model_id else d.traffic] += 1
        if self.given is None:  # cue alerts concern probe records: they may come in a chunk without `mine`
            for e in result.alerts:
                if e.model_id == self.data.model_id and e.kind == CUE:
                    self._alert(e.to_dict(), None)
        if not mine:
            return
        matrix = self.fz.transform(mine)
        for j in range(len(self.specs)):
            self.counts[j] += np.bincount(matrix.codes[:, j], minlength=self.specs[j].n_codes)[: self.specs[j].n_codes]
        position_seq = {}
        # Each ring row: the record's codes, then its condition cell per feature (for the focus).
        rows = np.concatenate([matrix.codes.astype(np.int64), matrix.cells.astype(np.int64)], axis=1)
        for i, d in enumerate(mine):
            self.ring.append((self.seq + i, d, rows[i]))
            position_seq[d.position] = self.seq + i
        self._sample_numeric(mine)
        times = [d.timestamp for d in mine]
        self.t_min, self.t_max = min(self.t_min, min(times)), max(self.t_max, max(times))
        self.seq += len(mine)
        self.data.n_production = self.seq
        # Alerts: those raised by the replay, or those of the given file whose record is in this chunk.
        if self.given is None:
            events = [e.to_dict() for e in result.alerts if e.model_id == self.data.model_id and e.kind != CUE]
            for e in events:
                self._alert(e, position_seq.get(e["record_index"]))
        else:
            for i, d in enumerate(mine):
                for e in self.pending.pop(d.decision_id, []):
                    self._alert(e, self.seq - len(mine) + i)
        monitor = self.pipeline.monitors.get(self.data.model_id)
        if monitor is not None:
            self.data.series.add(self.seq, times[-1], monitor.statistics())

    def _sample_numeric(self, decisions: list[Decision]) -> None:
        for d in decisions:  # reservoir sampling (Algorithm R): a uniform sample of bounded size
            self.numeric_seen += 1
            if self.numeric_seen <= NUMERIC_SAMPLE:
                slot = self.numeric_seen - 1
            else:
                slot = int(self.rng.integers(self.numeric_seen))
                if slot >= NUMERIC_SAMPLE:
                    continue
            for name, (_, get) in NUMERIC_FIELDS.items():
                value = get(d)
                column = self.numeric[name]
                if slot < len(column):
                    column[slot] = value
                else:
                    column.append(value)

    def _alert(self, event: dict, seq: int | None) -> None:
        view = _alert_view(event)
        self.data.alerts.append(view)
        if seq is not None:
            self.data.markers.append((seq, view["status"], view["feature"]))
        if event.get("kind") == CUE:  # evidence of a cue alert is the paired-test table, not drift examples
            return
        if event.get("status") == "firing" and self.firing_evidence < MAX_EVIDENCE_ALERTS:
            self.firing_evidence += 1
            view["evidence"] = len(self.data.evidence) + 1
            self.data.evidence.append(self._evidence(view["evidence"], event, view, seq))

    # ---- evidence -----------------------------------------------------------------------------------------
    def _evidence(self, number: int, event: dict, view: dict, seq: int | None) -> Evidence:
        try:
            j = self.fz.feature_index(str(event.get("feature")))
        except KeyError:
            return Evidence(number, view, seq is not None, "", "", note="this baseline has no such feature")
        spec = self.specs[j]
        labels = list(spec.labels)
        code = labels.index(event["code"]) if event.get("code") in labels else None
        up = event.get("direction") != "down"
        ic = len(self.specs) + j  # ring column of feature j's condition cell
        segment = str(event.get("segment", ""))
        s_index = None if segment == ALL_SEGMENTS else self._segment_index(segment)
        in_segment = (lambda name: s_index is None or self._segment_index(name) == s_index)
        # The recent production records of the alert's segment (every segment for the pooled
        # row), up to the alert's record.
        window = [(q, d, c) for q, d, c in self.ring
                  if q <= seq and in_segment(d.segment)] if seq is not None else []
        reservoir = [(r, c) for r, c in zip(self.baseline.reservoir, self._reservoir_codes())
                     if in_segment(str(r.get("segment", "default")))]
        trigger_id = str(event.get("decision_id", ""))
        focus_code, focus = None, f"segment {short(segment, 'id')}, all inputs"
        if spec.kind == BEHAVIOUR and code is not None and window:
            focus_code = self._focus_condition(j, code, up, window, ic, s_index)
            if focus_code is not None:
                words = self.fz.describe_condition(j, focus_code)
                focus = (f"segment {short(segment, 'id')}, condition {focus_code} of {self.specs[j].name}"
                         + (f" (inputs marked by {short(words, 'example')})" if words else ""))
        n_conditions = self.fz.n_conditions[j]
        in_focus = (lambda codes: focus_code is None or int(codes[ic]) % n_conditions == focus_code)
        # Which records show the change: for a behaviour feature, production examples of what grew
        # (the code when it went up, other codes when it went down) against evaluation examples of
        # what used to happen; for the input mix, inputs of the alerted kind on both sides.
        if code is None:
            prod_want = eval_want = (lambda c: True)
        elif spec.kind == INPUT:
            prod_want = eval_want = (lambda c, k=code: int(c[j]) == k)
        elif up:
            prod_want = (lambda c, k=code: int(c[j]) == k)
            eval_want = (lambda c, k=code: int(c[j]) != k)
        else:
            prod_want = (lambda c, k=code: int(c[j]) != k)
            eval_want = (lambda c, k=code: int(c[j]) == k)
        production = []
        trigger = next(((d, c) for _, d, c in reversed(window) if d.decision_id == trigger_id), None)
        if trigger is not None:
            production.append(self._example_decision(trigger[0], trigger[1], j, trigger=True))
        recent = [(d, c) for _, d, c in reversed(window) if d.decision_id != trigger_id]
        picked = _pick(recent, lambda it: in_focus(it[1]), lambda it: prod_want(it[1]),
                       EXAMPLES_PER_SIDE - len(production))
        production += [self._example_decision(d, c, j) for d, c in picked]
        picked = _pick(reservoir, lambda it: in_focus(it[1]), lambda it: eval_want(it[1]), EXAMPLES_PER_SIDE)
        evaluation = [self._example_record(r, c, j) for r, c in picked]
        rates = self._rates(j, code, focus_code, ic, window, s_index) if code is not None else ""
        note = "" if seq is not None else "the record of this alert is not in the replayed input: no production examples"
        return Evidence(number, view, seq is not None, focus, rates, evaluation, production, note)

    def _segment_index(self, name: str) -> int:
        segments = self.fz.segments
        return segments.index(name) if name in segments else len(segments)

    def _reservoir_codes(self):
        codes = self.baseline.reservoir_codes
        if codes is None or len(codes) != len(self.baseline.reservoir):
            return []
        return codes

    def _segment_counts(self, j: int, s_index: int | None) -> np.ndarray:
        """Baseline counts of feature ``j`` in one segment (``None``: all of them): (conditions, codes)."""
        k = self.fz.n_conditions[j]
        counts = self.baseline.counts[j].reshape(-1, k, self.specs[j].n_codes).astype(np.float64)
        return counts.sum(axis=0) if s_index is None else counts[s_index]

    def _focus_condition(self, j: int, code: int, up: bool, window, ic: int, s_index: int | None) -> int | None:
        """The condition where production moved most in the alert's direction, against the baseline's
        rate of the code in that condition and segment (``ic``: the ring column of j's cells)."""
        k = self.fz.n_conditions[j]
        base = self._segment_counts(j, s_index)
        base_rate = (base[:, code] + 0.5) / (base.sum(axis=1) + 1.0)
        codes = np.array([c for _, _, c in window])
        conditions = codes[:, ic].astype(np.int64) % k
        n = np.bincount(conditions, minlength=k)[:k]
        hits = np.bincount(conditions, weights=(codes[:, j] == code), minlength=k)[:k]
        excess = (hits - n * base_rate) * (1 if up else -1)
        best = int(np.argmax(excess))
        return best if excess[best] > 0 and n[best] > 0 else None

    def _rates(self, j: int, code: int, focus_code: int | None, ic: int, window, s_index: int | None) -> str:
        base = self._segment_counts(j, s_index)
        if focus_code is not None:
            base = base[focus_code: focus_code + 1]
        b_n, b_hits = int(base.sum()), int(base[:, code].sum())
        k = self.fz.n_conditions[j]
        rows = [c for _, _, c in window if focus_code is None or int(c[ic]) % k == focus_code]
        p_n = len(rows)
        p_hits = sum(1 for c in rows if int(c[j]) == code)
        label = short(self.specs[j].labels[code])
        evaluation = f"{100 * b_hits / b_n:.1f}% of {b_n:,} evaluation records" if b_n else "no evaluation records"
        production = (f"{100 * p_hits / p_n:.1f}% of the last {p_n:,} production records before the alert"
                      if p_n else "no production records in the window")
        return f"{self.specs[j].name} = {label}: {evaluation}; {production}"

    def _code(self, j: int, codes) -> str:
        return f"{short(self.specs[j].name, 'id')} = {short(self.specs[j].labels[int(codes[j])])}"

    def _example_decision(self, d: Decision, codes, j: int, trigger: bool = False) -> Example:
        tools = ", ".join(t.name for t in d.tool_calls)
        return Example("production", short(d.decision_id, "id"), iso(d.timestamp), short(d.segment, "id"),
                       self._code(j, codes), excerpt(d.input_text, LIMITS["input"]),
                       short(d.action or "", "label"), "" if d.refused is None else str(d.refused).lower(),
                       short(tools, "tools"), excerpt(d.output_text, LIMITS["output"]),
                       excerpt(d.reasoning, LIMITS["reasoning"]),
                       "" if d.latency_ms is None else f"{d.latency_ms:,.0f} ms", trigger)

    def _example_record(self, r: dict, codes, j: int) -> Example:
        out = r.get("output") if isinstance(r.get("output"), dict) else {}
        inp = r.get("input") if isinstance(r.get("input"), dict) else {}
        calls = out.get("tool_calls") if isinstance(out.get("tool_calls"), list) else []
        tools = ", ".join(str(c.get("name", "")) for c in calls if isinstance(c, dict))
        refused = out.get("refused")
        latency = r.get("latency_ms")
        ts = r.get("timestamp")
        return Example("evaluation", short(r.get("decision_id", ""), "id"),
                       iso(float(ts)) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else "",
                       short(r.get("segment", ""), "id"), self._code(j, codes),
                       excerpt(inp.get("text"), LIMITS["input"]), short(out.get("action") or "", "label"),
                       "" if not isinstance(refused, bool) else str(refused).lower(), short(tools, "tools"),
                       excerpt(out.get("text"), LIMITS["output"]), excerpt(r.get("reasoning"), LIMITS["reasoning"]),
                       f"{latency:,.0f} ms" if isinstance(latency, (int, float)) and not isinstance(latency, bool) else "")

    # ---- after the replay -------------------------------------------------------------------------------
    def finish(self) -> None:
        data = self.data
        for event_list in self.pending.values():  # given alerts whose record never came
            for e in event_list:
                self._alert(e, None)
        monitor = self.pipeline.monitors.get(data.model_id)
        recent: dict[str, dict[str, float]] = {}
        if monitor is not None:
            for s in monitor.shares():
                if s.traffic == "production":
                    recent.setdefault(s.feature, {})[s.code] = s.value
            data.caveat = clean(monitor.protocol_caveat())
        if self.seq:
            data.production_range = (self.t_min, self.t_max)
        shares = []
        for j, spec in enumerate(self.specs):
            evaluation = self.baseline.shares(j)
            total = self.counts[j].sum()
            production = self.counts[j] / total if total else None
            rows = [CodeRow(short(label), float(evaluation[k]),
                            None if production is None else float(production[k]),
                            recent.get(spec.name, {}).get(label)) for k, label in enumerate(spec.labels)]
            if production is not None:
                _mark_notable(rows, self.baseline.n_records, int(total))
            if spec.name == "input_cluster":
                for k, row in enumerate(rows):
                    if k < len(spec.examples) and spec.examples[k]:
                        row.example = excerpt(spec.examples[k], LIMITS["example"])
            d = None
            if production is not None:
                d = float(jensenshannon(evaluation, production, base=2))
                d = 0.0 if not math.isfinite(d) else d
            rows = [r for r in rows if r.evaluation > 0 or (r.production or 0) > 0 or (r.recent or 0) > 0]
            rows.sort(key=lambda r: (-abs(r.difference), -r.evaluation))
            shares.append(FeatureShares(spec.name, spec.title or spec.name, spec.kind, d, rows[:TOP_CODES],
                                        max(len(rows) - TOP_CODES, 0)))
            if spec.name == "input_cluster":
                data.input_mix = FeatureShares(spec.name, spec.title, spec.kind, d, rows[:16], max(len(rows) - 16, 0))
        alerted = {a["feature"] for a in data.alerts if a["kind"] != CUE}
        for f in shares:
            f.alerted = short(f.feature, "id") in alerted
        shares.sort(key=lambda f: (-(f.js_distance or 0.0), f.feature))
        data.shares = shares
        if self.probe_records:
            from detector.probes.analyze import analyze_decisions

            report = analyze_decisions(self.probe_records, alpha=self.probe_alpha,
                                       baselines={data.model_id: self.baseline}, model_id=data.model_id)
            data.probes = report.models.get(data.model_id)
        for name in NUMERIC_FIELDS:
            evaluation = [v for v in (_reservoir_numeric(r, name) for r in self.baseline.reservoir) if v is not None]
            production = [float(v) for v in self.numeric[name] if v is not None]
            data.numeric[name] = (evaluation, production)


def _mark_notable(rows: list[CodeRow], n_evaluation: int, n_production: int) -> None:
    """Flag the codes whose evaluation/production difference a two-proportion z-test puts at least
    NOTABLE_Z standard errors from 0 (pooled rate): the rest is within sampling noise."""
    if n_evaluation <= 0 or n_production <= 0:
        return
    e = np.array([r.evaluation for r in rows])
    p = np.array([r.production for r in rows])
    pooled = (e * n_evaluation + p * n_production) / (n_evaluation + n_production)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_evaluation + 1 / n_production))
    z = np.divide(p - e, se, out=np.zeros_like(se), where=se > 0)
    for row, value in zip(rows, z):
        row.notable = bool(abs(value) >= NOTABLE_Z)


def _pick(items: list, near: Callable, want: Callable, n: int) -> list:
    """Up to ``n`` items, in this order of preference: near and wanted, wanted, near, any."""
    if n <= 0:
        return []
    out: list = []
    seen: set[int] = set()
    for rank in ((True, True), (False, True), (True, False), (False, False)):
        for i, it in enumerate(items):
            if len(out) >= n:
                return out
            if i in seen or (rank[0] and not near(it)) or (rank[1] and not want(it)):
                continue
            seen.add(i)
            out.append(it)
    return out


def _report_arl(baseline: Baseline, config: JanusConfig, arl: float | None, alerts: list[dict] | None
                ) -> tuple[float | None, str]:
    """The ARL to replay at, and a note when the alerts file was raised at another one.

    An alert carries its threshold log(ARL · n_tests); with no ``--arl`` the report takes the ARL
    from there, so its header, plots and replay match the alerts it shows."""
    thresholds = sorted({round(float(a["threshold"]), 6) for a in alerts or []
                         if a.get("kind") != CUE and a.get("threshold") is not None})
    if not thresholds:
        return arl, ""
    extra = cue_test_count(baseline.featurizer, config.detection, config.probes)
    n_tests = Monitor(baseline, arl=2.0, config=config.detection, extra_tests=extra).n_tests
    used = [math.exp(t) / max(n_tests, 1) for t in thresholds]
    if arl is None:
        chosen, configured = used[-1], config.detection.arl_for(baseline.model_id)
        if abs(chosen / configured - 1) < 1e-3:
            return None, ""
        return chosen, f"ARL {chosen:,.0f} read from the thresholds of the alerts (the configuration says " \
                       f"{configured:,.0f}; pass --arl to choose)"
    if any(abs(u / arl - 1) > 1e-3 for u in used):
        return arl, (f"the alerts were raised at ARL {', '.join(f'{u:,.0f}' for u in used)}, this report replays "
                     f"at {arl:,.0f}: its statistics and plots are not those of the alerts")
    return arl, ""


def gather_report(store: BaselineStore, model_id: str, chunks: Iterable[Chunk], *, version: str | None = None,
                  config: JanusConfig = JanusConfig(), arl: float | None = None, alerts: list[dict] | None = None,
                  source: str = "", alerts_source: str = "", review=None) -> ReportData:
    """Replay ``chunks`` of raw values through the detector for ``model_id`` (against ``version``,
    default ACTIVE) and gather the report. ``alerts``: show these alert events (from a file)
    instead of those the replay raises. ``review``: a :class:`detector.review.ReviewSummary`
    whose per-traffic violation rates of the model are shown (when it has any)."""
    model_id, version = store.resolve(f"{model_id}@{version}" if version else model_id)
    baseline = store.load(model_id, version)
    arl, arl_note = _report_arl(baseline, config, arl, alerts)
    pipeline = Pipeline(store, config, arl=arl, pinned={model_id: version})
    arl_value = float(arl if arl is not None else config.detection.arl_for(model_id))
    data = ReportData(model_id=clean(model_id), baseline=baseline, arl=arl_value, threshold=0.0,
                      generated_at=iso(datetime.now(timezone.utc).timestamp()), source=clean(source),
                      alerts_source=clean(alerts_source or "raised by replaying the input through the detector"))
    if arl_note:
        data.notes.append(arl_note)
    ring = int(min(max(2 * config.detection.window_half_life, 1000), 20_000))
    g = _Gatherer(data, pipeline, baseline, alerts, ring, config.probes.alpha)
    for values, first, locate, traffic in chunks:
        g.chunk(values, first, locate, traffic)
    g.finish()
    monitor = pipeline.monitors.get(model_id)
    if monitor is None:  # no production record reached the detector: build one for the threshold
        monitor = Monitor(baseline, arl=arl, config=config.detection)
    data.threshold = monitor.threshold
    from detector.report.advice import sample_size_advice

    data.sample_size = [a for a in sample_size_advice(baseline, arl=arl_value, config=config.detection)
                        if not a.sufficient][:5]
    if review is not None:
        from detector.review.summary import OVERALL

        data.review = [r for r in review.rows if r.model_id == model_id and r.stratum == OVERALL]
        data.review_sentence = review.sentence(model_id) if data.review else ""
        data.review_confidence = review.confidence
        data.notes.extend(f"review: {clean(n)}" for n in review.notes if data.review)
    if alerts is not None:
        versions = {a.get("baseline_version") for a in alerts} - {None, ""}
        if versions and versions != {version}:
            data.notes.append(f"the alerts were raised against baseline version(s) "
                              f"{', '.join(short(v, 'id') for v in sorted(map(str, versions)))}; this report replays "
                              f"against {short(baseline.ref, 'id')}")
    return data


def file_chunks(path, chunk_size: int = 256) -> Iterator[Chunk]:
    """A JSONL file as report chunks; positions are line indexes, as in ``janus backtest``."""
    from detector.records import iter_jsonl_chunks, line_locator

    locate = line_locator(path)
    position = 0
    try:
        for chunk in iter_jsonl_chunks(path, chunk_size):
            yield chunk, position, locate, None
            position += len(chunk)
    except OSError as exc:
        raise file_error(exc, path, "read input") from None
