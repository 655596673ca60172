"""Raw values → decisions: parsing (rejections kept with reasons) and de-duplication of retries.

The first stage of :class:`detector.pipeline.Pipeline` and of the featuriser of the split roles
(:mod:`detector.split.featurise`); its state, the de-duplication window, is checkpointed with
theirs so a replay after a crash drops exactly the retries the first run dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import orjson

from detector.config import JanusConfig
from detector.dedup import DuplicateFilter
from detector.formats import format_of
from detector.records import Decision, Rejection, parse_values

__all__ = ["Intake"]


class Intake:
    """``accept(values)`` → (decisions, rejections), retries of a (model_id, decision_id) rejected
    as ``duplicate`` within the last ``[limits] dedup_window`` decisions."""

    def __init__(self, config: JanusConfig = JanusConfig()):
        self.config = config
        window = config.limits.dedup_window
        self.duplicates = DuplicateFilter(window) if window > 0 else None
        self.fmt = format_of(config.input)
        # Formats with several decisions per value (OTLP exports) number decisions themselves.
        self._next_decision = None if self.fmt.one_record_per_value else 0

    def accept(self, values: Sequence[bytes | str | None], *, traffic: str | None = None, first_position: int = 0,
               locate: Callable[[int], str] | None = None) -> tuple[list[Decision], list[Rejection]]:
        kwargs = {"locate": locate} if locate is not None else {}
        parsed = parse_values(values, limits=self.config.limits, traffic=traffic, first_position=first_position,
                              fmt=self.fmt, first_decision=self._next_decision, **kwargs)
        decisions, rejections = parsed.decisions, parsed.rejections
        if self._next_decision is not None and decisions:
            self._next_decision = decisions[-1].position + 1
        if self.duplicates is not None and decisions:
            # Decision ids are unique per model only: two models may both send "42".
            repeated = self.duplicates.check([f"{d.model_id}\x1f{d.decision_id}" for d in decisions])
            if any(repeated):
                locate = locate or (lambda p: f"record {p}")
                for d, dup in zip(decisions, repeated):
                    if dup:
                        if self._next_decision is None:
                            where = d.position
                            raw = values[where - first_position]
                            raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
                        else:  # one of several decisions in a value: named by its value, the decision itself
                            where = parsed.value_of[d.position]
                            raw = orjson.dumps(d.to_dict())
                        rejections.append(Rejection(where, "duplicate", f"{locate(where)}: decision_id "
                                                    f"{d.decision_id!r} of model {d.model_id!r} already seen "
                                                    "(a retry?)", raw))
                decisions = [d for d, dup in zip(decisions, repeated) if not dup]
                rejections.sort(key=lambda r: r.position)
        return decisions, rejections

    def state(self) -> dict[str, np.ndarray]:
        return {"dedup": self.duplicates.state()} if self.duplicates is not None else {}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        if self.duplicates is not None and "dedup" in arrays:
            self.duplicates.restore(arrays["dedup"])
