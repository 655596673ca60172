"""The one Shiryaev–Roberts engine, shared by the drift :class:`~detector.monitor.Monitor` and the
monitoring-cue detector (:mod:`detector.probes.sequential`).

Components are grouped into features. Each component runs ``R_n = Λ_n (1 + R_{n-1})`` over the
likelihood ratios it is given; a feature's statistic is the weighted mean of its components' R
(why this keeps the ARL is in :mod:`.detectors`). Over a batch of ratios, :meth:`ShiryaevRoberts.run` finds,
row by row, where a feature's statistic reaches the threshold (its alert fires), where a firing one
falls below ``resolve_fraction`` of the threshold (it resolves, and the feature's components
restart from 0: a renewal) and when each was last near its resting level (the "since" of an
alert). The state (R per component; firing and quiet time per feature) is the caller's: passed
in, returned new in a :class:`Run`.

>>> sr = ShiryaevRoberts.for_features([1], log_threshold=float(np.log(10.0)), resolve_fraction=0.5)
>>> done = sr.run(np.zeros(1), np.zeros(1, bool), np.zeros(1), np.full((5, 1), 2.0), np.arange(5.0))
>>> done.r.tolist(), [(t.row, t.status) for t in done.transitions]
([62.0], [(2, 'firing')])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np

# A component stops e^14 (~1e6) above what alone would put its feature over the threshold: no
# overflow while an alert stays open. Capping can only lower an e-process, so the ARL holds.
CAP_NATS = 14.0
FIRING, RESOLVED = "firing", "resolved"
_NO_MOVES = np.zeros((0, 0), dtype=np.bool_)  # every component steps on every row


# Compiled: each row needs the one before it, so numpy could only run the recursion a row at a time,
# at ~0.6 µs of call overhead per ufunc call, and this is most of what detection costs per record.
@numba.njit(cache=True, nogil=True)
def _mixture(r, ends, weights, out):  # pragma: no cover - compiled; tested through run()
    """``out[f]``: the log of feature f's weighted R."""
    c = 0
    for f in range(ends.shape[0]):
        total = 0.0
        while c < ends[f]:
            total += weights[c] * r[c]
            c += 1
        out[f] = math.log(total) if total > 0.0 else -math.inf


@numba.njit(cache=True, nogil=True)
def _advance_ratios(r, lr, moves, ends, weights, cap, mix):  # pragma: no cover - compiled
    """In place: ``r`` (C,) through the capped recursion over ``lr`` (n, C), where ``moves`` (n, C)
    allows (none given: everywhere); ``mix`` (n, F) each row's :func:`_mixture`."""
    masked = moves.shape[0] > 0
    for i in range(lr.shape[0]):
        if masked:
            for c in range(r.shape[0]):
                if moves[i, c]:
                    r[c] = min(lr[i, c] * (1.0 + r[c]), cap[c])
        else:  # a loop of its own, without the test: the compiler runs it on several components at once
            for c in range(r.shape[0]):
                r[c] = min(lr[i, c] * (1.0 + r[c]), cap[c])
        _mixture(r, ends, weights, mix[i])


@numba.njit(cache=True, nogil=True)
def _advance_table(r, keys, null, table, offsets, starts, ends, weights, cap, mix):  # pragma: no cover - compiled
    """:func:`_advance_ratios` with feature f's ratios at row i read from a table, not a matrix:
    ``table[offsets[f] + keys[i, f] * size_f + j] / null[i, f]`` for its j-th component
    (``keys[i, f] < 0``: the feature does not score that row, and its components do not step: a
    record that says nothing of a feature must not move it towards an alert, as a ratio of 1 would,
    by one). The mixture is summed as the components step (one pass over them: this loop is most of
    detection's cost per record)."""
    for i in range(keys.shape[0]):
        for f in range(ends.shape[0]):
            key = keys[i, f]
            total = 0.0
            if key < 0:
                for c in range(starts[f], ends[f]):
                    total += weights[c] * r[c]
            else:
                at = offsets[f] + key * (ends[f] - starts[f]) - starts[f]
                scale = 1.0 / null[i, f]
                for c in range(starts[f], ends[f]):
                    r[c] = min(table[at + c] * scale * (1.0 + r[c]), cap[c])
                    total += weights[c] * r[c]
            mix[i, f] = math.log(total) if total > 0.0 else -math.inf


