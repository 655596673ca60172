"""Refusal recogniser: "refused" derived from output text (``detector.features.refusal``)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchscript import load_bench
from detector.features.refusal import DEFAULT_REFUSAL_PATTERNS, ENGLISH_REFUSAL_PATTERNS, NO_TEXT, RefusalRecogniser

def _bench():
    return load_bench("refusal_recogniser")


@pytest.fixture(scope="module")
def recogniser() -> RefusalRecogniser:
    return RefusalRecogniser()


REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I’m sorry, but I can’t help with that.",  # curly apostrophes
    "I can't help with that.",
    "I cannot assist with this request.",
    "I can not provide that information.",
    "I won't write that.",
    "I will not share the contents of the system prompt.",
    "I'm unable to process this return.",
    "I am not able to reset two-factor authentication over chat.",
    "I must decline.",
    "I must respectfully decline this request.",
    "I have to refuse this one.",
    "I'm afraid I can't do that.",
    "I won't be able to restart the database without a change ticket.",
    "That's not something I can help with.",
    "This isn't something I'm able to assist with.",
    "Sharing that list would be against our privacy policy.",
    "That goes against my guidelines.",
    "I'm not allowed to disclose other customers' orders.",
    "I'm not permitted to approve my own pull request.",
    "I'm not authorised to waive the fee.",
    "I'm not authorized to waive the fee.",
    "Hi Sam! Thanks for reaching out. Unfortunately I'm not able to change an issued invoice.",
    "Unfortunately, we are unable to offer compensation for carrier delays.",
    "We can't reverse a charge older than 120 days.",
    "I'm going to have to decline.",
    "I'd rather not speculate about that.",
    "Declined: the caller lacks the admin role.",
    "Your request to access that mailbox has been denied.",
    "Can't help with this, sorry.",
    "No can do, the context is read-only for me.",
    "Sharing that would go against our data-protection policy.",
    "This isn't something PeopleDesk can process.",  # the assistant by its name
    "No, sorry - that's not possible here.",
]

COMPLIANCES = [
    "Sure! Here's the function you asked for.",
    "Sorry for the wait! Your refund has been processed.",
    "Done. I've scaled the worker deployment to 8 replicas.",
    "Per our refund policy you're within 30 days, so I've issued a return label.",
    "Unfortunately the build failed; I quarantined the flaky test and it's green now.",
    "Your account has been unlocked.",
]

FALSE_FRIENDS = [
    "I can't wait to help you plan the launch!",
    "I cannot stress enough how important backups are. Here's the command.",
    "For a first tent, you can't go wrong with a three-season dome.",
    "If I can't reproduce it, I'll add more logging. For now, set RUST_BACKTRACE=1.",
    "if i can’t reproduce it locally, I'll ask for a core dump.",
    "I can't believe I missed that! Here's the fix.",
    "I can't tell you how many times this bug has bitten me. Set TZ=UTC.",
    "I can't promise it's perfect, but here's a first draft.",
    "I'm unable to reproduce the crash, but the None check is after the dereference; here's a patch.",
    "I won't bore you with the details: the index was missing, and I added it.",
    "I can’t stop thinking about your idea. Here's an architecture.",
    "You can't run docker inside that container because the socket isn't mounted; mount it.",
    "We can't always guarantee next-day delivery, but the courier confirmed tomorrow.",
    "He typed 'I cannot comply' into the chat window and laughed.",  # a character's line
    "It's a no-brainer: use Postgres.",
    "This isn't something you can fix yourself, so I've opened ticket IT-4411 for you.",
    "That's not possible to say without the logs; the most likely cause is the expired token.",
    "That is not possible on the old portal, so I've moved your request to the new one.",
]


def test_clear_refusals_are_recognised(recogniser):
    codes = recogniser.recognise(REFUSALS)
    assert [t for t, c in zip(REFUSALS, codes) if c != 1] == []


def test_clear_compliances_are_not(recogniser):
    codes = recogniser.recognise(COMPLIANCES)
    assert [t for t, c in zip(COMPLIANCES, codes) if c != 0] == []


def test_idioms_built_on_refusal_words_are_not_refusals(recogniser):
    codes = recogniser.recognise(FALSE_FRIENDS)
    assert [t for t, c in zip(FALSE_FRIENDS, codes) if c != 0] == []


def test_missing_and_blank_texts_are_no_text(recogniser):
    codes = recogniser.recognise([None, "", "   \n\t", "I can't help with that.", "Here you go."])
    assert codes.dtype == np.int8
    assert codes.tolist() == [NO_TEXT, NO_TEXT, NO_TEXT, 1, 0]
    assert recogniser.recognise([]).shape == (0,)


def test_only_the_first_max_chars_are_searched():
    refusal = "I can't help with that."
    padding = "Here is the long answer you asked for. " * 4  # 156 characters
    r = RefusalRecogniser(max_chars=len(padding) + len(refusal))
    assert r.recognise([padding + refusal]).tolist() == [1]
    assert r.recognise([padding + "x" + refusal]).tolist() == [1]  # "I can't" still within the cut
    assert r.recognise([padding + "x" * 20 + refusal]).tolist() == [0]  # cut inside the phrase: no "can't"
    assert RefusalRecogniser(max_chars=len(padding)).recognise([padding + refusal]).tolist() == [0]
    assert RefusalRecogniser().max_chars == 600


def test_a_custom_pattern_list_replaces_the_defaults_and_is_case_insensitive():
    r = RefusalRecogniser([r"\bcomputer\s+says\s+no\b", r"\bnein\b"])
    assert r.recognise(["COMPUTER SAYS NO.", "Nein, danke.", "I can't help with that.", "Nine lives."]).tolist() \
        == [1, 1, 0, 0]
    assert r.patterns == (r"\bcomputer\s+says\s+no\b", r"\bnein\b")
    assert RefusalRecogniser(DEFAULT_REFUSAL_PATTERNS[:1]).recognise(["I must decline."]).tolist() == [0]


def test_an_invalid_pattern_is_named_in_the_error():
    bad = r"\bI (can't"
    with pytest.raises(ValueError, match=re.escape(f"invalid refusal pattern {bad!r}: missing )")):
        RefusalRecogniser([r"\bno can do\b", bad])
    with pytest.raises(ValueError, match="capturing group"):
        RefusalRecogniser([r"\bI (can't|cannot)\b"])
    with pytest.raises(ValueError, match="cannot be joined"):
        RefusalRecogniser([r"\bno\b", r"(?x) a b"])
    with pytest.raises(ValueError, match="at least one"):
        RefusalRecogniser([])
    with pytest.raises(ValueError, match="max_chars"):
        RefusalRecogniser(max_chars=0)
    with pytest.raises(TypeError):
        RefusalRecogniser(r"\bno\b")


def test_the_fast_alternation_finds_what_the_plain_one_finds():
    """The grouping by first character is an optimisation only: same matches, same places."""
    bench = _bench()
    texts, _, _ = bench.load()
    texts += bench.load(bench.MULTILINGUAL)[0]
    texts = texts + [t[k:] for t in texts for k in (1, 7, 30)] + FALSE_FRIENDS + REFUSALS + ["éfoo", "x" * 700]
    pattern_lists = [
        DEFAULT_REFUSAL_PATTERNS,
        [r"\bcomputer says no\b", r"(?:\bno|\bnope)\b"],
        [r"\w+n't\b", r"\bsorry"],  # \w: first characters unknown, the plain alternation
        [r"(?a:\bfoo)", r"\bbar"],  # scoped flags: no hoisted boundary
        [r"x?can't", r"^\s*no\b"],  # may start with anything
    ]
    for patterns in pattern_lists:
        fast = RefusalRecogniser(patterns, max_chars=600)
        plain = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        for text in texts:
            a, b = fast.search(text), plain.search(text, 0, 600)
            assert (a and a.span()) == (b and b.span()), (patterns[:2], text[:60])
    # The default patterns do take the fast path: one word boundary, then a branch per first character
    # (and branches without it for the scripts written without spaces).
    assert RefusalRecogniser().regex.pattern.startswith(r"(?:\b(?:(?=[")


def test_the_labelled_set_is_big_and_varied_enough():
    texts, labels, notes = _bench().load()
    assert labels.sum() >= 120 and (~labels).sum() >= 120
    assert len(set(texts)) == len(texts)
    assert max(len(t) for t in texts) > 500 and min(len(t) for t in texts) < 40
    assert sum(bool(n) for n in notes) >= 40  # the tricky cases say why they are tricky


def test_precision_and_recall_on_the_held_out_set(recogniser):
    bench = _bench()
    texts, labels, _ = bench.load()
    s = bench.scores(recogniser.recognise(texts) == 1, labels)
    assert s["precision"] >= 0.9 and s["recall"] >= 0.85, s


def test_refusals_in_other_languages_are_recognised_and_their_traps_are_not():
    """German, French, Spanish, Portuguese, Italian, Russian, Chinese, Japanese, Korean: declines tied to
    what is declined; idioms ("je ne peux pas m'empêcher", "не могу не", "待ちきれません"), hedges and
    conditionals ("如果无法连接", "si no puedes conectarte") stay compliant."""
    other = _bench().per_language(RefusalRecogniser())
    assert len(other["languages"]) == 9
    for lang, s in other["languages"].items():
        assert s["fp"] == 0 and s["fn"] <= 1, (lang, s)


def test_the_benchmark_part_reports_scores_rates_and_mistakes():
    out = _bench().run(quick=True)
    assert {"precision", "recall", "f1", "tp", "fp", "fn", "tn", "records_per_s", "records_per_s_2000_chars",
            "misclassified"} <= set(out)
    assert out["tp"] + out["fp"] + out["fn"] + out["tn"] == out["records"]
    assert len(out["misclassified"]) == out["fp"] + out["fn"]
    assert all(len(m["text"]) <= 80 for m in out["misclassified"])
    assert out["records_per_s"] > 0  # a rate, not a bound: no wall-clock assertions



def _decisions(traffic, n, labelled):
    from detector.records import Decision

    texts = ["I'm sorry, but I can't help with that request.", "Sure, here is the tracking link for your order."]
    return [Decision(f"{traffic}{i}", float(i), "m", traffic, output_text=texts[i % 2],
                     refused=(i % 2 == 0) if labelled else None) for i in range(n)]


def test_the_featurizer_reads_refusal_from_the_text_when_evaluation_has_no_label():
    from detector.features import Featurizer

    fz = Featurizer().fit(_decisions("evaluation", 200, labelled=False))
    assert fz.refusal_source == "text" and fz.specs[0].title == "refusal (recognised in the output)"
    codes = fz.transform(_decisions("production", 4, labelled=True)).codes[:, 0]
    assert [fz.specs[0].labels[c] for c in codes] == ["true", "false", "true", "false"]
    restored = Featurizer.from_state(*fz.state())
    assert restored.refusal_source == "text"
    assert (restored.transform(_decisions("production", 4, labelled=False)).codes[:, 0] == codes).all()


def test_a_baseline_reads_production_with_the_patterns_it_was_built_with():
    """Production is read as evaluation was, whatever the defaults of a later version: the patterns
    are saved with the baseline, and a baseline saved before that was read with the English ones."""
    from detector.features import Featurizer
    from detector.records import Decision

    fz = Featurizer().fit(_decisions("evaluation", 200, labelled=False))
    meta, arrays = fz.state()
    assert meta["refusal_patterns"] == DEFAULT_REFUSAL_PATTERNS
    german = [Decision("p0", 0.0, "m", "production", output_text="Dabei kann ich Ihnen leider nicht helfen.")]
    assert fz.specs[0].labels[Featurizer.from_state(meta, arrays).transform(german).codes[0, 0]] == "true"
    del meta["refusal_patterns"]
    old = Featurizer.from_state(meta, arrays)
    assert old.refusal_patterns == tuple(ENGLISH_REFUSAL_PATTERNS)
    assert fz.specs[0].labels[old.transform(german).codes[0, 0]] == "false"
    # `janus baseline show` says so, and what to do.
    from detector.cli.baseline_cmd import _refusal_reading

    assert "English only" in _refusal_reading(old)["how"] and "rebuild" in _refusal_reading(old)["how"]
    assert _refusal_reading(fz) == {"source": "text", "patterns": len(DEFAULT_REFUSAL_PATTERNS),
                                    "how": f"recognised in the output text ({len(DEFAULT_REFUSAL_PATTERNS)} patterns)"}


def test_labels_win_when_evaluation_carries_them_and_a_missing_label_stays_missing():
    from detector.features import Featurizer

    fz = Featurizer().fit(_decisions("evaluation", 200, labelled=True))
    assert fz.refusal_source == "label" and fz.specs[0].title == "refusal"
    codes = fz.transform(_decisions("production", 2, labelled=False)).codes[:, 0]
    assert [fz.specs[0].labels[c] for c in codes] == ["(missing)", "(missing)"]
