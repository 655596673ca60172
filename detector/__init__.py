"""Janus: catch AI models that behave differently in production from how they behaved under evaluation."""

__version__ = "0.1.0"
