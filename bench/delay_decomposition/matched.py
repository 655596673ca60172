"""Oracle at Janus's own measured null ARL (h shifted by log(ARL ratio), log ARL ∝ h asymptotically),
with its null ARL re-measured, to separate 'Janus is slower' from 'Janus is more conservative'."""
import os
import sys, math
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim import *
janus_arl = {(0.05, 0.10): 29_199, (0.14, 0.03): 24_825, (0.01, 0.02): 31_162}
for pq, arl in janus_arl.items():
    h = ORACLE_H[pq][1e4] + math.log(arl / 1e4)
    st = oracle_stat(*pq)
    d = delays(st, *pq, h, range(30_000, 30_300))
    a, n = null_arl(st, pq[0], h, range(20_000, 20_150), 90_000)
    print(pq, f"h={h:.2f} oracle delay {d['mean']:.0f} (fb {d['false_before']}), its ARL {a:,.0f} ({n} alarms); Janus ARL {arl:,}")
