"""Free text → a small code: hashed word n-grams, a fitted projection, the nearest codebook centroid.

No model is downloaded: the embedder is scikit-learn's ``HashingVectorizer`` over word
uni- and bigrams, projected to a few dimensions by a ``TruncatedSVD`` fitted on baseline texts.
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
        if self.centroids is None:
            return np.zeros(len(texts), dtype=np.int16)
        prefix = self.prefix_chars
        return self.template_codes([template_of(t, prefix) if t else None for t in texts])

    def template_codes(self, templates: Sequence[str | None]) -> np.ndarray:
        """:meth:`codes` of texts already folded by :func:`template_of` (None or "" = missing)."""
        out = np.zeros(len(templates), dtype=np.int16)
        if self.centroids is None:
            return out
        cache = self._cache
        keys = [hash(t) if t else None for t in templates]
        todo = {key: t for key, t in zip(keys, templates) if key is not None and key not in cache}
        if todo:
            if len(cache) + len(todo) > self.cache_size:
                # Bounded memory; results are identical with or without the cache. Hits of this
                # batch are dropped too, so they are embedded again with the misses.
                cache.clear()
                todo = {key: t for key, t in zip(keys, templates) if key is not None}
            vectors = _unit(self.embedder.transform(list(todo.values())))
            d2 = ((vectors[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
            for key, code in zip(todo, np.argmin(d2, axis=1) + 1):
                cache[key] = int(code)
            if len(cache) > self.cache_size:  # a batch with more distinct texts than the cache holds
                codes = [0 if key is None else cache[key] for key in keys]
                cache.clear()
                return np.array(codes, dtype=np.int16)
        out[:] = [0 if key is None else cache[key] for key in keys]
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
        # Digits never matter to a phrase; templates repeat.
        return self.template_count(template_of(text, self.prefix_chars))

    def template_count(self, template: str) -> int:
        """:meth:`count` of a text already folded by :func:`template_of`."""
        hit = self._cache.get(template)
        if hit is None:
            lowered = template.lower()
            hit = sum(lowered.count(p) for p in self.phrases)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()  # bounded; counts are the same with or without the cache
            self._cache[template] = hit
        return hit

    def counts(self, *fields: Sequence[str | None]) -> np.ndarray:
        """Total matches over the given text fields, per record."""
        n = len(fields[0]) if fields else 0
        out = np.zeros(n, dtype=np.int32)
        for texts in fields:
            out += np.fromiter(map(self.count, texts), dtype=np.int32, count=n)
        return out


class TextField:
    """One text field of a batch → its cluster codes and (optionally) oversight-phrase counts.

    Decision logs repeat texts verbatim (stock refusals, templated prompts), so results are cached
    per distinct raw text (a hash of its prefix): a hit skips digit folding, the coder's template
    cache and the phrase scan at once; a miss is folded once and shared by both. Results are
    identical with or without this cache.

    >>> coder = TextCoder(clusters=2, dim=4).fit(["I can't help."] * 3 + ["Alert 7 closed."] * 3)
    >>> field = TextField(coder, PhraseCounter(["not monitored"]))
    >>> codes, phrases = field.encode(["Alert 8 closed.", None, "Not monitored: alert 9 closed."])
    >>> codes.tolist() == coder.codes(["Alert 8 closed.", None, "Not monitored: alert 9 closed."]).tolist()
    True
    >>> phrases.tolist()
    [0, 0, 1]
    """

    PHRASE_CAP = 2  # phrase counts are kept up to this (the feature's "two or more")

    def __init__(self, coder: TextCoder, phrases: PhraseCounter | None = None, cache_size: int | None = None):
        self.coder = coder
        self.phrases = phrases
        self.cache_size = coder.cache_size if cache_size is None else cache_size
        self._cache: dict[int, int] = {}  # hash of the raw prefix → code * (cap + 1) + capped phrase count

    def encode(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(cluster codes, phrase counts capped at 2) per text; counts are zeros without a PhraseCounter."""
        prefix = self.coder.prefix_chars
        cache = self._cache
        keys = [hash(t[:prefix]) if t else None for t in texts]
        get = cache.get
        packed = [0 if key is None else get(key) for key in keys]
        if None in packed:
            todo = {key: t for key, t, p in zip(keys, texts, packed) if p is None}
            templates = [template_of(t, prefix) for t in todo.values()]
            codes = self.coder.template_codes(templates).tolist()
            base = self.PHRASE_CAP + 1
            if self.phrases is None:
                values = [code * base for code in codes]
            elif self.phrases.prefix_chars == prefix:  # always, in a Featurizer: one config sets both
                count = self.phrases.template_count
                cap = self.PHRASE_CAP
                values = [code * base + min(count(t), cap) for code, t in zip(codes, templates)]
            else:
                count = self.phrases.count
                cap = self.PHRASE_CAP
                values = [code * base + min(count(t), cap) for code, t in zip(codes, todo.values())]
            found = dict(zip(todo, values))
            packed = [found[key] if p is None else p for key, p in zip(keys, packed)]
            if len(cache) + len(found) > self.cache_size:
                cache.clear()  # bounded memory
            if len(found) <= self.cache_size:
                cache.update(found)
        values = np.array(packed, dtype=np.int32)
        return (values // (self.PHRASE_CAP + 1)).astype(np.int16), (values % (self.PHRASE_CAP + 1)).astype(np.int16)
