"""Decisions → small categorical codes (see :mod:`detector.features.featurizer`)."""

from detector.features.featurizer import BEHAVIOUR, INPUT, FeatureMatrix, FeatureSpec, Featurizer

__all__ = ["BEHAVIOUR", "INPUT", "FeatureMatrix", "FeatureSpec", "Featurizer"]
