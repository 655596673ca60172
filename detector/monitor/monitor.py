"""Monitor: one model's production decisions against its active baseline, feature by feature.

>>> from detector.records import Decision
>>> from detector.baseline.build import build_baseline
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> def batch(p, n, traffic):
...     return [Decision(f"{traffic}{i}", float(i), "m", traffic, refused=bool(r))
...             for i, r in enumerate(rng.random(n) < p)]
>>> monitor = Monitor(build_baseline(batch(0.05, 20000, "evaluation")), arl=10000)
>>> monitor.update(batch(0.05, 3000, "production"))
[]
>>> alerts = monitor.update(batch(0.20, 3000, "production"))
>>> alerts[0].feature, alerts[0].code, alerts[0].direction
('refused', 'true', 'up')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.baseline.model import Baseline
from detector.config import DetectionConfig
from detector.features import BEHAVIOUR, DATA, INPUT, FeatureMatrix, FeatureSpec
from detector.features.conditions import NOVEL
from detector.features.featurizer import MISSING_PART, FeatureRows
from detector.monitor.alerts import SEVERITY, AlertEvent, describe, iso_time
from detector.monitor.detectors import (DOWN, SHARE, UP, Component, alternative_table, component_weights,
                                        evidence_rates, feature_components)
from detector.monitor.history import History
from detector.monitor.nulls import dirichlet_alpha, log_predictive_of_counts, predictive, sequential_predictive
from detector.monitor.shiryaev_roberts import RatioTable, Run, ShiryaevRoberts
from detector.records import Decision

MAX_TRACKED_VERSIONS = 20
HISTORY_RECORDS = 16_384  # production records kept for alert rates (~3 MiB a model with 30 features)
CONTEXT_RECORDS = 5  # fewest quoted records in a condition for an alert to name it
ALL_SEGMENTS = "(all)"


@dataclass(frozen=True)
class Statistic:
    segment: str
    feature: str
    kind: str
    value: float  # normalised: 1.0 = alert threshold


@dataclass(frozen=True)
class Share:
    feature: str
    code: str
    traffic: str
    value: float


def feature_family(spec: FeatureSpec, config: DetectionConfig) -> list[Component]:
    """The alternatives of a feature's family, before :func:`watched_feature` drops those no
    detector could find (empty: the feature has none)."""
    if spec.kind == DATA:  # faults only matter when they become more frequent, at a rate
        return [Component(k, UP, x, SHARE) for k in range(1, spec.n_codes) for x in config.data_shares]
    # An input mix that changes makes some input code more frequent: for unordered input features
    # the "down" alternatives would double the family (its cost and the per-record work) for the
    # same changes.
    up_only = spec.kind == INPUT and not spec.ordered
    return feature_components(spec.n_codes, spec.ordered, list(config.tilts), list(config.shares),
                              first_present=spec.first_present, directions=(UP,) if up_only else (UP, DOWN))


@dataclass(frozen=True)
class WatchedFeature:
    """How a Monitor watches one feature: its null's posterior and the alternatives worth watching."""

    components: list[Component]
    alpha: np.ndarray  # posterior Dirichlet parameters per (cell, code)
    mean: np.ndarray  # the baseline's posterior mean P(code | cell)
    table: np.ndarray  # q(code | cell) per component, flat rows cell * codes + code


def watched_feature(spec: FeatureSpec, counts: np.ndarray, config: DetectionConfig) -> WatchedFeature | None:
    """The feature's family (:func:`feature_family`) less the alternatives that would give under
    ``config.min_evidence_rate`` per record were they true, given its baseline ``counts``; None
    when none is left (the feature is not watched). The Monitor and the sample-size advice both
    read the family from here."""
    comps = feature_family(spec, config)
    if not comps:
        return None
    first = spec.first_present
    alpha = dirichlet_alpha(counts, first_present=first, prior=config.prior,
                            tolerance=config.data_tolerance if spec.kind == DATA else 0.0)
    mean = predictive(alpha)
    table = alternative_table(mean, comps, first)
    keep = evidence_rates(table, mean, counts.sum(axis=1)) >= config.min_evidence_rate
    if not keep.any():
        return None
    kept = [c for c, k in zip(comps, keep) if k]
    return WatchedFeature(kept, alpha, mean, table[:, :, keep].reshape(-1, len(kept)))


