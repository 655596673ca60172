"""Build one baseline per model from evaluation decisions.

Production decisions are skipped (and counted) unless explicitly allowed with a reason: a
baseline learned from production would absorb the very drift it must catch.

>>> from detector.records import Decision
>>> ds = [Decision(f"d{i}", float(i), "m", "evaluation", refused=i % 10 == 0) for i in range(50)]
>>> ds.append(Decision("p", 99.0, "m", "production", refused=True))
>>> result = build_baselines(ds)
>>> result.skipped_production, result.baselines["m"].n_records
(1, 50)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from detector.baseline.model import Baseline, count_codes
from detector.config import JanusConfig
from detector.errors import JanusError
from detector.features import Featurizer
from detector.records import Decision


@dataclass
class BuildResult:
    baselines: dict[str, Baseline]
    skipped_production: int = 0
    per_model_records: dict[str, int] = field(default_factory=dict)


def build_baseline(decisions: Sequence[Decision], config: JanusConfig = JanusConfig(), *, source: str = "",
                   reason: str = "", actor: str = "", traffic: str = "evaluation") -> Baseline:
    """One model's baseline from its decisions (all of one model id)."""
    if not decisions:
        raise JanusError("cannot build a baseline from zero decisions")
    model_id = decisions[0].model_id
    featurizer = Featurizer(config.features).fit(decisions)
    matrix = featurizer.transform(decisions)
    counts = count_codes(matrix, featurizer)
    times = np.array([d.timestamp for d in decisions])
    size = min(config.features.reservoir_size, len(decisions))
    # Seeded by the data size so a rebuild from the same data picks the same examples.
    pick = np.sort(np.random.default_rng(len(decisions)).choice(len(decisions), size, replace=False))
    versions = sorted({d.model_version for d in decisions if d.model_version is not None})
    return Baseline(
        model_id=model_id,
        featurizer=featurizer,
        counts=counts,
        n_records=len(decisions),
        time_range=(float(times.min()), float(times.max())),
        model_versions=versions,
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        traffic=traffic,
        source=source,
        reason=reason,
        actor=actor,
        reservoir=[decisions[i].to_dict() for i in pick],
        reservoir_codes=np.concatenate([matrix.codes[pick], matrix.cells[pick]], axis=1).astype(np.int32),
    )


def build_baselines(decisions: Sequence[Decision], config: JanusConfig = JanusConfig(), *,
                    model_id: str | None = None, allow_production: bool = False, source: str = "",
                    reason: str = "", actor: str = "", min_records: int = 1) -> BuildResult:
    """Group decisions by model and build a baseline for each (or only ``model_id``); refused, before
    any fitting, if a model has fewer than ``min_records`` records."""
    if allow_production and not reason.strip():
        raise JanusError("--allow-production needs a --reason: a baseline from production hides drift")
    by_model: dict[str, list[Decision]] = defaultdict(list)
    skipped = 0
    for d in decisions:
        if model_id is not None and d.model_id != model_id:
            continue
        if d.traffic == "production" and not allow_production:
            skipped += 1
            continue
        by_model[d.model_id].append(d)
    traffic = "evaluation+production" if allow_production else "evaluation"
    short = {m: len(ds) for m, ds in sorted(by_model.items()) if len(ds) < min_records}
    if short:
        raise JanusError(f"{source + ': ' if source else ''}too few {traffic} records for a baseline: "
                         + ", ".join(f"{m} has {n:,}" for m, n in short.items())
                         + f", fewer than the minimum of {min_records:,} ([baseline] min_records): rates estimated "
                           "from so few make detection slow and unreliable; build from more records, or anyway "
                           "with --force")
    baselines = {
        m: build_baseline(ds, config, source=source, reason=reason, actor=actor, traffic=traffic)
        for m, ds in sorted(by_model.items())
    }
    return BuildResult(baselines, skipped, {m: len(ds) for m, ds in by_model.items()})
