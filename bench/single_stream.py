"""Single streams: Janus against the oracle CUSUM and River / Alibi Detect peers, at a matched false-alarm rate.

Five changes, each on one feature of a decision record, after ``CHANGE_AT`` records:

* three Bernoulli refusal rates (the issue's reference figures);
* a categorical action mix: probability mass moves from one action to another;
* a numeric shift: the log-latency mean moves by a quarter of its standard deviation (Janus bins
  latency at its baseline's quantiles; the oracle uses the true log-normal densities).

Janus is not tuned: it gets a baseline of ``N_BASELINE`` evaluation records and the ARL, through
its real featuriser and Monitor (micro-batches of ``BATCH`` records, as the pipeline runs them),
and is not told the direction or the size of the change. Its false-alarm rate at the configured
ARL 1e4 is *measured* on null streams (seed set M). Each peer's one parameter is then tuned by
bisection on other null streams (seed set T) to that measured ARL, and the peer's ARL is measured
on set M. Alibi Detect's online detectors take the ARL itself as their parameter (ERT, which they
calibrate by bootstrap): it is set to Janus's measured ARL (capped at ``ALIBI_MAX_ERT``). The
oracle is Page's CUSUM with the true pre/post distributions, calibrated by simulation. Peers
watch what a user would feed them: the 0/1 flag, the one-hot of the action that moves (they are
told which one), or the latency standardised by the reference sample.

ARL estimates use first alarms on null streams cut at ``null_length`` records:
ARL ≈ (records watched in all runs) / (runs with an alarm), the censored-exponential estimate.

    .venv-bench/bin/python bench/single_stream.py --quick --out /tmp/single.json
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

CHANGE_AT = 5_000
AFTER = 20_000  # records watched after the change before a run counts as "not detected"
N_BASELINE = 20_000
BATCH = 2_048  # the pipeline's micro-batch
BASELINE_SEED = 50_000
ACTIONS = ("answer", "escalate", "lookup", "refuse", "close_alert")
ALIBI_MAX_ERT = 40_000  # FETDriftOnline draws 10 × ERT bootstrap streams: ~30 s and ~2 GB at this cap
# CVMDriftOnline's threshold simulation costs n_bootstraps × (reference + 2 × window)²: 2 × ERT bootstraps
# (FET takes 10 ×) keep it near a minute at the cap.
CVM_BOOTSTRAPS_PER_ERT = 2

# A detector, as the benchmark sees it: a stream in, the index of its first alarm (or None) out.
FirstAlarm = Callable[[np.ndarray], "int | None"]


@dataclass(frozen=True)
class Change:
    """One feature's distribution before (``pre``) and after (``post``) the change.

    ``kind`` "bernoulli": (p,); "categorical": action probabilities; "numeric": (log-mean, log-sd)
    of a log-normal latency in ms. Pre and post streams share their random draws, so a seed gives
    the same records up to the change."""

    label: str
    kind: str
    pre: tuple
    post: tuple

    @property
    def feature(self) -> str:
        return {"bernoulli": "refused", "categorical": "action", "numeric": "latency_ms"}[self.kind]

    def _values(self, draws: np.ndarray, params: tuple) -> np.ndarray:
        if self.kind == "bernoulli":
            return draws < params[0]
        if self.kind == "categorical":
            return np.minimum(np.searchsorted(np.cumsum(params), draws, side="right"), len(params) - 1)
        return np.exp(params[0] + params[1] * draws)

    def stream(self, seed: int, n: int = CHANGE_AT + AFTER, null: bool = False) -> np.ndarray:
        rng = np.random.default_rng(seed)
        draws = rng.standard_normal(n) if self.kind == "numeric" else rng.random(n)
        if null:
            return self._values(draws, self.pre)
        return np.concatenate([self._values(draws[:CHANGE_AT], self.pre), self._values(draws[CHANGE_AT:], self.post)])

    def llr(self, x: np.ndarray) -> np.ndarray:
        """log(post density / pre density) of each record: the oracle's increments."""
        if self.kind == "bernoulli":
            (p0,), (p1,) = self.pre, self.post
            return np.where(x, math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
        if self.kind == "categorical":
            return np.log(np.asarray(self.post) / np.asarray(self.pre))[x]
        (m0, s), (m1, _) = self.pre, self.post
        z = np.log(x)
        return ((z - m0) ** 2 - (z - m1) ** 2) / (2 * s * s)

    @property
    def moving(self) -> int:
        """The action whose probability moves most (relatively): the one-hot a peer is given."""
        return int(np.argmax(np.abs(np.log(np.asarray(self.post) / np.asarray(self.pre)))))

    @property
    def direction(self) -> str:
        if self.kind == "bernoulli":
            return "greater" if self.post[0] > self.pre[0] else "less"
        return "greater" if self.post[self.moving] > self.pre[self.moving] else "less"

    def peer_view(self, reference: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """What a user feeds a one-dimensional peer: the 0/1 flag, the one-hot of the moving action, or
        the latency standardised by the reference sample."""
        if self.kind == "bernoulli":
            return lambda x: x.astype(np.float64)
        if self.kind == "categorical":
            code = self.moving
            return lambda x: (x == code).astype(np.float64)
        mean, sd = float(reference.mean()), float(reference.std())
        return lambda x: (x - mean) / sd

    def peer_setting(self) -> str:
        return {"bernoulli": "", "categorical": f" on 1[action={ACTIONS[self.moving]}]",
                "numeric": " on standardised latency"}[self.kind]

    def decisions(self, x: np.ndarray, traffic: str, offset: int = 0) -> list:
        from detector.records import Decision

        prefix = "e" if traffic == "evaluation" else "p"
        field = self.feature
        values = x.tolist()
        if self.kind == "categorical":
            values = [ACTIONS[c] for c in values]
        elif self.kind == "numeric":
            values = [float(v) for v in values]
        return [Decision(f"{prefix}{i}", float(i), "m", traffic, position=i, **{field: v})
                for i, v in enumerate(values, offset)]


CHANGES = [
    Change("refusal 0.05→0.1", "bernoulli", (0.05,), (0.10,)),
    Change("refusal 0.14→0.03", "bernoulli", (0.14,), (0.03,)),
    Change("refusal 0.01→0.02", "bernoulli", (0.01,), (0.02,)),
    Change("action mix", "categorical", (0.50, 0.20, 0.15, 0.10, 0.05), (0.46, 0.20, 0.15, 0.10, 0.09)),
    Change("latency +0.25 sd", "numeric", (6.0, 0.5), (6.125, 0.5)),
]


# ---- detectors -------------------------------------------------------------------------------
def oracle(change: Change, h: float) -> FirstAlarm:
    """Page's CUSUM with the true distributions: S_t = W_t − min(0, min_{s≤t} W_s), W the LLR sum."""

    def first(x: np.ndarray) -> int | None:
        walk = np.cumsum(change.llr(x))
        stat = walk - np.minimum(0.0, np.minimum.accumulate(walk))
        hit = np.flatnonzero(stat >= h)
        return int(hit[0]) if hit.size else None

    return first


def janus_monitor(change: Change, baseline, arl: float) -> FirstAlarm:
    """Janus's Monitor (its featuriser inside) on the one feature, micro-batch by micro-batch, as the pipeline."""
    from detector.config import DetectionConfig
    from detector.monitor import Monitor

    config = DetectionConfig(features=[change.feature])

    def first(x: np.ndarray) -> int | None:
        monitor = Monitor(baseline, arl=arl, config=config)
        for start in range(0, len(x), BATCH):
            events = monitor.update(change.decisions(x[start:start + BATCH], "production", start))
            fired = [e.record_index for e in events if e.status == "firing"]
            if fired:
                return min(fired)
        return None

    return first


def baseline_of(change: Change, reference: np.ndarray):
    from detector.baseline import build_baseline

    return build_baseline(change.decisions(reference, "evaluation"))


def river(factory: Callable[[], object], view: Callable[[np.ndarray], np.ndarray]) -> FirstAlarm:
    def first(x: np.ndarray) -> int | None:
        det = factory()
        for i, v in enumerate(view(x).tolist()):
            det.update(v)
            if det.drift_detected:
                return i
        return None

    return first


def adwin(view, delta: float) -> FirstAlarm:
    from river.drift import ADWIN

    return river(lambda: ADWIN(delta=delta), view)


def page_hinkley(view, threshold: float) -> FirstAlarm:
    from river.drift import PageHinkley

    return river(lambda: PageHinkley(threshold=threshold), view)  # mode "both": direction unknown


def kswin(view, seed: int = 0) -> FirstAlarm:
    from river.drift import KSWIN

    return river(lambda: KSWIN(seed=seed), view)


def alibi_online(det, view) -> FirstAlarm:
    def first(x: np.ndarray) -> int | None:
        det.reset_state()
        values = view(x)
        for i in range(len(values)):
            if det.predict(values[i:i + 1])["data"]["is_drift"]:
                return i
        return None

    return first


_FET_CACHE: dict = {}


def fet_online(p0: float, ert: float, alternative: str, window: int, seed: int):
    """Alibi Detect FETDriftOnline told the direction; thresholds from n_bootstraps = 10 × ERT (fewer fail
    at the 1 − 1/ERT quantile of a discrete statistic). One detector per (p0, direction): configuring
    takes tens of seconds."""
    key = (p0, ert, alternative, window)
    if key not in _FET_CACHE:
        import alibi_shim
        from alibi_detect.cd import FETDriftOnline

        alibi_shim.install_fast_thresholds()
        np.random.seed(seed)  # its bootstrap draws
        x_ref = (np.random.default_rng(seed).random(N_BASELINE) < p0).astype(np.float64)
        _FET_CACHE[key] = FETDriftOnline(x_ref, ert=ert, window_sizes=[window], n_bootstraps=int(10 * ert),
                                         alternative=alternative, verbose=False)
    return _FET_CACHE[key]


def cvm_online(reference: np.ndarray, ert: float, window: int, n_bootstraps: int, seed: int):
    """Alibi Detect CVMDriftOnline on the raw latency (rank-based). Its threshold simulation costs
    n_bootstraps × (reference + 2·window)² comparisons, so the reference is a short prefix."""
    from alibi_detect.cd import CVMDriftOnline

    np.random.seed(seed)
    return CVMDriftOnline(reference.reshape(-1, 1), ert=ert, window_sizes=[window], n_bootstraps=n_bootstraps,
                          verbose=False)


# ---- measurement -----------------------------------------------------------------------------
@dataclass
class ArlEstimate:
    arl: float  # exposure / alarms; infinite when no run alarmed ("> exposure")
    alarms: int
    runs: int
    censored: int  # runs that reached the cut-off without an alarm
    exposure: int

    @property
    def target(self) -> float:
        """The ARL a peer is tuned to: the estimate, or its lower bound when no run alarmed."""
        return self.arl if math.isfinite(self.arl) else float(self.exposure)

    def to_dict(self) -> dict:
        return {"arl": round(self.arl) if math.isfinite(self.arl) else None, "alarms": self.alarms, "runs": self.runs,
                "censored": self.censored, "exposure": self.exposure}

    @classmethod
    def of(cls, runs: Iterable[tuple[int | None, int]]) -> ArlEstimate:
        """From (first alarm or None, records the run watched) per null run: the censored-exponential estimate."""
        runs = list(runs)
        exposure = sum(length if t is None else t + 1 for t, length in runs)
        alarms = sum(t is not None for t, _ in runs)
        return cls(exposure / alarms if alarms else math.inf, alarms, len(runs), len(runs) - alarms, exposure)


def null_arl(first: FirstAlarm, change: Change, seeds: range, length: int) -> ArlEstimate:
    return ArlEstimate.of((first(change.stream(seed, length, null=True)), length) for seed in seeds)


def tune(make: Callable[[float], FirstAlarm], change: Change, target: float, lo: float, hi: float, *,
         seeds: range, steps: int, length: int, log_scale: bool = True, increasing: bool = True) -> float:
    """Bisect the parameter so the null ARL is ``target``; ``increasing``: ARL grows with it."""
    f = math.log if log_scale else (lambda v: v)
    g = math.exp if log_scale else (lambda v: v)
    a, b = f(lo), f(hi)
    for _ in range(steps):
        mid = (a + b) / 2
        arl = null_arl(make(g(mid)), change, seeds, length).arl
        if (arl < target) == increasing:
            a = mid
        else:
            b = mid
    return g((a + b) / 2)


def delays(first: FirstAlarm, change: Change, seeds: range, *, lead: int = CHANGE_AT, after: int = AFTER) -> dict:
    """Delay over runs without an alarm before the change; detection = alarm within ``after`` records.

    Each run watches the last ``lead`` records before the change and ``after`` records after it
    (a shorter ``lead`` only for the detectors too slow to watch the whole stream: KSWIN, Alibi)."""
    found, false_before = [], 0
    started, records = time.perf_counter(), 0
    for seed in seeds:
        x = change.stream(seed)[CHANGE_AT - lead:CHANGE_AT + after]
        t = first(x)
        records += len(x) if t is None else t + 1
        if t is not None and t < lead:
            false_before += 1
        elif t is not None:
            found.append(t - lead + 1)
    timed = len(seeds) - false_before
    out = {"runs": len(seeds), "false_alarm_before_change": false_before, "timed_runs": timed,
           "detected": len(found), "detection_rate": round(len(found) / timed, 3) if timed else None,
           "watched_before_change": lead, "watched_after_change": after,
           "us_per_record": round(1e6 * (time.perf_counter() - started) / max(records, 1), 2)}
    if found:
        out.update(mean_delay=round(float(np.mean(found)), 1), median_delay=float(np.median(found)))
    return out


class OracleThresholds:
    """The oracle's h for any ARL: calibrated by simulation at 1e3, 1e4, 1e5 and interpolated (beyond:
    extrapolated) linearly in log ARL, which is exact asymptotically (Siegmund)."""

    def __init__(self, change: Change, seeds: range, steps: int):
        self.points = [(math.log(a), tune(lambda h: oracle(change, h), change, a, 0.5, 30.0, seeds=seeds,
                                          steps=steps, length=3 * int(a), log_scale=False))
                       for a in (1e3, 1e4, 1e5)]

    def __call__(self, arl: float) -> float:
        xs, ys = zip(*self.points)
        x = math.log(arl)
        if x <= xs[-1]:
            return float(np.interp(x, xs, ys))
        return ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1])


