"""`janus report`: a self-contained HTML comparison of evaluation and production for one model.

* :mod:`.data` — replay production records through the detector and gather shares, statistics
  over time, alerts and their evidence (bounded memory; record text kept as cleaned excerpts);
* :mod:`.plots` — matplotlib figures as SVG data URIs;
* :mod:`.template` — the autoescaped jinja2 page (no script; inline CSS; CSP forbids fetching);
* :mod:`.advice` — recalibration guidance (sample size for an ARL, promotion distance).

>>> import orjson, tempfile
>>> from detector.baseline import BaselineStore, build_baselines
>>> from detector.records import parse_values
>>> from detector.simulate import simulate
>>> logs = simulate("compliance-gap", 1, n_evaluation=300, n_production=200, change_at=50)
>>> store = BaselineStore(tempfile.mkdtemp())
>>> baseline = build_baselines(parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions)
>>> _ = store.save(baseline.baselines["triage-agent"], actor="doc", reason="example", activate=True)
>>> chunks = [([orjson.dumps(r) for r in logs.production], 0, None, None)]
>>> data = gather_report(store, "triage-agent", chunks, source="example")
>>> data.n_production, data.source
(200, 'example')
>>> page = render_report(data)
>>> '<section id="shares">' in page and "<script" not in page
True
"""

from __future__ import annotations

from pathlib import Path

from detector.report.data import NOTABLE_Z, ReportData, gather_report, iso, short

__all__ = ["ReportData", "gather_report", "render_report", "write_report"]

OPEN_FEATURES = 4  # feature tables shown open; the rest are one click away (<details>)
PROBE_TESTS = 10  # rows of the probe table


def render_report(data: ReportData) -> str:
    """The report as one HTML string."""
    import jinja2

    from detector.report import plots
    from detector.report.template import TEMPLATE

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(TEMPLATE)
    b = data.baseline
    n_firing = sum(1 for a in data.alerts if a["status"] == "firing")
    figures = {
        "distance": plots.distance_figure(data),
        "drift": plots.drift_figure(data),
        "input_mix": plots.input_mix_figure(data),
        "distributions": plots.distributions_figure(data),
    }
    return template.render(
        d=data,
        b=_BaselineView(b),
        source=data.source or "no production input",
        baseline_actor=short(b.actor, "id"),
        eval_range=f"{iso(b.time_range[0])} – {iso(b.time_range[1])}",
        prod_range=(f"{iso(data.production_range[0])} – {iso(data.production_range[1])}"
                    if data.production_range else ""),
        n_firing=n_firing,
        n_resolved=sum(1 for a in data.alerts if a["status"] == "resolved"),
        skipped=_counts(data.n_skipped),
        rejected=_counts(data.rejected),
        plots=figures,
        # Only features with a code beyond sampling noise: the rest did not move, whatever their distance.
        top_moved=[f for f in data.shares if f.js_distance and any(r.notable for r in f.rows)][:3],
        n_behaviour=sum(1 for a in data.alerts if a["status"] == "firing" and a["kind"] == "behaviour"),
        open_features=OPEN_FEATURES,
        notable_z=NOTABLE_Z,
        **_probe_view(data),
        review_confidence=data.review_confidence,
    )


def _probe_view(data: ReportData) -> dict:
    """The probe table's rows with their labels cleaned (codes come from record values)."""
    if data.probes is None:
        return {"probe_tests": [], "probe_top": None, "unpaired": "", "fmt_p": None}
    from detector.probes.stats import format_p

    def view(t):
        return {**t.to_dict(), "feature": short(t.feature, "id"), "what": short(t.what, "meta")}

    significant = data.probes.significant  # largest difference first, as the tests are
    unpaired = {k: v for k, v in data.probes.outcomes.items() if k != "paired" and v}
    return {"probe_tests": [view(t) for t in data.probes.tests[:PROBE_TESTS]],
            "probe_top": view(significant[0]) if significant else None,
            "unpaired": _counts(unpaired), "fmt_p": format_p}


class _BaselineView:
    """The baseline's metadata, cleaned for display (model ids, actors and sources are untrusted)."""

    def __init__(self, b):
        self.ref = short(b.ref, "id")
        self.n_records = b.n_records
        self.traffic = short(b.traffic, "id")
        self.built_at = short(b.built_at, "id")


def _counts(counter) -> str:
    return ", ".join(f"{short(k, 'id')} {v:,}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def write_report(data: ReportData, out: str | Path) -> Path:
    """Render and write atomically (a half-written report is never left behind)."""
    import os
    import tempfile

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = render_report(data)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would (mkstemp makes it 0600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out