class Monitor:
    """Sequential drift detection for one model (see :mod:`detector.monitor.detectors` for why).

    Configured in ``__init__`` (baseline, ARL, detection settings); fed micro-batches of decisions
    with :meth:`update` or per-cell count vectors with :meth:`update_counts`; its state round-trips
    through :meth:`state` / :meth:`restore`.
    """

    def __init__(self, baseline: Baseline, *, arl: float | None = None, config: DetectionConfig = DetectionConfig(),
                 extra_tests: int = 0):
        # extra_tests: statistics of the same model's probe pairs thresholded elsewhere with this
        # monitor's per-test threshold (the monitoring-cue detector, detector.probes).
        self.extra_tests = int(extra_tests)
        self.baseline = baseline
        self.config = config
        self.arl = float(arl if arl is not None else config.arl_for(baseline.model_id))
        fz = baseline.featurizer
        self.featurizer = fz
        self.n_segments = fz.n_segment_codes
        # With several segments, one more statistic pools them all, so a model-wide change is not
        # split into per-segment evidence; it costs a factor 2 in the threshold.
        self.all_row = self.n_segments if len(fz.segments) > 1 else None
        self.n_rows = self.n_segments + (self.all_row is not None)
        self.features: list[int] = []  # featurizer columns with a non-empty detector family
        self.components: list[list[Component]] = []
        self._alpha: list[np.ndarray] = []  # posterior Dirichlet parameters per (cell, code)
        self._alt: list[np.ndarray] = []  # q(code | cell) per component, flat rows cell * codes + code
        self.expected: list[np.ndarray] = []  # baseline posterior mean P(code | cell), per monitored feature
        self._first: list[int] = []
        self._conditions: list[int] = []
        sizes = []
        for j, spec in enumerate(fz.specs):
            if config.features and spec.name not in config.features:
                continue
            watched = watched_feature(spec, baseline.counts[j], config)
            if watched is None:
                continue
            self._alpha.append(watched.alpha)
            self._alt.append(watched.table)
            self.expected.append(watched.mean)
            self._first.append(spec.first_present)
            self._conditions.append(fz.n_conditions[j])
            self.features.append(j)
            self.components.append(watched.components)
            sizes.append(len(watched.components))
        self._n_codes = [a.shape[1] for a in self._alpha]
        self._alpha_per_cell = [a.sum(axis=1) for a in self._alpha]
        self._data_column = fz.feature_index("data_quality")
        self._baseline_shares = [baseline.shares(j) for j in self.features]
        n_features = len(self.features)
        # Bonferroni over the statistics one record moves (the mixture already covers each feature's
        # family): a production record moves every feature in its segment and, with several
        # segments, in "(all)"; probe records move only the cue tests, once a pair of two distinct
        # records completes, so G/2 per record. The budget is the larger of the two, not their sum.
        self.n_tests = max(n_features * (1 + (self.all_row is not None)), self.extra_tests / 2)
        self.log_threshold = float(np.log(self.arl) + np.log(max(self.n_tests, 1)))
        weights = [component_weights(c) for c in self.components]
        self.sr = ShiryaevRoberts.for_features(sizes, self.log_threshold, config.resolve_fraction,
                                               np.concatenate(weights) if weights else np.zeros(0))
        self._ratio_table = RatioTable.of(self._alt)
        self._decay = 0.5 ** (1.0 / config.window_half_life)
        # ---- state ----
        self.log_r = np.full((self.n_rows, sum(sizes)), -np.inf)
        self.firing = np.zeros((self.n_rows, n_features), dtype=bool)
        self.quiet_time = np.zeros((self.n_rows, n_features))
        self.seen = [np.zeros_like(a) for a in self._alpha]  # production counts the null has learnt
        self.window = [np.zeros_like(e) for e in self.expected]  # decayed production code counts per cell
        self.segment_records = np.zeros(self.n_rows, dtype=np.int64)
        self.n_production = 0
        self.unbaselined_versions: Counter[str] = Counter()
        self.history = History(HISTORY_RECORDS, len(fz.specs))  # what alerts quote their rates from
        self._learns = True  # False: a fixed posterior-mean null (only for tests that show it fails)

    # ---- public views ----------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.baseline.model_id

    @property
    def threshold(self) -> float:
        """The e-detector threshold F·ARL each feature's mixture is compared with."""
        return float(np.exp(self.log_threshold))

    def statistics(self) -> list[Statistic]:
        norm = self.sr.normalised(self.sr.log_mixture(np.exp(self.log_r)))  # (segments, features)
        out = []
        for s in np.flatnonzero(self.segment_records):
            name = self.row_name(int(s))
            for f, j in enumerate(self.features):
                spec = self.featurizer.specs[j]
                out.append(Statistic(name, spec.name, spec.kind, float(norm[s, f])))
        return out

    def row_name(self, row: int) -> str:
        """The segment a statistic row watches ("(all)" for the pooled row)."""
        return ALL_SEGMENTS if row == self.all_row else self.featurizer.segment_name(row)

    def shares(self) -> list[Share]:
        out = []
        for f, j in enumerate(self.features):
            spec = self.featurizer.specs[j]
            evaluation = self._baseline_shares[f]
            total = self.window[f].sum()
            production = self.window[f].sum(axis=0) / total if total > 0 else None
            for k, label in enumerate(spec.labels):
                out.append(Share(spec.name, label, "evaluation", float(evaluation[k])))
                if production is not None:
                    out.append(Share(spec.name, label, "production", float(production[k])))
        return out

    def protocol_caveat(self) -> str:
        if not self.unbaselined_versions:
            return ""
        running = ", ".join(sorted(self.unbaselined_versions))
        built = ", ".join(self.baseline.model_versions) or "unknown versions"
        paused = ("; its records are counted, not scored (detection.on_protocol_change = pause)"
                  if self.config.on_protocol_change == "pause" else "")
        return (f"production now runs {self.model_id} {running}; baseline {self.baseline.ref} was built on "
                f"{built}: baseline predates this version{paused}")

    def is_unbaselined(self, version: str | None) -> bool:
        """A production ``model_version`` the baseline was not built on (a protocol change); records
        without a version, or against a baseline that recorded none, are taken as covered."""
        known = self.baseline.model_versions
        return version is not None and bool(known) and version not in known

    # ---- updates ---------------------------------------------------------------------------------
    def count_unbaselined(self, versions: Counter[str]) -> None:
        """Count production records of model versions the baseline was not built on (at most
        MAX_TRACKED_VERSIONS versions are remembered)."""
        for version, n in versions.items():
            if version in self.unbaselined_versions or len(self.unbaselined_versions) < MAX_TRACKED_VERSIONS:
                self.unbaselined_versions[version] += n

    def update(self, decisions: Sequence[Decision]) -> list[AlertEvent]:
        """Score the production decisions of a micro-batch (others are ignored); return alert events."""
        return self.score(decisions)[0]

    def score(self, decisions: Sequence[Decision]) -> tuple[list[AlertEvent], FeatureRows]:
        """:meth:`update`, also returning the feature rows of the decisions it scored (for the review sampler)."""
        production = [d for d in decisions if d.traffic == "production"]
        # A batch holds few versions: each is judged once, not once per record.
        unbaselined = {v for v in {d.model_version for d in production} if self.is_unbaselined(v)}
        if unbaselined:
            self.count_unbaselined(Counter(d.model_version for d in production if d.model_version in unbaselined))
            if self.config.on_protocol_change == "pause":
                production = [d for d in production if d.model_version not in unbaselined]
        if not production:
            return [], FeatureRows(self.featurizer)
        matrix = self.featurizer.transform(production)
        alerts = self.update_matrix(matrix, [d.decision_id for d in production],
                                    np.array([d.position for d in production]),
                                    np.array([d.timestamp for d in production]))
        return alerts, FeatureRows(self.featurizer, production, matrix)

    def _scored(self, f: int, matrix: FeatureMatrix) -> np.ndarray:
        """Records whose code of feature ``f`` is behaviour to score: present, not a novel input, and
        not missing a part evaluation always had (a record without its output reads as "no tool
        called"; the data-quality feature judges that fault instead)."""
        j = self.features[f]
        scored = matrix.codes[:, j] >= self._first[f]
        if self.featurizer.specs[j].kind == BEHAVIOUR:
            scored &= matrix.cells[:, j] % self._conditions[f] != NOVEL
            scored &= matrix.codes[:, self._data_column] != MISSING_PART
        return scored

    def _ratios(self, matrix: FeatureMatrix) -> tuple[np.ndarray, np.ndarray]:
        """Where each record's Λ = q(x | cell) / m_t(x | cell) is, per feature: its row in the
        alternatives' table (cell · codes + code; -1 where not scored: no step) and m_t, both (n, F).

        The predictive m_t counts the production records before each one (this batch's too) in
        segments whose alert on that feature is not firing (their null stays put while it fires).
        """
        n = len(matrix.cells)
        keys = np.full((n, len(self.features)), -1, dtype=np.int64)
        null = np.ones((n, len(self.features)))
        learning_segment = ~self.firing[: self.n_segments]  # (segments, features), as at the batch's start
        if self.all_row is not None:
            learning_segment = learning_segment & ~self.firing[self.all_row][None, :]
        for f, j in enumerate(self.features):
            rows = np.flatnonzero(self._scored(f, matrix))
            if not len(rows):
                continue
            k = self._n_codes[f]
            cells = matrix.cells[rows, j].astype(np.int64)
            key = cells * k + matrix.codes[rows, j]
            learn = learning_segment[matrix.segments[rows], f] & self._learns
            seen = self.seen[f]
            flat = seen.reshape(-1)  # learns in place (a copy only if `seen` were not contiguous)
            keys[rows, f] = key
            null[rows, f] = sequential_predictive(key, cells, learn, self._alpha[f].ravel(), self._alpha_per_cell[f],
                                                  flat, seen.sum(axis=1))
            self.seen[f] = flat.reshape(seen.shape)
        return keys, null

    def update_matrix(self, matrix: FeatureMatrix, decision_ids: Sequence[str], positions: np.ndarray,
                      times: np.ndarray) -> list[AlertEvent]:
        """The vectorised core: featurised production records, in stream order.

        Whether the null learns a record depends on whether its feature's alert fired before it, so
        a batch in which an alert fires or resolves is cut after that record and the rest is scored
        again: results do not depend on where batches start and end.
        """
        n = len(matrix.cells)
        events: list[AlertEvent] = []
        start = 0
        while start < n:
            saved = self._snapshot()
            part = _rows(matrix, start, n)
            found, first_row = self._score(part, decision_ids[start:], positions[start:], times[start:])
            end = n
            if found and first_row < n - start - 1:
                self._restore_snapshot(saved)  # score up to the first transition, then go on from there
                end = start + first_row + 1
                part = _rows(matrix, start, end)
                found, _ = self._score(part, decision_ids[start:], positions[start:], times[start:])
            self.history.append(part, times[start:end])
            start = end
            events += found
        events.sort(key=lambda e: (e.record_index, e.feature))
        return events

    def _score(self, matrix: FeatureMatrix, decision_ids, positions, times) -> tuple[list[AlertEvent], int]:
        """Score ``matrix``; its events and the batch row of the first one."""
        n = len(matrix.cells)
        keys, null = self._ratios(matrix)
        batch = _Batch(matrix, decision_ids, positions, times, self.window, self.features)
        events: list[tuple[int, AlertEvent]] = []

        def over(row_keys: np.ndarray, row_null: np.ndarray, row_times: np.ndarray) -> Callable[..., Run]:
            return lambda *state: self.sr.run_table(*state, self._ratio_table, row_keys, row_null, row_times)

        for s in np.unique(matrix.segments):
            rows = np.flatnonzero(matrix.segments == s)
            events.extend(self._run_segment(int(s), rows, over(keys[rows], null[rows], times[rows]), batch))
            self.segment_records[s] += len(rows)
        if self.all_row is not None:  # every row of the batch, in order: no copies
            events.extend(self._run_segment(self.all_row, np.arange(n), over(keys, null, times), batch))
            self.segment_records[self.all_row] += n
        self._advance_window(matrix)
        self.n_production += n
        first = min((row for row, _ in events), default=n)
        return [e for _, e in events], first

    def _snapshot(self) -> tuple:
        return (self.log_r.copy(), self.firing.copy(), self.quiet_time.copy(), [a.copy() for a in self.seen],
                [w.copy() for w in self.window], self.segment_records.copy(), self.n_production)

    def _restore_snapshot(self, saved: tuple) -> None:
        (self.log_r, self.firing, self.quiet_time, self.seen, self.window, self.segment_records,
         self.n_production) = saved

    def _run_segment(self, s: int, rows: np.ndarray, run: Callable[..., Run],
                     batch: _Batch) -> list[tuple[int, AlertEvent]]:
        """Row ``s``'s statistics through ``run(r, firing, quiet_time)`` (a :class:`ShiryaevRoberts`
        run over ``rows`` of the batch), its state kept and its transitions made alert events."""
        done = run(np.exp(self.log_r[s]), self.firing[s], self.quiet_time[s])
        with np.errstate(divide="ignore"):  # a component that never stepped is at 0
            self.log_r[s] = np.log(done.r)
            logs = [np.log(t.r) for t in done.transitions]
        self.firing[s], self.quiet_time[s] = done.firing, done.quiet_time
        return [(int(rows[t.row]), self._event(s, t.feature, rows[t.row], t.log_statistic, log_r, batch,
                                               t.status, t.since)) for t, log_r in zip(done.transitions, logs)]

    def _advance_window(self, matrix: FeatureMatrix) -> None:
        n = len(matrix.cells)
        weights = self._decay ** np.arange(n - 1, -1, -1, dtype=np.float64)
        for f, j in enumerate(self.features):
            cells, k = self.window[f].shape
            flat = matrix.cells[:, j].astype(np.int64) * k + matrix.codes[:, j]
            add = np.bincount(flat, weights, cells * k).reshape(cells, k)
            self.window[f] = self.window[f] * self._decay**n + add

    # ---- alert events -----------------------------------------------------------------------------
    def _event(self, s: int, f: int, row: int, log_stat: float, log_r_row: np.ndarray, batch: _Batch,
               status: str, quiet: float) -> AlertEvent:
        j = self.features[f]
        spec = self.featurizer.specs[j]
        comps = self.components[f]
        strengths = log_r_row[self.sr.components(f)]
        # "Code A up" and "code B down" often carry the same evidence; describe the code that grew.
        close = np.flatnonzero(strengths >= strengths.max() - 1.0)
        ups = [c for c in close if comps[c].direction == "up"]
        comp = comps[int(ups[0] if ups else np.argmax(strengths))]
        since = quiet if quiet > 0 else float(batch.times[row])
        window = self._counts_since(s, f, since, batch, row)
        if window is None:  # the history does not reach back to the build-up: the decayed window
            window = batch.window_at(row, f, self._decay)
        n_conditions = self._conditions[f]
        cells = (np.arange(len(window)) if s == self.all_row
                 else np.arange(s * n_conditions, (s + 1) * n_conditions))
        first = self._first[f]
        if spec.kind == BEHAVIOUR:  # novel inputs are not scored: leave them out of the rates too
            cells = cells[cells % n_conditions != NOVEL]
        observed = window[cells]
        present_n = observed[:, first:].sum(axis=1)
        expected = self.expected[f][cells] * present_n[:, None]
        if s == self.all_row:  # the pooled row quotes a condition over every segment, not one segment's
            # Cells are segment-major, each segment with the same conditions: add the segments up.
            per_segment = len(cells) // self.n_segments
            cells = cells[:per_segment]
            observed, expected, present_n = (a.reshape(self.n_segments, per_segment, *a.shape[1:]).sum(axis=0)
                                             for a in (observed, expected, present_n))
        if comp.code >= 0:
            code = comp.code
        else:  # ordered shift: name the bin that gained most
            code = first + int(np.argmax((observed - expected)[:, first:].sum(axis=0)))
        context = ""
        if spec.kind == BEHAVIOUR and len(cells) > 1:
            # The condition whose count moved most the way the alert says (the named code of an
            # ordered shift is the bin that gained): another condition can move more the other way.
            gain = observed[:, code] - expected[:, code]
            moved = gain if comp.direction == UP or comp.code < 0 else -gain
            best = int(np.argmax(moved))
            words = self.featurizer.describe_condition(j, int(cells[best] % n_conditions))
            # A condition is named when it holds enough of the records quoted: with a handful since
            # the build-up began (a large change fires within a few records) the row's rate says more.
            if (words and moved[best] > 0 and present_n[best] >= min(CONTEXT_RECORDS, present_n.sum())
                    and present_n[best] >= 1):
                context = words
                cells, observed, expected, present_n = (cells[best: best + 1], observed[best: best + 1],
                                                        expected[best: best + 1], present_n[best: best + 1])
        n_window = float(present_n.sum())
        evaluation_rate = float(expected[:, code].sum() / n_window) if n_window > 0 else 0.0
        production_rate = float(observed[:, code].sum() / n_window) if n_window > 0 else 0.0
        message = describe(kind=spec.kind, feature=spec.name, title=spec.title or spec.name, code=spec.labels[code],
                           direction=comp.direction, ordered=comp.code < 0, evaluation_rate=evaluation_rate,
                           production_rate=production_rate, window=int(round(n_window)), context=context,
                           baseline_ref=self.baseline.ref, since=iso_time(since))
        if status == "resolved":
            message = "resolved: " + message
        return AlertEvent(
            status=status,
            kind=spec.kind,
            model_id=self.model_id,
            segment=self.row_name(s),
            feature=spec.name,
            code=spec.labels[code],
            direction=comp.direction,
            decision_id=batch.decision_ids[row],
            record_index=int(batch.positions[row]),
            statistic=log_stat,
            threshold=self.log_threshold,
            baseline_version=self.baseline.version,
            severity=SEVERITY[spec.kind],
            time=iso_time(float(batch.times[row])),
            message=message,
            evaluation_rate=evaluation_rate,
            production_rate=production_rate,
            window_records=int(round(n_window)),
            caveat=self.protocol_caveat(),
        )

    def _counts_since(self, s: int, f: int, since: float, batch, row: int) -> np.ndarray | None:
        """Production counts (cells, codes) of feature ``f`` in row ``s``'s records stamped ``since``
        or later, up to the batch's ``row``: the rates since the statistic left its resting level.
        ``None`` when the history does not reach back that far, or for a counts batch (no records)."""
        if not isinstance(batch, _Batch):
            return None
        past = self.history.since(since)
        if past is None:
            return None
        j = self.features[f]
        n_cells, k = self.window[f].shape
        (old, old_times), now = past, batch.matrix
        codes = np.concatenate([old.codes[:, j], now.codes[: row + 1, j]]).astype(np.int64)
        cells = np.concatenate([old.cells[:, j], now.cells[: row + 1, j]]).astype(np.int64)
        keep = np.concatenate([old_times, batch.times[: row + 1]]) >= since
        if s != self.all_row:
            keep &= np.concatenate([old.segments, now.segments[: row + 1]]) == s
        return np.bincount(cells[keep] * k + codes[keep], minlength=n_cells * k).reshape(n_cells, k).astype(np.float64)

    # ---- counts path (featurised elsewhere, detected here) -----------------------------------------
    def update_counts(self, counts: Sequence[np.ndarray], evidence: Evidence) -> list[AlertEvent]:
        """One step per call from per-feature (cells, codes) count tables of featurised records
        (:func:`scored_counts`, for every featurizer column).

        For the split deployment (``janus serve --role featurise`` / ``--role detect``): a batch's
        likelihood ratio is the product of its records', Π q(x)/m_t(x), which for the predictive null
        depends on the counts alone (a Dirichlet-multinomial probability), so it is the same e-value
        the per-record path multiplies up and the ARL bound holds (in batches, hence in records).
        The Shiryaev-Roberts statistic restarts only at batch ends, so it is at most the per-record
        one and an alert may come up to a batch later. The alert names ``evidence``, the batch's
        last record, as the one that fired; its rates come from the window with the batch's counts
        added (each weighted by the decay of the batch's middle record).
        """
        events = []
        step = np.zeros_like(self.log_r)
        scored = np.zeros(self.firing.shape)  # records each (row, feature) scores in this batch
        firing = self.firing[: self.n_segments] | (self.firing[self.all_row][None, :] if self.all_row is not None
                                                    else False)
        # Records per segment from the data-quality table, which counts every record.
        every = np.asarray(counts[self._data_column], dtype=np.float64)
        segment_n = np.bincount(np.arange(len(every)) // self.featurizer.n_conditions[self._data_column],
                                every.sum(axis=1), self.n_segments)
        n = int(every.sum())
        for f, j in enumerate(self.features):
            c = np.asarray(counts[j], dtype=np.float64).copy()
            self.window[f] = self.window[f] * self._decay**n + c * self._decay ** ((n - 1) / 2)
            n_conditions = self._conditions[f]
            segment_of_cell = np.arange(len(c)) // n_conditions
            c[:, : self._first[f]] = 0.0
            if self.featurizer.specs[j].kind == BEHAVIOUR:
                c[np.arange(len(c)) % n_conditions == NOVEL] = 0.0
            learn = ~firing[segment_of_cell, f]
            alt = self._alt[f].reshape(len(c), c.shape[1], -1)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_alt = np.where(c[:, :, None] > 0, np.log(alt), 0.0)
            per_cell = np.einsum("ck,ckm->cm", c, log_alt) - log_predictive_of_counts(
                self._alpha[f], self.seen[f], c)[:, None]
            np.add.at(step[:, self.sr.components(f)], segment_of_cell, per_cell)
            np.add.at(scored[:, f], segment_of_cell, c.sum(axis=1))
            self.seen[f] += c * learn[:, None]
        if self.all_row is not None:
            step[self.all_row] = step[: self.n_segments].sum(axis=0)
            scored[self.all_row] = scored[: self.n_segments].sum(axis=0)
            segment_n = np.r_[segment_n, segment_n.sum()]
        # As per record: a feature none of whose records the batch scores does not step.
        moves = np.repeat(scored > 0, self.sr.ends - self.sr.starts, axis=1)
        view = _CountsEvidence(evidence, self.window)
        for s in np.flatnonzero(segment_n):
            with np.errstate(over="ignore"):  # an e-value beyond e^709 is capped all the same
                batch_ratio = np.exp(step[s])[None, :]
            # The records path's run over one row, the batch, whose evidence stands for its records.
            found = self._run_segment(int(s), np.zeros(1, dtype=np.int64),
                                      lambda *state: self.sr.run(*state, batch_ratio, view.times, moves[s][None]),
                                      view)
            events += [event for _, event in found]
            self.segment_records[s] += int(segment_n[s])
        self.n_production += int(segment_n[: self.n_segments].sum())
        return events

    # ---- persistence -------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "model_id": self.model_id,
            "baseline_version": self.baseline.version,
            "arl": self.arl,
            "extra_tests": self.extra_tests,
            "n_production": self.n_production,
            "unbaselined_versions": dict(self.unbaselined_versions),
        }
        arrays = {
            "log_r": self.log_r,
            "firing": self.firing,
            "quiet_time": self.quiet_time,
            "segment_records": self.segment_records,
        }
        arrays.update({f"window.{f}": w for f, w in enumerate(self.window)})
        arrays.update({f"seen.{f}": w for f, w in enumerate(self.seen)})
        return meta, arrays

    @classmethod
    def restore(cls, baseline: Baseline, meta: dict, arrays: dict[str, np.ndarray],
                config: DetectionConfig = DetectionConfig()) -> Monitor:
        if meta["baseline_version"] != baseline.version or meta["model_id"] != baseline.model_id:
            raise ValueError(f"state was saved against {meta['model_id']}@{meta['baseline_version']}, "
                             f"not {baseline.ref}")
        monitor = cls(baseline, arl=meta["arl"], config=config, extra_tests=int(meta.get("extra_tests", 0)))
        if arrays["log_r"].shape != monitor.log_r.shape:
            raise ValueError(f"state of {baseline.ref} has detector shape {arrays['log_r'].shape}, "
                             f"expected {monitor.log_r.shape}")
        monitor.log_r = arrays["log_r"].astype(np.float64).copy()
        monitor.firing = arrays["firing"].astype(bool).copy()
        monitor.quiet_time = arrays["quiet_time"].copy()
        monitor.segment_records = arrays["segment_records"].copy()
        monitor.window = [arrays[f"window.{f}"].copy() for f in range(len(monitor.window))]
        monitor.seen = [arrays[f"seen.{f}"].astype(np.float64).copy() for f in range(len(monitor.seen))]
        monitor.n_production = int(meta["n_production"])
        monitor.unbaselined_versions = Counter(meta["unbaselined_versions"])
        monitor.history.complete = False  # records came before this ring's first: it starts empty
        return monitor


