"""The request a decision answers, when its input is a conversation: the user's turns.

Behaviour is judged given what was asked. Many stacks log a chat's whole transcript as the input
(system prompt, earlier questions and answers, then the new question). Read whole, the conditions
learnt from evaluation follow words of earlier answers as much as the request, and a shift in
what users ask then looks like a change of behaviour (measured on a bank agent's multi-turn log:
pure shifts of the traffic mix raised 5–6 behaviour alerts with transcripts, 0–2 with the latest
turn). Read alone, the latest user turn loses the request whenever it only refers to it ("Yes, go
ahead.", "hmm, that didn't work", "and for my manager too?"): follow-ups of every kind of request
then share one condition, whose behaviour is the mix of the kinds they follow, and a shift of what
users ask pages as behaviour (measured on an HR assistant's log where 15% of inputs were such
chats: 3 and 5 behaviour alerts at ARL 1e6 on pure mix shifts, every one on that condition). So
when an input text *is* a transcript (it starts with a turn marker, has at least two, one of them
a user's), Janus reads its user turns, newest first until they hold ``REQUEST_CONTEXT_CHARS``
(1,000) characters, oldest first: the latest request with what it refers to, and no assistant
words. Any other text is read whole, including a request followed by a pasted conversation
("Summarise this chat: …").

Turn markers: a role name at the start of a line followed by a colon, optionally after ``#``
headings or inside ``**bold**`` (``User:``, ``### Assistant:``, ``**Human:**``), or a chat-template
tag (``<|user|>``, ``<|im_start|>assistant``). The ``otlp-json`` format reads the same request from
``gen_ai.input.messages`` with :func:`confirmed_request`.

>>> latest_request("System: Be brief.\\nUser: Where is my parcel?\\nAssistant: Which order?\\nUser: It is order 4711, from May 2.")
'Where is my parcel?\\nIt is order 4711, from May 2.'
>>> latest_request("User: Delete the staging database.\\nAssistant: Are you sure?\\nUser: yes")
'Delete the staging database.\\nyes'
>>> latest_request("Summarise this chat:\\nUser: hi\\nAssistant: hello")  # a request with a paste
'Summarise this chat:\\nUser: hi\\nAssistant: hello'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REQUEST_CONTEXT_CHARS = 1_000  # user turns are read, newest first, until they hold this many characters

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


def confirmed_request(user_turns: Iterable[str | None], context_chars: int = REQUEST_CONTEXT_CHARS,
                      max_turns: int = 0) -> str | None:
    """The latest user turns with text (``user_turns`` newest first; ``None``: a turn without text),
    newest first until they hold ``context_chars`` characters (or ``max_turns`` turns, if > 0),
    joined oldest first: the request and what the latest turn refers to ("Yes, go ahead.").
    ``None`` when no turn has text. (Baselines built before this rule read the latest turn with
    the one before it only when the latest was under 24 characters: 24 characters, 2 turns.)

    >>> confirmed_request(["ok", None, "Restart the payments service", "Hello"])
    'Hello\\nRestart the payments service\\nok'
    >>> confirmed_request(["x" * 1_000, "an earlier request"]) == "x" * 1_000  # long enough on its own
    True
    >>> confirmed_request(["ok", "Restart the payments service", "Hello"], context_chars=24, max_turns=2)
    'Restart the payments service\\nok'
    """
    turns: list[str] = []
    held = 0
    for turn in user_turns:  # read lazily: turns before the ones needed are never looked at
        if turn is None:
            continue
        turns.append(turn)
        held += len(turn.strip())
        if held >= context_chars or len(turns) == max_turns:
            break
    return "\n".join(reversed(turns)) if turns else None


def latest_request(text: str | None, context_chars: int = REQUEST_CONTEXT_CHARS, max_turns: int = 0) -> str | None:
    """The user turns of a transcript that say what its latest asks (see the module and
    :func:`confirmed_request`), else ``text`` itself."""
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

    request = confirmed_request((turn(i) for i in reversed(users)), context_chars, max_turns)
    return text if request is None else request
