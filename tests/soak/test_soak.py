"""`make soak`: 5,000,000 records through `janus serve` with its RSS sampled over time.

``JANUS_SOAK_RECORDS`` changes the size, ``JANUS_SOAK_OUT`` the output folder (default
``soak-output/``: ``rss.csv``, ``rss.png``, ``summary.json``, ``serve.log``). RELIABILITY.md
reports the curve.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from soak_serve import soak

SOAK_RECORDS = int(os.environ.get("JANUS_SOAK_RECORDS", 5_000_000))


@pytest.mark.kafka
@pytest.mark.timeout(12 * 3600)
def test_soak_rss_stays_flat():
    out = Path(os.environ.get("JANUS_SOAK_OUT", "soak-output"))
    summary = soak(SOAK_RECORDS, out)
    print(f"\nsoak: {summary}")
    assert summary["exit_status"] == 0 and summary["errors_logged"] == 0, summary
    # Flat: the second half of the stream adds less than 10% (or 50 MB) to the RSS of the middle.
    growth = summary["rss_end_mb"] - summary["rss_middle_mb"]
    assert growth < max(50.0, 0.1 * summary["rss_middle_mb"]), summary
