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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A component stops e^14 (~1e6) above what alone would put its feature over the threshold: no
# overflow while an alert stays open. Capping can only lower an e-process, so the ARL holds.
CAP_NATS = 14.0
FIRING, RESOLVED = "firing", "resolved"
_BLOCK = 256  # rows of a path run before checking the cap: a pass over them costs ~1% of running them
_ONE = np.array(1.0)  # an array operand: a Python float is converted on every call (~0.6 µs of a ~2.7 µs step)


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
                   np.exp(log_cap))

    @property
    def log_quiet(self) -> float:
        # The mean R rests a few nats above 0 under no change; half the threshold is well above that
        # and well below an alarm.
        return 0.5 * self.log_threshold

    def components(self, f: int) -> slice:
        stop = self.starts[f + 1] if f + 1 < len(self.starts) else len(self.cap)
        return slice(int(self.starts[f]), int(stop))

    def log_mixture(self, r: np.ndarray) -> np.ndarray:
        """log of each feature's mixture of R: (..., C) → (..., F)."""
        with np.errstate(divide="ignore"):
            return np.log(np.add.reduceat(r * self.weights, self.starts, axis=-1))

    def normalised(self, log_mixture: np.ndarray) -> np.ndarray:
        """Statistics on the scale where 1.0 is the threshold: log(1 + mean R) / log(1 + threshold)."""
        return np.logaddexp(0.0, log_mixture) / np.logaddexp(0.0, self.log_threshold)

    def path(self, r0: np.ndarray, lr: np.ndarray, moves: np.ndarray | None = None) -> np.ndarray:
        """R after each row: ``R_n = min(Λ_n (1 + R_{n-1}), cap)`` from ``r0`` (C,) over ratios ``lr`` (n, C).

        With ``moves`` (n, C) bool, a component steps only where it is True and keeps its R elsewhere.
        Linear space, in place, a few ufunc calls per row over all components: no exp or log.
        The cap rarely binds (only while an alert stays open), so rows run in blocks without the
        ``min`` (a third of the calls per row); a block where some R passes the cap runs again,
        capped, from the first such row, and capped blocks go on while the cap binds in them.
        Either way each R is exactly the capped recursion's.
        """
        path = np.empty_like(lr)
        start, capped = 0, False
        with np.errstate(over="ignore"):  # an uncapped block that overflows is run again, capped
            while start < len(lr):
                stop = min(start + _BLOCK, len(lr))
                self._steps(path[start - 1] if start else r0, lr[start:stop],
                            None if moves is None else moves[start:stop], path[start:stop], capped)
                block = path[start:stop]
                if capped:
                    capped = bool((block >= self.cap).any())
                else:
                    over = block > self.cap
                    if over.any():
                        start += int(np.argmax(over.any(axis=1)))
                        capped = True
                        continue
                start = stop
        return path

    def _steps(self, prev: np.ndarray, lr: np.ndarray, moves: np.ndarray | None, out: np.ndarray,
               capped: bool) -> None:
        add, multiply = np.add, np.multiply  # `out` positional: no keywords parsed per row
        for i, (row, ratios) in enumerate(zip(out, lr)):
            add(prev, _ONE, row)
            multiply(row, ratios, row)
            if capped:
                np.minimum(row, self.cap, out=row)  # (numpy 2.4 deprecates a positional `out` here)
            if moves is not None:
                np.copyto(row, prev, where=~moves[i])
            prev = row

    def run(self, r0: np.ndarray, firing: np.ndarray, quiet_time: np.ndarray, lr: np.ndarray, times: np.ndarray,
            moves: np.ndarray | None = None) -> Run:
        """Run ratios ``lr`` (n, C) stamped ``times`` (n,) from the state ``r0``, ``firing``, ``quiet_time``."""
        firing, quiet_time = firing.copy(), quiet_time.copy()
        transitions: list[Transition] = []
        base = 0  # rows before `base` are done (a resolution restarted the path there)
        r = r0
        path = self.path(r, lr, moves)
        mix = self.log_mixture(path)
        scan = 0
        while scan < len(path):
            crossed = np.where(firing[None, :], mix[scan:] < self.log_resolve, mix[scan:] >= self.log_threshold)
            hit = np.flatnonzero(crossed.any(axis=1))
            if not len(hit):
                break
            at = scan + int(hit[0])
            self._note_quiet(quiet_time, mix[: at + 1], times[base: base + at + 1])
            resolved = []
            for f in np.flatnonzero(crossed[hit[0]]).tolist():
                status = RESOLVED if firing[f] else FIRING
                transitions.append(Transition(base + at, f, status, float(mix[at, f]), path[at].copy(),
                                              float(quiet_time[f])))
                firing[f] = not firing[f]
                if status == RESOLVED:
                    resolved.append(f)
            if resolved:  # a renewal: the rest of the batch runs again from the restarted statistics
                r = path[at].copy()
                for f in resolved:
                    r[self.components(f)] = 0.0
                base += at + 1
                path = self.path(r, lr[base:], None if moves is None else moves[base:])
                mix = self.log_mixture(path)
                scan = 0
            else:
                scan = at + 1
        self._note_quiet(quiet_time, mix, times[base:])
        return Run(path[-1].copy() if len(path) else r.copy(), firing, quiet_time, transitions)

    def _note_quiet(self, quiet_time: np.ndarray, mix: np.ndarray, times: np.ndarray) -> None:
        """Per feature, the time of its last row near its resting level, if any of these rows is."""
        if not len(mix):
            return
        quiet = mix <= self.log_quiet
        seen = quiet.any(axis=0)
        last = len(mix) - 1 - np.argmax(quiet[::-1], axis=0)
        quiet_time[seen] = times[last[seen]]
