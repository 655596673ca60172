"""Production decisions vs the active baseline → alert events (see :mod:`.monitor`)."""

from detector.monitor.alerts import AlertEvent
from detector.monitor.monitor import Monitor, Share, Statistic

__all__ = ["AlertEvent", "Monitor", "Share", "Statistic"]
