"""Single Bernoulli streams: Janus against the oracle CUSUM and River / Alibi Detect peers.

Every stream is a refusal flag: ``CHANGE_AT`` records at p0, then p1. Each peer's one parameter is
tuned by bisection on null streams (seed set A) to an ARL of ``target``, and its ARL is then
measured on disjoint null streams (seed set B). Janus is not tuned: it gets a baseline of
``N_BASELINE`` evaluation records and the ARL, through its real Monitor API, and is not told the
direction or size of the change. The oracle knows p0 and p1 exactly.

ARL estimates use first alarms on null streams cut at ``NULL_LENGTH_FACTOR × target`` records:
ARL ≈ (records watched in all runs) / (runs with an alarm), the censored-exponential estimate.

    .venv-bench/bin/python bench/single_stream.py --quick --out /tmp/single.json
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHANGES = [(0.05, 0.10), (0.14, 0.03), (0.01, 0.02)]
CHANGE_AT = 5_000
AFTER = 20_000  # records watched after the change before a run counts as "not detected"
N_BASELINE = 20_000
NULL_LENGTH_FACTOR = 3

# A detector, as the benchmark sees it: a stream in, the index of its first alarm (or None) out.
FirstAlarm = Callable[[np.ndarray], "int | None"]


def bernoulli(seed: int, p0: float, p1: float | None = None, n: int = CHANGE_AT + AFTER) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    if p1 is None:
        return u < p0
    return np.concatenate([u[:CHANGE_AT] < p0, u[CHANGE_AT:] < p1])


# ---- detectors -------------------------------------------------------------------------------
def oracle(p0: float, p1: float, h: float) -> FirstAlarm:
    """Page's CUSUM with the true p0 and p1: S_t = X_t − min(0, min_{s≤t} X_s), X the LLR sum."""
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))

    def first(x: np.ndarray) -> int | None:
        walk = np.cumsum(np.where(x, up, down))
        stat = walk - np.minimum(0.0, np.minimum.accumulate(walk))
        hit = np.flatnonzero(stat >= h)
        return int(hit[0]) if hit.size else None

    return first


def janus(baseline, arl: float, chunk: int = 1000) -> FirstAlarm:
    """Janus's Monitor on the one feature, fed micro-batches of decisions as the pipeline does."""
    from detector.config import DetectionConfig
    from detector.monitor import Monitor
    from detector.records import Decision

    config = DetectionConfig(features=["refused"])

    def first(x: np.ndarray) -> int | None:
        monitor = Monitor(baseline, arl=arl, config=config)
        flags = x.tolist()
        for start in range(0, len(flags), chunk):
            batch = [Decision(str(i), float(i), "m", "production", refused=flags[i], position=i)
                     for i in range(start, min(start + chunk, len(flags)))]
            fired = [e.record_index for e in monitor.update(batch) if e.status == "firing"]
            if fired:
                return min(fired)
        return None

    return first


def janus_baseline(p0: float, seed: int):
    from detector.baseline import build_baseline
    from detector.records import Decision

    flags = (np.random.default_rng(seed).random(N_BASELINE) < p0).tolist()
    return build_baseline([Decision(f"e{i}", float(i), "m", "evaluation", refused=f) for i, f in enumerate(flags)])


def river(factory: Callable[[], object]) -> FirstAlarm:
    def first(x: np.ndarray) -> int | None:
        det = factory()
        for i, v in enumerate(x.tolist()):
            det.update(float(v))
            if det.drift_detected:
                return i
        return None

    return first


def adwin(delta: float) -> FirstAlarm:
    from river.drift import ADWIN

    return river(lambda: ADWIN(delta=delta))


def page_hinkley(threshold: float) -> FirstAlarm:
    from river.drift import PageHinkley

    return river(lambda: PageHinkley(threshold=threshold))  # mode "both": direction unknown


def kswin(seed: int = 0) -> FirstAlarm:
    from river.drift import KSWIN

    return river(lambda: KSWIN(seed=seed))


def fet_online(p0: float, ert: float, alternative: str, window: int, seed: int) -> FirstAlarm:
    """Alibi Detect FETDriftOnline told the direction; thresholds from n_bootstraps = 10 × ERT."""
    import alibi_shim
    from alibi_detect.cd import FETDriftOnline

    alibi_shim.install_fast_thresholds()
    np.random.seed(seed)  # its bootstrap draws
    x_ref = (np.random.default_rng(seed).random(N_BASELINE) < p0).astype(np.float64)
    det = FETDriftOnline(x_ref, ert=ert, window_sizes=[window], n_bootstraps=int(10 * ert),
                         alternative=alternative, verbose=False)

    def first(x: np.ndarray) -> int | None:
        det.reset_state()
        values = x.astype(np.float64)
        for i in range(len(values)):
            if det.predict(values[i:i + 1])["data"]["is_drift"]:
                return i
        return None

    return first