@dataclass(frozen=True)
class Settings:
    """Run counts: River's ADWIN costs ~25 µs a record, Alibi's online detectors ~0.3–0.6 ms and KSWIN
    ~2 ms, so their runs are what fits ``make bench`` (about half an hour on 2 cores)."""

    null_length: int
    janus_check_runs: int  # null streams measuring Janus's ARL (set M; peers' ARL measured on them too)
    tune_runs: int  # set T
    peer_check_runs: int  # the first of set M
    delay_runs: int
    tune_steps: int
    oracle_runs: int
    oracle_steps: int
    janus_arls: tuple
    kswin_runs: int
    kswin_after: int
    alibi_delay_runs: int
    alibi_lead: int
    alibi_check_runs: int
    alibi_ert: float | None  # None: Janus's measured ARL (capped at ALIBI_MAX_ERT); quick: a fixed small ERT
    cvm_reference: int


FULL = Settings(null_length=30_000, janus_check_runs=40, tune_runs=8, peer_check_runs=16, delay_runs=40,
                tune_steps=6, oracle_runs=100, oracle_steps=14, janus_arls=(1e3, 1e4, 1e5, 1e6), kswin_runs=2,
                kswin_after=3_000, alibi_delay_runs=8, alibi_lead=1_000, alibi_check_runs=4, alibi_ert=None,
                cvm_reference=500)