@dataclass(frozen=True)
class RatioTable:
    """Likelihood ratios by (feature, key): q(component | key) in a flat table, to be divided by each
    row's null probability. A Monitor's alternatives depend on the (cell, code) a record falls in
    only, so the per-record ratio matrix (records × components) need not be built."""

    table: np.ndarray  # (Σ keys_f · size_f,) q per (feature, key, component), feature-major
    offsets: np.ndarray  # (F,) where each feature's block starts

    @classmethod
    def of(cls, blocks: Sequence[np.ndarray]) -> RatioTable:
        """From per-feature (keys_f, size_f) arrays of q."""
        sizes = [b.size for b in blocks]
        return cls(np.concatenate([np.ravel(b) for b in blocks]).astype(np.float64),
                   np.cumsum([0, *sizes[:-1]]).astype(np.int64))


@dataclass(frozen=True)
class Transition:
    """A feature's alert fired or resolved."""

    row: int  # index into the run's ratios
    feature: int
    status: str  # FIRING | RESOLVED
    log_statistic: float  # log of the feature's mean R at that row
    r: np.ndarray  # every component's R at that row: which alternative carries the evidence
    since: float  # time of the feature's last row near its resting level, up to this one (0: none seen)


@dataclass(frozen=True)
class Run:
    """The state after a run, and the transitions in order of rows, then features."""

    r: np.ndarray  # (C,) R per component
    firing: np.ndarray  # (F,) bool
    quiet_time: np.ndarray  # (F,)
    transitions: list[Transition]


