"""The request a decision answers, when its input is a conversation: the latest user turn.

Behaviour is judged given what was asked. Many stacks log a chat's whole transcript as the input
(system prompt, earlier questions and answers, then the new question). Read whole, the conditions
learnt from evaluation follow words of earlier answers as much as the request, and a shift in
what users ask then looks like a change of behaviour (measured on a bank agent's multi-turn log:
pure shifts of the traffic mix raised 5–6 behaviour alerts with transcripts, 0–2 with the latest
turn). So when an input text *is* a transcript (it starts with a turn marker, has at least two, one
of them a user's), Janus reads its latest user turn, with the user turn before it when the latest is
a short follow-up ("Yes, go ahead."): the request it confirms. Any other text is read whole,
including a request followed by a pasted conversation ("Summarise this chat: …").

Turn markers: a role name at the start of a line followed by a colon, optionally after ``#``
headings or inside ``**bold**`` (``User:``, ``### Assistant:``, ``**Human:**``), or a chat-template
tag (``<|user|>``, ``<|im_start|>assistant``). The ``otlp-json`` format reads the same request from
``gen_ai.input.messages`` with :func:`confirmed_request`.

>>> latest_request("System: Be brief.\\nUser: Where is my parcel?\\nAssistant: Which order?\\nUser: It is order 4711, from May 2.")
'It is order 4711, from May 2.'
>>> latest_request("User: Delete the staging database.\\nAssistant: Are you sure?\\nUser: yes")
'Delete the staging database.\\nyes'
>>> latest_request("Summarise this chat:\\nUser: hi\\nAssistant: hello")  # a request with a paste
'Summarise this chat:\\nUser: hi\\nAssistant: hello'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FOLLOW_UP_CHARS = 24  # a latest user turn shorter than this is read with the user turn before it

# Chat roles only: "Customer:" or "Agent:" lines are as likely to be a pasted ticket as a log's turns.
_USER = {"user", "human"}
_ROLES = "user|human|assistant|ai|bot|model|system"
# Anchored at line starts only: a position that is not one fails at once (a third of the time of
# trying a tag anywhere).
_MARKER = re.compile(
    rf"^[ \t]*(?:(?:#{{1,4}}[ \t]*)?(?:\*\*)?(?P<role>{_ROLES})(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*"
    rf"|<\|(?:im_start\|>[ \t]*)?(?P<tag>{_ROLES})(?:\|>)?[ \t]*\n?)",
    re.IGNORECASE | re.MULTILINE,
)
_END_TAG = re.compile(r"<\|(?:im_end|eot_id|end)\|>")


def confirmed_request(user_turns: Iterable[str | None]) -> str | None:
    """The latest user turn with text (``user_turns`` newest first; ``None``: a turn without text),
    with the one before it, oldest first, when the latest is a short follow-up ("Yes, go ahead."):
    the request it confirms. ``None`` when no turn has text.

    >>> confirmed_request(["ok", None, "Restart the payments service", "Hello"])
    'Restart the payments service\\nok'
    """
    turns: list[str] = []
    for turn in user_turns:  # read lazily: turns before the ones needed are never looked at
        if turn is not None:
            turns.append(turn)
        if turns and (len(turns) == 2 or len(turns[0].strip()) >= FOLLOW_UP_CHARS):
            break
    return "\n".join(reversed(turns)) if turns else None


def latest_request(text: str | None) -> str | None:
    """The latest user turn of a transcript (see the module), else ``text`` itself."""
    if not text or ":" not in text and "<|" not in text:
        return text
    markers = list(_MARKER.finditer(text))
    if len(markers) < 2 or text[: markers[0].start()].strip():
        return text
    roles = [(m.group("role") or m.group("tag")).lower() for m in markers]
    users = [i for i, role in enumerate(roles) if role in _USER]
    if not users or len(users) == len(roles):
        return text

    def turn(i: int) -> str | None:
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        return _END_TAG.sub("", text[markers[i].end(): end]).strip() or None

    request = confirmed_request(turn(i) for i in reversed(users))
    return text if request is None else request
