"""Alert events: what fires, what resolves, and the sentence a SOC analyst reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

SEVERITY = {"behaviour": "critical", "cue": "critical", "input": "warning", "data": "warning"}


@dataclass
class AlertEvent:
    status: str  # "firing" | "resolved"
    kind: str  # "behaviour" | "input" | "data" | "cue"
    model_id: str
    segment: str
    feature: str
    code: str
    direction: str  # "up" (more frequent / higher) | "down"
    decision_id: str
    record_index: int
    statistic: float  # log of the e-detector mixture at the event
    threshold: float  # log of its threshold
    baseline_version: str
    severity: str
    time: str
    message: str
    evaluation_rate: float | None = None
    production_rate: float | None = None
    window_records: int = 0
    caveat: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model_id, self.segment, self.feature, self.kind)


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def percent(rate: float) -> str:
    return f"{100 * rate:.1f}%" if rate >= 0.001 else f"{100 * rate:.2f}%"


def behaviour_phrase(feature: str, title: str, code: str) -> str:
    """What the model did, in words: ``refused``, ``complied``, ``chose escalate``, ``called lookup_order``."""
    if feature == "refused":
        how = title.partition(" ")[2]  # e.g. "(recognised in the output)"
        return ("refused" if code == "true" else "complied") + (f" {how}" if how else "")
    if feature == "action":
        return f"chose {code}"
    if feature.startswith("tool:"):
        tool = "a tool outside the baseline's list" if feature == "tool:(other)" else feature[len("tool:"):]
        return f"called {tool}" if code == "present" else f"did not call {tool}"
    return f"{title} = {code}"


def describe(*, kind: str, feature: str, title: str, code: str, direction: str, ordered: bool,
             evaluation_rate: float, production_rate: float, window: int, context: str, baseline_ref: str,
             since: str) -> str:
    """One sentence with the effect size, production first, e.g.

    ``complied on inputs marked by “refund”, “override”: 18.3% in production vs 4.9% in evaluation
    over the last ~2,300 decisions (since 14:02Z; baseline triage-agent@3)``

    ``context`` is the condition's marking words (empty: no "on inputs marked by" part); ordered
    features read ``latency (ms) shifted higher: [310, 420)``, input and data alerts ``input mix: …``
    and ``data quality: …``. The alert's JSON keeps the exact feature and code.
    """
    if kind == "input":
        what = f"input mix: {title} {code}"
    elif kind == "data":
        what = f"data quality: {code}"
    elif ordered:
        what = f"{title} shifted {'higher' if direction == 'up' else 'lower'}: {code}"
    else:
        what = behaviour_phrase(feature, title, code)
    where = f" on inputs marked by {context}" if context else ""
    return (f"{what}{where}: {percent(production_rate)} in production vs {percent(evaluation_rate)} in evaluation "
            f"over the last ~{window:,} decisions (since {since}; baseline {baseline_ref})")
