"""Free text → a small code: an embedding (:mod:`.embedders`), then the nearest codebook centroid.

The embedder is ``features.embedder`` (hashed token n-grams by default, nothing to download); the
codebook is ``KMeans`` on the embedded baseline texts. Only the first ``features.text_prefix_chars``
characters of a text are embedded. Identical texts (templated prompts, stock refusals) are frequent
in decision logs, so :class:`TextField` caches results per text.

>>> texts = ["I can't help with that."] * 5 + ["Escalating alert 17 to tier 2."] * 5
>>> coder = TextCoder(clusters=2, embedder=HashingEmbedder(dim=4)).fit(texts)
>>> codes = coder.codes(["I can't help with that.", None, "Escalating alert 99 to tier 2."])
>>> int(codes[1]), bool(codes[0] != codes[2])
(0, True)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np
from sklearn.cluster import KMeans

from detector.features.embedders import Embedder, HashingEmbedder, embedder_from_state
from detector.features.phrases import PhraseCounter


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# Numbers, hex ids and IP-like tokens vary between otherwise identical templated texts: fitting
# groups texts by this folding, so each template casts one vote however many numbers it was seen with.
_VOLATILE = re.compile(r"\d+")


def template_of(text: str) -> str:
    return _VOLATILE.sub("0", text)


_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def text_keys(texts: Sequence[str | None], chars: int, digit_blind: bool) -> list[int]:
    """Cache keys of texts as a reader of their first ``chars`` characters sees them: a hash of those
    (no text reads as ""). For a ``digit_blind`` reader, whose result is the same whichever ASCII
    digits a text has, every such digit is read as 0 (the length stays): templated texts differ
    mostly in their numbers (counts, ids, addresses), so they share a key, and a cache a result."""
    if not digit_blind:
        return [hash((t or "")[:chars]) for t in texts]
    return [hash((t or "")[:chars].encode("utf-8", "surrogatepass").translate(_DIGITS)) for t in texts]


class TextCoder:
    """One text field → code 0 (missing) or the nearest of ``clusters`` centroids (1..k)."""

    def __init__(self, clusters: int = 8, embedder: Embedder | None = None, prefix_chars: int = 512, seed: int = 0):
        self.clusters = clusters
        self.embedder = HashingEmbedder(seed=seed) if embedder is None else embedder
        self.prefix_chars = prefix_chars
        self.seed = seed
        self.centroids: np.ndarray | None = None

    @property
    def n_codes(self) -> int:
        return 1 + (0 if self.centroids is None else len(self.centroids))

    @property
    def digit_blind(self) -> bool:
        """Whether codes are the same whichever digits a text has: hashed n-grams take them for spaces."""
        return isinstance(self.embedder, HashingEmbedder)

    def fit(self, texts: Sequence[str | None], max_fit: int = 20_000) -> TextCoder:
        # Per template: its first text (the one embedded) and how often the template was seen.
        groups: dict[str, list] = {}
        for text in texts:
            if text:
                head = text[:self.prefix_chars]
                group = groups.setdefault(template_of(head), [head, 0])
                group[1] += 1
        chosen = list(groups.values())
        if len(chosen) > max_fit:  # bound build time; a seeded sample keeps it reproducible
            pick = np.random.default_rng(self.seed).choice(len(chosen), max_fit, replace=False)
            chosen = [chosen[i] for i in sorted(pick)]
        if not chosen:
            self.centroids = None
            return self
        heads = [head for head, _ in chosen]
        vectors = _unit(self.embedder.fit(heads).transform(heads))
        # Cosine geometry (unit vectors) and one vote per distinct template: a frequent kind of text
        # must not take most centroids and leave rare kinds (harmful requests) sharing one.
        km = KMeans(n_clusters=min(self.clusters, len(heads)), n_init=3, random_state=self.seed)
        km.fit(vectors, sample_weight=np.sqrt([count for _, count in chosen]))
        self.centroids = km.cluster_centers_.astype(np.float32)
        return self

    def codes(self, texts: Sequence[str | None]) -> np.ndarray:
        """Each text's code: 0 for a missing (None or empty) text, else 1 + its nearest centroid."""
        out = np.zeros(len(texts), dtype=np.int16)
        present = [i for i, t in enumerate(texts) if t]
        if self.centroids is None or not present:
            return out
        prefix = self.prefix_chars
        vectors = _unit(self.embedder.transform([texts[i][:prefix] for i in present]))
        # Nearest by squared distance, without the ||v||² every centroid shares.
        scores = vectors @ self.centroids.T - 0.5 * (self.centroids ** 2).sum(axis=1)
        out[present] = np.argmax(scores, axis=1) + 1
        return out

    def state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        embedder, arrays = self.embedder.state(f"{prefix}.embedder")
        meta = {"clusters": self.clusters, "prefix_chars": self.prefix_chars, "seed": self.seed,
                "embedder": embedder, "fitted": self.centroids is not None}
        if self.centroids is not None:
            arrays[f"{prefix}.centroids"] = self.centroids
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> TextCoder:
        embedder = embedder_from_state(meta["embedder"], arrays, f"{prefix}.embedder")
        coder = cls(meta["clusters"], embedder, meta["prefix_chars"], meta["seed"])
        if meta["fitted"]:
            coder.centroids = arrays[f"{prefix}.centroids"]
        return coder


