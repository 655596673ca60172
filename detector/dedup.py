"""Forget-after-N de-duplication of decision ids, for producers that retry.

A retried decision carries the same ``decision_id``; within the last ``window`` distinct ids it is
counted once. Ids are kept as 64-bit BLAKE2b digests (stable across processes, unlike ``hash``),
in arrival order, so the window is bounded and its state fits a checkpoint exactly.

>>> f = DuplicateFilter(window=2)
>>> f.check(["a", "b", "a"]), f.check(["c", "a"])
([False, False, True], [False, False])
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence

import numpy as np


def digests(texts: Sequence[str], key: bytes = b"") -> bytes:
    """The 8-byte BLAKE2b digest of each text (keyed with ``key``, at most 64 bytes), concatenated:
    one buffer per batch, read as an integer array at once."""
    blake = hashlib.blake2b
    return b"".join(blake(t.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest() for t in texts)


class DuplicateFilter:
    def __init__(self, window: int = 100_000):
        self.window = window
        self._order: deque[int] = deque()
        self._seen: set[int] = set()

    def check(self, decision_ids: Sequence[str]) -> list[bool]:
        """True for each id already seen in the window (including earlier in this batch)."""
        out = []
        for key in np.frombuffer(digests(decision_ids), "<i8").tolist():
            if key in self._seen:
                out.append(True)
                continue
            out.append(False)
            self._seen.add(key)
            self._order.append(key)
            if len(self._order) > self.window:
                self._seen.discard(self._order.popleft())
        return out

    def state(self) -> np.ndarray:
        return np.fromiter(self._order, dtype=np.int64, count=len(self._order))

    def restore(self, keys: np.ndarray) -> None:
        self._order = deque(int(k) for k in keys[-self.window:])
        self._seen = set(self._order)
