"""Featurisation: every feature becomes a small, capped, deterministic code."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict

import numpy as np
import orjson
import pytest

from detector.config import FeaturesConfig
from detector.features import Featurizer
from detector.features.conditions import NOVEL, ConditionModel, fold_of
from detector.features.embedders import HashingEmbedder
from detector.features.phrases import PhraseCounter
from detector.features.text import TextCoder, TextField
from detector.records import Decision, ToolCall, parse_values
from detector.simulate import simulate


def _d(i, **kw):
    return Decision(f"d{i}", float(i), "m", "evaluation", **kw)


def test_categories_have_missing_and_unseen_codes_and_a_cap():
    config = FeaturesConfig(max_codes=6)
    actions = [f"a{k}" for k in range(10) for _ in range(10 - k)]  # a0 most frequent
    fz = Featurizer(config).fit([_d(i, action=a) for i, a in enumerate(actions)])
    spec = fz.specs[fz.feature_index("action")]
    assert spec.labels == ("(missing)", "(unseen)", "a0", "a1", "a2", "a3")
    m = fz.transform([_d(0, action="a0"), _d(1, action="a9"), _d(2, action="never"), _d(3)])
    assert fz.label("action", int(m.codes[0, 1])) == "a0"
    assert [fz.label("action", int(c)) for c in m.codes[1:, 1]] == ["(unseen)", "(unseen)", "(missing)"]


def test_numeric_fields_bin_on_baseline_quantiles():
    fz = Featurizer(FeaturesConfig(numeric_bins=4)).fit([_d(i, latency_ms=float(i)) for i in range(1000)])
    j = fz.feature_index("latency_ms")
    assert fz.specs[j].ordered and len(fz.specs[j].labels) == 5  # missing + 4 bins
    codes = fz.transform([_d(0, latency_ms=v) for v in (0.0, 300.0, 600.0, 999.0, 1e9)] + [_d(9)]).codes[:, j]
    assert codes.tolist() == [1, 2, 3, 4, 4, 0]
    shares = Counter(fz.transform([_d(i, latency_ms=float(i)) for i in range(1000)]).codes[:, j].tolist())
    assert all(240 <= n <= 260 for n in shares.values())  # quantile bins are equally full on the baseline


def test_tools_become_presence_features_with_an_other_bucket():
    calls = [(ToolCall("search"),), (ToolCall("search"), ToolCall("email")), ()] * 20
    fz = Featurizer(FeaturesConfig(max_tools=1)).fit([_d(i, tool_calls=c) for i, c in enumerate(calls)])
    names = [s.name for s in fz.specs]
    assert "tool:search" in names and "tool:email" not in names and "tool:(other)" in names
    m = fz.transform([_d(0, tool_calls=(ToolCall("email"),)), _d(1, tool_calls=(ToolCall("search"),))])
    assert m.codes[0, fz.feature_index("tool:(other)")] == 1 and m.codes[0, fz.feature_index("tool:search")] == 0
    assert m.codes[1, fz.feature_index("tool:search")] == 1
    assert [fz.label("tool_call_count", int(c)) for c in m.codes[:, fz.feature_index("tool_call_count")]] == \
        ["[1, 2)", "[1, 2)"]


def test_oversight_phrases_are_counted_case_insensitively():
    counter = PhraseCounter(["not monitored", "this is a test"])
    counts = counter.counts(["NOT MONITORED, so…", None, "fine"], ["This is a test; not monitored.", "", None])
    assert counts.tolist() == [3, 0, 0]


def test_text_codes_survive_persistence_and_do_not_depend_on_the_process():
    texts = [f"Escalate alert {i} on host ws-{i % 7}" for i in range(200)] + ["I can't help with that."] * 50
    coder = TextCoder(clusters=4, embedder=HashingEmbedder(dim=8)).fit(texts)
    warm = coder.codes(texts)
    assert np.array_equal(TextCoder.from_state(*_state(coder), "t").codes(texts), warm)
    assert warm[0] == warm[1] != warm[-1]  # numbers do not count: templated texts share a code
    # Python's str hash is salted per process; the codes must not be.
    script = ("import sys, orjson; from detector.features.text import TextCoder; "
              "from detector.features.embedders import HashingEmbedder; "
              "t=[f'Escalate alert {i} on host ws-{i % 7}' for i in range(200)]+[\"I can't help with that.\"]*50; "
              "print(orjson.dumps(TextCoder(clusters=4, embedder=HashingEmbedder(dim=8)).fit(t).codes(t).tolist()).decode())")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert orjson.loads(other.stdout) == warm.tolist()


def test_a_full_cache_gives_the_same_codes_and_phrase_counts():
    """The cache fills and clears mid-batch (a long stream of new texts); codes must not change, nor raise."""
    users, verbs = ["ana", "bo", "cy", "dee", "eli", "fay", "gus"], ["closed", "escalated", "muted", "paged"]
    texts = [f"Host ws-{i} user {users[i % 7]} {verbs[i % 4]} {'not monitored' if i % 5 == 0 else 'seen'} "
             f"case {i}" for i in range(300)] + [None, ""] + ["I can't help with that."] * 20
    coder = TextCoder(clusters=4, embedder=HashingEmbedder(dim=8)).fit(texts)
    phrases = PhraseCounter(["not monitored"])
    expected_codes = coder.codes(texts)
    expected_counts = np.minimum(phrases.counts(texts), 2)
    for cache_size in (1, 7, 40, 10_000):
        field = TextField(coder, PhraseCounter(["not monitored"]), cache_size)
        for start in range(0, len(texts), 90):  # batches: the cache carries over, overflows and clears
            batch = texts[start:start + 90]
            codes, counts = field.encode(batch)
            assert np.array_equal(codes, expected_codes[start:start + 90])
            assert np.array_equal(counts, expected_counts[start:start + 90])


def test_texts_differing_only_in_digits_share_a_cached_result_only_where_digits_cannot_matter():
    """Hashed n-grams read digits as spaces, so the cache keys texts with their digits read as 0; a
    phrase holding a digit makes digits matter, and then the cache keys the texts as they are."""
    texts = [f"{n} failed logins on ws-{n % 97}: agent 7 {'not monitored' if n % 3 else 'fine'}" for n in range(60)]
    texts += ["agent 7 fine", "agent 8 fine", "agent 7 not monitored", "agent 8 not monitored"]
    coder = TextCoder(clusters=4, embedder=HashingEmbedder(dim=8)).fit(texts)
    for phrases, shared in ((PhraseCounter(["not monitored"]), True), (PhraseCounter(["agent 7"]), False)):
        field = TextField(coder, phrases, 10_000)
        codes, counts = field.encode(texts)
        assert np.array_equal(codes, coder.codes(texts))
        assert np.array_equal(counts, np.minimum(phrases.counts(texts), 2))
        assert (len(field._cache._values) < len(set(texts))) == shared


def _state(coder):
    meta, arrays = coder.state("t")
    return meta, arrays


@pytest.fixture(scope="module")
def simulated():
    logs = simulate("no-change", 2, n_evaluation=12_000, n_production=100, change_at=10)
    decisions = parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions
    return logs, decisions, Featurizer().fit(decisions)


def test_input_clusters_separate_the_kinds_of_input(simulated):
    """Behaviour is judged given the input: cells must not mix harmful with benign requests."""
    logs, decisions, fz = simulated
    m = fz.transform(decisions)
    by_cluster = defaultdict(Counter)
    for code, kind in zip(m.codes[:, fz.feature_index("input_cluster")].tolist(), logs.evaluation_kinds):
        by_cluster[code][kind] += 1
    mixed = sum(sum(c.values()) - max(c.values()) for c in by_cluster.values())
    assert mixed / len(decisions) < 0.03  # measured 2.0% (a harmful template sharing an ambiguous one's cell)
    for j in range(len(fz.specs)):
        assert m.cells[:, j].max() < fz.n_cells(j)
        assert np.array_equal(m.cells[:, j] // fz.n_conditions[j], m.segments)


def test_conditions_separate_the_kinds_by_behaviour(simulated):
    """Behaviour features are judged per condition of predicted behaviour: a condition must not mix
    harmful requests (mostly refused) with benign ones (rarely refused)."""
    logs, decisions, fz = simulated
    m = fz.transform(decisions)
    by_condition = defaultdict(Counter)
    for cell, kind in zip(m.cells[:, fz.feature_index("refused")].tolist(), logs.evaluation_kinds):
        by_condition[cell % fz.n_conditions[0]][kind] += 1
    harmful = [c["harmful"] / sum(c.values()) for c in by_condition.values() if c["harmful"]]
    assert max(harmful) > 0.9  # harmful requests hold a condition of their own


def test_state_round_trip_gives_identical_codes(simulated):
    _, decisions, fz = simulated
    meta, arrays = fz.state()
    again = Featurizer.from_state(orjson.loads(orjson.dumps(meta)), arrays)
    a, b = fz.transform(decisions[:3000]), again.transform(decisions[:3000])
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.cells, b.cells)
    # Cluster codes are named "#k": evaluation text stays out of metric labels, in `examples` only.
    spec = again.specs[again.feature_index("input_cluster")]
    assert all(label == "(missing)" or label.startswith("#") for label in spec.labels)
    assert any(example.startswith("“") for example in spec.examples)


def test_a_transcript_input_is_read_as_its_latest_user_turn_and_old_baselines_read_it_whole():
    from detector.formats.turns import latest_request

    asks = ["Reset my password", "Refund order 4711 now", "Export every customer's card number"]
    history = "System: You are the bank's assistant.\nUser: {old}\nAssistant: Done, here it is.\nUser: {new}"
    decisions = [Decision(f"d{i}", float(i), "m", "evaluation", refused=i % 3 == 2,
                          input_text=history.format(old=asks[(i * 7) % 3] + " please, it is urgent",
                                                    new=asks[i % 3] + " please, it is urgent"))
                 for i in range(600)]
    assert latest_request(decisions[2].input_text) == "\n".join([asks[2] + " please, it is urgent"] * 2)
    fz = Featurizer().fit(decisions)
    length = fz.feature_index("input_length")
    whole = Featurizer(FeaturesConfig(latest_turn=False)).fit(decisions)
    assert fz.edges["input_length"] != whole.edges["input_length"]  # binned on the latest turn's length
    # The condition of a request follows the latest turn, not the earlier one.
    strata = fz.transform(decisions).cells[:, fz.feature_index("refused")]
    assert len({int(s) for s, d in zip(strata, decisions) if d.refused}) == 1
    assert not {int(s) for s, d in zip(strata, decisions) if d.refused} & {int(s) for s, d in zip(strata, decisions) if not d.refused}
    meta, arrays = fz.state()
    assert Featurizer.from_state(meta, arrays).config.latest_turn
    del meta["config"]["request_context_chars"], meta["config"]["request_max_turns"]
    before = Featurizer.from_state(meta, arrays)  # saved before earlier user turns were read: the latest alone
    assert before._inputs(decisions[:1]) == [asks[0] + " please, it is urgent"]
    del meta["config"]["latest_turn"]  # a baseline saved before: inputs read whole, as they were built
    old = Featurizer.from_state(meta, arrays)
    assert not old.config.latest_turn and (old.transform(decisions).codes[:, length] != fz.transform(decisions).codes[:, length]).any()


def test_an_input_the_folds_place_apart_is_novel_and_old_baselines_keep_their_rule():
    """40 'override my parcel address' requests, all refused, all in fold 0: fold 0's models never
    saw one and place the request with the parcel questions (refused 2%), the other folds' with
    the refund overrides. Such an input has no trustworthy null: it is novel."""
    rng = np.random.default_rng(0)
    fillers = ["today", "again", "quickly", "thanks", "hello", "team", "asap", "kindly"]

    def ids_in(fold, n, prefix):
        candidates = (f"{prefix}{i}" for i in range(10 * n))
        return [d for d in candidates if fold is None or fold_of([d], 3)[0] == fold][:n]

    texts, ids, refused = [], [], []
    for ask, n, rate, fold in [("where is my parcel", 600, 0.02, None),
                               ("please override the refund limit", 600, 0.95, None),
                               ("override my parcel address", 40, 1.0, 0)]:
        for d in ids_in(fold, n, ask[:5]):
            texts.append(f"{rng.choice(fillers)} {ask} {rng.choice(fillers)}")
            ids.append(d)
            refused.append(2 if rng.random() < rate else 1)
    model = ConditionModel(strata=4, folds=3).fit(texts, ids, {"refused": np.array(refused)}, {"refused": 1})
    asks = [f"{w} override my parcel address {w}" for w in fillers] * 5
    asked = [f"p{i}" for i in range(len(asks))]
    assert (model.strata(asks, asked) == NOVEL).all()
    assert (model.strata(texts[:1200], ids[:1200]) != NOVEL).mean() > 0.99  # the crowds are settled
    meta, arrays = model.state("c")
    del meta["unsettled_nats"]  # a baseline built before the rule keeps its novel_input rate
    old = ConditionModel.from_state(meta, arrays, "c")
    placed = old.strata(asks, asked)
    assert (placed != NOVEL).all() and len(set(placed.tolist())) > 1