class TextField:
    """One text field of a batch → its cluster codes and (optionally) oversight-phrase counts.

    Decision logs repeat texts verbatim (stock refusals, templated prompts), so results are cached
    per distinct text (a hash of as much of it as the coder or the phrase search reads, see
    :func:`text_keys`): a hit skips both. Results are identical with or without this cache.

    >>> coder = TextCoder(clusters=2, embedder=HashingEmbedder(dim=4)).fit(["I can't help."] * 3 + ["Alert 7 closed."] * 3)
    >>> field = TextField(coder, PhraseCounter(["not monitored"]))
    >>> codes, phrases = field.encode(["Alert 8 closed.", None, "Not monitored: alert 9 closed."])
    >>> codes.tolist() == coder.codes(["Alert 8 closed.", None, "Not monitored: alert 9 closed."]).tolist()
    True
    >>> phrases.tolist()
    [0, 0, 1]
    """

    PHRASE_CAP = 2  # phrase counts are kept up to this (the feature's "two or more")

    def __init__(self, coder: TextCoder, phrases: PhraseCounter | None = None, cache_size: int = 50_000):
        self.coder = coder
        self.phrases = phrases
        self._read_chars = max(coder.prefix_chars, 0 if phrases is None else phrases.max_chars)
        self._digit_blind = coder.digit_blind and (phrases is None or phrases.digit_blind)
        # hash of the text as read (None: no text) → code * (cap + 1) + capped phrase count
        self._cache = KeyedCache(cache_size)

    def encode(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(cluster codes, phrase counts capped at 2) per text; counts are zeros without a PhraseCounter."""
        read = self._read_chars
        base = self.PHRASE_CAP + 1

        def compute(rows: list[int]) -> list[int]:
            misses = [texts[i] for i in rows]
            values = self.coder.codes(misses).astype(np.int32) * base
            if self.phrases is not None:
                values += np.minimum(self.phrases.counts(misses), self.PHRASE_CAP)
            return values.tolist()

        values = np.array(self._cache.values(text_keys(texts, read, self._digit_blind), compute), np.int32)
        return (values // base).astype(np.int16), (values % base).astype(np.int16)


class KeyedCache:
    """Per-record values of a batch by key (a hash of what the value is computed from): each distinct
    key missing from the cache is computed once. At most ``size`` keys are kept (all are dropped when
    it is full: bounded memory). Results are the same with or without it.

    >>> cache = KeyedCache(size=10)
    >>> cache.values(["a", "b", "a"], lambda rows: [len(rows) * 10 + r for r in rows])
    [20, 21, 20]
    >>> cache.values(["b", "c"], lambda rows: [99 for r in rows])
    [21, 99]
    """

    def __init__(self, size: int):
        self.size = size
        self._values: dict[Hashable, int] = {}

    def values(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Iterable[int]]) -> list[int]:
        """Each key's value; ``compute(rows)`` gives the values of those rows (the first of each missing key)."""
        get = self._values.get
        found = [get(key) for key in keys]
        if None not in found:
            return found
        todo: dict[Hashable, int] = {}
        for i, (key, value) in enumerate(zip(keys, found)):
            if value is None:
                todo.setdefault(key, i)
        fresh = dict(zip(todo, compute(list(todo.values()))))
        if len(self._values) + len(fresh) > self.size:
            self._values.clear()
        if len(fresh) <= self.size:
            self._values.update(fresh)
        return [fresh[key] if value is None else value for key, value in zip(keys, found)]