QUICK = Settings(null_length=12_000, janus_check_runs=6, tune_runs=3, peer_check_runs=3, delay_runs=6,
                 tune_steps=4, oracle_runs=15, oracle_steps=10, janus_arls=(1e4, 1e6), kswin_runs=1,
                 kswin_after=500, alibi_delay_runs=2, alibi_lead=300, alibi_check_runs=0, alibi_ert=1e3,
                 cvm_reference=150)


def change_rows(change: Change, s: Settings) -> tuple[list[dict], list[dict], dict]:
    """Every detector's row on one change, and the points of its delay-vs-ARL curves.
    Seeds: oracle calibration 40_000+, set T 10_000+, set M 20_000+, delays 30_000+."""
    rows: list[dict] = []
    curves: list[dict] = []
    tune_seeds = range(10_000, 10_000 + s.tune_runs)
    check_seeds = range(20_000, 20_000 + s.janus_check_runs)
    peer_check_seeds = range(20_000, 20_000 + s.peer_check_runs)
    delay_seeds = range(30_000, 30_000 + s.delay_runs)
    length = s.null_length
    reference = change.stream(BASELINE_SEED, N_BASELINE, null=True)
    view = change.peer_view(reference)

    def add(detector: str, setting: str, first: FirstAlarm, *, target_arl, tuned: bool, check: range | None = None,
            check_length: int = length, **delay_kw) -> dict:
        row = {"change": change.label, "kind": change.kind, "detector": detector, "setting": setting,
               "target_arl": target_arl, "tuned": tuned, **delays(first, change, delay_kw.pop("seeds", delay_seeds),
                                                                   **delay_kw)}
        if check:
            row["empirical_arl"] = null_arl(first, change, check, check_length).to_dict()
        rows.append(row)
        return row

    # Janus first: its measured ARL at the configured 1e4 is what the peers are tuned to.
    baseline = baseline_of(change, reference)
    measured = None
    for a in s.janus_arls:
        first = janus_monitor(change, baseline, a)
        d = delays(first, change, delay_seeds)
        row = {"change": change.label, "kind": change.kind, "detector": "Janus", "setting": f"arl={a:g}, no tuning",
               "target_arl": a, "tuned": False, **d}
        if a == 1e4:
            measured = null_arl(first, change, check_seeds, length)
            row["empirical_arl"] = measured.to_dict()
            curves.append({"change": change.label, "detector": "Janus at its measured ARL (configured 1e4)",
                           "arl": measured.target, "mean_delay": d.get("mean_delay")})
        elif a == 1e6:  # ~1e8 records would measure it; these fewer null runs give a censored lower bound
            row["empirical_arl"] = null_arl(first, change, peer_check_seeds, length).to_dict()
        if a in (1e4, 1e6):
            rows.append(row)
        curves.append({"change": change.label, "detector": "Janus", "arl": a, "mean_delay": d.get("mean_delay")})
    target = measured.target

    h = OracleThresholds(change, range(40_000, 40_000 + s.oracle_runs), s.oracle_steps)
    oracle_delay = {}
    for a in sorted({1e3, 1e4, 1e5, 1e6, target}):
        d = delays(oracle(change, h(a)), change, delay_seeds)
        oracle_delay[a] = d.get("mean_delay")
        if a in (1e4, 1e6, target):
            matched = a == target
            rows.append({"change": change.label, "kind": change.kind, "detector": "oracle CUSUM",
                         "setting": f"h={h(a):.2f}" + (" (Janus's measured ARL)" if matched else ""),
                         "target_arl": a, "tuned": True, "matched": matched, **d})
            # its calibration, checked on Janus's null streams (set M); at 1e6 a censored lower bound
            rows[-1]["empirical_arl"] = null_arl(oracle(change, h(a)), change, check_seeds, length).to_dict()
        if a != target:
            curves.append({"change": change.label, "detector": "oracle CUSUM", "arl": a,
                           "mean_delay": d.get("mean_delay")})

    tuned_kw = {"change": change, "seeds": tune_seeds, "steps": s.tune_steps, "length": length}
    delta = tune(lambda v: adwin(view, v), target=target, lo=1e-8, hi=0.99, increasing=False, **tuned_kw)
    lam = tune(lambda v: page_hinkley(view, v), target=target, lo=0.5, hi=1000.0, **tuned_kw)
    where = change.peer_setting()
    for name, setting, first, tuned in [
            ("River ADWIN", f"delta={delta:.2e} (tuned){where}", adwin(view, delta), True),
            ("River PageHinkley", f"threshold={lam:.3g} (tuned){where}", page_hinkley(view, lam), True),
            ("River ADWIN", f"delta=0.002 (default){where}", adwin(view, 0.002), False),
            ("River PageHinkley", f"threshold=50 (default){where}", page_hinkley(view, 50.0), False)]:
        row = add(name, setting, first, target_arl=round(target) if tuned else None, tuned=tuned,
                  check=peer_check_seeds)
        if tuned:
            curves.append({"change": change.label, "detector": name + " (tuned)",
                           "arl": row["empirical_arl"]["arl"] or row["empirical_arl"]["exposure"],
                           "mean_delay": row.get("mean_delay")})
    kswin_seeds = range(30_000, 30_000 + s.kswin_runs)
    add("River KSWIN", f"alpha=0.005 (default){where}", kswin(view), target_arl=None, tuned=False,
        check=range(20_000, 20_000 + s.kswin_runs), check_length=200 + s.kswin_after, seeds=kswin_seeds, lead=200,
        after=s.kswin_after)

    # Alibi's ERT is the ARL it calibrates itself to (by bootstrap): set to Janus's measured ARL, that is
    # its tuning; capped, since configuring costs time and memory in proportion to the ERT.
    alibi_ert = s.alibi_ert or min(round(target), ALIBI_MAX_ERT)
    alibi_tuned = alibi_ert == round(target)
    ert_note = (" (= Janus's measured ARL)" if alibi_tuned else
                f" (Janus's measured ARL {target:,.0f} capped)" if s.alibi_ert is None else " (quick: fixed)")
    alibi_seeds = range(30_000, 30_000 + s.alibi_delay_runs)
    alibi_check = range(20_000, 20_000 + s.alibi_check_runs) or None
    try:
        started = time.perf_counter()
        if change.kind == "numeric":
            boots = int(CVM_BOOTSTRAPS_PER_ERT * alibi_ert)
            det = cvm_online(reference[:s.cvm_reference], alibi_ert, 100, boots, seed=60_000)
            name, setting = "Alibi CVMDriftOnline", (f"ert={alibi_ert:,g}{ert_note}, window=100, {s.cvm_reference} "
                                                      f"reference records, n_bootstraps={boots:,}")
            det_view = lambda x: x  # noqa: E731 - rank-based: the raw latency
        else:
            p0 = change.pre[0] if change.kind == "bernoulli" else change.pre[change.moving]
            det = fet_online(p0, alibi_ert, change.direction, window=200, seed=60_000)
            name, setting = "Alibi FETDriftOnline", (f"ert={alibi_ert:,g}{ert_note}, window=200, told "
                                                      f"'{change.direction}'{where}")
            det_view = view
        configure = time.perf_counter() - started
        row = add(name, setting, alibi_online(det, det_view), target_arl=alibi_ert, tuned=alibi_tuned,
                  check=alibi_check, seeds=alibi_seeds, lead=s.alibi_lead)
        row["configure_seconds"] = round(configure, 1)
        e = row.get("empirical_arl")  # plotted at its measured ARL, or at its ERT when not measured (quick)
        curves.append({"change": change.label, "detector": name, "mean_delay": row.get("mean_delay"),
                       "arl": (e["arl"] or e["exposure"]) if e else alibi_ert})
    except ImportError as exc:  # run outside .venv-bench
        rows.append({"change": change.label, "detector": "Alibi", "skipped": str(exc)})

    for row in rows:
        if row.get("mean_delay") and row.get("detector") != "oracle CUSUM":
            ref = oracle_delay.get(row.get("target_arl") if row.get("detector") == "Janus" else 1e4)
            if ref:
                row["ratio_to_oracle"] = round(row["mean_delay"] / ref, 2)
            if row.get("tuned") or row.get("detector") == "Janus" and row.get("target_arl") == 1e4:
                if oracle_delay.get(target):
                    row["ratio_to_matched_oracle"] = round(row["mean_delay"] / oracle_delay[target], 2)
    return rows, curves, {"change": change.label, "janus_measured_arl": measured.to_dict(),
                          "peer_target_arl": round(target)}


def run(quick: bool, changes: str | None = None) -> dict:
    s = QUICK if quick else FULL
    picked = [CHANGES[int(i)] for i in changes.split(",")] if changes else CHANGES
    rows, curves, matched = [], [], []
    for change in picked:
        started = time.perf_counter()
        r, c, m = change_rows(change, s)
        rows += r
        curves += c
        matched.append({**m, "seconds": round(time.perf_counter() - started, 1)})
        print(f"single stream {change.label}: {time.perf_counter() - started:.0f} s", flush=True)
    return {"change_at": CHANGE_AT, "after": AFTER, "n_baseline": N_BASELINE, "settings": s.__dict__,
            "alibi_max_ert": ALIBI_MAX_ERT, "cvm_bootstraps_per_ert": CVM_BOOTSTRAPS_PER_ERT,
            "changes": [{"label": c.label, "kind": c.kind, "feature": c.feature, "pre": c.pre, "post": c.post}
                        for c in picked],
            "actions": ACTIONS, "matched": matched, "rows": rows, "curves": curves}


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__, options={"changes": "comma-separated indices into CHANGES (default all)"}))
