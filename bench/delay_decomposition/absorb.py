"""The Bayes-predictive null learns p0 from production too: how much does it absorb a change that is
there from the first production record, with a small baseline? (credible bounds for comparison)"""
import os
import sys, math
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim import first_cross
from predictive import FAM, q_of, fixed_stat, predictive_stat
from scipy import stats
RUNS = 100
for n in (2000, 20000):
    for p0, p1 in ((0.05, 0.10), (0.01, 0.02)):
        hits = int((np.random.default_rng(50_000).random(n) < p0).sum())
        a, b = hits + 0.5, n - hits + 0.5
        X = np.stack([np.random.default_rng(s).random(20_000) < p1 for s in range(30_000, 30_000 + RUNS)])
        out = []
        for name, st in [("credible .99", fixed_stat(stats.beta.ppf(.99, a, b), stats.beta.ppf(.01, a, b))),
                         ("predictive", predictive_stat(hits, n))]:
            t = first_cross(st, X, math.log(1e6))
            det = t[t >= 0] + 1
            out.append(f"{name}: mean {det.mean():.0f}, found {len(det)}/{RUNS}")
        print(f"baseline {n} ({hits} hits), {p0}→{p1} from record 0, A=1e6: " + "  ".join(out), flush=True)
