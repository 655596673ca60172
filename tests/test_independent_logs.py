"""Janus on a log generator it was not built with (bench/peopledesk_logs.py, bench/independent.py):
the behaviour-given-the-request null at ARL 1e6 and a refusal drop on one kind, at the benchmark's
quick size (a 20,000-record baseline, 6,000 production records per log)."""

from __future__ import annotations

import sys

from benchscript import BENCH, load_bench

sys.path.insert(0, str(BENCH))  # the part imports its generator as bench/ scripts do


def test_the_null_holds_and_a_refusal_drop_is_found_on_logs_from_another_generator():
    out = load_bench("independent").run(quick=True)
    assert {row["scenario"] for row in out["null"]} == {"none", "mix2", "rare40"}
    # Pure shifts of what is asked, two rare kinds to half of traffic among them, raise no
    # behaviour alert at 1e6 (the allowance over these records is ~0.02).
    assert [row["behaviour"]["1e+06"] for row in out["null"]] == [0, 0, 0]
    refusal = next(row for row in out["changes"] if row["scenario"] == "refusal")
    assert refusal["delay"]["1e+06"] is not None and refusal["delay"]["1e+06"] < 1_500
    lines = load_bench("report").independent_section(out)
    assert lines[0] == "## A log generator Janus was not built with"
    assert sum(line.startswith(f"| {row['case']} |") for row in out["changes"] for line in lines) == 3
