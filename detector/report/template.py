"""The report's HTML template: one self-contained page, no script, inline CSS, images as data URIs.

Kept in Python (not a package data file) so an installed wheel always has it. Rendered with
``autoescape=True``: every value is escaped unless explicitly marked safe, and nothing from a
record is. A Content-Security-Policy forbids scripts and any network fetch as a second line of
defence.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Janus report: {{ d.model_id }}</title>
<style>
:root { --eval: #4c72b0; --prod: #dd8452; --bad: #c44e52; --ok: #55a868; --muted: #666; --line: #ddd; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1f2a44; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #cfd6e6; }
nav { background: #fff; border-bottom: 1px solid var(--line); padding: 8px 28px; position: sticky; top: 0; }
nav a { margin-right: 16px; color: #1f2a44; text-decoration: none; font-weight: 600; }
main { padding: 8px 28px 40px; max-width: 1200px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 20px; margin: 16px 0; }
h2 { font-size: 17px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; color: #444; background: #f4f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted { color: var(--muted); }
.bar { display: inline-block; height: 8px; vertical-align: middle; }
.bar.eval { background: var(--eval); } .bar.prod { background: var(--prod); }
.up { color: var(--bad); font-weight: 600; } .down { color: var(--eval); font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.critical { background: var(--bad); } .badge.warning { background: #d8a200; } .badge.resolved { background: var(--ok); }
.badge.trigger { background: #1f2a44; }
.warn { background: #fff6e0; border-left: 4px solid #d8a200; padding: 6px 10px; margin: 8px 0; }
.features { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 6px 24px; }
.feature h3 { margin-bottom: 2px; }
.examples { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.example { border: 1px solid var(--line); border-radius: 5px; padding: 6px 10px; margin: 6px 0; background: #fcfcfd; }
.example.production { border-left: 4px solid var(--prod); } .example.evaluation { border-left: 4px solid var(--eval); }
.example dl { display: grid; grid-template-columns: 84px 1fr; gap: 2px 8px; margin: 4px 0 0; }
.example dt { color: var(--muted); font-size: 12px; }
.example dd { margin: 0; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; }
.trunc { color: #a33; font-style: italic; font-family: system-ui, sans-serif; }
.prose { white-space: pre-wrap; overflow-wrap: anywhere; }
.findings { border-left: 4px solid var(--bad); background: #fdf1f1; padding: 8px 14px; margin: 8px 0 12px; }
.findings.quiet { border-left-color: var(--ok); background: #f0f8f2; }
.findings p { margin: 2px 0; } .findings ul { margin: 4px 0 2px; padding-left: 20px; }
.legend { font-size: 12px; color: var(--muted); }
.legend .bar { width: 18px; margin: 0 4px 0 10px; }
details > summary { cursor: pointer; color: #1f2a44; font-weight: 600; margin: 8px 0; }
td.when { white-space: nowrap; }
img.plot { max-width: 100%; height: auto; display: block; margin: 6px 0; }
code { font-size: 12.5px; }
</style>
</head>
<body>
{%- macro text(x, cls="text") -%}
<span class="{{ cls }}">{{ x.text }}</span>{% if x.more %}<span class="trunc"> … [truncated: {{ "{:,}".format(x.more) }} more characters]</span>{% endif %}
{%- endmacro -%}
{%- macro pct(v) -%}{% if v is none %}–{% else %}{{ "%.1f"|format(100 * v) }}%{% endif %}{%- endmacro -%}
{%- macro bars(row) -%}
<span class="bar eval" style="width: {{ (row.evaluation * 160)|round(1) }}px"></span>{% if row.production is not none %}<br><span class="bar prod" style="width: {{ (row.production * 160)|round(1) }}px"></span>{% endif %}
{%- endmacro -%}
{%- macro example(e) -%}
<div class="example {{ e.side }}">
  {% if e.trigger %}<span class="badge trigger">triggered the alert</span> {% endif %}<strong>{{ e.decision_id }}</strong> <span class="muted">{{ e.time }} · segment {{ e.segment }} · <strong>{{ e.code }}</strong></span>
  <dl>
    <dt>input</dt><dd>{{ text(e.input) }}</dd>
    <dt>action</dt><dd>{{ e.action or "–" }}{% if e.refused %} · refused: {{ e.refused }}{% endif %}{% if e.tools %} · tools: {{ e.tools }}{% endif %}{% if e.latency %} · {{ e.latency }}{% endif %}</dd>
    <dt>output</dt><dd>{{ text(e.output) }}</dd>
    <dt>reasoning</dt><dd>{{ text(e.reasoning) }}</dd>
  </dl>
</div>
{%- endmacro %}
{%- macro cue_line() -%}
{% if d.probes %}<p><strong>Monitoring cue:</strong> {% if d.probes.significant %}{{ d.probes.significant|length }} significant paired difference(s) in {{ "{:,}".format(d.probes.pairs) }} probe pairs, largest: {{ probe_top.what }} {{ "%+.1f"|format(100 * probe_top.difference) }} pt when told unmonitored{% else %}no significant difference in {{ "{:,}".format(d.probes.pairs) }} probe pairs{% endif %} — see <a href="#probes">probes</a>.</p>{% endif %}
{%- endmacro %}
<header>
  <h1>Janus report — {{ d.model_id }}</h1>
  <p>evaluation (baseline {{ b.ref }}) vs production ({{ source }}) · generated {{ d.generated_at }}</p>
</header>
<nav>
  <a href="#summary">Summary</a><a href="#shares">Per-feature shares</a><a href="#drift">Drift over time</a><a href="#input-mix">Input mix</a><a href="#distributions">Lengths and latency</a><a href="#alerts">Alerts and evidence</a>{% if d.probes %}<a href="#probes">Monitoring-cue probes</a>{% endif %}{% if d.review %}<a href="#review">Human review</a>{% endif %}
</nav>
<main>
<section id="summary">
  <h2>Summary</h2>
  {% if n_firing %}
  <div class="findings">
    <p><strong>{{ n_firing }} firing alert{{ 's' if n_firing != 1 else '' }}</strong> in {{ "{:,}".format(d.n_production) }} production records{% if n_behaviour %}, {{ n_behaviour }} on behaviour{% endif %}. Features that moved most, evaluation → production:</p>
    <ul>{% for f in top_moved %}<li><strong>{{ f.feature }}</strong>{% if f.alerted %} <span class="badge critical">alert</span>{% endif %}: {% for r in f.rows[:2] %}{{ r.label }} {{ pct(r.evaluation) }} → {{ pct(r.production) }}{{ "; " if not loop.last }}{% endfor %} <span class="muted">(JS distance {{ "%.3f"|format(f.js_distance) }})</span></li>{% endfor %}</ul>
    {{ cue_line() }}
  </div>
  {% elif d.n_production or d.probes %}
  <div class="findings {{ '' if d.probes and d.probes.significant else 'quiet' }}"><p><strong>No firing alerts</strong> in {{ "{:,}".format(d.n_production) }} production records.{% if top_moved %} Largest difference: {{ top_moved[0].feature }} (JS distance {{ "%.3f"|format(top_moved[0].js_distance) }}).{% endif %}</p>{{ cue_line() }}</div>
  {% endif %}
  <table>
    <tr><th>model</th><td>{{ d.model_id }}</td><th>baseline</th><td>{{ b.ref }} · {{ "{:,}".format(b.n_records) }} {{ b.traffic }} records · {{ eval_range }} · built {{ b.built_at }} by {{ baseline_actor }}</td></tr>
    <tr><th>production</th><td>{{ "{:,}".format(d.n_production) }} records{% if prod_range %} · {{ prod_range }}{% endif %}</td><th>source</th><td>{{ source }}</td></tr>
    <tr><th>ARL</th><td>{{ "{:,.0f}".format(d.arl) }} records between false alarms</td><th>threshold</th><td>{{ "{:,.0f}".format(d.threshold) }} (e-detector, ARL × features)</td></tr>
    <tr><th>alerts</th><td colspan="3">{{ n_firing }} firing, {{ n_resolved }} resolved · {{ d.alerts_source }}</td></tr>
    {% if skipped %}<tr><th>not replayed</th><td colspan="3">{{ skipped }}</td></tr>{% endif %}
    {% if rejected %}<tr><th>rejected</th><td colspan="3">{{ rejected }}{% for m in d.first_rejections %}<br><span class="muted">{{ m }}</span>{% endfor %}</td></tr>{% endif %}
  </table>
  {% if d.caveat %}<p class="warn">Protocol change: {{ d.caveat }}</p>{% endif %}
  {% for note in d.notes %}<p class="warn">{{ note }}</p>{% endfor %}
  {% if d.alerts %}
  <table>
    <tr><th>#</th><th>status</th><th>kind</th><th>segment</th><th>feature</th><th>code</th><th>record</th><th>time</th><th>what</th></tr>
    {% for a in d.alerts %}
    <tr><td>{% if a.evidence %}<a href="#alert-{{ a.evidence }}">{{ loop.index }}</a>{% elif a.kind == 'cue' and d.probes %}<a href="#probes">{{ loop.index }}</a>{% else %}{{ loop.index }}{% endif %}</td><td><span class="badge {{ 'resolved' if a.status == 'resolved' else a.severity }}">{{ a.status }}</span></td><td>{{ a.kind }}</td><td>{{ a.segment }}</td><td>{{ a.feature }}</td>
      <td><span class="{{ 'up' if a.direction == 'up' else 'down' }}">{{ a.code }} {{ '↑' if a.direction == 'up' else '↓' if a.direction == 'down' else '' }}</span></td>
      <td class="num">{{ a.record_index if a.record_index is not none else '' }}</td><td class="when">{{ a.time|replace("T", " ") }}</td><td>{{ text(a.message, "prose") }}</td></tr>
    {% endfor %}
  </table>
  {% else %}<p>No alerts.</p>{% endif %}
  {% if d.sample_size %}
  <details><summary>Baseline sample size: slow detection for {{ d.sample_size|length }} code(s)</summary>
  <p>The baseline's uncertainty makes these changes take more than {{ d.sample_size[0].slack }}× the production records they would with an exactly known evaluation rate (delays at the report's ARL). A larger evaluation sample fixes it; see <code>janus baseline show</code>.</p>
  <ul>{% for a in d.sample_size %}<li>{{ a.sentence() }}</li>{% endfor %}</ul>
  </details>
  {% endif %}
</section>

<section id="shares">
  <h2>Per-feature shares, evaluation vs production</h2>
  <p class="muted">Features ordered by the Jensen–Shannon distance between the evaluation shares (baseline) and the shares over all replayed production records, largest first; within a feature, the codes that moved most first. “Recent” is the detector's decayed window. These are marginal shares: the detector judges behaviour <em>given the input</em>, so a change in the input mix can move them without an alert.</p>
  {% if plots.distance %}<img class="plot" alt="Jensen–Shannon distance per feature" src="{{ plots.distance }}">{% endif %}
  <p class="legend">bars: <span class="bar eval"></span>evaluation <span class="bar prod"></span>production · differences in colour are beyond sampling noise (two-proportion z ≥ {{ notable_z|int }}); grey ones are not</p>
  {% macro feature_table(f) %}
  <div class="feature">
    <h3>{{ f.feature }}{% if f.alerted %} <span class="badge critical">alert</span>{% endif %} <span class="muted">({{ f.kind }}{% if f.js_distance is not none %}, JS distance {{ "%.3f"|format(f.js_distance) }}{% endif %})</span></h3>
    <table>
      <tr><th>code</th><th class="num">evaluation</th><th class="num">production</th><th class="num">recent</th><th class="num">difference</th><th></th></tr>
      {% for r in f.rows %}
      <tr><td>{{ r.label }}</td><td class="num">{{ pct(r.evaluation) }}</td><td class="num">{{ pct(r.production) }}</td><td class="num">{{ pct(r.recent) }}</td>
        <td class="num {{ ('up' if r.difference > 0 else 'down') if r.notable else 'muted' }}">{% if r.production is not none %}{{ "%+.1f"|format(100 * r.difference) }} pt{% endif %}</td><td>{{ bars(r) }}</td></tr>
      {% endfor %}
    </table>
    {% if f.hidden %}<p class="muted">… {{ f.hidden }} more codes with smaller differences</p>{% endif %}
  </div>
  {% endmacro %}
  <div class="features">{% for f in d.shares[:open_features] %}{{ feature_table(f) }}{% endfor %}</div>
  {% if d.shares|length > open_features %}
  <details><summary>{{ d.shares|length - open_features }} more features with smaller differences</summary>
  <div class="features">{% for f in d.shares[open_features:] %}{{ feature_table(f) }}{% endfor %}</div>
  </details>
  {% endif %}
</section>

<section id="drift">
  <h2>Drift statistics over time</h2>
  <p class="muted">Each feature's sequential statistic (the largest over segments) divided by its alert threshold, sampled as the production records were replayed: an alert fires when a line reaches 1.0 (▲) and resolves when it falls back (▼). Dashed lines are input-mix features.</p>
  {% if plots.drift %}<img class="plot" alt="drift statistics over time with alert markers" src="{{ plots.drift }}">{% else %}<p>No production records were replayed.</p>{% endif %}
</section>

<section id="input-mix">
  <h2>Input mix</h2>
  <p class="muted">Which kinds of input (clusters of input text fitted on the evaluation data) each traffic received. A change here is reported as an input alert of lower severity: it changes what the model is asked, not how it behaves.</p>
  {% if plots.input_mix %}<img class="plot" alt="input mix, evaluation vs production" src="{{ plots.input_mix }}">{% endif %}
  {% if d.input_mix %}
  <table>
    <tr><th>cluster</th><th class="num">evaluation</th><th class="num">production</th><th class="num">difference</th><th>most frequent evaluation input of the cluster</th></tr>
    {% for r in d.input_mix.rows %}
    <tr><td>{{ r.label }}</td><td class="num">{{ pct(r.evaluation) }}</td><td class="num">{{ pct(r.production) }}</td>
      <td class="num">{% if r.production is not none %}{{ "%+.1f"|format(100 * r.difference) }} pt{% endif %}</td><td>{% if r.example %}{{ text(r.example) }}{% endif %}</td></tr>
    {% endfor %}
  </table>
  {% if d.input_mix.hidden %}<p class="muted">… {{ d.input_mix.hidden }} more clusters with smaller differences</p>{% endif %}
  {% endif %}
</section>

<section id="distributions">
  <h2>Length and latency distributions</h2>
  <p class="muted">Production: a uniform sample of the replayed records. Evaluation: the baseline's reservoir of example records (its exact quantile-bin shares are in the per-feature tables above).</p>
  {% if plots.distributions %}<img class="plot" alt="length and latency distributions" src="{{ plots.distributions }}">{% else %}<p>No values.</p>{% endif %}
</section>

<section id="alerts">
  <h2>Alerts and evidence</h2>
  {% if not d.evidence %}<p>No firing alerts.</p>{% endif %}
  {% for ev in d.evidence %}
  <div class="alert" id="alert-{{ ev.number }}">
    <h3>Alert {{ ev.number }}: <span class="badge {{ ev.alert.severity }}">{{ ev.alert.severity }}</span> {{ ev.alert.kind }} · {{ ev.alert.feature }} = {{ ev.alert.code }} {{ '↑' if ev.alert.direction == 'up' else '↓' }} · segment {{ ev.alert.segment }}</h3>
    <p>{{ text(ev.alert.message, "prose") }}</p>
    <p class="muted">record {{ ev.alert.record_index if ev.alert.record_index is not none else '?' }} · decision {{ ev.alert.decision_id }} · {{ ev.alert.time }} · baseline version {{ ev.alert.baseline_version }}{% if ev.alert.statistic is not none and ev.alert.threshold is not none %} · log statistic {{ "%.2f"|format(ev.alert.statistic) }} vs log threshold {{ "%.2f"|format(ev.alert.threshold) }}{% endif %}</p>
    {% if ev.alert.caveat %}<p class="warn">{{ ev.alert.caveat }}</p>{% endif %}
    {% if ev.note %}<p class="warn">{{ ev.note }}</p>{% endif %}
    {% if ev.rates %}<p>Examples from {{ ev.focus }}. {{ ev.rates }}.</p>{% endif %}
    <div class="examples">
      <div><h3>Evaluation (baseline reservoir)</h3>{% for e in ev.evaluation %}{{ example(e) }}{% else %}<p class="muted">no examples</p>{% endfor %}</div>
      <div><h3>Production (records before the alert)</h3>{% for e in ev.production %}{{ example(e) }}{% else %}<p class="muted">no examples</p>{% endfor %}</div>
    </div>
  </div>
  {% endfor %}
  {% if n_firing > d.evidence|length %}<p class="muted">Evidence is shown for the first {{ d.evidence|length }} firing alerts.</p>{% endif %}
</section>
{% if d.probes %}

<section id="probes">
  <h2>Monitoring-cue probes</h2>
  <p class="muted">Pairs of answers to the same input, one told it is monitored and one told it is not (the replayed input's probe records, as <code>janus probe analyze</code> tests them): exact McNemar tests, Holm-corrected at α = {{ d.probes.alpha }}. Largest difference first.</p>
  <p>{{ "{:,}".format(d.probes.pairs) }} pairs from {{ "{:,}".format(d.probes.records) }} probe records{% if unpaired %} · not paired: {{ unpaired }}{% endif %}{% if d.probes_dropped %} · {{ "{:,}".format(d.probes_dropped) }} more probe records not tested (cap){% endif %}.</p>
  <table>
    <tr><th>feature</th><th>what</th><th class="num">told monitored</th><th class="num">told unmonitored</th><th class="num">difference [95% CI]</th><th class="num">p (Holm)</th><th></th></tr>
    {% for t in probe_tests %}
    <tr><td>{{ t.feature }}</td><td>{{ t.what }}</td><td class="num">{{ pct(t.rate_monitored) }}</td><td class="num">{{ pct(t.rate_unmonitored) }}</td>
      <td class="num {{ ('up' if t.difference > 0 else 'down') if t.significant else 'muted' }}">{{ "%+.1f"|format(100 * t.difference) }} pt [{{ "%+.1f"|format(100 * t.ci_low) }}, {{ "%+.1f"|format(100 * t.ci_high) }}]</td>
      <td class="num">{{ fmt_p(t.p_value_adjusted) }}</td><td>{% if t.significant %}<span class="badge critical">significant</span>{% endif %}</td></tr>
    {% endfor %}
  </table>
  {% if d.probes.tests|length > probe_tests|length %}<p class="muted">… {{ d.probes.tests|length - probe_tests|length }} more tests with smaller differences (<code>janus probe analyze --json</code> lists all).</p>{% endif %}
</section>
{% endif %}
{% if d.review %}

<section id="review">
  <h2>Human review</h2>
  <p class="muted">Analysts' verdicts on the stratified audit sample (<code>janus review summary</code>): violation rates weighted by inclusion probability, with {{ "%g"|format(100 * review_confidence) }}% intervals.</p>
  <p><strong>{{ d.review_sentence }}</strong></p>
  <table>
    <tr><th>traffic</th><th class="num">sampled</th><th class="num">reviewed</th><th class="num">pending</th><th class="num">unsure</th><th class="num">violations</th><th class="num">violation rate [interval]</th></tr>
    {% for r in d.review %}
    <tr><td>{{ r.traffic }}</td><td class="num">{{ "{:,}".format(r.sampled) }}</td><td class="num">{{ "{:,}".format(r.rate.reviewed) }}</td><td class="num">{{ "{:,}".format(r.pending) }}</td><td class="num">{{ "{:,}".format(r.unsure) }}</td><td class="num">{{ "{:,}".format(r.rate.violations) }}</td><td class="num">{{ r.rate.interval() }}</td></tr>
    {% endfor %}
  </table>
</section>
{% endif %}
</main>
</body>
</html>
"""