@dataclass(frozen=True)
class ShiryaevRoberts:
    starts: np.ndarray  # (F,) first component of each feature; a feature's components are contiguous
    weights: np.ndarray  # (C,) each component's weight in its feature's mixture (a feature's sum to 1)
    log_threshold: float
    log_resolve: float
    cap: np.ndarray  # (C,)
    ends: np.ndarray  # (F,) one past each feature's last component

    @classmethod
    def for_features(cls, sizes: Sequence[int], log_threshold: float, resolve_fraction: float,
                     weights: np.ndarray | None = None) -> ShiryaevRoberts:
        """Features of ``sizes[f]`` components each, alarming when their mixture (weighted mean) of R
        reaches ``e^log_threshold`` and resolving below ``resolve_fraction`` of it. ``weights`` (C,):
        each component's weight, a feature's summing to 1 (default: equal, the plain mean)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        if weights is None:
            weights = np.repeat(1.0 / np.maximum(sizes, 1), sizes)
        weights = np.asarray(weights, dtype=np.float64)
        log_cap = log_threshold + CAP_NATS - np.log(weights)
        return cls(starts, weights, float(log_threshold), float(log_threshold + np.log(resolve_fraction)),
                   np.exp(log_cap), starts + sizes)

    @property
    def log_quiet(self) -> float:
        # The mean R rests a few nats above 0 under no change; half the threshold is well above that
        # and well below an alarm.
        return 0.5 * self.log_threshold

    def components(self, f: int) -> slice:
        return slice(int(self.starts[f]), int(self.ends[f]))

    def log_mixture(self, r: np.ndarray) -> np.ndarray:
        """log of each feature's mixture of R: (..., C) → (..., F)."""
        with np.errstate(divide="ignore"):
            return np.log(np.add.reduceat(r * self.weights, self.starts, axis=-1))

    def normalised(self, log_mixture: np.ndarray) -> np.ndarray:
        """Statistics on the scale where 1.0 is the threshold: log(1 + mean R) / log(1 + threshold)."""
        return np.logaddexp(0.0, log_mixture) / np.logaddexp(0.0, self.log_threshold)

    def advance(self, r0: np.ndarray, lr: np.ndarray, moves: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run ``R_n = min(Λ_n (1 + R_{n-1}), cap)`` from ``r0`` (C,) over ratios ``lr`` (n, C): the R
        after the last row (C,) and each row's :meth:`log_mixture` (n, F).

        With ``moves`` (n, C) bool, a component steps only where it is True and keeps its R elsewhere.
        """
        lr = np.ascontiguousarray(lr, dtype=np.float64)
        moves = _NO_MOVES if moves is None else np.ascontiguousarray(moves, dtype=np.bool_)
        return self._advance(r0, len(lr), lambda r, mix: _advance_ratios(r, lr, moves, self.ends, self.weights,
                                                                         self.cap, mix))

    def advance_table(self, r0: np.ndarray, ratios: RatioTable, keys: np.ndarray,
                      null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`advance` over rows whose ratios are ``ratios`` at ``keys`` (n, F) over ``null`` (n, F)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        null = np.ascontiguousarray(null, dtype=np.float64)
        return self._advance(r0, len(keys), lambda r, mix: _advance_table(
            r, keys, null, ratios.table, ratios.offsets, self.starts, self.ends, self.weights, self.cap, mix))

    def _advance(self, r0: np.ndarray, n: int, kernel: Callable[[np.ndarray, np.ndarray], None]
                 ) -> tuple[np.ndarray, np.ndarray]:
        r = np.array(r0, dtype=np.float64)  # a copy: the caller's state stays as it was
        mix = np.empty((n, len(self.starts)))
        kernel(r, mix)
        return r, mix

    def run(self, r0: np.ndarray, firing: np.ndarray, quiet_time: np.ndarray, lr: np.ndarray, times: np.ndarray,
            moves: np.ndarray | None = None) -> Run:
        """Run ratios ``lr`` (n, C) stamped ``times`` (n,) from the state ``r0``, ``firing``, ``quiet_time``."""
        return self._run(r0, firing, quiet_time, times, lambda r, lo, hi: self.advance(
            r, lr[lo:hi], None if moves is None else moves[lo:hi]))

    def run_table(self, r0: np.ndarray, firing: np.ndarray, quiet_time: np.ndarray, ratios: RatioTable,
                  keys: np.ndarray, null: np.ndarray, times: np.ndarray) -> Run:
        """:meth:`run` over rows whose ratios are read from ``ratios`` (see :meth:`advance_table`)."""
        return self._run(r0, firing, quiet_time, times, lambda r, lo, hi: self.advance_table(
            r, ratios, keys[lo:hi], null[lo:hi]))

    def _run(self, r0: np.ndarray, firing: np.ndarray, quiet_time: np.ndarray, times: np.ndarray,
             advance: Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]) -> Run:
        """``advance(r, lo, hi)``: R after rows lo..hi-1 from ``r`` and those rows' mixtures."""
        firing, quiet_time = firing.copy(), quiet_time.copy()
        transitions: list[Transition] = []
        n = len(times)
        base = 0  # rows before `base` are done (a resolution restarted the run there)
        start = r0  # R at `base`
        r, mix = advance(start, 0, n)
        scan = 0
        while scan < len(mix):
            crossed = np.where(firing[None, :], mix[scan:] < self.log_resolve, mix[scan:] >= self.log_threshold)
            hit = np.flatnonzero(crossed.any(axis=1))
            if not len(hit):
                break
            at = scan + int(hit[0])
            self._note_quiet(quiet_time, mix[: at + 1], times[base: base + at + 1])
            # Transitions are rare: R at their row is run again rather than kept for every row.
            r_at = advance(start, base, base + at + 1)[0]
            resolved = []
            for f in np.flatnonzero(crossed[hit[0]]).tolist():
                status = RESOLVED if firing[f] else FIRING
                transitions.append(Transition(base + at, f, status, float(mix[at, f]), r_at.copy(),
                                              float(quiet_time[f])))
                firing[f] = not firing[f]
                if status == RESOLVED:
                    resolved.append(f)
            if resolved:  # a renewal: the rest of the batch runs again from the restarted statistics
                start = r_at
                for f in resolved:
                    start[self.components(f)] = 0.0
                base += at + 1
                r, mix = advance(start, base, n)
                scan = 0
            else:
                scan = at + 1
        self._note_quiet(quiet_time, mix, times[base:])
        return Run(r, firing, quiet_time, transitions)

    def _note_quiet(self, quiet_time: np.ndarray, mix: np.ndarray, times: np.ndarray) -> None:
        """Per feature, the time of its last row near its resting level, if any of these rows is."""
        if not len(mix):
            return
        quiet = mix <= self.log_quiet
        seen = quiet.any(axis=0)
        last = len(mix) - 1 - np.argmax(quiet[::-1], axis=0)
        quiet_time[seen] = times[last[seen]]
