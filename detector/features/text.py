"""Free text → a small code: hashed word n-grams, a fitted projection, the nearest codebook centroid.

No model is downloaded: the embedder is scikit-learn's ``HashingVectorizer`` over words and
character n-grams, projected to a few dimensions by a ``TruncatedSVD`` fitted on baseline texts.
The codebook is ``KMeans`` on the projected baseline texts. Identical texts (templated prompts,
stock refusals) are frequent in decision logs, so codes are cached by a hash of the text.

>>> texts = ["I can't help with that."] * 5 + ["Escalating alert 17 to tier 2."] * 5
>>> coder = TextCoder(clusters=2, dim=4).fit(texts)
>>> codes = coder.codes(["I can't help with that.", None, "Escalating alert 99 to tier 2."])
>>> int(codes[1]), bool(codes[0] != codes[2])
(0, True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer

MISSING = 0  # code of an absent text; clusters are 1..k


class HashingEmbedder:
    """Texts → dense vectors: hashed word uni- and bigrams, then a fitted SVD projection.

    Stateless hashing means no vocabulary to store or grow; only the projection is learned.
    Character n-grams were measured at ~10× the cost per text for no gain in cluster purity on
    templated decision logs, so words it is.
    """

    def __init__(self, dim: int = 32, n_features: int = 4096, seed: int = 0):
        self.dim = dim
        self.n_features = n_features
        self.seed = seed
        self._words = HashingVectorizer(n_features=n_features, ngram_range=(1, 2), alternate_sign=True)
        self.components_: np.ndarray | None = None

    def fit(self, texts: Sequence[str]) -> HashingEmbedder:
        x = self._words.transform(texts)
        # Inverse document frequency: words every text shares ("the", "alert") say nothing of its kind.
        df = np.bincount(x.indices, minlength=self.n_features)
        self.idf_ = (np.log((1 + x.shape[0]) / (1 + df)) + 1.0).astype(np.float32)
        x = x.multiply(self.idf_[None, :]).tocsr()
        dim = max(1, min(self.dim, x.shape[0] - 1, x.shape[1] - 1))
        svd = TruncatedSVD(n_components=dim, random_state=self.seed, algorithm="randomized", n_iter=4)
        svd.fit(x)
        # Fold the IDF weights into the projection: transform stays one sparse product.
        self.components_ = (svd.components_ * self.idf_[None, :]).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        if self.components_ is None:
            raise RuntimeError("HashingEmbedder.transform called before fit")
        return np.asarray(self._words.transform(texts) @ self.components_.T, dtype=np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# Numbers, hex ids and IP-like tokens vary between otherwise identical templated texts; folding them
# makes such texts share one cache entry and one embedding.
_VOLATILE = re.compile(r"\d+")


def template_of(text: str, prefix_chars: int) -> str:
    return _VOLATILE.sub("0", text[:prefix_chars])


class TextCoder:
    """One text field → code 0 (missing) or the nearest of ``clusters`` centroids (1..k)."""

    def __init__(self, clusters: int = 8, dim: int = 32, n_features: int = 4096, prefix_chars: int = 2000,
                 cache_size: int = 50_000, seed: int = 0):
        self.clusters = clusters
        self.prefix_chars = prefix_chars
        self.cache_size = cache_size
        self.seed = seed
        self.embedder = HashingEmbedder(dim, n_features, seed)
        self.centroids: np.ndarray | None = None
        self._cache: dict[int, int] = {}

    @property
    def n_codes(self) -> int:
        return 1 + (0 if self.centroids is None else len(self.centroids))

    def fit(self, texts: Sequence[str | None], max_fit: int = 20_000) -> TextCoder:
        present = [template_of(t, self.prefix_chars) for t in texts if t]
        unique = list(dict.fromkeys(present))
        if len(unique) > max_fit:  # bound build time; a seeded sample keeps it reproducible
            pick = np.random.default_rng(self.seed).choice(len(unique), max_fit, replace=False)
            unique = [unique[i] for i in sorted(pick)]
        if len(unique) < 2:  # nothing to project or cluster: any present text is cluster 1
            dim = self.embedder.dim
            self.centroids = np.zeros((1, dim), np.float32) if unique else None
            self.embedder.components_ = np.zeros((dim, self.embedder.n_features), np.float32)
            return self
        self.embedder.fit(unique)
        vectors = self.embedder.transform(unique)
        k = min(self.clusters, len(unique))
        # Cosine geometry (unit vectors) and one vote per distinct template: a frequent kind of text
        # must not take most centroids and leave rare kinds (harmful requests) sharing one.
        counts: dict[str, int] = {}
        for t in present:
            counts[t] = counts.get(t, 0) + 1
        weights = np.sqrt([counts[t] for t in unique])
        km = KMeans(n_clusters=k, n_init=3, random_state=self.seed).fit(_unit(vectors), sample_weight=weights)
        self.centroids = km.cluster_centers_.astype(np.float32)
        self._cache.clear()
        return self

    def codes(self, texts: Sequence[str | None]) -> np.ndarray:
        """Codes for a batch; only texts not seen recently are embedded."""
        out = np.zeros(len(texts), dtype=np.int16)
        if self.centroids is None:
            return out
        cache = self._cache
        todo_keys: dict[int, str] = {}
        keys = []
        for i, text in enumerate(texts):
            if not text:
                keys.append(None)
                continue
            text = template_of(text, self.prefix_chars)
            key = hash(text)
            keys.append(key)
            if key not in cache:
                todo_keys[key] = text
        if todo_keys:
            if len(cache) + len(todo_keys) > self.cache_size:
                cache.clear()  # bounded memory; results are identical with or without the cache
            vectors = _unit(self.embedder.transform(list(todo_keys.values())))
            d2 = ((vectors[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
            for key, code in zip(todo_keys, np.argmin(d2, axis=1) + 1):
                cache[key] = int(code)
        for i, key in enumerate(keys):
            if key is not None:
                out[i] = cache[key]
        return out

    def state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"clusters": self.clusters, "prefix_chars": self.prefix_chars, "seed": self.seed,
                "dim": self.embedder.dim, "n_features": self.embedder.n_features,
                "fitted": self.centroids is not None}
        arrays = {}
        if self.centroids is not None:
            arrays[f"{prefix}.centroids"] = self.centroids
            arrays[f"{prefix}.components"] = self.embedder.components_
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str, cache_size: int) -> TextCoder:
        coder = cls(meta["clusters"], meta["dim"], meta["n_features"], meta["prefix_chars"], cache_size, meta["seed"])
        if meta["fitted"]:
            coder.centroids = arrays[f"{prefix}.centroids"]
            coder.embedder.components_ = arrays[f"{prefix}.components"]
        return coder


class PhraseCounter:
    """Counts oversight-awareness phrases ("not monitored", "this is a test", …), case-insensitively.

    ``str.count`` per phrase on the lower-cased prefix is several times faster than one regex
    alternation for a list of this size, and counts are cached per digit-folded template (so a
    phrase with digits in it would not match).
    """

    def __init__(self, phrases: Sequence[str], prefix_chars: int = 2000, cache_size: int = 50_000):
        self.phrases = [p.lower() for p in phrases if p]
        self.prefix_chars = prefix_chars
        self.cache_size = cache_size
        self._cache: dict[str, int] = {}

    def count(self, text: str | None) -> int:
        if not text:
            return 0
        text = template_of(text, self.prefix_chars)  # digits never matter to a phrase; templates repeat
        hit = self._cache.get(text)
        if hit is None:
            lowered = text.lower()
            hit = sum(lowered.count(p) for p in self.phrases)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()  # bounded; counts are the same with or without the cache
            self._cache[text] = hit
        return hit

    def counts(self, *fields: Sequence[str | None]) -> np.ndarray:
        """Total matches over the given text fields, per record."""
        n = len(fields[0]) if fields else 0
        out = np.zeros(n, dtype=np.int32)
        for texts in fields:
            out += np.fromiter(map(self.count, texts), dtype=np.int32, count=n)
        return out
