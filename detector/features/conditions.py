"""Conditions: the strata of inputs that *predict* each behaviour, not the inputs' lexical topic.

Behaviour is judged given the input: the null for a production decision is what the model did
in evaluation on inputs of the same condition. Real requests come wrapped in greetings, pasted
context and sign-offs, so clustering the input text groups requests by their boilerplate. Here a
condition is a stratum of the *predicted behaviour*: per behaviour feature, a regularised
logistic regression on hashed token uni- and bigrams of the input (:mod:`.token_hashing`: words,
and characters of scripts written without spaces) estimates P(code | input); the records are
then grouped by their predicted behaviour profile, all features at once, into strata that lose
as little of the predictions as they can: Σ KL(predicted profile ‖ its stratum's mean profile)
(a Bregman k-means, :func:`kl_strata`), because that divergence is what a record placed in the
wrong stratum costs a detector, in nats of evidence per record against a null that holds. The
sum is the crowd's, so the records still far from their stratum get strata of their own in a
second pass: a rare kind with a distinct rate (30 complaints in 20,000 requests, refused 30%
where the rest are refused 2%) left inside a crowd's stratum would make a shift of traffic
towards it look like a change of behaviour. Words that do not predict behaviour (greetings,
order numbers) get no weight, so they neither split nor merge conditions.

Cross-fitting keeps the strata honest. Each record belongs to one of ``folds`` folds by a hash
of its decision id; the model of fold k is fitted on the other folds, and places the records of
fold k, evaluation and production alike. An evaluation record is therefore never placed by a
model that saw it, and a production record is placed by the same rule as the evaluation records
of its fold, so under no change the condition of a production record has the same distribution
as in evaluation, and the baseline counts per stratum are unbiased for production.

An input unlike every evaluation input (most of its words never seen in evaluation, beyond what
evaluation inputs themselves show out of fold) is *novel*: stratum 0, whose behaviour is not
scored against anyone's null; the input-mix features report it instead. So is an *unsettled*
input: one that the folds' models place in strata more than ``unsettled_nats`` apart (the few
evaluation records like it decided its stratum), or whose predicted profile is that far from its
own stratum (too few records like it for a stratum of their own). Its behaviour has no
trustworthy null either: a shift of traffic towards it would be scored as evidence against a null
that holds.

User-defined conditions (``features.condition_attributes``, e.g. an ``intent`` attribute set by
a router) replace the fitted strata: each value is its own condition.

>>> import numpy as np
>>> texts = [f"Hello! {'refund please' if i % 3 == 0 else 'where is my parcel'} thanks" for i in range(300)]
>>> targets = {"refused": np.array([2 if i % 3 == 0 else 1 for i in range(300)])}
>>> model = ConditionModel(strata=4, folds=3).fit(texts, [f"d{i}" for i in range(300)], targets, {"refused": 1})
>>> s = model.strata(["Hello! refund please", "Hello! where is my parcel thanks"], ["x1", "x2"])
>>> bool(s[0] != s[1]) and bool((s > 0).all())
True
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sklearn.linear_model import LogisticRegression

from detector.features.token_hashing import hashed_ngrams

NOVEL = 0  # condition code of a novel input
_PARTS = ("coef", "intercept", "classes")
_HASH_FEATURES = 2**18


def fold_of(decision_ids: Sequence[str], folds: int) -> np.ndarray:
    """The cross-fitting fold of each record: a stable hash of its decision id."""
    return np.fromiter((zlib.crc32(d.encode("utf-8", "surrogatepass")) % folds for d in decision_ids),
                       dtype=np.int64, count=len(decision_ids))


class ConditionModel:
    """Per behaviour feature, cross-fitted strata of P(code | input text).

    Configured in ``__init__``; :meth:`fit` learns from evaluation inputs and each feature's codes;
    :meth:`strata` gives each record's stratum per feature (0 = novel input).
    """

    def __init__(self, strata: int = 8, folds: int = 3, vocabulary: int = 8192, min_df: int = 2,
                 regularisation: float = 0.1, min_stratum: int = 15, novelty_rate: float = 0.001,
                 prefix_chars: int = 4000, seed: int = 0, unsettled_nats: float | None = 1.0):
        self.n_strata = strata
        self.folds = folds
        self.vocabulary_size = vocabulary
        self.min_df = min_df
        self.regularisation = regularisation
        self.min_stratum = min_stratum
        self.novelty_rate = novelty_rate
        self.prefix_chars = prefix_chars
        self.seed = seed
        # Folds placing an input in strata further apart than this, or its profile this far from its
        # stratum: evaluation has not settled its null (None: never; baselines built before the
        # rule keep their novel_input rate that way).
        self.unsettled_nats = unsettled_nats
        self.columns = np.zeros(0, dtype=np.int64)  # hashed n-gram ids kept, sorted
        self.fold_df = np.zeros((folds, 0), dtype=np.int32)  # document frequency of each kept column per fold
        self.novel_threshold = 1.0  # share of unknown n-grams above which an input is novel
        # feature → (coef (folds, V, C), intercept (folds, C), classes (K,))
        self.models: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.centroids = np.zeros((0, 0), dtype=np.float32)  # strata of the predicted profile
        self._strata_apart = _apart(self.centroids)  # divergence between every two strata
        self.descriptions: list[str] = []  # per stratum code, the words that mark its inputs
        self._stack_models()

    # ---- fitting -----------------------------------------------------------------------------
    def _hash(self, texts: Sequence[str | None]) -> sparse.csr_matrix:
        """Presence (1) of each hashed token uni- and bigram of each text's prefix."""
        prefix = self.prefix_chars
        hashed = hashed_ngrams([(t or "")[:prefix] for t in texts], _HASH_FEATURES, signed=False)
        hashed.sum_duplicates()
        hashed.data[:] = 1.0
        return hashed

    def _restrict(self, hashed: sparse.csr_matrix) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Columns of the kept vocabulary, and each row's count of n-grams outside it."""
        total = np.diff(hashed.indptr)
        x = hashed[:, self.columns].tocsr()
        return x, total - np.diff(x.indptr)

    def fit(self, texts: Sequence[str | None], decision_ids: Sequence[str], targets: dict[str, np.ndarray],
            first_present: dict[str, int]) -> ConditionModel:
        """``targets``: per feature, each record's code; codes below ``first_present[name]`` (missing,
        unseen) are not behaviour and are left out of that feature's model."""
        hashed = self._hash(texts)
        fold = fold_of(decision_ids, self.folds)
        df = np.asarray((hashed > 0).sum(axis=0)).ravel()
        keep = np.flatnonzero(df >= self.min_df)
        if len(keep) > self.vocabulary_size:
            keep = np.sort(keep[np.argsort(-df[keep], kind="stable")[: self.vocabulary_size]])
        self.columns = keep.astype(np.int64)
        x, _ = self._restrict(hashed)
        self.fold_df = np.stack([np.asarray((x[fold == k] > 0).sum(axis=0)).ravel() for k in range(self.folds)]
                                ).astype(np.int32)
        unknown = self._unknown_share(hashed, fold)
        self.novel_threshold = float(min(np.quantile(unknown, 1.0 - self.novelty_rate) + 1e-9, 1.0)) \
            if len(unknown) else 1.0
        novel = unknown > self.novel_threshold
        self.models, self.descriptions = {}, []
        for name, codes in targets.items():
            fitted = self._fit_feature(x, fold, codes, first_present[name], novel)
            if fitted is not None:
                self.models[name] = fitted
        self._stack_models()
        self.centroids = np.zeros((0, 0), dtype=np.float32)
        rows = np.flatnonzero(~novel)
        if self.models and len(rows) >= 2 * self.min_stratum:
            z = self._profile(x[rows], fold[rows])
            k = int(min(self.n_strata, len(rows) // self.min_stratum, len(np.unique(z.round(4), axis=0))))
            self.centroids = kl_strata(z, max(k, 1), self.min_stratum, self.seed).astype(np.float32)
        self._strata_apart = _apart(self.centroids)
        return self

    def _stack_models(self) -> None:
        """Every fold's models' coefficients side by side (V, folds × Σ width): one sparse product
        scores all the features under every fold's models (a product per feature cost ~6× more, in
        overhead, per batch)."""
        parts = list(self.models.values())
        self._widths = [coef.shape[2] for coef, _, _ in parts]
        self._weights = (np.ascontiguousarray(np.concatenate([coef[k] for k in range(self.folds) for coef, _, _ in parts],
                                                             axis=1)) if parts else None)
        self._intercepts = (np.concatenate([intercept for _, intercept, _ in parts], axis=1) if parts
                            else np.zeros((self.folds, 0), np.float32))

    def _scores(self, x: sparse.csr_matrix) -> np.ndarray:
        """(n, folds, Σ width): each record's scores under every fold's models."""
        scores = np.asarray(x @ self._weights).reshape(x.shape[0], self.folds, -1)
        return (scores + self._intercepts[None]).astype(np.float64)

    def _profile(self, x: sparse.csr_matrix, fold: np.ndarray) -> np.ndarray:
        """Every modelled feature's predicted distribution, side by side; each record scored by its
        own fold's models."""
        return self._probabilities(self._scores(x)[np.arange(x.shape[0]), fold])

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Scores (rows, Σ width) → each modelled feature's predicted distribution, side by side."""
        out = []
        for part in np.split(scores, np.cumsum(self._widths)[:-1], axis=1):
            if part.shape[1] == 1:
                p = 1.0 / (1.0 + np.exp(-part[:, 0]))
                out.append(np.column_stack([1.0 - p, p]))
                continue
            part -= part.max(axis=1, keepdims=True)
            e = np.exp(part)
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.hstack(out)

    def _unknown_share(self, hashed: sparse.csr_matrix, fold: np.ndarray) -> np.ndarray:
        """Per record, the share of its n-grams that its fold's model has not seen min_df times."""
        x, outside = self._restrict(hashed)
        total = np.maximum(np.diff(hashed.indptr), 1)
        known_df = self.fold_df.sum(axis=0)[None, :] - self.fold_df  # (folds, V): df outside each fold
        unknown = outside.astype(np.float64)
        for k in range(self.folds):
            rows = np.flatnonzero(fold == k)
            if len(rows):
                sub = x[rows]
                rare = (known_df[k] < self.min_df).astype(np.float32)
                unknown[rows] += sub @ rare
        return unknown / total

    def _fit_feature(self, x: sparse.csr_matrix, fold: np.ndarray, codes: np.ndarray, first: int,
                     novel: np.ndarray):
        rows = np.flatnonzero((codes >= first) & ~novel)
        if x.shape[1] == 0 or len(rows) < 2 * self.min_stratum:
            return None
        y = codes[rows].astype(np.int64)
        # Codes too rare to learn from share one class: the strata need P(code | input) only roughly.
        values, counts = np.unique(y, return_counts=True)
        rare = values[counts < 5 * self.folds]
        if len(rare):
            y[np.isin(y, rare)] = rare[0]
        labels = np.unique(y)
        if len(labels) < 2:
            return None
        width = 1 if len(labels) == 2 else len(labels)
        coef = np.zeros((self.folds, x.shape[1], width), dtype=np.float32)
        intercept = np.full((self.folds, width), -30.0, dtype=np.float32)  # a class a fold never saw: ~0
        for k in range(self.folds):
            train = fold[rows] != k
            classes = np.unique(y[train])
            if len(classes) < 2:
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                lr = LogisticRegression(C=self.regularisation, max_iter=200, tol=1e-3).fit(x[rows[train]], y[train])
            if width == 1:
                coef[k, :, 0], intercept[k, 0] = lr.coef_[0], lr.intercept_[0]
            elif len(classes) == 2:  # a multi-class feature with two classes in this fold
                where = np.searchsorted(labels, classes)
                coef[k, :, where[1]], intercept[k, where[1]], intercept[k, where[0]] = lr.coef_[0], lr.intercept_[0], 0.0
            else:
                where = np.searchsorted(labels, classes)
                coef[k][:, where], intercept[k, where] = lr.coef_.T, lr.intercept_
        return coef, intercept, labels.astype(np.int16)

    # ---- use -----------------------------------------------------------------------------------
    @property
    def n_conditions(self) -> int:
        """Condition codes, including the novel code 0."""
        return 1 + max(len(self.centroids), 1)

    def strata(self, texts: Sequence[str | None], decision_ids: Sequence[str]) -> np.ndarray:
        """Each record's condition: 1..S, or 0 (NOVEL) for an input unlike every evaluation input or
        unsettled (see the module)."""
        n = len(texts)
        if n == 0:
            return np.zeros(0, dtype=np.int16)
        fold = fold_of(decision_ids, self.folds)
        hashed = self._hash(texts)
        novel = self._unknown_share(hashed, fold) > self.novel_threshold
        if len(self.centroids):
            x, _ = self._restrict(hashed)
            if self.unsettled_nats is None:
                own = _closest(self._profile(x, fold), self.centroids)
            else:
                # Evaluation has not settled the null of an input when the strata each fold's models
                # give it are more than unsettled_nats apart (the few evaluation records like it
                # decided where it went), or when its predicted profile is that far from its own
                # stratum (too few records like it for a stratum of their own, see kl_strata): a
                # shift of traffic towards it would be scored against a null that is not its own.
                profiles = self._probabilities(self._scores(x).reshape(n * self.folds, -1))
                cross = _cross_entropy(profiles, self.centroids).reshape(n, self.folds, -1)
                placed = cross.argmin(axis=2)
                rows = np.arange(n)
                own = placed[rows, fold]
                mine = profiles.reshape(n, self.folds, -1)[rows, fold]
                distance = _entropy(mine) + cross[rows, fold, own]
                apart = self._strata_apart[own[:, None], placed].max(axis=1)
                novel |= (apart > self.unsettled_nats) | (distance > self.unsettled_nats)
            out = (own + 1).astype(np.int16)
        else:
            out = np.ones(n, dtype=np.int16)
        out[novel] = NOVEL
        return out

    def describe(self, texts: Sequence[str | None], decision_ids: Sequence[str], top: int = 3) -> list[str]:
        """Per stratum code, the words that mark its inputs, for alert sentences: words common in
        the stratum and over-represented there (share × log lift)."""
        if not len(self.centroids) or not texts:
            return []
        strata = self.strata(texts, decision_ids)
        analyze = HashingVectorizer(ngram_range=(1, 2)).build_analyzer()
        # Stop words and numbers mark nothing a reader can recognise ("that", "me", an order number).
        docs = [set(w for w in analyze((t or "")[: self.prefix_chars])
                    if not any(ch.isdigit() for ch in w) and not set(w.split()) <= ENGLISH_STOP_WORDS)
                for t in texts]
        overall = Counter(w for d in docs for w in d)
        n = len(docs)
        out = [""] * self.n_conditions
        for code in range(1, len(out)):
            members = [d for d, c in zip(docs, strata) if c == code]
            inside = Counter(w for d in members for w in d)
            floor = max(3, len(members) // 10)
            score = {w: (c / len(members)) * np.log((c / len(members)) / (overall[w] / n))
                     for w, c in inside.items() if c >= floor}
            words = sorted((w for w in score if score[w] > 0), key=lambda w: (-score[w], w))[:top]
            out[code] = ", ".join(f"“{w}”" for w in words)
        return out

    # ---- persistence ---------------------------------------------------------------------------
    def state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"strata": self.n_strata, "folds": self.folds, "vocabulary": self.vocabulary_size,
                "min_df": self.min_df, "regularisation": self.regularisation, "min_stratum": self.min_stratum,
                "novelty_rate": self.novelty_rate, "prefix_chars": self.prefix_chars, "seed": self.seed,
                "unsettled_nats": self.unsettled_nats,
                "novel_threshold": self.novel_threshold, "features": list(self.models),
                "descriptions": self.descriptions}
        arrays = {f"{prefix}.columns": self.columns, f"{prefix}.fold_df": self.fold_df,
                  f"{prefix}.centroids": self.centroids}
        for i, name in enumerate(self.models):
            for part, value in zip(_PARTS, self.models[name]):
                arrays[f"{prefix}.{i}.{part}"] = value
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> ConditionModel:
        model = cls(meta["strata"], meta["folds"], meta["vocabulary"], meta["min_df"], meta["regularisation"],
                    meta["min_stratum"], meta["novelty_rate"], meta["prefix_chars"], meta["seed"],
                    meta.get("unsettled_nats"))
        model.columns = arrays[f"{prefix}.columns"].astype(np.int64)
        model.fold_df = arrays[f"{prefix}.fold_df"].astype(np.int32)
        model.novel_threshold = float(meta["novel_threshold"])
        model.descriptions = list(meta["descriptions"])
        model.centroids = arrays[f"{prefix}.centroids"]
        model._strata_apart = _apart(model.centroids)
        model.models = {name: tuple(arrays[f"{prefix}.{i}.{part}"] for part in _PARTS)
                        for i, name in enumerate(meta["features"])}
        model._stack_models()
        return model


_FLOOR = 1e-12  # of a mean profile's share, so that its log is finite


def _entropy(z: np.ndarray) -> np.ndarray:
    """Σ z log z per row: with the cross entropy, a row's KL divergence from any centre."""
    return np.where(z > 0, z * np.log(np.maximum(z, _FLOOR)), 0.0).sum(axis=1)


def _cross_entropy(z: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """-Σ z log c for every (record, centroid): KL(z ‖ c) up to a term that depends on z alone."""
    return -(z @ np.log(np.maximum(centroids, _FLOOR)).T)


def _divergences(z: np.ndarray, entropy: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """KL(row ‖ centre) for every (row, centre), from the rows' Σ z log z (``entropy``)."""
    return entropy[:, None] + _cross_entropy(z, centroids)


def _apart(centroids: np.ndarray) -> np.ndarray:
    """Symmetrised KL divergence between every two strata's mean profiles."""
    c = centroids.astype(np.float64)
    kl = _divergences(c, _entropy(c), c)
    return np.maximum(kl, kl.T)


def _closest(z: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmin(_cross_entropy(z, centroids), axis=1)


def _means(z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    sums = np.zeros((k, z.shape[1]))
    np.add.at(sums, labels, z)
    return sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None]


def kl_strata(z: np.ndarray, k: int, min_size: int, seed: int = 0, outlier_nats: float = 1.0,
              restarts: int = 3) -> np.ndarray:
    """Mean profiles of about ``k`` strata of the rows of ``z`` (probability distributions side by
    side) minimising Σ KL(row ‖ its stratum's mean), each stratum holding at least ``min_size`` rows.

    The sum is dominated by the crowd: splitting a big kind in two on noise gains more than giving
    30 distinct records their own stratum. So, after the strata of the crowd, the rows still more
    than ``outlier_nats`` from theirs (a traffic shift towards such rows would be scored as ~that
    much evidence per record against a null that holds) are grouped the same way into strata of
    their own, when there are at least ``min_size`` of them (fewer stay far, and are unsettled inputs,
    see :meth:`ConditionModel.strata`).

    With room for one stratum only, 20 rows refused 60% of the time (the crowd: 2%) still get theirs:

    >>> z = np.array([[0.98, 0.02]] * 1000 + [[0.4, 0.6]] * 20)
    >>> np.round(kl_strata(z, 1, 10), 2).tolist()
    [[0.98, 0.02], [0.4, 0.6]]
    """
    rng = np.random.default_rng(seed)
    # Σ z log z per row, computed once: with the cross entropy, each row's divergence from a centre.
    entropy = _entropy(z)
    centroids = _lloyd(z, entropy, k, restarts, rng)
    far = np.flatnonzero(_divergences(z, entropy, centroids).min(axis=1) > outlier_nats)
    if len(far) >= min_size:
        extra = _lloyd(z[far], entropy[far], max(1, min(k, len(far) // min_size)), restarts, rng)
        centroids = np.vstack([centroids, extra])
    # The smallest stratum under min_size is dissolved into the others, one at a time.
    while len(centroids) > 1:
        sizes = np.bincount(_closest(z, centroids), minlength=len(centroids))
        small = int(np.argmin(sizes))
        if sizes[small] >= min_size:
            break
        centroids = np.delete(centroids, small, axis=0)
    return _means(z, _closest(z, centroids), len(centroids))


def _lloyd(z: np.ndarray, entropy: np.ndarray, k: int, restarts: int, rng: np.random.Generator,
           iterations: int = 100) -> np.ndarray:
    """Lloyd's iterations with the KL divergence (a Bregman divergence, so a stratum's best centre is
    its rows' mean) from greedy k-means++ seeds; the best of ``restarts``."""
    best, best_loss = None, np.inf
    for _ in range(restarts):
        centroids = _seed(z, k, entropy, rng)
        for _ in range(iterations):
            updated = _means(z, _closest(z, centroids), len(centroids))
            if np.allclose(updated, centroids, atol=1e-9):
                break
            centroids = updated
        loss = float(_divergences(z, entropy, centroids).min(axis=1).sum())
        if loss < best_loss:
            best, best_loss = centroids, loss
    return best


def _seed(z: np.ndarray, k: int, entropy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeds under the KL divergence, the first being the overall mean (the crowd).
    A seed is a row mixed with a tenth of the overall mean, so that a code the row gives
    probability ~0 does not make every other row infinitely far from it."""
    overall = z.mean(axis=0)
    centroids = overall[None, :]
    closest = _divergences(z, entropy, centroids)[:, 0]
    trials = 2 + int(np.log(k))
    for _ in range(1, k):
        weights = np.maximum(closest, 0.0)
        if weights.sum() <= 0:
            break
        candidates = 0.9 * z[rng.choice(len(z), size=trials, p=weights / weights.sum())] + 0.1 * overall
        distances = np.minimum(closest[:, None], _divergences(z, entropy, candidates))
        pick = int(np.argmin(distances.sum(axis=0)))
        centroids = np.vstack([centroids, candidates[pick]])
        closest = distances[:, pick]
    return centroids
