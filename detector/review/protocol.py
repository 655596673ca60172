"""Protocol changes: production runs a model version the active baseline was not built on.

The Monitor counts such records per version (``Monitor.unbaselined_versions``, capped) and puts
its :meth:`~detector.monitor.monitor.Monitor.protocol_caveat` on every other alert; this module
turns the first record of each new version into its own event, once per (model, version).

The event has ``kind="protocol"`` and ``status="notice"``: a one-shot notice, never "firing" nor
"resolved", because nothing in the stream ends it. It ends when a baseline built on the new
version is promoted (the pipeline then switches Monitors, and the new baseline knows the
version). The standing condition is the gauge ``janus_model_version_unbaselined`` and the
Prometheus alert ``JanusProtocolChange`` on it. Because it is derived from the Monitor's own
(checkpointed) counts, a restart neither repeats nor loses the notice.

``[detection] on_protocol_change`` says what happens to the new version's records meanwhile:
``"continue"`` (the default) scores them against the old baseline and every alert carries the
caveat "baseline predates this version"; ``"pause"`` counts them but leaves them out of the
detectors (records of the versions the baseline covers are still scored).
"""

from __future__ import annotations

from collections.abc import Sequence

from detector.monitor.alerts import AlertEvent, iso_time
from detector.records import Decision

PROTOCOL = "protocol"
NOTICE = "notice"


def protocol_events(monitor, decisions: Sequence[Decision], known_before: set[str]) -> list[AlertEvent]:
    """Events for the versions ``monitor`` started counting in this batch (not in ``known_before``),
    each at the first of ``decisions`` that ran it."""
    new = set(monitor.unbaselined_versions) - known_before
    if not new:
        return []
    baseline = monitor.baseline
    built = ", ".join(baseline.model_versions) or "unknown versions"
    events = []
    for d in decisions:
        if d.model_version not in new or d.traffic != "production":
            continue
        new.discard(d.model_version)
        events.append(AlertEvent(
            status=NOTICE,
            kind=PROTOCOL,
            model_id=monitor.model_id,
            segment=d.segment,
            feature="model_version",
            code=d.model_version,
            direction="",
            decision_id=d.decision_id,
            record_index=d.position,
            statistic=0.0,
            threshold=0.0,
            baseline_version=baseline.version,
            severity="warning",
            time=iso_time(d.timestamp),
            message=(f"protocol change: production now runs {monitor.model_id} {d.model_version}; baseline "
                     f"{baseline.ref} was built on {built}. " + (
                         f"Records of {d.model_version} are counted but not scored until a baseline covering it "
                         "is promoted (detection.on_protocol_change = pause)"
                         if monitor.config.on_protocol_change == "pause" else
                         "Detection goes on against it, and every alert of this model says so until a baseline "
                         f"covering {d.model_version} is promoted")),
            window_records=int(monitor.unbaselined_versions[d.model_version]),
            caveat=monitor.protocol_caveat(),
        ))
        if not new:
            break
    return events
