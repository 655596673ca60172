"""Null ARL averaged over re-drawn baselines (one baseline per run): credible bounds vs Bayes-predictive null.
ARL = records watched / first alarms (censored at LENGTH)."""
import os
import sys, math
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim import streams, first_cross
from predictive import FAM, q_of
from detector.monitor.detectors import ODDS, UP
from scipy import stats

RUNS, LENGTH, A = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])


def stat(hits, n, mode):
    def gen(X):
        runs = X.shape[0]
        R = np.zeros((runs, len(FAM)))
        h = hits + 0.5; m_n = n + 1.0
        a, b = hits + 0.5, n - hits + 0.5
        up, lo = stats.beta.ppf(.99, a, b), stats.beta.ppf(.01, a, b)
        for t in range(X.shape[1]):
            x = X[:, t]
            lam = np.empty_like(R)
            for c, (form, d, tl) in enumerate(FAM):
                m = h / m_n if mode == "predictive" else (up if d == UP else lo) if mode == "credible" else a / (a + b)
                q = q_of(m, form, d, tl)
                lam[:, c] = np.where(x, q / m, (1 - q) / (1 - m))
            R = (1 + R) * lam
            if mode == "predictive":
                h = h + x; m_n += 1
            yield np.log(R.mean(axis=1))
    return gen


for p0 in (0.05, 0.01):
    for n in (500, 5000, 20000):
        rng = np.random.default_rng(int(p0 * 1e4) + n)
        hits = rng.binomial(n, p0, RUNS).astype(float)
        X = streams(range(70_000, 70_000 + RUNS), p0, None, LENGTH)
        out = []
        for mode in ("credible", "point", "predictive"):
            t = first_cross(stat(hits, n, mode), X, math.log(A))
            exp = np.where(t < 0, LENGTH, t + 1).sum(); al = (t >= 0).sum()
            out.append(f"{mode}: {exp / max(al, 1):,.0f} ({al}/{RUNS})")
        print(f"p0={p0} n_baseline={n}: " + "  ".join(out), flush=True)
