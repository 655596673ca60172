"""Feature-by-feature comparison of two baselines: shares per code and Jensen–Shannon distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon

from detector.baseline.model import Baseline


@dataclass
class FeatureDiff:
    feature: str
    kind: str
    js_distance: float
    codes: list[tuple[str, float, float]]  # (label, share in A, share in B)


def diff_baselines(a: Baseline, b: Baseline) -> list[FeatureDiff]:
    """Features present in both, largest distance first. Codes are matched by label, since the
    two featurizers may have learned different vocabularies or bins."""
    b_specs = {s.name: j for j, s in enumerate(b.specs)}
    out = []
    for j, spec in enumerate(a.specs):
        if spec.name not in b_specs:
            continue
        jb = b_specs[spec.name]
        share_a = dict(zip(spec.labels, a.shares(j)))
        share_b = dict(zip(b.specs[jb].labels, b.shares(jb)))
        labels = list(dict.fromkeys([*spec.labels, *b.specs[jb].labels]))
        pa = np.array([share_a.get(label, 0.0) for label in labels])
        pb = np.array([share_b.get(label, 0.0) for label in labels])
        distance = float(jensenshannon(pa, pb, base=2)) if pa.sum() > 0 and pb.sum() > 0 else 0.0
        codes = [(label, float(x), float(y)) for label, x, y in zip(labels, pa, pb)]
        out.append(FeatureDiff(spec.name, spec.kind, 0.0 if np.isnan(distance) else distance, codes))
    out.sort(key=lambda d: -d.js_distance)
    return out
