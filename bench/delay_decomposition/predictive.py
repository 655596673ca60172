"""What the credible bound costs, and what a Bayes-predictive null would give instead.

Predictive null: Λ_t = q_t(x_t)/m_t(x_t), m_t = Beta(½,½)-posterior predictive of p0 given the baseline
and every production record before t; q_t an odds/share tilt of m_t. Under the Bayes joint
(p0 ~ posterior given the baseline, records iid p0) E[Λ_t | past] = 1, so SR's R_n − n is a martingale
and E[τ] ≥ A holds *averaged over what the baseline leaves unknown* (not conditionally on p0).
Compared on the same 8-component family (code 'true': ODDS 2,4 and SHARE .1,.3, up and down).
"""
import os
import sys, math
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim import *
from detector.monitor.detectors import Component, ODDS, SHARE, UP, DOWN

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
FAM = [(ODDS, UP, 2.0), (ODDS, UP, 4.0), (ODDS, DOWN, 2.0), (ODDS, DOWN, 4.0),
       (SHARE, UP, .1), (SHARE, UP, .3), (SHARE, DOWN, .1), (SHARE, DOWN, .3)]


def q_of(p, form, d, t):
    if form == ODDS:
        o = t if d == UP else 1 / t
        return o * p / (1 - p + o * p)
    return p + t * (1 - p) if d == UP else p * (1 - t)


def predictive_stat(hits, n):
    def gen(X):
        runs = X.shape[0]
        R = np.zeros((runs, len(FAM)))
        h = np.full(runs, hits + 0.5); m_n = n + 1.0
        for t in range(X.shape[1]):
            m = h / m_n
            x = X[:, t]
            lam = np.empty_like(R)
            for c, (form, d, tl) in enumerate(FAM):
                q = q_of(m, form, d, tl)
                lam[:, c] = np.where(x, q / m, (1 - q) / (1 - m))
            R = (1 + R) * lam
            h += x; m_n += 1
            yield np.log(R.mean(axis=1))
    return gen


def fixed_stat(p_up, p_down):
    lt, lf = [], []
    for form, d, tl in FAM:
        p = p_up if d == UP else p_down
        q = q_of(p, form, d, tl)
        lt.append(q / p); lf.append((1 - q) / (1 - p))
    return sr_stat(lt, lf, np.full(len(FAM), 1 / len(FAM)))


if __name__ == "__main__":
    from scipy import stats
    seeds = range(30_000, 30_000 + RUNS)
    for p0, p1 in CHANGES:
        n = 20_000
        hits = int((np.random.default_rng(50_000).random(n) < p0).sum())  # the bench's baseline
        a, b = hits + 0.5, n - hits + 0.5
        up, lo, mean = stats.beta.ppf(.99, a, b), stats.beta.ppf(.01, a, b), a / (a + b)
        print(f"=== {p0}→{p1}: baseline {hits}/{n}, mean {mean:.5f}, 99% bounds [{lo:.5f}, {up:.5f}]")
        for name, st in [("credible bounds (0.99)", fixed_stat(up, lo)),
                         ("credible bounds (0.9)", fixed_stat(stats.beta.ppf(.9, a, b), stats.beta.ppf(.1, a, b))),
                         ("point estimate (no hedge)", fixed_stat(mean, mean)),
                         ("true p0", fixed_stat(p0, p0)),
                         ("Bayes-predictive null", predictive_stat(hits, n))]:
            out = []
            for A in (1e4, 1e6):
                r = delays(st, p0, p1, math.log(A), seeds)
                out.append(f"A={A:g}: {r['mean']:.0f} (fb {r['false_before']})")
            print(f"  {name:28s} {'  '.join(out)}", flush=True)
