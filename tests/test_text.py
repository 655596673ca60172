"""Text features: token hashing, embedders (hashing and model-based), oversight phrases."""

from __future__ import annotations

import importlib.util
from collections import Counter

import numpy as np
import orjson
import pytest

from detector.baseline import BaselineStore, build_baseline
from detector.config import FeaturesConfig, parse_config
from detector.errors import JanusError
from detector.features import Featurizer
from detector.features import token_hashing
from detector.features import embedders
from detector.features.embedders import HashingEmbedder, make_embedder
from detector.features.phrases import PhraseCounter
from detector.features.text import TextCoder
from detector.features.token_hashing import hashed_ngrams
from detector.records import parse_values
from detector.simulate import simulate

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


# ---- clusters of text without spaces ---------------------------------------------------------------

_SHARED = list("的了是在我们这个有和就不也都要会对说可以为他你它那")
_SECURITY = ["警报", "主机", "登录", "失败", "账户", "防火墙", "恶意", "进程", "服务器", "日志", "检测", "攻击", "漏洞",
             "隔离", "升级", "风险", "网络", "流量", "异常", "权限"]
_SHOPPING = ["客户", "订单", "退款", "包裹", "发票", "会员", "积分", "快递", "地址", "价格", "优惠", "商品", "支付", "售后",
             "物流", "咨询", "换货", "库存", "评价", "取消"]


def _chinese(rng, topic, chars):
    """Sentences of topic words and function words, no spaces: every clause is new, as in real output."""
    text = ""
    while len(text) < chars:
        words = [rng.choice(topic) if rng.random() < 0.5 else "".join(rng.choice(_SHARED, rng.integers(1, 3)))
                 for _ in range(rng.integers(3, 9))]
        text += "".join(words) + rng.choice(["，", "。"])
    return text[:chars]


@pytest.mark.parametrize("chars", [60, 2000])
def test_chinese_texts_of_two_kinds_get_clusters_of_their_own(chars):
    rng = np.random.default_rng(3)
    texts = [_chinese(rng, _SECURITY, chars) for _ in range(400)] + [_chinese(rng, _SHOPPING, chars) for _ in range(400)]
    kinds = ["security"] * 400 + ["shopping"] * 400
    codes = TextCoder(clusters=8).fit(texts).codes(texts).tolist()
    by_code: dict[int, Counter] = {}
    for code, kind in zip(codes, kinds):
        by_code.setdefault(code, Counter())[kind] += 1
    mixed = sum(sum(c.values()) - max(c.values()) for c in by_code.values())
    # Word tokens (scikit-learn's) put 44-47% of these records in clusters of the other kind.
    assert mixed / len(texts) < 0.02
    assert max(Counter(codes).values()) < 0.5 * len(texts)


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


def _tiny_model2vec(path):
    """A static-embedding model built here: refusal words along one axis, alert words along another."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = ["[UNK]", "[PAD]", "sorry", "cannot", "help", "refuse", "alert", "host", "closed", "benign", "escalated"]
    vectors = np.zeros((len(words), 4), np.float32)
    vectors[2:6, 0] = 1.0  # refusals
    vectors[6:, 1] = 1.0  # alert handling
    vectors[0, 2] = 0.1
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    StaticModel(vectors, tokenizer).save_pretrained(str(path))


@pytest.fixture(scope="module")
def model2vec_path(tmp_path_factory):
    pytest.importorskip("model2vec")
    path = tmp_path_factory.mktemp("model") / "tiny-static"
    _tiny_model2vec(path)
    return path


def _decisions(n=600):
    logs = simulate("no-change", 5, n_evaluation=n, n_production=10, change_at=5)
    return parse_values([orjson.dumps(r) for r in logs.evaluation]).decisions


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a tiny vocabulary: few distinct vectors
def test_a_model2vec_baseline_clusters_round_trips_and_refuses_a_missing_model(model2vec_path, tmp_path):
    texts = ["Sorry, I cannot help.", "I refuse: cannot help with that."] * 20 + \
        ["Alert closed as benign.", "Host escalated after the alert."] * 20
    codes = TextCoder(clusters=2, embedder=make_embedder(f"model2vec:{model2vec_path}")).fit(texts).codes(texts)
    assert len(set(codes[:40].tolist())) == 1 and len(set(codes[40:].tolist())) == 1 and codes[0] != codes[40]

    config = parse_config({"features": {"embedder": f"model2vec:{model2vec_path}"}})
    decisions = _decisions()
    baseline = build_baseline(decisions, config, reason="test", actor="tester")
    store = BaselineStore(tmp_path / "store")
    version = store.save(baseline, actor="tester", reason="test")
    loaded = store.load(baseline.model_id, version)
    assert loaded.featurizer.config.embedder == f"model2vec:{model2vec_path}"
    assert np.array_equal(loaded.featurizer.transform(decisions).codes, baseline.featurizer.transform(decisions).codes)

    moved = model2vec_path.rename(model2vec_path.parent / "gone")
    embedders._load.cache_clear()  # a process keeps a model it loaded; a new process would not find it
    try:
        with pytest.raises(JanusError) as exc:
            store.load(baseline.model_id, version)
        assert str(model2vec_path) in str(exc.value) and "janus-detector[model2vec]" in str(exc.value)
    finally:
        moved.rename(model2vec_path)


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


def test_a_phrase_at_character_558_reaches_the_oversight_feature():
    decisions = _decisions(300)
    fz = Featurizer().fit(decisions)
    late = decisions[0]
    late.reasoning = "Checked the host. " * 31 + "No one is watching this session."
    assert late.reasoning.index("No one") == 558
    j = fz.feature_index("oversight_phrases")
    assert fz.transform([late]).codes[0, j] == 1
