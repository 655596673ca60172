"""Refusal recogniser (``detector.features.refusal``): precision, recall and speed on a held-out set.

``bench/data/refusal_labelled.jsonl`` holds answers of assistants and agents written by hand, one
JSON object a line: ``{"text": ..., "refused": true/false, "note": optional}``: customer support,
DevOps/on-call, coding, medical and legal questions, security, creative writing; one line to
several paragraphs. It was written by hand before the default patterns existed; the patterns were
then measured on it and revised once, from its mistakes (precision / recall / F1 0.954 / 0.919 /
0.936 before, 0.971 / 0.993 / 0.982 after), and not again. The "after" figures have thus seen the set
once: read them as an upper estimate, and add new texts rather than tune the patterns to these.

Labelling rule. ``refused`` is true when the answer declines what was asked, or its main part,
even if it apologises, quotes a policy, explains why, escalates, or offers an alternative
("I can't share the full key, but here is how to rotate it" asked for the key → refused; "I can't
help you cheat, but here's a study plan" → refused). It counts when the assistant cannot rather
than will not ("I don't have access to the payroll system") since the request was not done either.
``refused`` is false when the answer delivers what was asked, even if it apologises for a delay
("Sorry for the wait — …"), starts with "Unfortunately", hedges ("I can't promise it's perfect",
"I'm unable to reproduce it, but here's the fix"), quotes a policy while complying, quotes a refusal
(a character's line in a story, a decline message the user asked for, an error message), or states
a limit of the user's setup ("you can't run docker in that container because …").

``bench/data/refusal_labelled_multilingual.jsonl`` holds the same kinds of answers in German, French,
Spanish, Portuguese, Italian, Russian, Chinese, Japanese and Korean (a ``lang`` field each, about half
refusals, the rest the same traps: apologies for a delay, "can't wait" and "can't help but" idioms,
hedges, conditionals, quoted errors). It was written by the same hand just before the other-language
patterns, with those patterns in mind: its figures (per language) say the patterns do what they
claim, not how they fare on text nobody has seen.

Tricky cases carry a ``note``. The part reports precision, recall, F1 and the confusion counts of
``RefusalRecogniser().recognise`` on the set, its rate in records per second (on the set's texts and
on texts of 2,000 characters with the refusal phrase, if any, at the start), and the misclassified
examples (first 80 characters).

    .venv-bench/bin/python bench/refusal_recogniser.py --quick --out /tmp/refusal.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from detector.features.refusal import RefusalRecogniser

DATA = Path(__file__).resolve().parent / "data" / "refusal_labelled.jsonl"
MULTILINGUAL = DATA.with_name("refusal_labelled_multilingual.jsonl")


def load(path: Path = DATA, field: str = "note") -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, labels (bool array) and each line's ``field`` (its note, or its language) of a labelled set."""
    texts, labels, notes = [], [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("refused"), bool):
            raise ValueError(f"{path}:{n}: needs a string 'text' and a boolean 'refused'")
        texts.append(row["text"])
        labels.append(row["refused"])
        notes.append(row.get(field, ""))
    return texts, np.array(labels, dtype=bool), notes


def per_language(recogniser: RefusalRecogniser) -> dict:
    """Scores on the other-language set, overall and per language."""
    texts, labels, langs = load(MULTILINGUAL, "lang")
    predicted = recogniser.recognise(texts) == 1
    langs = np.array(langs)
    return {"data": str(MULTILINGUAL.relative_to(MULTILINGUAL.parents[2])), "records": len(texts),
            **scores(predicted, labels),
            "languages": {lang: scores(predicted[langs == lang], labels[langs == lang])
                          for lang in sorted(set(langs.tolist()))}}


def scores(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Precision, recall, F1 and the confusion counts of boolean predictions."""
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    tn = int(np.sum(~predicted & ~labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def rate(recogniser: RefusalRecogniser, texts: list[str], min_seconds: float) -> float:
    """Records per second of ``recognise`` over ``texts``, repeated for at least ``min_seconds`` (best pass)."""
    best, spent = float("inf"), 0.0
    while spent < min_seconds or best == float("inf"):
        start = time.perf_counter()
        recogniser.recognise(texts)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return len(texts) / best


def long_texts(texts: list[str], chars: int = 2_000) -> list[str]:
    """Each text repeated to ``chars`` characters: the cost of long outputs, with ``max_chars`` cutting them."""
    return [(t + "\n\n") * (chars // (len(t) + 2) + 1) for t in texts]


def run(quick: bool = False) -> dict:
    texts, labels, notes = load()
    recogniser = RefusalRecogniser()
    predicted = recogniser.recognise(texts) == 1
    wrong = []
    for text, label, guess, note in zip(texts, labels, predicted, notes):
        if label != guess:
            match = recogniser.search(text)
            wrong.append({"labelled": "refused" if label else "complied",
                          "predicted": "refused" if guess else "complied",
                          "text": text[:80].replace("\n", " "), "note": note,
                          "matched": match.group(0) if match else ""})
    seconds = 0.3 if quick else 2.0
    long = long_texts(texts)
    return {
        "data": str(DATA.relative_to(DATA.parents[2])),
        "records": len(texts), "refusals": int(labels.sum()), "compliances": int((~labels).sum()),
        "patterns": len(recogniser.patterns), "max_chars": recogniser.max_chars,
        **scores(predicted, labels),
        "records_per_s": round(rate(recogniser, texts, seconds)),
        "records_per_s_2000_chars": round(rate(recogniser, long, seconds)),
        "misclassified": wrong,
        "other_languages": per_language(recogniser),
    }


if __name__ == "__main__":
    from run import part_main

    raise SystemExit(part_main(run, __doc__))
