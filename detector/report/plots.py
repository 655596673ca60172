"""Matplotlib figures for the report, each returned as a ``data:image/svg+xml;base64,…`` URI.

An SVG shown through ``<img>`` is a static image to the browser: it cannot run scripts or fetch
anything, whatever text ended up in it. Text in the figures is limited anyway to feature names and
code labels (cut short), math-text parsing is off (a ``$`` in a label is just a dollar), text is
drawn as paths and the output carries no date, so the same data gives the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from detector.report.data import NUMERIC_FIELDS, ReportData, short

EVALUATION_COLOUR = "#4c72b0"
PRODUCTION_COLOUR = "#dd8452"
ALERT_COLOUR = "#c44e52"
INPUT_COLOUR = "#8172b3"
RC = {
    "text.parse_math": False,
    "svg.fonttype": "path",
    "svg.hashsalt": "janus-report",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return matplotlib, plt


def _uri(fig) -> str:
    _, plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def drift_figure(data: ReportData, max_lines: int = 8) -> str | None:
    """Drift statistics (1.0 = alert threshold) per feature against production records, with alert
    markers: ▲ firing, ▼ resolved (at the threshold line, where they crossed)."""
    series = data.series
    if not series.x:
        return None
    matplotlib, plt = _plt()
    with matplotlib.rc_context(RC):
        fig, ax = plt.subplots(figsize=(9.5, 3.8))
        alerted = {f for _, _, f in data.markers}
        ranked = sorted(series.values, key=lambda f: (f not in alerted, -max(series.values[f], default=0.0)))
        x = np.asarray(series.x)
        for feature in ranked[:max_lines]:
            style = "-" if series.kinds.get(feature) != "input" else "--"
            ax.plot(x, np.minimum(series.values[feature], 1.6), style, linewidth=1.2, label=short(feature, "label")[:40])
        ax.axhline(1.0, color="#c44e52", linewidth=1, linestyle=":", label="threshold")
        for status, marker, colour in (("firing", "^", "#c44e52"), ("resolved", "v", "#55a868")):
            xs = [m[0] for m in data.markers if m[1] == status]
            if xs:
                ax.scatter(xs, [1.0] * len(xs), marker=marker, s=55, color=colour, zorder=5,
                           edgecolor="black", linewidth=0.5, label=f"alert {status}")
        ax.set_xlabel("production records of the model (replay order)")
        ax.set_ylabel("statistic / threshold (cut at 1.6)")
        ax.set_ylim(0, 1.65)
        ax.set_xlim(0, max(int(x[-1]), 1))
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        ax.grid(alpha=0.25)
        return _uri(fig)


def distance_figure(data: ReportData, top: int = 20) -> str | None:
    rows = [f for f in data.shares if f.js_distance is not None][:top]
    if not rows:
        return None
    matplotlib, plt = _plt()
    with matplotlib.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.22 * len(rows) + 0.8))
        names = [short(f.feature, "label")[:40] for f in rows][::-1]
        values = [f.js_distance for f in rows][::-1]
        colours = [ALERT_COLOUR if f.alerted else INPUT_COLOUR if f.kind == "input" else EVALUATION_COLOUR
                   for f in rows][::-1]
        ax.barh(names, values, color=colours)
        from matplotlib.patches import Patch

        handles = [Patch(color=ALERT_COLOUR, label="alerted feature")] if any(f.alerted for f in rows) else []
        handles += [Patch(color=EVALUATION_COLOUR, label="behaviour"), Patch(color=INPUT_COLOUR, label="input mix")]
        ax.legend(handles=handles, frameon=False, loc="lower right")
        ax.set_xlabel("Jensen–Shannon distance, evaluation vs production (0 = same, 1 = disjoint)")
        ax.set_xlim(0, max(max(values) * 1.15, 0.05))
        ax.grid(axis="x", alpha=0.25)
        return _uri(fig)


def input_mix_figure(data: ReportData, top: int = 12) -> str | None:
    mix = data.input_mix
    if mix is None or not mix.rows:
        return None
    rows = mix.rows[:top]
    matplotlib, plt = _plt()
    with matplotlib.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 0.9))
        y = np.arange(len(rows))[::-1]
        ax.barh(y + 0.2, [r.evaluation for r in rows], height=0.4, color=EVALUATION_COLOUR, label="evaluation")
        if rows[0].production is not None:
            ax.barh(y - 0.2, [r.production or 0.0 for r in rows], height=0.4, color=PRODUCTION_COLOUR, label="production")
        ax.set_yticks(y, [short(r.label, "label")[:20] for r in rows])
        ax.set_xlabel("share of records")
        ax.legend(frameon=False, loc="lower right")
        ax.grid(axis="x", alpha=0.25)
        return _uri(fig)


def distributions_figure(data: ReportData) -> str | None:
    panels = [(name, *data.numeric.get(name, ([], []))) for name in NUMERIC_FIELDS]
    panels = [p for p in panels if p[1] or p[2]]
    if not panels:
        return None
    matplotlib, plt = _plt()
    with matplotlib.rc_context(RC):
        cols = 2
        rows = (len(panels) + 1) // 2
        fig, axes = plt.subplots(rows, cols, figsize=(9.5, 2.6 * rows), squeeze=False)
        for ax, (name, evaluation, production) in zip(axes.flat, panels):
            _histogram(ax, evaluation, production)
            ax.set_title(NUMERIC_FIELDS[name][0], fontsize=9)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.03))
        fig.tight_layout()
        return _uri(fig)


def _histogram(ax, evaluation: Sequence[float], production: Sequence[float]) -> None:
    both = np.asarray([*evaluation, *production], dtype=np.float64)
    both = both[np.isfinite(both)]
    if not len(both):
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = float(np.min(both)), float(np.quantile(both, 0.99))
    if hi <= lo:
        hi = lo + 1.0
    bins = np.linspace(lo, hi, 31)
    if len(production):
        ax.hist(np.clip(production, lo, hi), bins=bins, density=True, color=PRODUCTION_COLOUR, alpha=0.55,
                label=f"production (sample of {len(production):,})")
    if len(evaluation):
        ax.hist(np.clip(evaluation, lo, hi), bins=bins, density=True, histtype="step", linewidth=1.6,
                color=EVALUATION_COLOUR, label=f"evaluation (baseline reservoir, {len(evaluation):,})")
    ax.set_yticks([])
    ax.grid(axis="x", alpha=0.25)
