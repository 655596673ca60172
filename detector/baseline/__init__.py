"""Baselines: built from evaluation traffic, versioned, verified on load."""

from detector.baseline.build import BuildResult, build_baseline, build_baselines
from detector.baseline.model import Baseline
from detector.baseline.store import BaselineStore

__all__ = ["Baseline", "BaselineStore", "BuildResult", "build_baseline", "build_baselines"]
