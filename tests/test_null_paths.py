"""False alarms on the null paths the scenario tests do not reach: many condition cells, a
condition seen in one segment only, an ordered feature stuck in one bin, a rare code that one
condition never showed in evaluation, a 500-record baseline. Behaviour given the input never
changes, so every alarm is false; the count is held to a Poisson allowance at the configured ARL
over all the records run (fixed seeds: nothing can flake)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detector.baseline import build_baseline
from detector.monitor import Monitor
from detector.records import Decision, ToolCall

ARL = 2000.0
GREETINGS = ["Hi team,", "Hello,", "Good morning!", "Hey there,", "Dear support,"]
SIGNOFFS = ["Thanks!", "Cheers", "Best regards, Sam", "Thank you in advance.", ""]
# kind: (request, P(refused), P(escalate | not refused))
KINDS = {
    "refund": ("please override the refund window for my order", 0.9, 0.5),
    "password": ("I cannot log in and need a password reset link", 0.03, 0.05),
    "status": ("where is my parcel, the delivery is late", 0.02, 0.1),
    "billing": ("I was charged twice on my last invoice", 0.05, 0.6),
    "warranty": ("does the warranty cover a cracked screen", 0.02, 0.02),
    "exchange": ("can I exchange the shoes for another size", 0.04, 0.05),
    "complaint": ("your driver was rude and I want compensation now", 0.3, 0.7),
    "address": ("please change the shipping address on my account", 0.1, 0.3),
}


def decisions(rng, n, traffic, *, weights=None, segments=("web", "email", "app", "phone"), segment_of=None,
              tool_rate=0.0, latency=None, start=0):
    names = list(KINDS)
    p = np.array([(weights or {}).get(k, 1.0) for k in names])
    kinds = rng.choice(len(names), n, p=p / p.sum())
    out = []
    for i, k in enumerate(kinds):
        name = names[k]
        request, p_refuse, p_escalate = KINDS[name]
        refused = bool(rng.random() < p_refuse)
        action = "refuse" if refused else ("escalate" if rng.random() < p_escalate else "answer")
        tools = (ToolCall("lookup_order", None),) if rng.random() < tool_rate else ()
        segment = segment_of(name, rng) if segment_of else segments[rng.integers(len(segments))]
        text = f"{GREETINGS[rng.integers(5)]} {request} (ref {rng.integers(10**6)}). {SIGNOFFS[rng.integers(5)]}"
        out.append(Decision(f"{traffic}-{start + i}", float(start + i), "m", traffic, segment=segment,
                            input_text=text, refused=refused, action=action, tool_calls=tools,
                            latency_ms=latency if latency is not None else float(rng.lognormal(6, 0.4)),
                            position=start + i))
    return out


def false_alarms(seeds, n_baseline, n_production, **kw):
    """(behaviour alarms, records run) over one run per seed; ``kw`` shapes both logs, and
    ``production_kw`` overrides it for production only."""
    production_kw = kw.pop("production_kw", {})
    total, exposure = 0, 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        monitor = Monitor(build_baseline(decisions(rng, n_baseline, "evaluation", **kw)), arl=ARL)
        production = decisions(rng, n_production, "production", **{**kw, **production_kw})
        for i in range(0, n_production, 2000):
            total += sum(e.status == "firing" and e.kind == "behaviour" for e in monitor.update(production[i:i + 2000]))
        exposure += n_production
    return total, exposure


def allowance(exposure):
    return stats.poisson.ppf(0.999, exposure / ARL)


def test_many_cells_over_four_segments_and_eight_kinds():
    total, exposure = false_alarms([1, 2, 3], 6000, 20_000)
    assert total <= allowance(exposure), (total, exposure)


def test_a_condition_seen_in_one_segment_only_then_everywhere():
    def only_web(name, rng):  # complaints came only by web in evaluation
        return "web" if name == "complaint" else ["web", "email", "app"][rng.integers(3)]

    def anywhere(name, rng):
        return ["web", "email", "app"][rng.integers(3)]

    total, exposure = false_alarms([4, 5, 6], 6000, 20_000, segment_of=only_web,
                                   production_kw={"segment_of": anywhere, "weights": {"complaint": 4.0}})
    assert total <= allowance(exposure), (total, exposure)


def test_an_ordered_feature_stuck_in_one_bin():
    total, exposure = false_alarms([7, 8], 4000, 20_000, latency=250.0)
    assert total <= allowance(exposure), (total, exposure)


def test_a_rare_code_some_conditions_never_showed():
    # A tool used by 0.2% of decisions whatever the request: ~1 use per condition cell in evaluation.
    total, exposure = false_alarms([9, 10, 11], 4000, 20_000, tool_rate=0.002)
    assert total <= allowance(exposure), (total, exposure)


@pytest.mark.parametrize("weights", [None, {"refund": 6.0, "complaint": 6.0}], ids=["same-mix", "mix-shift"])
def test_a_500_record_baseline(weights):
    total, exposure = false_alarms([12, 13, 14], 500, 20_000, production_kw={"weights": weights})
    assert total <= allowance(exposure), (total, exposure)


def test_records_a_feature_does_not_score_never_add_up_to_its_alert():
    """Production stops sending latency: no record scores `latency_ms` any more (the data-quality
    feature judges the missing field). At an ARL of 2 its threshold is ~2 × 30 tests: were an
    unscored record a step with ratio 1, the statistic would reach it after ~60 such records with no
    evidence at all; it must stay where it was instead."""
    import dataclasses

    rng = np.random.default_rng(4)
    monitor = Monitor(build_baseline(decisions(rng, 4000, "evaluation")), arl=2.0)
    production = [dataclasses.replace(d, latency_ms=None) for d in decisions(rng, 3000, "production")]
    before = monitor.log_r[:, monitor.sr.components(monitor.features.index(
        monitor.featurizer.feature_index("latency_ms")))].copy()
    fired = [e for i in range(0, 3000, 500) for e in monitor.update(production[i:i + 500])]
    assert not [e for e in fired if e.feature == "latency_ms"]
    latency = monitor.sr.components(monitor.features.index(monitor.featurizer.feature_index("latency_ms")))
    np.testing.assert_array_equal(monitor.log_r[:, latency], before)
    assert monitor.threshold < 3000  # the run was long enough for the old rule to have fired


FOLLOW_UPS = ["hmm that didn't work, I still get the same thing", "and could you do the same for my manager too?",
              "ok and how long will that take to be processed?", "thanks, can you also send me the link to that?"]


def chats(rng, n, traffic, weights):
    """Requests of the eight kinds, a third of them as a chat whose latest turn only refers to the
    request (a follow-up of 40+ characters), answered as the request's kind is."""
    names = list(KINDS)
    p = np.array([weights.get(k, 1.0) for k in names])
    out = []
    for i, k in enumerate(rng.choice(len(names), n, p=p / p.sum())):
        request, p_refuse, _ = KINDS[names[k]]
        text = f"{GREETINGS[rng.integers(5)]} {request} (ref {rng.integers(10**6)}). {SIGNOFFS[rng.integers(5)]}"
        if rng.random() < 1 / 3:
            text = f"User: {text}\nAssistant: Let me check that for you.\nUser: {FOLLOW_UPS[rng.integers(4)]}"
        out.append(Decision(f"{traffic}-{i}", float(i), "m", traffic, input_text=text,
                            refused=bool(rng.random() < p_refuse), position=i))
    return out


def test_a_mix_shift_with_follow_ups_that_only_refer_to_the_request():
    """Read alone, "hmm that didn't work…" is the same condition whatever was asked, so its refusal
    rate is the mix of the kinds it follows, and a shift towards the refused kind pages (read so,
    both seeds fired `refused` within 320 records: 57% refused on "…my manager too?" vs 18% in
    evaluation). Read with the request it refers to, it is judged as that request. At an ARL of
    1e5 the 32,000 records allow 0.32 false alarms on average: none is expected."""
    fired = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        monitor = Monitor(build_baseline(chats(rng, 8000, "evaluation", {})), arl=1e5)
        production = chats(rng, 16_000, "production", {"refund": 8.0, "complaint": 4.0})
        for i in range(0, len(production), 2000):
            fired += [e.message for e in monitor.update(production[i:i + 2000])
                      if e.status == "firing" and e.kind == "behaviour"]
    assert not fired
