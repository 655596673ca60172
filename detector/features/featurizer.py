"""Decisions → one small categorical code per feature, plus the condition cell of each record.

Every feature ends as a code in ``0..K-1`` so that one family of tests serves all of them:

* categorical fields (action, refused, each configured attribute): the value itself; values not in
  the baseline's vocabulary share one ``(unseen)`` code, absent values the ``(missing)`` code;
* refusal: ``output.refused``, or, when the evaluation records carry no such label, the refusal
  recogniser's reading of the output text (:mod:`.refusal`, ``features.refusal_source``); which of
  the two is fixed when the baseline is built, so evaluation and production are read alike;
* tool use: one presence feature per frequent tool name, plus one for any other tool;
* numeric fields (latency, confidence, output and reasoning length, tool-call count, input
  length): the bin between the baseline's quantiles (``ordered`` features);
* free text (output, reasoning, input): the nearest codebook centroid (:mod:`.text`);
* oversight-awareness phrases in the output and reasoning: none / one / two or more;
* data quality (kind ``data``): an expected part missing, or a value never seen in evaluation;
* novel input (kind ``input``): an input unlike every evaluation input.

Missing and unseen codes of a behaviour feature are data-quality facts, not behaviour: they are
left out of that feature's tests and counted by the ``data_quality`` feature instead.

The *condition cell* of a record, per feature, is (segment, condition): for behaviour features
the condition is the record's stratum of predicted behaviour given its input
(:mod:`.conditions`); input and data features are judged per segment.

>>> from detector.records import Decision
>>> evaluation = [Decision(f"e{i}", 0.0, "m", "evaluation", action=["close", "escalate"][i % 2],
...                        latency_ms=float(i)) for i in range(100)]
>>> fz = Featurizer().fit(evaluation)
>>> m = fz.transform(evaluation[:3])
>>> [fz.specs[j].name for j in range(3)]
['refused', 'action', 'tool:(other)']
>>> m.codes.shape[0], fz.label("action", int(m.codes[0, 1]))
(3, 'close')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from detector.config import FeaturesConfig
from detector.features.conditions import NOVEL, ConditionModel, fold_of
from detector.features.embedders import make_embedder
from detector.features.phrases import PhraseCounter
from detector.features.refusal import DEFAULT_REFUSAL_PATTERNS, ENGLISH_REFUSAL_PATTERNS, RefusalRecogniser
from detector.features.text import KeyedCache, TextCoder, TextField, text_keys
from detector.formats.turns import latest_request
from detector.records import Decision
from detector.threads import one_blas_thread

BEHAVIOUR = "behaviour"
INPUT = "input"
DATA = "data"
DATA_LABELS = ("ok", "missing part", "unseen value")
MISSING_PART = DATA_LABELS.index("missing part")  # data_quality code of a record missing an expected part
MISSING_LABEL = "(missing)"
UNSEEN_LABEL = "(unseen)"
OTHER_SEGMENT = "(other)"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # BEHAVIOUR | INPUT
    labels: tuple[str, ...]
    ordered: bool = False  # codes 1.. are ordered bins (code 0 = missing)
    title: str = ""  # human wording for alert sentences, e.g. "refusal"
    # Text clusters: the most frequent evaluation text of each code, for sentences and reports.
    # Kept out of ``labels`` so record text never becomes a Prometheus label value.
    examples: tuple[str, ...] = ()
    first_present: int = 0  # codes below this (missing, unseen) are data-quality facts, not behaviour

    @property
    def n_codes(self) -> int:
        return len(self.labels)


@dataclass
class FeatureMatrix:
    codes: np.ndarray  # (n, F) int16
    cells: np.ndarray  # (n, F) int32: per feature, segment index * its conditions + condition
    segments: np.ndarray  # (n,) int16 index into Featurizer.segments


class FeatureRows:
    """The feature rows of a batch's decisions, as one featurizer coded them; :meth:`of` reuses
    them and codes only the decisions it was not given (a record's codes do not depend on its batch).
    Decisions are matched by identity (the objects of one batch)."""

    def __init__(self, featurizer: Featurizer, decisions: Sequence[Decision] = (), matrix: FeatureMatrix | None = None):
        self.featurizer = featurizer
        self.matrix = matrix
        self._decisions = decisions  # kept alive, so that no other object takes one of their ids
        self._row = {id(d): i for i, d in enumerate(decisions)}

    def of(self, decisions: Sequence[Decision]) -> FeatureMatrix:
        rows = np.array([self._row.get(id(d), -1) for d in decisions], dtype=np.int64)
        new = np.flatnonzero(rows < 0)
        if len(new) == len(rows):
            return self.featurizer.transform(decisions)
        m = self.matrix
        codes, cells, segments = m.codes[rows], m.cells[rows], m.segments[rows]  # rows -1: written over below
        if len(new):
            coded = self.featurizer.transform([decisions[i] for i in new])
            codes[new], cells[new], segments[new] = coded.codes, coded.cells, coded.segments
        return FeatureMatrix(codes, cells, segments)


# ---- the coding of categories, also used by detector.probes so that its codes mean the same ----

def vocabulary(values: Sequence[str | None], size: int) -> list[str]:
    """The ``size`` most frequent values (``None`` left out), most frequent first.

    >>> vocabulary(["b", "a", None, "b", "c", "a"], 2)
    ['a', 'b']
    """
    counts = Counter(v for v in values if v is not None)
    # Ties broken by value so the same evaluation data always gives the same codes.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [v for v, _ in ranked[:size]]


def category_codes(values: Sequence[str | None], vocabulary: Sequence[str]) -> np.ndarray:
    """Codes of a categorical feature: 0 missing, 1 unseen (not in ``vocabulary``), 2.. its values.

    >>> category_codes(["b", None, "z"], ["a", "b"]).tolist()
    [3, 0, 1]
    """
    return _category_codes(values, _index(vocabulary, 2))


def attribute_text(value) -> str | None:
    """An attribute's value as a category (JSON booleans as ``true`` / ``false``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _index(vocabulary: Sequence[str], first_code: int) -> dict[str, int]:
    return {v: i + first_code for i, v in enumerate(vocabulary)}


def _category_codes(values: Sequence[str | None], index: dict[str, int]) -> np.ndarray:
    # 0 = missing, 1 = unseen, 2.. = vocabulary
    return np.fromiter((0 if v is None else index.get(v, 1) for v in values), dtype=np.int16, count=len(values))


def _bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    if not edges:
        return (MISSING_LABEL, "all")
    labels = [MISSING_LABEL, f"< {edges[0]:g}"]
    labels += [f"[{a:g}, {b:g})" for a, b in zip(edges[:-1], edges[1:])]
    labels.append(f">= {edges[-1]:g}")
    return tuple(labels)


def _bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    codes = np.searchsorted(edges, values, side="right").astype(np.int16) + 1
    codes[np.isnan(values)] = 0
    return codes


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _lengths(texts: Sequence[str | None]) -> np.ndarray:
    return np.array([np.nan if t is None else len(t) for t in texts], dtype=np.float64)


class Featurizer:
    """Fitted on one model's evaluation decisions; deterministic for a given fit."""

    NUMERIC = ("latency_ms", "confidence", "output_length", "reasoning_length", "tool_call_count")
    TITLES = {
        "refused": "refusal",
        "action": "action",
        "latency_ms": "latency (ms)",
        "confidence": "confidence",
        "output_length": "output length",
        "reasoning_length": "reasoning length",
        "tool_call_count": "tool calls per decision",
        "output_cluster": "kind of output",
        "reasoning_cluster": "kind of reasoning",
        "oversight_phrases": "oversight-awareness phrases",
        "input_cluster": "input mix",
        "input_length": "input length",
        "novel_input": "inputs evaluation cannot judge",
        "data_quality": "data quality",
    }

    def __init__(self, config: FeaturesConfig = FeaturesConfig()):
        self.config = config
        self.specs: list[FeatureSpec] = []
        self.segments: list[str] = []
        self.actions: list[str] = []
        self.tools: list[str] = []
        self.attributes: dict[str, list[str]] = {}
        self.edges: dict[str, list[float]] = {}
        self.coders: dict[str, TextCoder] = {}
        self._cluster_examples: dict[str, list[str]] = {}
        self.conditions = self._condition_model()
        self.condition_keys: list[str] = []  # attributes whose values are the conditions (else fitted strata)
        self.condition_values: list[str] = []  # with condition_keys: each value a condition
        self.expected: list[str] = []  # behaviour features whose absence is a data fault
        self.n_conditions: list[int] = []  # per feature
        self._phrases = PhraseCounter(config.oversight_phrases, config.phrase_variants, config.phrase_max_chars)
        self._refusals = RefusalRecogniser(config.refusal_patterns or DEFAULT_REFUSAL_PATTERNS,
                                           config.refusal_max_chars)
        self.refusal_source = "label" if config.refusal_source == "auto" else config.refusal_source
        self._build_indexes()

    @property
    def refusal_patterns(self) -> tuple[str, ...]:
        """The patterns refusals are recognised with (when ``refusal_source`` is "text")."""
        return self._refusals.patterns

    # ---- fitting -------------------------------------------------------------------------------
    def _coder(self, clusters: int) -> TextCoder:
        c = self.config
        embedder = make_embedder(c.embedder, dim=c.embedding_dim, n_features=c.hashing_features)
        return TextCoder(clusters, embedder, c.text_prefix_chars)

    def _condition_model(self) -> ConditionModel:
        c = self.config
        return ConditionModel(c.condition_strata, c.condition_folds, c.condition_vocabulary, 2,
                              c.condition_regularisation, c.condition_min_records, c.novelty_rate,
                              c.condition_prefix_chars)

    def fit(self, decisions: Sequence[Decision]) -> Featurizer:
        cols = _Columns(decisions, self._inputs(decisions))
        self._fit_codes(decisions, cols)
        self._fit_conditions(decisions, cols)
        return self

    def _fit_conditions(self, decisions: Sequence[Decision], cols: _Columns) -> None:
        """Data-quality expectations and the conditions of each behaviour feature."""
        c = self.config
        codes = self._codes(cols)
        specs = self.specs
        behaviour = [j for j, s in enumerate(specs) if s.kind == BEHAVIOUR]
        self.expected = [specs[j].name for j in behaviour if specs[j].first_present > 0
                         and np.mean(codes[:, j] != 0) >= c.expected_presence] if len(codes) else []
        self.conditions = self._condition_model()
        self.condition_keys = self._condition_keys(decisions)
        self.condition_values = []
        if self.condition_keys:
            self.condition_values = vocabulary([self._condition_value(d) for d in decisions], c.max_codes * 4)
        else:
            ids, inputs = [d.decision_id for d in decisions], cols.input_text
            self.conditions.fit(inputs, ids, {specs[j].name: codes[:, j] for j in behaviour},
                                {specs[j].name: specs[j].first_present for j in behaviour})
            self.conditions.descriptions = self.conditions.describe(inputs[:5000], ids[:5000])
        self._build_indexes()

    def _condition_keys(self, decisions: Sequence[Decision]) -> list[str]:
        """The configured condition attributes; else the first of ``condition_attributes_auto`` that
        evaluation records carry (nearly all of them, with 2 to ``4 × max_codes`` values): a router's
        intent or a product category says what was asked better than any model of the text."""
        c = self.config
        if c.condition_attributes:
            return list(c.condition_attributes)
        for key in c.condition_attributes_auto:
            values = [attribute_text(d.attributes.get(key)) for d in decisions]
            present = [v for v in values if v is not None]
            if len(present) >= c.expected_presence * max(len(values), 1) and 2 <= len(set(present)) <= 4 * c.max_codes:
                return [key]
        return []

    def _condition_value(self, d: Decision) -> str:
        return "\x1f".join(attribute_text(d.attributes.get(k)) or MISSING_LABEL for k in self.condition_keys)

    def _fit_codes(self, decisions: Sequence[Decision], cols: _Columns) -> None:
        c = self.config
        if c.refusal_source == "auto":  # labels when evaluation carries them, else the output text
            labelled = sum(r is not None for r in cols.refused) >= c.expected_presence * max(len(decisions), 1)
            self.refusal_source = "label" if labelled else "text"
        self.segments = vocabulary(cols.segment, c.max_segments)
        self.actions = vocabulary(cols.action, c.max_codes - 2)
        self.tools = vocabulary([name for names in cols.tool_names for name in set(names)], c.max_tools)
        self.attributes = {
            key: vocabulary([attribute_text(a.get(key)) for a in cols.attributes], c.max_codes - 2)
            for key in c.attributes
        }
        numeric = cols.numeric()
        quantiles = np.linspace(0, 1, c.numeric_bins + 1)[1:-1]
        self.edges = {}
        for name, values in numeric.items():
            present = values[~np.isnan(values)]
            self.edges[name] = np.unique(np.quantile(present, quantiles)).tolist() if len(present) else []
        self.coders = {
            "output_cluster": self._coder(c.output_clusters).fit(cols.output_text),
            "reasoning_cluster": self._coder(c.reasoning_clusters).fit(cols.reasoning),
            "input_cluster": self._coder(c.input_clusters).fit(cols.input_text),
        }
        self._build_indexes()
        self._cluster_examples = {
            name: self._most_frequent_texts(coder, getattr(cols, _TEXT_SOURCE[name]))
            for name, coder in self.coders.items()
        }
        self.specs = self._make_specs()

    @staticmethod
    def _most_frequent_texts(coder: TextCoder, texts: Sequence[str | None]) -> list[str]:
        """Each cluster's most frequent text, so alerts can say which inputs changed."""
        examples = [""] * coder.n_codes
        best: dict[int, tuple[int, str]] = {}
        counts = Counter(t[:200] for t in texts if t)
        if counts:
            ranked = counts.most_common(5000)
            codes = coder.codes([t for t, _ in ranked])
            for (text, n), code in zip(ranked, codes):
                if int(code) not in best:
                    best[int(code)] = (n, text)
        for code, (_, text) in best.items():
            short = " ".join(text.split())
            examples[code] = f"“{short[:48]}{'…' if len(short) > 48 else ''}”"
        return examples

    def _make_specs(self) -> list[FeatureSpec]:
        cats = (MISSING_LABEL, UNSEEN_LABEL)
        specs = [
            FeatureSpec("refused", BEHAVIOUR, (MISSING_LABEL, "false", "true"), first_present=1,
                        title="refusal" if self.refusal_source == "label" else "refusal (recognised in the output)"),
            FeatureSpec("action", BEHAVIOUR, cats + tuple(self.actions), title="action", first_present=2),
            FeatureSpec("tool:(other)", BEHAVIOUR, ("absent", "present"), title="use of other tools"),
        ]
        specs += [FeatureSpec(f"tool:{t}", BEHAVIOUR, ("absent", "present"), title=f"use of tool {t}")
                  for t in self.tools]
        specs += [FeatureSpec(f"attr:{k}", BEHAVIOUR, cats + tuple(v), title=f"attribute {k}", first_present=2)
                  for k, v in self.attributes.items()]
        specs += [FeatureSpec(n, BEHAVIOUR, _bin_labels(self.edges[n]), True, self.TITLES[n], first_present=1)
                  for n in self.NUMERIC]
        for name in ("output_cluster", "reasoning_cluster"):
            specs.append(self._cluster_spec(name, BEHAVIOUR, first_present=1))
        specs.append(FeatureSpec("oversight_phrases", BEHAVIOUR, ("none", "one", "two or more"), True,
                                 self.TITLES["oversight_phrases"]))
        specs.append(self._cluster_spec("input_cluster", INPUT))
        specs.append(FeatureSpec("input_length", INPUT, _bin_labels(self.edges["input_length"]), True,
                                 self.TITLES["input_length"]))
        specs.append(FeatureSpec("novel_input", INPUT, ("no", "yes"), title=self.TITLES["novel_input"]))
        specs.append(FeatureSpec("data_quality", DATA, DATA_LABELS, title=self.TITLES["data_quality"]))
        return specs

    def _cluster_spec(self, name: str, kind: str, first_present: int = 0) -> FeatureSpec:
        n = self.coders[name].n_codes
        labels = (MISSING_LABEL,) + tuple(f"#{k}" for k in range(1, n))
        return FeatureSpec(name, kind, labels, title=self.TITLES[name], examples=tuple(self._cluster_examples[name]),
                           first_present=first_present)

    def _build_indexes(self) -> None:
        self._segment_index = _index(self.segments, 0)
        self._action_index = _index(self.actions, 2)
        self._tool_index = _index(self.tools, 0)
        self._attribute_index = {k: _index(v, 2) for k, v in self.attributes.items()}
        self._edges = {k: np.asarray(v, dtype=np.float64) for k, v in self.edges.items()}
        # Output and reasoning also feed the oversight-phrase count: one cache per field serves both.
        self._text_fields = {name: TextField(coder, None if name == "input_cluster" else self._phrases,
                                             self.config.text_cache_size)
                             for name, coder in self.coders.items()}
        # Inputs repeat too (templated prompts): a record's stratum depends only on its input as the
        # condition model reads it and on its fold, so strata are cached by those two.
        self._strata = KeyedCache(self.config.text_cache_size)
        self._condition_index = _index(self.condition_values, 1)
        self._expected_columns = np.array([j for j, s in enumerate(self.specs) if s.name in self.expected], np.int64)
        self._unseen_columns = np.array([j for j, s in enumerate(self.specs) if s.first_present == 2], np.int64)
        self.n_conditions = [self._n_conditions_of(s) for s in self.specs]

    def _n_conditions_of(self, spec: FeatureSpec) -> int:
        if spec.kind != BEHAVIOUR:
            return 1
        if self.condition_values:
            return 1 + len(self.condition_values)
        return self.conditions.n_conditions

    # ---- shape of the output ---------------------------------------------------------------
    @property
    def n_segment_codes(self) -> int:
        return len(self.segments) + 1

    def n_cells(self, j: int) -> int:
        """Condition cells of feature ``j``: segments × its conditions."""
        return self.n_segment_codes * self.n_conditions[j]

    def condition_of_cell(self, j: int, cell: int) -> tuple[int, int]:
        """(segment index, condition) of feature ``j``'s cell."""
        return divmod(int(cell), self.n_conditions[j])

    def describe_condition(self, j: int, condition: int) -> str:
        """Words marking the inputs of a condition, e.g. '“refund”, “override”' ("" if none)."""
        spec = self.specs[j]
        if spec.kind != BEHAVIOUR or condition == NOVEL:
            return ""
        if self.condition_values:
            value = self.condition_values[condition - 1]
            return ", ".join(f"{k} = {v}" for k, v in zip(self.condition_keys, value.split("\x1f")))
        words = self.conditions.descriptions
        return words[condition] if condition < len(words) else ""

    def segment_name(self, index: int) -> str:
        return self.segments[index] if index < len(self.segments) else OTHER_SEGMENT

    def feature_index(self, name: str) -> int:
        for j, spec in enumerate(self.specs):
            if spec.name == name:
                return j
        raise KeyError(name)

    def label(self, feature: str, code: int) -> str:
        return self.specs[self.feature_index(feature)].labels[code]

    # ---- transform -----------------------------------------------------------------------------
    def transform(self, decisions: Sequence[Decision]) -> FeatureMatrix:
        with one_blas_thread():  # its dense products are small (detector/threads.py)
            return self._transform(decisions)

    def _transform(self, decisions: Sequence[Decision]) -> FeatureMatrix:
        n = len(decisions)
        cols = _Columns(decisions, self._inputs(decisions))
        codes = self._codes(cols)
        other = len(self.segments)
        segments = np.fromiter((self._segment_index.get(s, other) for s in cols.segment), dtype=np.int16, count=n)
        condition = self._condition(decisions, cols.input_text)
        codes[:, self.feature_index("novel_input")] = condition == NOVEL
        codes[:, self.feature_index("data_quality")] = self._data_quality(codes)
        cells = np.empty(codes.shape, dtype=np.int32)
        for j, spec in enumerate(self.specs):
            cells[:, j] = segments.astype(np.int32) * self.n_conditions[j] + (condition if spec.kind == BEHAVIOUR else 0)
        return FeatureMatrix(codes, cells, segments)

    def _inputs(self, decisions: Sequence[Decision]) -> list[str | None]:
        """Each record's input as every input feature reads it (a transcript: its latest user turns)."""
        if self.config.latest_turn:
            chars, turns = self.config.request_context_chars, self.config.request_max_turns
            return [latest_request(d.input_text, chars, turns) for d in decisions]
        return [d.input_text for d in decisions]

    def _condition(self, decisions: Sequence[Decision], texts: list[str | None]) -> np.ndarray:
        """Each record's condition (0 = novel: an input or condition value unseen in evaluation)."""
        if self.condition_values:
            index = self._condition_index
            return np.fromiter((index.get(self._condition_value(d), NOVEL) for d in decisions),
                               dtype=np.int16, count=len(decisions))
        model = self.conditions
        ids = [d.decision_id for d in decisions]
        prefix, folds = model.prefix_chars, model.folds
        # The condition model reads hashed n-grams of the text: blind to its digits.
        keys = [h * folds + k for h, k in zip(text_keys(texts, prefix, digit_blind=True), fold_of(ids, folds).tolist())]
        strata = self._strata.values(keys, lambda rows: model.strata([texts[i] for i in rows],
                                                                     [ids[i] for i in rows]).tolist())
        return np.array(strata, dtype=np.int16)

    def _data_quality(self, codes: np.ndarray) -> np.ndarray:
        """0 ok, 1 an expected part missing, 2 a value never seen in evaluation."""
        missing = (codes[:, self._expected_columns] == 0).any(axis=1) if len(self._expected_columns) else False
        unseen = (codes[:, self._unseen_columns] == 1).any(axis=1) if len(self._unseen_columns) else False
        return np.where(missing, 1, np.where(unseen, 2, 0)).astype(np.int16)

    def _codes(self, cols: _Columns) -> np.ndarray:
        """Every feature's code; novel_input and data_quality are filled in by :meth:`transform`."""
        n = len(cols.segment)
        if self.refusal_source == "text":  # -1 (no text) → 0 missing, 0 → 1 false, 1 → 2 true
            refused = (self._refusals.recognise(cols.output_text) + 1).astype(np.int16)
        else:
            refused = np.fromiter((0 if r is None else 2 if r else 1 for r in cols.refused), dtype=np.int16, count=n)
        columns: list[np.ndarray] = [
            refused,
            _category_codes(cols.action, self._action_index),
        ]
        n_tools = len(self.tools)
        presence = np.zeros((n, n_tools + 1), dtype=np.int16)  # last column: any other tool
        tool_index = self._tool_index
        for i, names in enumerate(cols.tool_names):
            for name in names:
                presence[i, tool_index.get(name, n_tools)] = 1
        columns.append(presence[:, n_tools])
        columns.extend(presence[:, j] for j in range(n_tools))
        for key, index in self._attribute_index.items():
            columns.append(_category_codes([attribute_text(a.get(key)) for a in cols.attributes], index))
        numeric = cols.numeric()
        columns.extend(_bin_codes(numeric[name], self._edges[name]) for name in self.NUMERIC)
        output_codes, output_phrases = self._text_fields["output_cluster"].encode(cols.output_text)
        reasoning_codes, reasoning_phrases = self._text_fields["reasoning_cluster"].encode(cols.reasoning)
        columns.append(output_codes)
        columns.append(reasoning_codes)
        columns.append(np.minimum(output_phrases + reasoning_phrases, 2))
        input_codes, _ = self._text_fields["input_cluster"].encode(cols.input_text)
        columns.append(input_codes)
        columns.append(_bin_codes(numeric["input_length"], self._edges["input_length"]))
        columns += [np.zeros(n, np.int16), np.zeros(n, np.int16)]  # novel_input, data_quality
        return np.column_stack(columns).astype(np.int16) if n else np.zeros((0, len(self.specs)), np.int16)

    # ---- persistence (JSON + arrays, never pickle) -----------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        coders = {}
        for name, coder in self.coders.items():
            meta, arr = coder.state(f"text.{name}")
            coders[name] = meta
            arrays.update(arr)
        conditions, arr = self.conditions.state("conditions")
        arrays.update(arr)
        meta = {
            "conditions": conditions,
            "condition_keys": self.condition_keys,
            "condition_values": self.condition_values,
            "expected": self.expected,
            "refusal_source": self.refusal_source,
            # The patterns the baseline's refusals were read with: production must be read alike,
            # whatever the defaults of a later version.
            "refusal_patterns": list(self._refusals.patterns),
            "config": asdict(self.config),
            "segments": self.segments,
            "actions": self.actions,
            "tools": self.tools,
            "attributes": self.attributes,
            "edges": self.edges,
            "coders": coders,
            "cluster_examples": self._cluster_examples,
            "specs": [asdict(s) for s in self.specs],
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Featurizer:
        # Baselines saved before transcripts were read by their latest turn read inputs whole; those
        # saved before their earlier user turns were read took the latest with the one before it
        # when the latest was under 24 characters.
        fz = cls(FeaturesConfig(**{"latest_turn": False, "request_context_chars": 24, "request_max_turns": 2,
                                   **meta["config"]}))
        fz.segments = list(meta["segments"])
        fz.actions = list(meta["actions"])
        fz.tools = list(meta["tools"])
        fz.attributes = {k: list(v) for k, v in meta["attributes"].items()}
        fz.edges = {k: list(v) for k, v in meta["edges"].items()}
        fz.coders = {
            name: TextCoder.from_state(m, arrays, f"text.{name}")
            for name, m in meta["coders"].items()
        }
        fz._cluster_examples = meta["cluster_examples"]
        fz.conditions = ConditionModel.from_state(meta["conditions"], arrays, "conditions")
        fz.condition_keys = list(meta.get("condition_keys", fz.config.condition_attributes))
        fz.condition_values = list(meta["condition_values"])
        fz.expected = list(meta["expected"])
        fz.refusal_source = meta["refusal_source"]
        # Baselines saved before the patterns were stored were read with the English defaults.
        fz._refusals = RefusalRecogniser(meta.get("refusal_patterns", ENGLISH_REFUSAL_PATTERNS),
                                         fz.config.refusal_max_chars)
        fz.specs = [FeatureSpec(**{**s, "labels": tuple(s["labels"]), "examples": tuple(s["examples"])})
                    for s in meta["specs"]]
        fz._build_indexes()
        return fz


_TEXT_SOURCE = {"output_cluster": "output_text", "reasoning_cluster": "reasoning", "input_cluster": "input_text"}


class _Columns:
    """Column views of a batch of decisions, each extracted once."""

    def __init__(self, decisions: Sequence[Decision], input_text: list[str | None]):
        self.segment = [d.segment for d in decisions]
        self.refused = [d.refused for d in decisions]
        self.action = [d.action for d in decisions]
        self.tool_names = [[t.name for t in d.tool_calls] for d in decisions]
        self.attributes = [d.attributes for d in decisions]
        self.output_text = [d.output_text for d in decisions]
        self.reasoning = [d.reasoning for d in decisions]
        self.input_text = input_text
        self._decisions = decisions

    def numeric(self) -> dict[str, np.ndarray]:
        ds = self._decisions
        return {
            "latency_ms": _floats([d.latency_ms for d in ds]),
            "confidence": _floats([d.confidence for d in ds]),
            "output_length": _lengths(self.output_text),
            "reasoning_length": _lengths(self.reasoning),
            "tool_call_count": np.array([len(names) for names in self.tool_names], dtype=np.float64),
            "input_length": _lengths(self.input_text),
        }