# ---- measurement -----------------------------------------------------------------------------
@dataclass
class ArlEstimate:
    arl: float  # exposure / alarms; a lower bound of "> exposure" when no run alarmed
    alarms: int
    runs: int
    censored: int  # runs that reached the cut-off without an alarm
    exposure: int

    def to_dict(self) -> dict:
        return {"arl": round(self.arl) if math.isfinite(self.arl) else None, "alarms": self.alarms, "runs": self.runs,
                "censored": self.censored, "exposure": self.exposure}


def null_arl(first: FirstAlarm, p0: float, seeds: range, length: int) -> ArlEstimate:
    exposure, alarms = 0, 0
    for seed in seeds:
        t = first(bernoulli(seed, p0, n=length))
        exposure += length if t is None else t + 1
        alarms += t is not None
    arl = exposure / alarms if alarms else math.inf
    return ArlEstimate(arl, alarms, len(seeds), len(seeds) - alarms, exposure)


def tune(make: Callable[[float], FirstAlarm], p0: float, target: float, lo: float, hi: float, *,
         seeds: range, steps: int, log_scale: bool = True, increasing: bool = True) -> float:
    """Bisect the parameter so the null ARL is ``target``; ``increasing``: ARL grows with it."""
    f = math.log if log_scale else (lambda v: v)
    g = math.exp if log_scale else (lambda v: v)
    a, b = f(lo), f(hi)
    length = int(NULL_LENGTH_FACTOR * target)
    for _ in range(steps):
        mid = (a + b) / 2
        arl = null_arl(make(g(mid)), p0, seeds, length).arl
        if (arl < target) == increasing:
            a = mid
        else:
            b = mid
    return g((a + b) / 2)


def delays(first: FirstAlarm, p0: float, p1: float, seeds: range, *, lead: int = CHANGE_AT,
           after: int = AFTER) -> dict:
    """Delay over runs without an alarm before the change; detection = alarm within ``after`` records.

    Each run watches the last ``lead`` records before the change and ``after`` records after it
    (a shorter ``lead`` only for detectors too slow to watch the whole stream: KSWIN)."""
    found, false_before = [], 0
    started, records = time.perf_counter(), 0
    for seed in seeds:
        x = bernoulli(seed, p0, p1)[CHANGE_AT - lead:CHANGE_AT + after]
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


def oracle_threshold(p0: float, p1: float, target: float, seeds: range) -> float:
    return tune(lambda h: oracle(p0, p1, h), p0, target, 0.5, 30.0, seeds=seeds, steps=18, log_scale=False)


