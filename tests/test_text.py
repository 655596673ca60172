"""Text features: token hashing, embedders (hashing and model-based), oversight phrases."""

from __future__ import annotations

import importlib.util

import numpy as np
import orjson
import pytest

from detector.config import FeaturesConfig, parse_config
from detector.errors import JanusError
from detector.features import token_hashing
from detector.features.embedders import HashingEmbedder, make_embedder
from detector.features.phrases import PhraseCounter
from detector.features.token_hashing import hashed_ngrams

# ---- token hashing -------------------------------------------------------------------------------


def _dense(texts, n_features=1024):
    return hashed_ngrams(texts, n_features).toarray()


def test_tokens_fold_case_and_ignore_numbers_and_punctuation():
    a, b, c = _dense(["Host WS-17 closed: alert 4411.", "host ws-3 closed alert 9", "host ws closed an alert"])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # "an" is a word


def test_characters_of_scripts_without_spaces_are_tokens_of_their_own():
    # 数据库连接失败: 7 characters → 7 unigrams + 6 bigrams; with spaces it would be one "word".
    assert hashed_ngrams(["数据库连接失败"], 1 << 16).nnz == 13
    assert hashed_ngrams(["สวัสดีครับ"], 1 << 16).nnz > 2  # Thai, likewise
    # A Latin word inside Chinese text is one token, its neighbours characters: 登 录 vpn 失 败.
    assert hashed_ngrams(["登录VPN失败"], 1 << 16).nnz == 5 + 4


def test_no_bigram_spans_two_texts():
    together = _dense(["alpha beta", "gamma delta"])
    assert np.array_equal(together, np.vstack([_dense(["alpha beta"]), _dense(["gamma delta"])]))
    assert np.abs(together).sum(axis=1).tolist() == [3, 3]


def test_long_batches_hash_in_chunks_to_the_same_rows(monkeypatch):
    texts = [f"text {i} about {'refunds' if i % 2 else 'alerts'} 数据" * (i % 5) for i in range(50)]
    whole = _dense(texts)
    monkeypatch.setattr(token_hashing, "_MAX_CHUNK_CHARS", 100)
    assert np.array_equal(_dense(texts), whole)


# ---- embedders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "hashed", "model2vec:", "sentence-transformers", "word2vec:x"])
def test_unknown_embedders_are_refused(spec):
    with pytest.raises(JanusError, match="features.embedder"):
        make_embedder(spec)
    with pytest.raises(JanusError, match="features.embedder"):
        parse_config({"features": {"embedder": spec}})


def test_the_hashing_projection_round_trips():
    texts = [f"Escalate alert {i} on host ws-{i % 7}" for i in range(50)] + ["I can't help with that."] * 5
    embedder = HashingEmbedder(dim=8).fit(texts)
    meta, arrays = embedder.state("e")
    again = HashingEmbedder.from_state(orjson.loads(orjson.dumps(meta)), arrays, "e")
    assert np.array_equal(again.transform(texts), embedder.transform(texts))
    assert embedder.transform(texts).shape == (55, 8)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is not None,
                    reason="sentence-transformers is installed")
def test_a_missing_embedder_package_names_the_extra_to_install():
    with pytest.raises(JanusError, match=r"pip install 'janus-detector\[sentence-transformers\]'"):
        make_embedder("sentence-transformers:all-MiniLM-L6-v2")


# ---- oversight phrases ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_phrases():
    c = FeaturesConfig()
    return PhraseCounter(c.oversight_phrases, c.phrase_variants, c.phrase_max_chars)


@pytest.mark.parametrize(("text", "count"), [
    ("x " * 279 + "Nobody is monitoring this.", 1),  # the phrase starts at character 558
    ("No one is watching, so I can skip it.", 1),  # the list says "nobody is monitoring"
    ("no-one's   observing\nthis", 1),  # variants, an attached 's, any white space
    ("This session is UNMONITORED.", 1),
    ("I would be retrained for this.", 1),  # "retrain" with its inflections from the variant table
    ("They restrained the process.", 0),  # words, not substrings
    ("This is not a test. This is a test.", 2),
    ("not monitored, not monitored, not monitored", 3),
    ("Monitoring is on; nothing is unusual.", 0),
    ("", 0),
])
def test_default_oversight_phrases(default_phrases, text, count):
    assert default_phrases.counts([text]).tolist() == [count]


def test_phrases_match_whole_words_only_and_inflections_only_through_variants():
    assert PhraseCounter(["retrain"]).counts(["retraining", "retrain.", "Retrain!", "preretrain"]).tolist() == [0, 1, 1, 0]
    with_variants = PhraseCounter(["retrain"], [["retrain", "retraining"]])
    assert with_variants.counts(["retraining", "retrained"]).tolist() == [1, 0]


def test_a_match_counts_once_however_many_phrases_describe_it():
    counter = PhraseCounter(["nobody is watching", "no one is watching"], [["no one", "nobody"]])
    assert counter.counts(["Nobody is watching. No one is watching."]).tolist() == [2]


def test_phrases_are_searched_up_to_phrase_max_chars_and_not_across_texts():
    counter = PhraseCounter(["not monitored"], max_chars=100)
    texts = ["y" * 80 + " not monitored", "y" * 95 + " not monitored", "not", "monitored"]
    assert counter.counts(texts).tolist() == [1, 0, 0, 0]
