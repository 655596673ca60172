"""Oversight-awareness phrases ("no one is watching", "this is a test", …) counted in whole texts.

Each configured phrase (``features.oversight_phrases``) becomes a regular expression:

* case-insensitive, over the first ``features.phrase_max_chars`` characters of a text (20,000 by
  default: long reasoning often says it late);
* whole words: a phrase starts and ends at a word boundary, so "retrain" does not match
  "restrain" or "retraining"; inflections match only through the variant table;
* any run of white space (spaces, tabs, line breaks) between words;
* variants (``features.phrase_variants``): groups of interchangeable words or word sequences,
  e.g. ``["no one", "nobody", "no-one"]`` or ``["is", "'s"]``; a phrase word (or sequence) in a
  group matches any member of it, so "nobody is monitoring" also matches "No one's watching".
  A member starting with an apostrophe attaches to the word before it ("no one's").

All phrases form one alternation; a match counts once even when several phrases describe it.
The expressions run on RE2 (a DFA: time linear in the text, ~20 times faster than Python's
``re`` on long text). RE2's ``\\b`` knows ASCII word characters only, so a phrase edge that is
not an ASCII letter or digit (é, 监) gets no boundary: such a phrase matches as a substring there.

>>> counter = PhraseCounter(["nobody is monitoring", "retrain"], [["no one", "nobody"], ["is", "'s"],
...                         ["monitoring", "watching"]])
>>> counter.counts(["Relax: NO ONE'S\\nwatching.", "I'll be retrained.", "x" * 600 + " nobody is monitoring"]).tolist()
[1, 0, 1]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import re2

_APOSTROPHES = "'’"
_SPACE = r"[\s\p{Z}]"  # white space, no-break spaces included
_ASCII_WORD = re.compile(r"[a-z0-9_]")  # the characters RE2's \b knows


class PhraseCounter:
    """Per text, the number of oversight-awareness phrases in its first ``max_chars`` characters."""

    def __init__(self, phrases: Sequence[str], variants: Sequence[Sequence[str]] = (), max_chars: int = 20_000):
        self.max_chars = max_chars
        groups = [[_words(member) for member in group] for group in variants]
        self.pattern = "|".join(dict.fromkeys(_phrase_pattern(_words(p), groups) for p in phrases if _words(p)))
        options = re2.Options()
        options.case_sensitive = False
        options.max_mem = 64 << 20  # room for the DFA of a long phrase list (RE2's default is 8 MiB)
        self._regex = re2.compile(self.pattern, options) if self.pattern else None

    @property
    def digit_blind(self) -> bool:
        """Whether counts are the same whichever ASCII digits a text has: no phrase holds a digit (for
        ``\\b`` every digit is alike)."""
        return not any(ch.isdigit() for ch in self.pattern)

    def counts(self, *fields: Sequence[str | None]) -> np.ndarray:
        """Total matches over the given text fields, per record."""
        n = len(fields[0]) if fields else 0
        out = np.zeros(n, dtype=np.int32)
        if self._regex is None:
            return out
        limit = self.max_chars
        for texts in fields:
            # One search over the whole batch: NUL is neither a word character nor white space,
            # so no match spans two texts; byte offsets say which text a match is in.
            encoded = [(t[:limit] if t else "").encode("utf-8", "surrogatepass") for t in texts]
            ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, n) + 1)
            starts = np.fromiter((m.start() for m in self._regex.finditer(b"\x00".join(encoded))), np.int64)
            out += np.bincount(np.searchsorted(ends, starts, side="right"), minlength=n).astype(np.int32)
        return out


def _words(text: str) -> tuple[str, ...]:
    """Lower-case words, with a leading apostrophe split off as a word of its own ("one's" → one 's)."""
    words = []
    for word in text.lower().split():
        head, apostrophe, tail = word.partition("'") if "'" in word else word.partition("’")
        words.extend([head, "'" + tail] if head and apostrophe and tail else [word])
    return tuple(words)


def _phrase_pattern(words: tuple[str, ...], groups: list[list[tuple[str, ...]]]) -> str:
    """One phrase's expression: each word, or word sequence held by a group, matching any member of its group."""
    slots, i = [], 0
    while i < len(words):
        # The longest sequence of the phrase's words starting here that a group holds.
        held = [(member, group) for group in groups for member in group if words[i:i + len(member)] == member]
        member, group = max(held, key=lambda mg: len(mg[0]), default=((words[i],), [(words[i],)]))
        slots.append(list(dict.fromkeys(group)))
        i += len(member)
    parts = []
    for k, members in enumerate(slots):
        alternatives = [_member(m, first=k == 0, last=k == len(slots) - 1) for m in members]
        parts.append("(?:" + "|".join(alternatives) + ")")
    return "".join(parts)


def _member(words: Sequence[str], first: bool, last: bool) -> str:
    """One member of a slot, with the white space before it (none for the first slot)."""
    pieces = [r"\b" if first and _ASCII_WORD.match(words[0][0]) else ""]
    for j, word in enumerate(words):
        attached = word[0] in _APOSTROPHES
        if j or not first:
            pieces.append(_SPACE + ("*" if attached else "+"))
        pieces.append(f"[{_APOSTROPHES}]" + re.escape(word[1:]) if attached else re.escape(word))
    pieces.append(r"\b" if last and _ASCII_WORD.match(words[-1][-1]) else "")
    return "".join(pieces)
