"""Vectorised replica of Janus's single-stream path (one cell, one feature), for decomposition.

Janus's Monitor on one Bernoulli stream = an SR recursion per component R = Λ(1+R) with
Λ from the llr table row of the observed code, mixture = weighted sum, alarm at log mix ≥ log A.
This replays exactly that on (runs × records) arrays; checked against the real Monitor in check().
"""
import os
import sys
_HERE = os.path.dirname(os.path.abspath(__file__)); sys.path[:0] = [_HERE, os.path.dirname(_HERE), os.path.dirname(os.path.dirname(_HERE))]
import math
import numpy as np
from single_stream import bernoulli, janus_baseline, CHANGE_AT, AFTER, NULL_LENGTH_FACTOR

CHANGES = [(0.05, 0.10), (0.14, 0.03), (0.01, 0.02)]
ORACLE_H = {(0.05, 0.10): {1e4: 4.92, 1e6: 9.45}, (0.14, 0.03): {1e4: 6.55, 1e6: 10.83},
            (0.01, 0.02): {1e4: 3.31, 1e6: 7.74}}


def streams(seeds, p0, p1=None, n=CHANGE_AT + AFTER):
    return np.stack([bernoulli(s, p0, p1, n) for s in seeds])


def first_cross(stat_fn, X, log_a):
    """stat_fn(X) -> generator of per-record log-stat arrays (runs,); first index ≥ log_a or -1."""
    runs, n = X.shape
    out = np.full(runs, -1)
    alive = np.ones(runs, bool)
    for t, s in enumerate(stat_fn(X)):
        hit = alive & (s >= log_a)
        out[hit] = t
        alive &= ~hit
        if not alive.any():
            break
    return out


def sr_stat(l_true, l_false, weights, cap=None, cusum=False):
    """Mixture of SR (or CUSUM) components. l_true/l_false: (C,) likelihood ratios; weights (C,) sum 1."""
    l_true, l_false, w = map(np.asarray, (l_true, l_false, weights))
    def gen(X):
        R = np.zeros((X.shape[0], len(w)))
        for t in range(X.shape[1]):
            lam = np.where(X[:, t:t + 1], l_true, l_false)
            if cusum:
                R = np.maximum(R, 1.0) * lam  # max(1,R)·Λ: CUSUM in linear space
            else:
                R = (1.0 + R) * lam
            if cap is not None:
                R = np.minimum(R, cap)
            yield np.log(R @ w)
    return gen


def oracle_stat(p0, p1):
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    def gen(X):
        S = np.zeros(X.shape[0])
        for t in range(X.shape[1]):
            S = np.maximum(S + np.where(X[:, t], up, down), 0.0)
            yield S
    return gen


def delays(stat, p0, p1, log_a, seeds):
    X = streams(seeds, p0, p1)
    t = first_cross(stat, X, log_a)
    ok = (t < 0) | (t >= CHANGE_AT)
    found = t[ok & (t >= 0)] - CHANGE_AT + 1
    return dict(mean=float(found.mean()) if len(found) else float('nan'), false_before=int((~ok).sum()),
                timed=int(ok.sum()), detected=len(found))


def null_arl(stat, p0, log_a, seeds, length):
    X = streams(seeds, p0, None, length)
    t = first_cross(stat, X, log_a)
    exposure = np.where(t < 0, length, t + 1).sum()
    alarms = (t >= 0).sum()
    return exposure / alarms if alarms else math.inf, int(alarms)


# ---- Janus's components from the real detector code --------------------------------------------
def janus_rows(p0, comps=None, baseline_seed=50_000, level=None, shrinkage=None, n_baseline=None):
    """(l_true, l_false, components) for the populated cell of a bench baseline."""
    from detector.config import DetectionConfig
    from detector.monitor import Monitor
    from detector.monitor.detectors import llr_table
    import single_stream
    if n_baseline:
        single_stream.N_BASELINE = n_baseline
    b = janus_baseline(p0, baseline_seed)
    single_stream.N_BASELINE = 20_000
    cfg = DetectionConfig(features=["refused"])
    m = Monitor(b, arl=1e4, config=cfg)
    j = m.features[0]
    comps = comps if comps is not None else m.components[0]
    table = llr_table(b.counts[j], m._cell_segment, m.n_segments, comps,
                      level=level or cfg.credible_level, shrinkage=cfg.shrinkage if shrinkage is None else shrinkage,
                      conditional=True)
    cell = int(np.flatnonzero(b.counts[j].sum(1))[0])
    lr = np.exp(table[cell])  # (codes, comps): code 1 = false, 2 = true
    return lr[2], lr[1], comps


def check():
    """The replica against the real Monitor on a few bench streams."""
    from single_stream import janus
    p0, p1 = 0.05, 0.10
    b = janus_baseline(p0, 50_000)
    lt, lf, comps = janus_rows(p0)
    stat = sr_stat(lt, lf, np.full(len(lt), 1 / len(lt)))
    seeds = range(30_000, 30_006)
    X = streams(seeds, p0, p1)
    mine = first_cross(stat, X, math.log(1e4))
    real = [janus(b, 1e4)(X[i]) for i in range(len(seeds))]
    print("replica", mine.tolist(), "real", real)


if __name__ == "__main__":
    check()
