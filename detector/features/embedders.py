"""Text embedders: texts → float32 vectors, chosen by ``features.embedder``, persisted in baselines.

* ``hashing`` (the default; nothing to download): hashed token uni- and bigrams
  (:mod:`.token_hashing`), weighted by inverse document frequency and projected to
  ``features.embedding_dim`` dimensions by a truncated SVD fitted on the baseline's texts.
* ``model2vec:<local path or hub name>``: a model2vec static embedding model
  (``pip install 'janus-detector[model2vec]'``; numpy only, no torch).
* ``sentence-transformers:<name or path>``: a sentence-transformers model
  (``pip install 'janus-detector[sentence-transformers]'``; pulls torch).

Every embedder has ``fit(texts)``, ``transform(texts)`` → ``(n, dim)`` float32, and
``state(prefix)`` → (JSON-ready meta, arrays) read back by :func:`embedder_from_state`. The
hashing embedder stores its projection; a model-based one stores only its model's name and
dimension, and a baseline built with it refuses to load where that model cannot be loaded (a
different model would give different codes).

>>> texts = ["Closing alert 7 as benign.", "Closing alert 8 as a duplicate.", "I can't help with that."]
>>> embedder = make_embedder("hashing", dim=4).fit(texts)
>>> vectors = embedder.transform(texts)
>>> vectors.shape, vectors.dtype  # three texts span at most three dimensions
((3, 3), dtype('float32'))
>>> again = embedder_from_state(*embedder.state("e"), "e")
>>> bool(np.array_equal(again.transform(texts), vectors))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from detector.errors import JanusError
from detector.features.token_hashing import hashed_ngrams

HASHING = "hashing"
MODEL2VEC = "model2vec"
SENTENCE_TRANSFORMERS = "sentence-transformers"
MODEL_KINDS = (MODEL2VEC, SENTENCE_TRANSFORMERS)


class Embedder(Protocol):
    kind: str
    dim: int

    def fit(self, texts: Sequence[str]) -> Embedder: ...

    def transform(self, texts: Sequence[str]) -> np.ndarray: ...

    def state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]: ...


def make_embedder(spec: str = HASHING, *, dim: int = 32, n_features: int = 4096, seed: int = 0) -> Embedder:
    """The embedder a ``features.embedder`` value names; ``dim`` and ``n_features`` are the hashing one's."""
    kind, _, model = spec.partition(":")
    if spec == HASHING:
        return HashingEmbedder(dim, n_features, seed)
    if kind == MODEL2VEC and model:
        return Model2VecEmbedder(model)
    if kind == SENTENCE_TRANSFORMERS and model:
        return SentenceTransformerEmbedder(model)
    raise JanusError(f"features.embedder: {spec!r} is not \"hashing\", \"model2vec:<path or name>\" "
                     "or \"sentence-transformers:<name or path>\"")


def embedder_from_state(meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> Embedder:
    if meta["kind"] == HASHING:
        return HashingEmbedder.from_state(meta, arrays, prefix)
    embedder = make_embedder(f"{meta['kind']}:{meta['model']}")
    if embedder.dim != meta["dim"]:
        raise JanusError(f"{meta['kind']} model {meta['model']!r} gives {embedder.dim} dimensions, the baseline was "
                         f"built with {meta['dim']}: a different model; rebuild the baseline or restore the model")
    return embedder


class HashingEmbedder:
    """Hashed token uni- and bigrams → IDF weights → a truncated SVD projection fitted on baseline texts.

    Stateless hashing means no vocabulary to store or grow; only the projection (with the IDF
    weights folded in) is learned.
    """

    kind = HASHING

    def __init__(self, dim: int = 32, n_features: int = 4096, seed: int = 0):
        self.dim = dim
        self.n_features = n_features
        self.seed = seed
        # Hashed column → vector; up to ``dim`` wide (fewer texts than that span fewer dimensions).
        self.projection = np.zeros((n_features, dim), np.float32)

    def fit(self, texts: Sequence[str]) -> HashingEmbedder:
        x = hashed_ngrams(texts, self.n_features)
        x.sum_duplicates()
        if x.shape[0] < 2:  # nothing to learn a projection from: every text maps to the origin
            self.projection = np.zeros((self.n_features, 1), np.float32)
            return self
        dim = min(self.dim, x.shape[0], self.n_features - 1)  # n texts span at most n dimensions
        # Inverse document frequency: tokens every text shares ("the", "alert") say nothing of its kind.
        df = np.bincount(x.indices, minlength=self.n_features)
        idf = (np.log((1 + x.shape[0]) / (1 + df)) + 1.0).astype(np.float32)
        weighted = normalize(x).multiply(idf[None, :]).tocsr()
        svd = TruncatedSVD(n_components=dim, random_state=self.seed, algorithm="randomized", n_iter=4).fit(weighted)
        # IDF folded into the projection: transform stays one sparse product (rows need no
        # normalising either: only the direction of a vector counts downstream).
        self.projection = np.ascontiguousarray((svd.components_ * idf[None, :]).T, dtype=np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(hashed_ngrams(texts, self.n_features) @ self.projection, dtype=np.float32)

    def state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"kind": HASHING, "dim": self.dim, "n_features": self.n_features, "seed": self.seed}
        return meta, {f"{prefix}.projection": self.projection}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> HashingEmbedder:
        embedder = cls(meta["dim"], meta["n_features"], meta["seed"])
        embedder.projection = np.ascontiguousarray(arrays[f"{prefix}.projection"], dtype=np.float32)
        return embedder


class _PretrainedEmbedder:
    """A pretrained model: nothing to fit; the model's name (or path) is its whole state."""

    kind = ""

    def __init__(self, model: str):
        self.model = model
        self._encoder = _load(self.kind, model)
        self.dim = int(self._encoder.dim)

    def fit(self, texts: Sequence[str]) -> _PretrainedEmbedder:
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._encoder.encode(list(texts)), dtype=np.float32)

    def state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        return {"kind": self.kind, "model": self.model, "dim": self.dim}, {}


class Model2VecEmbedder(_PretrainedEmbedder):
    kind = MODEL2VEC


class SentenceTransformerEmbedder(_PretrainedEmbedder):
    kind = SENTENCE_TRANSFORMERS


class _SentenceTransformer:
    """sentence-transformers' model with the two members the embedder uses."""

    def __init__(self, model):
        self._model = model
        self.dim = model.get_sentence_embedding_dimension()

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, convert_to_numpy=True, show_progress_bar=False)


@lru_cache(maxsize=4)  # output, reasoning and input coders share one loaded model
def _load(kind: str, model: str):
    extra = f"pip install 'janus-detector[{kind}]'"
    try:
        if kind == MODEL2VEC:
            from model2vec import StaticModel
        else:
            from sentence_transformers import SentenceTransformer
    except ImportError:
        raise JanusError(f"features.embedder {kind}:{model} needs the {kind} package: {extra}") from None
    try:
        if kind == MODEL2VEC:
            # force_download=False: a hub model already in the local cache is used as it is.
            return StaticModel.from_pretrained(model, force_download=False)
        return _SentenceTransformer(SentenceTransformer(model))
    except Exception as exc:  # missing folder, unknown hub name, no network, corrupt files: all say the same
        raise JanusError(f"{kind} model {model!r} cannot be loaded ({type(exc).__name__}: {exc}); it must be a "
                         f"local model folder or a hub name that can be downloaded ({kind} comes with {extra})") from None
