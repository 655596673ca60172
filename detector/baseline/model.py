"""A baseline: what a model's evaluation traffic looked like, feature by feature and input by input.

Per feature, ``counts[j]`` is an array of shape (condition cells, codes): how many evaluation
decisions of each (segment, condition) cell had each code (:mod:`detector.features.conditions`). With the fitted featurizer (quantile
edges, projections, codebooks), a bounded reservoir of example decisions for reports, the record
count, time range, model versions and the configuration it was built with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.features import FeatureMatrix, Featurizer


@dataclass
class Baseline:
    model_id: str
    featurizer: Featurizer
    counts: list[np.ndarray]
    n_records: int
    time_range: tuple[float, float]
    model_versions: list[str]
    built_at: str
    traffic: str = "evaluation"
    source: str = ""
    reason: str = ""
    actor: str = ""
    version: str = ""
    reservoir: list[dict] = field(default_factory=list)
    reservoir_codes: np.ndarray | None = None  # (len(reservoir), 2F): codes, then condition cells

    @property
    def ref(self) -> str:
        return f"{self.model_id}@{self.version}" if self.version else self.model_id

    @property
    def specs(self):
        return self.featurizer.specs

    def shares(self, j: int) -> np.ndarray:
        """Model-wide share of each code of feature ``j``."""
        total = self.counts[j].sum(axis=0).astype(np.float64)
        return total / max(total.sum(), 1.0)


def count_codes(matrix: FeatureMatrix, featurizer: Featurizer) -> list[np.ndarray]:
    """Per feature, a (cells, codes) count table: the additive summary detection works on."""
    out = []
    for j, spec in enumerate(featurizer.specs):
        k, n_cells = spec.n_codes, featurizer.n_cells(j)
        flat = matrix.cells[:, j].astype(np.int64) * k + matrix.codes[:, j]
        out.append(np.bincount(flat, minlength=n_cells * k).reshape(n_cells, k))
    return out
