"""Text features: token hashing, embedders (hashing and model-based), oversight phrases."""

from __future__ import annotations

import numpy as np

from detector.features import token_hashing
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
