"""JSON Pointers (RFC 6901): compiled once, resolved against each decoded record.

>>> pointer = JsonPointer.parse("/request/messages/0/content")
>>> pointer.resolve({"request": {"messages": [{"content": "hi"}]}})
'hi'
>>> try:
...     pointer.resolve({"request": {"messages": []}})
... except NoMatch as exc:
...     print(exc)
no item 0 in the list at /request/messages (it has 0)
>>> JsonPointer.parse("/a~1b/c~0d").tokens
('a/b', 'c~d')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_INDEX = re.compile(r"0|[1-9][0-9]*")  # RFC 6901: array indices have no leading zeros
_BAD_ESCAPE = re.compile(r"~(?![01])")


class NoMatch(LookupError):
    """The pointer names nothing in this document; the message says where the path stopped."""


@dataclass(frozen=True, slots=True)
class JsonPointer:
    text: str
    tokens: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPointer:
        """Compile ``text``; ValueError says what is wrong with it."""
        if text and not text.startswith("/"):
            raise ValueError(f"{text!r} is not a JSON pointer: it must be empty or start with '/'")
        if _BAD_ESCAPE.search(text):
            raise ValueError(f"{text!r} is not a JSON pointer: '~' must be followed by 0 or 1")
        tokens = tuple(t.replace("~1", "/").replace("~0", "~") for t in text.split("/")[1:])
        return cls(text, tokens)

    def resolve(self, document: Any) -> Any:
        """The value the pointer names in ``document``, or :class:`NoMatch`."""
        node = document
        for depth, token in enumerate(self.tokens):
            if isinstance(node, dict):
                if token not in node:
                    raise NoMatch(f"no member {token!r} in the object at {self._prefix(depth)}")
                node = node[token]
            elif isinstance(node, list):
                if not _INDEX.fullmatch(token):
                    raise NoMatch(f"{token!r} is not a list index, at {self._prefix(depth)}")
                index = int(token)
                if index >= len(node):
                    raise NoMatch(f"no item {index} in the list at {self._prefix(depth)} (it has {len(node)})")
                node = node[index]
            else:
                kind = "null" if node is None else type(node).__name__
                raise NoMatch(f"{self._prefix(depth)} is a {kind}, not an object or a list")
        return node

    def _prefix(self, depth: int) -> str:
        return "/" + "/".join(self.text.split("/")[1 : depth + 1]) if depth else "the top"