def scored_counts(matrix: FeatureMatrix, featurizer) -> list[np.ndarray]:
    """Per featurizer column, the (cells, codes) count table :meth:`Monitor.update_counts` takes:
    every record, except that behaviour features leave out records missing a part evaluation
    always had, as the per-record path does (:meth:`Monitor._scored`)."""
    missing = matrix.codes[:, featurizer.feature_index("data_quality")] == MISSING_PART
    out = []
    for j, spec in enumerate(featurizer.specs):
        rows = ~missing if spec.kind == BEHAVIOUR else slice(None)
        k = spec.n_codes
        flat = matrix.cells[rows, j].astype(np.int64) * k + matrix.codes[rows, j]
        out.append(np.bincount(flat, minlength=featurizer.n_cells(j) * k).reshape(-1, k))
    return out


@dataclass(frozen=True)
class Evidence:
    """The record an alert from summed counts names: the last of the batch whose counts crossed."""

    decision_id: str
    record_index: int
    time: float


class _CountsEvidence:
    """A batch known only by its counts, as :meth:`Monitor._run_segment` and :meth:`Monitor._event`
    read a :class:`_Batch`: one record (the evidence) stands for it, at the window with its counts
    added."""

    def __init__(self, evidence: Evidence, window: list[np.ndarray]):
        self.decision_ids = [evidence.decision_id]
        self.positions = [evidence.record_index]
        self.times = np.array([evidence.time])
        self._window = window

    def window_at(self, row: int, f: int, decay: float) -> np.ndarray:
        return self._window[f]


def _rows(matrix: FeatureMatrix, start: int, stop: int) -> FeatureMatrix:
    return FeatureMatrix(matrix.codes[start:stop], matrix.cells[start:stop], matrix.segments[start:stop])


class _Batch:
    """A micro-batch's identities and the window at its start, for exact per-record effect sizes."""

    def __init__(self, matrix: FeatureMatrix, decision_ids, positions, times, window, features):
        self.matrix = matrix
        self.feature_columns = features
        self.decision_ids = decision_ids
        self.positions = positions
        self.times = times
        self._window0 = window

    def window_at(self, row: int, f: int, decay: float) -> np.ndarray:
        """Decayed production counts of monitored feature ``f`` up to and including ``row``
        (independent of batch boundaries)."""
        m = self.matrix
        j = self.feature_columns[f]
        start0 = self._window0[f]
        n_cells, k = start0.shape
        weights = decay ** np.arange(row, -1, -1, dtype=np.float64)
        flat = m.cells[: row + 1, j].astype(np.int64) * k + m.codes[: row + 1, j]
        return start0 * decay ** (row + 1) + np.bincount(flat, weights, n_cells * k).reshape(n_cells, k)
