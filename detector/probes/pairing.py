"""Putting the two halves of a probe pair back together, offline and in the stream.

Records carrying ``probe`` are keyed by (model_id, pair_id). Whatever cannot be paired is counted
by reason, never an error. Outcomes (stable label values of ``janus_probe_pairs_total``):

============== ===================================================================== ==========
outcome        meaning                                                               where
============== ===================================================================== ==========
paired         a monitored and an unmonitored answer to the same pair id             both
missing_half   a pair id with one answer only                                        offline
expired        a half whose partner did not arrive within ``max_age_seconds``        stream
evicted        a half pushed out of a full buffer (``max_pending``)                  stream
same_condition both answers of a pair id claim the same condition                    both
too_many       more than two distinct records for a pair id (all of them left out)   offline
extra_record   a record for a pair id already closed (paired, expired, evicted, ...) stream
duplicate      the same decision_id again (redelivery); ignored                      both
no_baseline    a probe record of a model without an active baseline                  stream
============== ===================================================================== ==========

Each outcome counts pair ids, except ``duplicate``, ``extra_record`` and ``no_baseline``, which
count records. Offline, the whole file is grouped first, so the result does not depend on the
order of the lines. In the stream a half waits in a bounded buffer; time is record time (the
newest probe timestamp seen for the model), so a replay gives the same pairs as the live run.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.records import Decision

PAIRED = "paired"
MISSING_HALF = "missing_half"
EXPIRED = "expired"
EVICTED = "evicted"
SAME_CONDITION = "same_condition"
TOO_MANY = "too_many"
EXTRA_RECORD = "extra_record"
DUPLICATE = "duplicate"
NO_BASELINE = "no_baseline"
OUTCOMES = (PAIRED, MISSING_HALF, EXPIRED, EVICTED, SAME_CONDITION, TOO_MANY, EXTRA_RECORD, DUPLICATE, NO_BASELINE)


def pair_records(decisions: Sequence[Decision]) -> tuple[list[tuple[int, int]], Counter]:
    """Offline pairing of a finite list: (monitored index, unmonitored index) per pair, and the
    outcome counts. Pairs come in the order their second half appears."""
    groups: dict[tuple[str, str], list[int]] = {}
    outcomes: Counter = Counter()
    for i, d in enumerate(decisions):
        if d.probe is None:
            continue
        groups.setdefault((d.model_id, d.probe.pair_id), []).append(i)
    pairs: list[tuple[int, int, int]] = []
    for members in groups.values():
        seen: dict[str, int] = {}
        for i in members:
            if decisions[i].decision_id in seen:
                outcomes[DUPLICATE] += 1
            else:
                seen[decisions[i].decision_id] = i
        unique = list(seen.values())
        if len(unique) == 1:
            outcomes[MISSING_HALF] += 1
        elif len(unique) > 2:
            outcomes[TOO_MANY] += 1
        else:
            first, second = (decisions[i].probe.condition for i in unique)
            if first == second:
                outcomes[SAME_CONDITION] += 1
            else:
                m, u = unique if first == "monitored" else unique[::-1]
                pairs.append((max(unique), m, u))
                outcomes[PAIRED] += 1
    pairs.sort()
    return [(m, u) for _, m, u in pairs], outcomes


@dataclass
class Half:
    """One answer waiting for its partner (its feature codes already computed)."""

    condition: str
    decision_id: str
    timestamp: float
    position: int
    codes: np.ndarray  # (features,) int16


class PairBuffer:
    """Halves waiting for their partner: at most ``max_pending``, at most ``max_age_seconds`` old.

    Pair ids already paired (or refused) are remembered, up to ``max_pending`` of them, so a late
    third record or a redelivered one is counted instead of starting a new pair.
    """

    def __init__(self, max_pending: int, max_age_seconds: float):
        self.max_pending = int(max_pending)
        self.max_age = float(max_age_seconds)
        self.pending: OrderedDict[str, Half] = OrderedDict()
        self.closed: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # pair id → its decision ids
        self.clock = float("-inf")

    def advance(self, now: float, outcomes: Counter) -> None:
        """Move record time forward to ``now`` and expire halves older than the age limit.

        Halves leave in arrival order, so a half that arrived late with an old timestamp waits
        behind younger ones; it still leaves when the buffer is full.
        """
        if now > self.clock:
            self.clock = now
        limit = self.clock - self.max_age
        while self.pending:
            pair_id, half = next(iter(self.pending.items()))
            if half.timestamp >= limit:
                break
            del self.pending[pair_id]
            self._close(pair_id, (half.decision_id,))
            outcomes[EXPIRED] += 1

    def _close(self, pair_id: str, ids: tuple[str, ...]) -> None:
        self.closed[pair_id] = ids
        self.closed.move_to_end(pair_id)
        while len(self.closed) > self.max_pending:
            self.closed.popitem(last=False)

    def add(self, pair_id: str, half: Half, outcomes: Counter) -> tuple[Half, Half] | None:
        """Offer a half; returns (monitored, unmonitored) when it completes a pair."""
        closed = self.closed.get(pair_id)
        if closed is not None:
            outcomes[DUPLICATE if half.decision_id in closed else EXTRA_RECORD] += 1
            return None
        waiting = self.pending.get(pair_id)
        if waiting is None:
            self.pending[pair_id] = half
            if len(self.pending) > self.max_pending:
                old_id, old = self.pending.popitem(last=False)
                self._close(old_id, (old.decision_id,))
                outcomes[EVICTED] += 1
            return None
        if waiting.decision_id == half.decision_id:
            outcomes[DUPLICATE] += 1
            return None
        del self.pending[pair_id]
        self._close(pair_id, (waiting.decision_id, half.decision_id))
        if waiting.condition == half.condition:
            outcomes[SAME_CONDITION] += 1
            return None
        outcomes[PAIRED] += 1
        return (waiting, half) if waiting.condition == "monitored" else (half, waiting)

    # ---- persistence -----------------------------------------------------------------------------
    def state(self, n_features: int) -> tuple[dict, dict[str, np.ndarray]]:
        halves = list(self.pending.items())
        meta = {
            "clock": self.clock if np.isfinite(self.clock) else None,
            "pending": [[pid, h.condition, h.decision_id] for pid, h in halves],
            "closed": [[pid, *ids] for pid, ids in self.closed.items()],
        }
        arrays = {
            "pending_codes": (np.stack([h.codes for _, h in halves]).astype(np.int16) if halves
                              else np.zeros((0, n_features), np.int16)),
            "pending_numbers": np.array([[h.timestamp, h.position] for _, h in halves],
                                        dtype=np.float64).reshape(len(halves), 2),
        }
        return meta, arrays

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.clock = float("-inf") if meta["clock"] is None else float(meta["clock"])
        codes, numbers = arrays["pending_codes"], arrays["pending_numbers"]
        self.pending = OrderedDict(
            (pid, Half(condition, did, float(numbers[i, 0]), int(numbers[i, 1]), codes[i].copy()))
            for i, (pid, condition, did) in enumerate(meta["pending"]))
        self.closed = OrderedDict((row[0], tuple(row[1:])) for row in meta["closed"])
