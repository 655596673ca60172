"""The Shiryaev–Roberts engine shared by the drift Monitor and the monitoring-cue detector: the
recursion, firing, resolving with a renewal, the cap, steps that only some components take, and
the "since" of an alert. Small hand-made ratios, so every number can be checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from detector.monitor.shiryaev_roberts import FIRING, RESOLVED, ShiryaevRoberts

LOG_10 = float(np.log(10.0))


def _start(sr: ShiryaevRoberts, n_features: int):
    return np.zeros(len(sr.cap)), np.zeros(n_features, dtype=bool), np.zeros(n_features)


def test_a_feature_fires_at_the_threshold_resolves_below_its_fraction_and_restarts_from_zero():
    sr = ShiryaevRoberts.for_features([1], LOG_10, resolve_fraction=0.5)
    lr = np.array([2.0, 2.0, 2.0, 0.1, 0.1, 3.0])[:, None]
    # R: 2, 6, 14 (≥ 10: fires), 1.5 (< 5: resolves, restarts at 0), then 0.1·(1 + 0) = 0.1, 3·1.1 = 3.3
    done = sr.run(*_start(sr, 1), lr, np.arange(6.0))
    assert [(t.row, t.status) for t in done.transitions] == [(2, FIRING), (3, RESOLVED)]
    assert done.transitions[0].log_statistic == pytest.approx(np.log(14.0))
    assert done.transitions[1].r.tolist() == pytest.approx([1.5])  # as it was when it resolved
    assert done.r.tolist() == pytest.approx([3.3]) and not done.firing[0]


def test_a_feature_is_the_mean_of_its_components():
    sr = ShiryaevRoberts.for_features([2, 1], LOG_10, resolve_fraction=0.5)
    lr = np.array([[4.0, 1.0, 1.0]] * 3)  # component 0: 4, 20, 84; component 1: 1, 2, 3; feature 1: 1, 2, 3
    done = sr.run(*_start(sr, 2), lr, np.arange(3.0))
    assert [(t.row, t.feature) for t in done.transitions] == [(1, 0)]  # mean (20 + 2) / 2 = 11 ≥ 10
    assert np.exp(sr.log_mixture(done.r)).tolist() == pytest.approx([(84.0 + 3.0) / 2, 3.0])
    assert sr.normalised(np.array([LOG_10])).tolist() == pytest.approx([1.0])


def test_statistics_stop_at_the_cap():
    sr = ShiryaevRoberts.for_features([1], LOG_10, resolve_fraction=0.5)
    done = sr.run(*_start(sr, 1), np.full((200, 1), 10.0), np.arange(200.0))
    assert done.r[0] == sr.cap[0] == pytest.approx(10.0 * np.exp(14.0))


def test_advance_is_the_capped_recursion_row_by_row_wherever_the_cap_binds():
    """The compiled recursion gives the plain recursion's numbers, bit for bit, when the cap binds
    from the first row, mid-run, for a while, or never, and each row's mixture is that row's."""
    rng = np.random.default_rng(3)
    sr = ShiryaevRoberts.for_features([2, 3], log_threshold=2.0, resolve_fraction=0.5)
    for drift in (-0.3, 0.05, 0.4):
        lr = np.exp(rng.normal(drift, 1.0, (1000, 5)))
        lr[400:600] = 0.5  # back below the cap for a while, then up again
        moves = rng.random(lr.shape) < 0.8
        for r0, steps in ((np.zeros(5), None), (sr.cap.copy(), moves)):
            expected, prev = np.empty_like(lr), r0
            for i in range(len(lr)):
                row = np.minimum((prev + 1.0) * lr[i], sr.cap)
                expected[i] = prev = row if steps is None else np.where(steps[i], row, prev)
            r, mix = sr.advance(r0, lr, steps)
            assert np.array_equal(r, expected[-1])
            np.testing.assert_allclose(mix, sr.log_mixture(expected), rtol=1e-13, atol=1e-13)  # summed in another order
            assert (r0 == 0).all() or np.array_equal(r0, sr.cap)  # the caller's state is left alone


def test_components_not_moving_keep_their_statistic():
    sr = ShiryaevRoberts.for_features([1, 1], LOG_10, resolve_fraction=0.5)
    lr = np.full((3, 2), 2.0)
    moves = np.array([[True, False], [False, False], [True, True]])
    done = sr.run(*_start(sr, 2), lr, np.arange(3.0), moves)
    assert done.r.tolist() == [6.0, 2.0]  # 0 → 2 → 2 → 6 and 0 → 0 → 0 → 2


def test_results_do_not_depend_on_where_batches_are_cut():
    sr = ShiryaevRoberts.for_features([2, 3], float(np.log(30.0)), resolve_fraction=0.5)
    rng = np.random.default_rng(5)
    n = 400
    lr = np.exp(rng.normal(0.0, 1.2, (n, 5)))  # drifts up and down: fires and resolves several times
    times = np.arange(n, dtype=float) + 1.0
    whole = sr.run(*_start(sr, 2), lr, times)
    assert {t.status for t in whole.transitions} == {FIRING, RESOLVED}
    r, firing, quiet = _start(sr, 2)
    pieces = []
    for lo, hi in ((0, 7), (7, 150), (150, 151), (151, n)):
        part = sr.run(r, firing, quiet, lr[lo:hi], times[lo:hi])
        r, firing, quiet = part.r, part.firing, part.quiet_time
        pieces += [(t.row + lo, t.feature, t.status, t.log_statistic, t.since) for t in part.transitions]
    assert pieces == [(t.row, t.feature, t.status, t.log_statistic, t.since) for t in whole.transitions]
    np.testing.assert_array_equal(r, whole.r)
    np.testing.assert_array_equal(quiet, whole.quiet_time)


def test_since_is_the_last_quiet_row_even_across_another_features_renewal():
    """Feature 1 is quiet (mean R ≤ e^(log threshold / 2)) at rows 0-1, then climbs and fires at
    row 3; feature 0 resolves at row 2, which restarts the rest of the batch. The alert of feature 1
    still dates from row 1, its last quiet row."""
    sr = ShiryaevRoberts.for_features([1, 1], float(np.log(100.0)), resolve_fraction=0.5)
    r0, firing = np.array([200.0, 0.0]), np.array([True, False])
    lr = np.array([[1.0, 1.0], [1.0, 1.0], [0.01, 9.0], [1.0, 9.0], [1.0, 9.0]])
    # feature 1: 1, 2 (quiet: ≤ 10), 27, 252 (fires at row 3)
    done = sr.run(r0, firing, np.zeros(2), lr, np.array([10.0, 11.0, 12.0, 13.0, 14.0]))
    assert [(t.row, t.feature, t.status) for t in done.transitions] == [(2, 0, RESOLVED), (3, 1, FIRING)]
    assert done.transitions[1].since == 11.0
    assert done.quiet_time.tolist() == [14.0, 11.0]  # feature 0 restarted at 0: quiet again from row 3
