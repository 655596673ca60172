"""Decisions → small categorical codes (see :mod:`detector.features.featurizer`)."""

from detector.features.featurizer import BEHAVIOUR, DATA, INPUT, FeatureMatrix, FeatureSpec, Featurizer

__all__ = ["BEHAVIOUR", "DATA", "INPUT", "FeatureMatrix", "FeatureSpec", "Featurizer"]
