"""The latest production records' feature codes, for the rates an alert quotes.

An alert says how often a code occurred in production against evaluation. Read from the decayed
window (half-life ``detection.window_half_life`` records), those rates mix the change with the
records before it: a refusal rate falling from 0.9 to 0.5 on one request kind read "85.7% vs
89.3%" when it fired 211 records after the change. The statistic knows when it left its resting
level (the alert's "since"); the records since then are the change as it has been seen. This ring
keeps the codes, cells, segments and times of the last ``capacity`` records so those rates can be
counted; when it does not reach back that far (a long build-up, or a monitor restored from a
checkpoint, which starts with an empty ring), the alert falls back to the window.

>>> import numpy as np
>>> from detector.features import FeatureMatrix
>>> ring = History(capacity=3, n_columns=1)
>>> for t in range(5):
...     ring.append(FeatureMatrix(np.array([[t]]), np.array([[0]]), np.array([0])), np.array([float(t)]))
>>> rows, times = ring.since(2.0)
>>> rows.codes[:, 0].tolist(), times.tolist(), ring.since(1.0) is None
([2, 3, 4], [2.0, 3.0, 4.0], True)
"""

from __future__ import annotations

import numpy as np

from detector.features import FeatureMatrix


class History:
    """A ring of the last ``capacity`` records' (codes, cells, segment, time)."""

    def __init__(self, capacity: int, n_columns: int, *, complete: bool = True):
        self.capacity = capacity
        self.codes = np.zeros((capacity, n_columns), dtype=np.int16)
        self.cells = np.zeros((capacity, n_columns), dtype=np.int32)
        self.segments = np.zeros(capacity, dtype=np.int16)
        self.times = np.zeros(capacity)
        self.n = 0  # records appended in all
        self.complete = complete  # no record before the first one kept was ever dropped

    def append(self, matrix: FeatureMatrix, times: np.ndarray) -> None:
        n = len(times)
        if n >= self.capacity:  # only the last `capacity` rows can stay
            matrix, times = _tail(matrix, self.capacity), times[-self.capacity:]
            self.n += n - self.capacity
            n = self.capacity
        at = (self.n + np.arange(n)) % self.capacity
        self.codes[at], self.cells[at], self.segments[at], self.times[at] = (
            matrix.codes, matrix.cells, matrix.segments, times)
        self.n += n
        if self.n > self.capacity:
            self.complete = False

    def since(self, time: float) -> tuple[FeatureMatrix, np.ndarray] | None:
        """The kept records stamped ``time`` or later, oldest first, and their times; ``None`` when
        records that old may have been dropped already."""
        kept = min(self.n, self.capacity)
        order = (self.n - kept + np.arange(kept)) % self.capacity
        if not self.complete and (not kept or self.times[order[0]] > time):
            return None
        rows = order[self.times[order] >= time]
        return FeatureMatrix(self.codes[rows], self.cells[rows], self.segments[rows]), self.times[rows]


def _tail(matrix: FeatureMatrix, n: int) -> FeatureMatrix:
    return FeatureMatrix(matrix.codes[-n:], matrix.cells[-n:], matrix.segments[-n:])