def run(quick: bool) -> dict:
    """All single-stream rows. Seeds: tuning 10_000+, ARL check 20_000+, delays 30_000+."""
    # Run counts: River's ADWIN costs ~30 µs a record on long null windows, FETDriftOnline ~0.3 ms
    # and KSWIN ~2 ms, so their runs are what fits the time budget (make bench ≲ 30 min).
    tune_runs, check_runs, delay_runs = (6, 6, 10) if quick else (16, 24, 60)
    fet_check_runs, fet_delay_runs = (0, 2) if quick else (4, 16)
    kswin_runs, kswin_after = (1, 1_000) if quick else (2, 10_000)
    steps = 4 if quick else 7
    target = 1e4
    tune_seeds, check_seeds = range(10_000, 10_000 + tune_runs), range(20_000, 20_000 + check_runs)
    delay_seeds = range(30_000, 30_000 + delay_runs)
    length = int(NULL_LENGTH_FACTOR * target)
    rows = []
    curves = []
    for p0, p1 in CHANGES:
        label = f"{p0:g}→{p1:g}"
        # The oracle: calibrated at 1e3..1e5 by simulation (cheap, vectorised); 1e6 extrapolated
        # along log ARL ∝ h, which is exact asymptotically (Siegmund).
        oracle_seeds = range(40_000, 40_000 + (60 if quick else 200))
        h = {a: oracle_threshold(p0, p1, a, oracle_seeds) for a in (1e3, 1e4, 1e5)}
        h[1e6] = h[1e5] + (h[1e5] - h[1e4])
        oracle_delay = {}
        for a, ha in h.items():
            d = delays(oracle(p0, p1, ha), p0, p1, delay_seeds)
            oracle_delay[a] = d.get("mean_delay")
            row = {"change": label, "detector": "oracle CUSUM", "setting": f"h={ha:.2f}", "target_arl": a,
                   "tuned": a != 1e6, **d}
            if a in (1e4,):
                row["empirical_arl"] = null_arl(oracle(p0, p1, ha), p0, check_seeds, length).to_dict()
            if a in (1e4, 1e6):
                rows.append(row)
            curves.append({"change": label, "detector": "oracle CUSUM", "arl": a, "mean_delay": d.get("mean_delay")})

        baseline = janus_baseline(p0, seed=50_000)
        for a in ((1e4, 1e6) if quick else (1e3, 1e4, 1e5, 1e6)):
            first = janus(baseline, a)
            d = delays(first, p0, p1, delay_seeds)
            row = {"change": label, "detector": "Janus", "setting": f"arl={a:g}, no tuning", "target_arl": a,
                   "tuned": False, **d}
            if a == 1e4:
                row["empirical_arl"] = null_arl(first, p0, check_seeds, length).to_dict()
            if a in (1e4, 1e6):
                rows.append(row)
            curves.append({"change": label, "detector": "Janus", "arl": a, "mean_delay": d.get("mean_delay")})

        peers: list[tuple[str, str, FirstAlarm, bool]] = []
        delta = tune(adwin, p0, target, 1e-6, 0.9, seeds=tune_seeds, steps=steps, increasing=False)
        peers.append(("River ADWIN", f"delta={delta:.2e} (tuned)", adwin(delta), True))
        lam = tune(page_hinkley, p0, target, 0.5, 500.0, seeds=tune_seeds, steps=steps)
        peers.append(("River PageHinkley", f"threshold={lam:.3g} (tuned)", page_hinkley(lam), True))
        peers.append(("River ADWIN", "delta=0.002 (default)", adwin(0.002), False))
        peers.append(("River PageHinkley", "threshold=50 (default)", page_hinkley(50.0), False))
        for name, setting, first, tuned in peers:
            row = {"change": label, "detector": name, "setting": setting, "target_arl": target if tuned else None,
                   "tuned": tuned, **delays(first, p0, p1, delay_seeds)}
            row["empirical_arl"] = null_arl(first, p0, check_seeds, length).to_dict()
            rows.append(row)
            if tuned:
                curves.append({"change": label, "detector": name + " (tuned)",
                               "arl": row["empirical_arl"]["arl"] or row["empirical_arl"]["exposure"],
                               "mean_delay": row.get("mean_delay")})
        rows.append({"change": label, "detector": "River KSWIN", "setting": "alpha=0.005 (default)",
                     "target_arl": None, "tuned": False, **delays(kswin(), p0, p1, range(30_000, 30_000 + kswin_runs), lead=200,
                                                 after=kswin_after)})
        try:
            started = time.perf_counter()
            alternative = "greater" if p1 > p0 else "less"
            first = fet_online(p0, target, alternative, window=200, seed=60_000)
            configure = time.perf_counter() - started
            row = {"change": label, "detector": "Alibi FETDriftOnline",
                   "setting": f"ert=1e4, window=200, told '{alternative}'", "target_arl": target, "tuned": False,
                   "configure_seconds": round(configure, 1),
                   **delays(first, p0, p1, range(30_000, 30_000 + fet_delay_runs))}
            if fet_check_runs:
                row["empirical_arl"] = null_arl(first, p0, range(20_000, 20_000 + fet_check_runs), length).to_dict()
            rows.append(row)
        except ImportError as exc:  # run outside .venv-bench
            rows.append({"change": label, "detector": "Alibi FETDriftOnline", "skipped": str(exc)})
        for row in rows:
            if row.get("change") == label and row.get("mean_delay") and oracle_delay.get(row.get("target_arl") or 1e4):
                row["ratio_to_oracle"] = round(row["mean_delay"] / oracle_delay[row.get("target_arl") or 1e4], 2)
        print(f"single stream {label} done", flush=True)
    return {"change_at": CHANGE_AT, "after": AFTER, "n_baseline": N_BASELINE, "tune_runs": tune_runs,
            "check_runs": check_runs, "delay_runs": delay_runs, "null_length": length, "rows": rows,
            "curves": curves}


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__))
