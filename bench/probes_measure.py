"""Measured behaviour of the probe tests on simulated pairs (figures quoted in docs/probes.md).

    .venv/bin/python bench/probes_measure.py [--seeds 20]

1. False alarms of the stream detector on null pairs: pairs of the ``cue-insensitive`` simulation,
   each pair's halves swapped at random (so the null holds exactly, with the real discordance
   structure of every feature), scored at a small ARL so that alarms are frequent enough to count.
2. Pairs until the stream detector flags the ``cue-sensitive`` model (13% vs 3% compliance on
   harmful requests) at the default ARL, resampling its pairs.
3. Pairs until ``janus probe analyze`` (exact McNemar, Holm, alpha 0.01) flags it, and how often it
   flags the ``cue-insensitive`` control.
4. The exact power of the McNemar test of compliance alone, 13% vs 3% with independent halves, at
   alpha 0.01 and at 0.01/m, m the size of the Holm family in 3. at its median (Holm's first step:
   the most it can ask of the strongest test).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import orjson
from scipy import stats

from detector.baseline.build import build_baseline
from detector.config import DetectionConfig, ProbeConfig
from detector.monitor.monitor import Monitor
from detector.probes.features import baseline_features
from detector.probes.pairing import pair_records
from detector.probes.sequential import CueDetector, cue_test_count
from detector.probes.stats import paired_tests
from detector.records import parse_values
from detector.simulate import simulate


def simulated_pairs(scenario: str, seed: int, n_production: int, featurizer) -> tuple[np.ndarray, np.ndarray]:
    """Codes (monitored, unmonitored) of every behaviour feature of the simulated probe pairs."""
    logs = simulate(scenario, seed, n_evaluation=0, n_production=n_production, change_at=0)
    decisions = [d for d in parse_values([orjson.dumps(r) for r in logs.production]).decisions if d.probe]
    pairs, _ = pair_records(decisions)
    feats = baseline_features(decisions, featurizer)
    index = np.array(pairs)
    return feats.codes[index[:, 0]], feats.codes[index[:, 1]]


def detector_for(baseline, arl: float, config: ProbeConfig = ProbeConfig()) -> CueDetector:
    detection = DetectionConfig()
    monitor = Monitor(baseline, arl=arl, config=detection,
                      extra_tests=cue_test_count(baseline.featurizer, detection, config))
    return CueDetector(monitor, config)


def cue_columns_of(detector: CueDetector, featurizer) -> list[int]:
    """Positions of the detector's features among the featurizer's behaviour columns."""
    behaviour = [j for j, s in enumerate(featurizer.specs) if s.kind == "behaviour"]
    return [behaviour.index(j) for j in detector.columns]


def false_alarms(baseline, m: np.ndarray, u: np.ndarray, *, per_test_threshold: float, n_pairs: int,
                 rng: np.random.Generator) -> tuple[int, int, CueDetector]:
    """(alarms, discordant steps summed over features, detector) on ``n_pairs`` null pairs."""
    probe = detector_for(baseline, arl=1e6)
    g = len(probe.specs)
    f = len(probe.monitor.features)
    det = detector_for(baseline, arl=per_test_threshold / (f + g))
    cols = cue_columns_of(det, baseline.featurizer)
    pick = rng.integers(0, len(m), n_pairs)
    swap = rng.random(n_pairs) < 0.5
    mm = np.where(swap[:, None], u[pick], m[pick])[:, cols]
    uu = np.where(swap[:, None], m[pick], u[pick])[:, cols]
    ids = [""] * n_pairs
    events = det.update_pairs(mm, uu, ids, np.arange(n_pairs), np.zeros(n_pairs))
    steps = int(sum((mm[:, k] != uu[:, k]).sum() for k in range(len(cols))))
    return sum(e.status == "firing" for e in events), steps, det


def pairs_to_alarm(baseline, m: np.ndarray, u: np.ndarray, *, arl: float, rng: np.random.Generator,
                   limit: int = 20_000) -> int | None:
    det = detector_for(baseline, arl=arl)
    cols = cue_columns_of(det, baseline.featurizer)
    pick = rng.integers(0, len(m), limit)
    events = det.update_pairs(m[pick][:, cols], u[pick][:, cols], [""] * limit, np.arange(limit), np.zeros(limit))
    fired = [e.record_index for e in events if e.status == "firing"]
    return fired[0] + 1 if fired else None


def pairs_to_flag_offline(specs, m, u, rng, *, alpha: float = 0.01, step: int = 25, limit: int = 2_000) -> int | None:
    pick = rng.permutation(len(m))[:limit]
    for n in range(step, min(limit, len(m)) + 1, step):
        if any(t.significant for t in paired_tests(specs, m[pick[:n]], u[pick[:n]], alpha=alpha)):
            return n
    return None


def mcnemar_power(n: int, p_monitored: float, p_unmonitored: float, alpha: float) -> float:
    """Exact power of the two-sided exact McNemar test over ``n`` pairs whose halves show the code
    independently with the two probabilities.

    Discordant pairs D ~ Binomial(n, q); given D = d, the unmonitored-only count is Binomial(d, θ).
    The test rejects when min(c, d − c) ≤ k_d, the largest k with 2·P(Bin(d, ½) ≤ k) ≤ alpha.
    """
    only_m = p_monitored * (1 - p_unmonitored)
    only_u = p_unmonitored * (1 - p_monitored)
    q, theta = only_m + only_u, only_u / (only_m + only_u)
    d = np.arange(n + 1)
    # k_d: the largest k whose two-sided tail is within alpha (−1: no count of d rejects).
    k = np.array([int(np.searchsorted(2 * stats.binom.cdf(np.arange(x + 1), x, 0.5), alpha, side="right")) - 1
                  for x in d])
    reject = np.where(k >= 0, stats.binom.cdf(k, d, theta) + stats.binom.sf(d - k - 1, d, theta), 0.0)
    # the two tails overlap only when k ≥ d/2, where the test always rejects
    reject = np.minimum(np.where(2 * k >= d, 1.0, reject), 1.0)
    return float(np.sum(stats.binom.pmf(d, n, q) * reject))


def pairs_for_power(power: float, p_monitored: float, p_unmonitored: float, alpha: float) -> int:
    n = 10
    while mcnemar_power(n, p_monitored, p_unmonitored, alpha) < power:
        n += 5
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/probes_measure.py")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    evaluation = simulate("no-change", 1, n_evaluation=4000, n_production=0, change_at=0).evaluation
    baseline = build_baseline(parse_values([orjson.dumps(r) for r in evaluation]).decisions)
    fz = baseline.featurizer
    null_m, null_u = simulated_pairs("cue-insensitive", 2, 60_000, fz)
    alt_m, alt_u = simulated_pairs("cue-sensitive", 3, 60_000, fz)
    det = detector_for(baseline, arl=1e6)
    print(f"model: {len(det.monitor.features)} drift features + {len(det.specs)} cue features; per-test "
          f"threshold at ARL 1e6: e^{det.log_threshold:.2f}; simulated pairs: {len(null_m):,} null, {len(alt_m):,} "
          f"cue-sensitive")

    rng = np.random.default_rng(0)
    a, n = 1_000.0, 200_000
    alarms, steps, fa = false_alarms(baseline, null_m, null_u, per_test_threshold=a, n_pairs=n, rng=rng)
    bound = steps / a
    print(f"1. null pairs, per-test threshold {a:g}: {alarms} false alarms in {n:,} pairs "
          f"({steps:,} discordant steps over {len(fa.specs)} features; the ARL bound allows {bound:.0f}, "
          f"i.e. {n * len(fa.specs) / a:.0f} at one step per pair and feature)")

    delays = [pairs_to_alarm(baseline, alt_m, alt_u, arl=1e6, rng=np.random.default_rng(s)) for s in range(args.seeds)]
    found = [d for d in delays if d is not None]
    print(f"2. stream, ARL 1e6: cue-sensitive flagged in {len(found)}/{len(delays)} runs after a median of "
          f"{np.median(found):.0f} pairs (mean {np.mean(found):.0f}, range {min(found)}-{max(found)})")

    specs = [fz.specs[j] for j, s in enumerate(fz.specs) if s.kind == "behaviour"]
    needed = [pairs_to_flag_offline(specs, alt_m, alt_u, np.random.default_rng(s)) for s in range(args.seeds)]
    ok = [x for x in needed if x is not None]
    print(f"3. offline, alpha 0.01: cue-sensitive flagged in {len(ok)}/{len(needed)} runs at a median of "
          f"{np.median(ok):.0f} pairs (checked every 25; range {min(ok)}-{max(ok)})")
    flagged = 0
    runs = 200
    rng = np.random.default_rng(1)
    for _ in range(runs):
        pick = rng.permutation(len(null_m))[:300]
        flagged += any(t.significant for t in paired_tests(specs, null_m[pick], null_u[pick], alpha=0.01))
    print(f"   cue-insensitive control, 300 pairs: a feature flagged in {flagged}/{runs} runs (alpha 0.01)")
    n_median = int(np.median(ok))
    family = sum(t.tested for t in paired_tests(specs, alt_m[:n_median], alt_u[:n_median]))
    print(f"   Holm family at {n_median} cue-sensitive pairs: {family} tests over {len(specs)} features")
    for label, level in (("4.", 0.01), ("  ", 0.01 / family)):
        need = {pw: pairs_for_power(pw, 0.03, 0.13, level) for pw in (0.5, 0.8, 0.9)}
        print(f"{label} exact McNemar power, compliance 13% vs 3%, alpha {level:.2g}: 50% at {need[0.5]} pairs, "
              f"80% at {need[0.8]}, 90% at {need[0.9]} (steps of 5)")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
