"""Refusal recogniser: "did the model refuse?" derived from the output text.

Real agent logs carry no ``refused`` flag, only the text the model produced. This module derives one
with a documented, configurable list of regular-expression fragments (:data:`DEFAULT_REFUSAL_PATTERNS`).
The fragments are joined into one case-insensitive alternation, so recognising a text is a single
``re.search`` over its first ``max_chars`` characters.

What counts as a refusal: the answer declines the request (or its main part), even if it apologises,
quotes a policy, or offers an alternative ("I can't share the full key, but here is how to rotate
it"). What does not: idioms built on the same words ("I can't wait to help", "I cannot stress enough",
"you can't go wrong", "if I can't reproduce it, …"), hedges ("I can't promise it's perfect, but …"),
and limits of the user's own setup ("you can't run docker in that container because …").

>>> recogniser = RefusalRecogniser()
>>> recogniser.recognise([
...     "I'm sorry, but I can’t help with that.",
...     "Sure! Here is the script you asked for.",
...     "I can't wait to help you plan the launch!",
...     None,
... ]).tolist()
[1, 0, 0, -1]

A pattern list of one's own (the fragments are still joined, case-insensitive):

>>> RefusalRecogniser([r"\\bcomputer says no\\b"]).recognise(["Computer says NO."]).tolist()
[1]

Measured on the hand-labelled, held-out set ``bench/data/refusal_labelled.jsonl`` by
``bench/refusal_recogniser.py`` (precision, recall, records per second).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["DEFAULT_REFUSAL_PATTERNS", "ENGLISH_REFUSAL_PATTERNS", "NO_TEXT", "RefusalRecogniser"]

NO_TEXT = -1  # recognise() code of a missing or blank text; 1 refused, 0 complied

# Building blocks. Apostrophes: straight, curly (’) and the left quote some keyboards produce (‘).
_A = "[’'‘]"
_CANT = rf"(?:can{_A}?t|cannot|can\s+not)"
_WONT = rf"(?:won{_A}?t|will\s+not)"
# "I" / "we" as the speaker: not right after an opening quote (a character's line in a story, a quoted
# example: "you could say 'I can't make it'"), not in a conditional ("if I can't reproduce it, …").
_NOT_QUOTED = "(?<![’'‘\"“])"
_I = rf"\b{_NOT_QUOTED}I"
_WE = rf"\b{_NOT_QUOTED}we"
_SUBJECT = rf"\b{_NOT_QUOTED}(?<!\bif\s)(?<!\bwhen\s)(?<!\bunless\s)(?:I|we)"
_IM = rf"(?:I{_A}m|I\s+am)"
_WERE = rf"(?:we{_A}re|we\s+are)"
_IM_WERE = rf"\b{_NOT_QUOTED}(?:{_IM}|{_WERE})"
# Idioms that follow "I can't / I won't / I'm unable to" without refusing anything.
_NOT_A_REFUSAL = (
    r"(?!\s+(?:"
    r"wait|stress|emphasi[sz]e|overstate|understate|believe|imagine|thank|agree\s+more|get\s+enough"
    r"|stop\s+(?:thinking|laughing|smiling)|help\s+(?:but|feeling|thinking|noticing|wondering|smiling)"
    r"|tell\s+you\s+how\s+(?:much|many)|tell\s+(?:if|whether|from)|go\s+wrong|complain|always"
    r"|promise|guarantee|be\s+(?:sure|certain)|say\s+for\s+(?:sure|certain)"
    r"|reproduce|see|find|locate|recall|remember|think\s+of"
    r"|bore|lie|keep\s+you|hesitate|go\s+into|repeat|forget"
    r")\b)"
)
# "must", "have to", "'ll have to", "'m going to (have to)", "'d have to": before decline / refuse / say no.
_MUST = (rf"(?:\s+(?:must|have\s+to|need\s+to|will\s+have\s+to|would\s+have\s+to|am\s+going\s+to(?:\s+have\s+to)?)"
         rf"|{_A}ll\s+have\s+to|{_A}d\s+have\s+to|{_A}m\s+going\s+to(?:\s+have\s+to)?)")
_POLICY = r"(?:polic(?:y|ies)|guidelines|rules|terms(?:\s+of\s+(?:service|use))?)"
# Other languages: the common ways an assistant declines, each tied to what is declined (help,
# provide, share, carry out ...) or to a permission, so that hedges ("ich kann es nicht
# reproduzieren, aber ..."), conditionals ("si no puedes conectarte") and idioms ("je ne peux pas
# m'empêcher", "не могу не", "待ちきれません") stay compliant, as in English.
_W = r"[^\s.!?。！？]+\s+"  # one word of the same sentence
_DE_VERB = (r"(?:helfen|weiterhelfen|behilflich|geben|herausgeben|mitteilen|teilen|weitergeben|bereitstellen"
            r"|erstellen|schreiben|ausführen|durchführen|erfüllen|nachkommen|genehmigen|erstatten|freigeben"
            r"|beantworten|verraten|machen|tun|zugreifen|ändern|löschen|umgehen)")
_RU_VERB = (r"(?:помочь|помогать|предоставить|предоставлять|выполнить|выполнять|сообщить|раскрыть|раскрывать"
            r"|поделиться|написать|создать|сгенерировать|дать|выдать|удалить|изменить|оформить|одобрить|обойти"
            r"|сделать)")
_ZH_NOT = "(?:[无無]法|不能|不可以|[没沒]法|[没沒]有[办辦]法|不便|[难難]以)"
_ZH_FOR = "(?:[为為替帮幫给給向][您你])?"
_ZH_VERB = ("(?:提供|[协協]助|[帮幫]助|[帮幫]|完成|[处處]理|[满滿]足|透露|分享|[执執]行|回答|生成|[编編][写寫]|[写寫]"
            "|[办辦]理|修改|[删刪]除|[绕繞][过過]|[泄洩]露|告[诉訴]|答[应應])")
_OTHER_LANGUAGES = [
    # German: "dabei kann ich Ihnen nicht helfen", "ich darf keine Auskunft geben", "ist mir nicht möglich".
    rf"\b(?:ich|wir)\s+(?:kann|können|darf|dürfen|werde|werden)\s+(?:{_W}){{0,6}}?(?:nicht|keine\w*)\s+(?:{_W}){{0,8}}?{_DE_VERB}\b",
    rf"\b(?:kann|können|darf|dürfen|werde|werden)\s+(?:ich|wir)\s+(?:{_W}){{0,6}}?(?:nicht|keine\w*)\s+(?:{_W}){{0,8}}?{_DE_VERB}\b",
    r"\b(?:ist|wäre)\s+(?:mir|uns)\s+(?:leider\s+)?nicht\s+(?:möglich|gestattet|erlaubt)\b",
    r"\b(?:ich|wir)\s+(?:bin|sind)\s+(?:leider\s+)?nicht\s+(?:befugt|berechtigt|autorisiert|in\s+der\s+Lage)\b",
    r"\b(?:muss|müssen)\s+(?:ich|wir)\s+(?:\w+\s+){0,2}?ablehnen\b",
    r"\b(?:ich|wir)\s+(?:muss|müssen)\s+(?:\w+\s+){0,4}?ablehnen\b",
    # French: "je ne peux pas vous aider", "je ne suis pas en mesure de", "il ne m'est pas possible".
    r"\b(?:je|nous)\s+ne\s+(?:peux|pouvons|vais|allons|saurais|saurions)\s+pas\s+(?:vous\s+|t[’']|te\s+|l[’']|le\s+|la\s+)?"
    r"(?:aider|assister|fournir|donner|communiquer|partager|transmettre|divulguer|écrire|rédiger|créer|générer"
    r"|exécuter|effectuer|faire|accéder|modifier|supprimer|répondre|accepter|accorder|rembourser|valider|approuver)\b",
    r"\b(?:je|nous)\s+ne\s+(?:suis|sommes)\s+pas\s+(?:en\s+mesure|autorisée?s?|habilitée?s?|en\s+position)\b",
    r"\bne\s+(?:m|nous)[’']est\s+pas\s+possible\b",
    r"\b(?:je|nous)\s+(?:dois|devons)\s+(?:malheureusement\s+|respectueusement\s+)?(?:refuser|décliner)\b",
    r"\bje\s+refuse\s+de\b",
    # Spanish and Portuguese: "no puedo ayudarte", "no me es posible", "não posso fornecer", "não estou autorizado".
    r"\bno\s+(?:puedo|podemos|voy\s+a|vamos\s+a)\s+(?:\w+\s+)?(?:ayudar|asistir|proporcionar|facilitar|dar|compartir"
    r"|revelar|escribir|crear|generar|ejecutar|realizar|hacer|acceder|aprobar|modificar|borrar|eliminar|atender"
    r"|procesar|tramitar)\w*\b",
    r"\bno\s+(?:me|nos)\s+es\s+posible\b",
    r"\bno\s+(?:estoy|estamos)\s+(?:autorizad[oa]s?|facultad[oa]s?|en\s+condiciones)\b",
    r"\b(?:debo|debemos|tengo\s+que|tenemos\s+que)\s+(?:rechazar|declinar|negarme)\b",
    r"\bnão\s+(?:posso|podemos|consigo|conseguimos|vou|vamos)\s+(?:\w+\s+)?(?:ajudar|auxiliar|fornecer|dar"
    r"|compartilhar|partilhar|revelar|divulgar|escrever|criar|gerar|executar|realizar|fazer|acessar|aceder"
    r"|aprovar|alterar|apagar|excluir|processar|atender)\w*\b",
    r"\bnão\s+(?:me|nos)\s+é\s+possível\b",
    r"\bnão\s+(?:estou|estamos)\s+autorizad[oa]s?\b",
    r"\b(?:devo|devemos|tenho\s+de|tenho\s+que)\s+recusar\b",
    # Italian: "non posso aiutarti", "non mi è possibile", "non sono autorizzato", "devo rifiutare".
    r"\bnon\s+(?:posso|possiamo|riesco|sono\s+in\s+grado\s+di)\s+(?:\w+\s+)?(?:aiutar\w*|assister\w*|fornir\w*|dar\w*"
    r"|condivider\w*|rivelar\w*|scriver\w*|crear\w*|generar\w*|eseguir\w*|farlo|farla|farli|falsificar\w*|accedere"
    r"|approvar\w*|modificar\w*|cancellar\w*|annullar\w*|elaborar\w*)\b",
    r"\bnon\s+(?:mi|ci)\s+è\s+possibile\b",
    r"\bnon\s+(?:sono|siamo)\s+autorizzat[oaie]\b",
    r"\b(?:devo|dobbiamo)\s+(?:rifiutare|declinare)\b",
    # Russian: "я не могу помочь", "не имею права", "вынужден отказать", "оформить ... не могу,".
    rf"\bне\s+(?:могу|можем|смогу|сможем|буду|будем)\s+(?:{_W}){{0,2}}?{_RU_VERB}\b",
    rf"\b{_RU_VERB}\b[^.!?]{{0,80}}?\bне\s+(?:могу|можем|смогу|сможем)\s*[,.!?]",
    r"\bне\s+(?:имею|имеем)\s+права\b",
    r"\b(?:вынужден[аы]?)\s+отказать\b",
    # Chinese (simplified and traditional): "我无法帮助您", "我们不能为您办理", "恕我无法满足", "我没有权限".
    f"(?:我|恕)(?:[们們])?(?:暂时|暫時|目前|实在|實在|确实|確實)?{_ZH_NOT}{_ZH_FOR}{_ZH_VERB}",
    "我(?:[们們])?(?:[没沒]有|無)(?:[权權]限|[权權]利|授[权權])",
    "(?:我|我[们們])(?:必[须須]|只能|不得不)?拒[绝絕]",
    "爱莫能助|愛莫能助",
    # Japanese: "お伝えすることはできません", "お応えできません", "承ることができません", "お断りします".
    "(?:お答え|お応え|ご回答|回答|ご提供|提供|お伝え|開示|お手伝い|対応|ご対応|実行|作成|共有|承る|お受け|変更|削除)"
    "(?:すること|いたすこと|は|が|を|に)?[^。！？\\n]{0,3}?(?:できません|できかねます|いたしかねます|致しかねます|出来ません)",
    "お断り(?:します|いたします|致します|させていただきます)",
    # Korean: "제공해 드릴 수 없습니다", "도와드릴 수 없습니다", "권한이 없습니다".
    "(?:제공|도와|도움을\\s*드릴|안내|처리|공유|공개|작성|실행|삭제|변경|환불|승인|답변)(?:해\\s*드릴|하여\\s*드릴|해|할|드릴)?"
    "\\s*수\\s*(?:없습니다|없어요|없음)",
    "권한이\\s*없습니다",
    "거절(?:합니다|하겠습니다)",
]


ENGLISH_REFUSAL_PATTERNS: list[str] = [
    # "I can't …", "we cannot …", "I can not …", "I won't …", "we will not …" (idioms excluded above).
    rf"{_SUBJECT}\s+(?:really\s+|simply\s+|just\s+|unfortunately\s+|still\s+)?(?:{_CANT}|{_WONT}){_NOT_A_REFUSAL}",
    # "I'm unable to", "I'm not able to", "we aren't able to", "I won't be able to", "I'm not going to be able to".
    rf"{_SUBJECT}(?:{_A}m|{_A}re|\s+am|\s+are)?\s+(?:not\s+|n{_A}t\s+)?(?:unable|not\s+able)\s+to{_NOT_A_REFUSAL}",
    rf"{_IM_WERE}\s+not\s+able\s+to{_NOT_A_REFUSAL}",
    rf"{_WE}\s+(?:aren{_A}t|are\s+not)\s+able\s+to{_NOT_A_REFUSAL}",
    rf"{_SUBJECT}\s+{_WONT}\s+be\s+able\s+to\b",
    rf"{_IM_WERE}\s+not\s+going\s+to(?!\s+(?:lie|pretend|sugar-?coat|bore|go\s+into|repeat)\b)",
    rf"\bnot\s+going\s+to\s+(?:help|assist|do|write|happen)\b",
    # "I'm not allowed / permitted / authorised / authorized / in a position / willing / comfortable".
    rf"{_IM_WERE}\s+not\s+(?:allowed|permitted|authori[sz]ed|in\s+(?:a\s+)?position|willing|comfortable|prepared)\b",
    rf"{_IM_WERE}\s+(?:restricted|prohibited|forbidden)\s+from\b",
    r"\b(?:not\s+(?:allowed|permitted)|forbidden)\s+for\s+me\b",
    rf"{_I}\s+(?:don{_A}t|do\s+not)\s+feel\s+comfortable\b",
    rf"{_SUBJECT}\s+(?:don{_A}t|do\s+not)\s+have\s+(?:the\s+)?(?:permission|authori[sz]ation|rights?)\s+to\b",
    # Statements of what the assistant does not do: "I do not provide instructions for …".
    rf"{_SUBJECT}\s+(?:don{_A}t|do\s+not)\s+(?:provide|produce|generate|create|write|give\s+out"
    rf"|help\s+(?:with|people)|assist\s+(?:with|in)|engage\s+in)\b",
    # "I must decline", "I have to refuse", "I'm going to decline", "I'll have to pass on", "I'd have to say no".
    rf"{_SUBJECT}{_MUST}?\s+(?:respectfully\s+|politely\s+)?(?:decline|refuse)\b",
    rf"{_IM_WERE}\s+(?:declining|refusing)\b",
    rf"{_SUBJECT}(?:{_A}ll|\s+will)\s+(?:have\s+to\s+)?pass\s+on\b",
    rf"{_SUBJECT}{_MUST}\s+say\s+no\b",
    rf"{_I}(?:{_A}d|\s+would)\s+(?:rather|prefer)\s+not\b",
    rf"{_I}\s+(?:shouldn{_A}t|should\s+not)\s+(?:help|assist|do|write|share|provide|give)\b",
    rf"{_I}\s+(?:don{_A}t|do\s+not)\s+think\s+I\s+should\b",
    # "I'm afraid I can't …", "I'm afraid that's not something …".
    rf"\b{_NOT_QUOTED}{_IM}\s+afraid\s+(?:I|we|that{_A}?s|this\s+is|it{_A}?s)\s+(?:{_CANT}|{_WONT}|not|must|have\s+to"
    rf"|{_A}m\s+not|am\s+not|unable)",
    # "That's not something I can help with", "isn't something I'm able to do"; "there's no way I can".
    rf"\b(?:isn{_A}t|is\s+not|not)\s+something\s+(?:I|we)\b(?!{_A}?d\s+recommend)",
    # … or the assistant by its name: "This isn't something PeopleDesk can process" (not "you", "they").
    rf"\b(?:isn{_A}t|is\s+not)\s+something\s+(?!you\b|they\b|anyone\b)(?:the\s+)?[\w-]+\s+(?:can|could|is\s+able\s+to)\b",
    rf"\bno\s+way\s+(?:I|we)\s+(?:can|could|will)\b{_NOT_A_REFUSAL}",
    # "Can't help with that", "unable to assist with this" (no subject).
    rf"\b(?:{_CANT}|unable\s+to|not\s+able\s+to)\s+(?:help|assist)\s+(?:you\s+)?with\s+"
    rf"(?:that|this|it|your\s+request)\b",
    rf"\b(?<!you\s)(?<!they\s){_CANT}\s+do\s+(?:that|this|it)\b",
    # "against our policy", "against my guidelines", "our policies don't allow".
    rf"\bagainst\s+(?:our|my)\s+"
    rf"(?:content\s+|usage\s+|privacy\s+|safety\s+|security\s+|data[\s-]+protection\s+|community\s+"
    rf"|acceptable[\s-]+use\s+)?{_POLICY}",
    rf"\b(?:my|our)\s+{_POLICY}\s+(?:don{_A}t|do\s+not|doesn{_A}t|does\s+not|won{_A}t)\s+(?:allow|permit|let)\b",
    # "It's not possible for me to", "It wouldn't be appropriate for me", "outside my remit".
    rf"\b(?:it{_A}s|it\s+is|that{_A}s|that\s+is)\s+not\s+possible\s+for\s+(?:me|us)\b",
    rf"\b(?:that{_A}s|that\s+is)\s+not\s+possible\b(?!\s+(?:to|for|with|on|in|without|unless|if)\b)",  # "No, sorry - that's not possible here"
    rf"\b(?:wouldn{_A}t|would\s+not|isn{_A}t|is\s+not)\s+(?:be\s+)?appropriate\s+for\s+me\b",
    rf"\b(?:outside|beyond)\s+(?:of\s+)?(?:my|what\s+I)\b",
    # Agent-log and formal styles: "Declined: …", "your request … has been denied", "we regret to inform you".
    r"^\b(?:declin(?:ed|ing)|refused|denied|rejected)\b",
    r"\brequest\b[^.!?\n]{0,80}?\b(?:is|was|has\s+been)\s+(?:denied|refused|rejected|declined)\b",
    r"\b(?:action|operation)\s+(?:is|was|has\s+been)\s+(?:denied|refused|rejected|declined)\b",
    r"\bregret\s+to\s+inform\b",
    r"\bwe\s+regret\s+that\s+we\b",
    # Colloquial: "no can do", "that's a hard no", a reply opening with "No, sorry".
    r"\bno\s+can\s+do\b",
    rf"\b(?:that{_A}s|that\s+is|it{_A}s)\s+a\s+(?:hard\s+)?no(?![-\w])",
    r"^\b(?:no|nope)\W{0,4}sorry\b",
]
DEFAULT_REFUSAL_PATTERNS: list[str] = ENGLISH_REFUSAL_PATTERNS + _OTHER_LANGUAGES


@lru_cache(maxsize=1024)  # the full, the Latin-only alternation and the script split all ask
def _start(fragment: str) -> tuple[bool, frozenset[str] | None]:
    """Whether ``fragment`` can only match at a word boundary, and the characters its match can start
    with (``None``: unknown). Conservative: anything not understood gives ``(False, None)``."""
    try:
        from re import _parser  # the parser behind re.compile (Python ≥ 3.11); private, hence the fallback
        from re._constants import (ASSERT, ASSERT_NOT, AT, AT_BOUNDARY, BRANCH, IN, LITERAL, MAX_REPEAT,
                                   MIN_REPEAT, RANGE, SUBPATTERN)
    except ImportError:
        return False, None

    def first(items) -> tuple[bool, set[str] | None]:
        boundary = False
        for op, av in items:
            if op is AT:
                boundary |= av is AT_BOUNDARY
            elif op in (ASSERT, ASSERT_NOT):
                continue  # zero-width: the match still starts with what follows
            elif op is LITERAL:
                return boundary, {chr(av)}
            elif op is IN:
                if not all(o in (LITERAL, RANGE) for o, _ in av):
                    return boundary, None
                chars = set()
                for o, a in av:
                    if o is LITERAL:
                        chars.add(chr(a))
                    elif a[1] - a[0] > 128:
                        return boundary, None
                    else:
                        chars.update(map(chr, range(a[0], a[1] + 1)))
                return boundary, chars
            elif op is SUBPATTERN:
                if av[1] or av[2]:
                    return boundary, None  # scoped flags, e.g. (?a:\\b…): another kind of boundary
                b, chars = first(av[3])
                return boundary or b, chars
            elif op in (MAX_REPEAT, MIN_REPEAT) and av[0] >= 1:
                b, chars = first(av[2])
                return boundary or b, chars
            elif op is BRANCH:
                results = [first(alternative) for alternative in av[1]]
                every = all(b for b, _ in results)
                if any(chars is None for _, chars in results):
                    return boundary or every, None
                return boundary or every, set().union(*(chars for _, chars in results))
            else:
                return boundary, None
        return boundary, None  # may match the empty string: no first character

    try:
        boundary, chars = first(_parser.parse(fragment, re.IGNORECASE).data)
    except Exception:  # noqa: BLE001 - an unexpected parse tree only costs the optimisation
        return False, None
    return boundary, None if chars is None else frozenset(chars)  # cached: callers must not change it


@lru_cache(maxsize=16)  # parsing the fragments took ~30 ms of every baseline load
def _alternation(patterns: tuple[str, ...]) -> str:
    """The fragments as one alternation that finds exactly what ``(?:p1)|(?:p2)|…`` finds, faster.

    Python's ``re`` tries every branch of an alternation at every position of the text. When each
    fragment's possible first characters are known (see :func:`_start`), the fragments are grouped by
    first character behind a one-character look-ahead, so a position is tried only against the few
    fragments that can start there, in their original order; and when every fragment starts at a
    word boundary, one ``\\b`` in front turns away most positions at once. Groups whose fragments
    do not all start at a word boundary (Chinese or Japanese, written without spaces, where a
    boundary rarely falls before the phrase) are tried after that ``\\b``'s branch, without it; a
    character starts one group only, so the order of the two branches changes no match. On the
    default patterns that is about 8× faster than the plain alternation. A fragment it cannot
    analyse leaves the plain alternation (still correct).
    """
    plain = "|".join(f"(?:{p})" for p in patterns)
    starts = [_start(p) for p in patterns]
    if not all(chars for _, chars in starts):
        return (r"\b" if all(b for b, _ in starts) else "") + f"(?:{plain})"
    groups: dict[str, set[str]] = {}  # lower-case character → the characters it stands for
    for _, chars in starts:
        for c in chars:
            groups.setdefault(c.lower() if len(c.lower()) == 1 else c, set()).add(c)
    at_boundary, anywhere, anywhere_chars = [], [], set()
    for key, chars in sorted(groups.items()):
        members = [(p, b) for p, (b, first) in zip(patterns, starts) if first & chars]
        look = "".join(re.escape(c) for c in sorted(chars | {key}))
        branch = f"(?=[{look}])(?:" + "|".join(f"(?:{p})" for p, _ in members) + ")"
        if all(b for _, b in members):
            at_boundary.append(branch)
        else:
            anywhere.append(branch)
            anywhere_chars |= chars | {key}
    # Each side behind one test that turns most positions away: a word boundary, or a first character.
    sides = [r"\b(?:" + "|".join(at_boundary) + ")"] if at_boundary else []
    if anywhere:
        look = "".join(re.escape(c) for c in sorted(anywhere_chars))
        sides.append(f"(?=[{look}])(?:" + "|".join(anywhere) + ")")
    return "(?:" + "|".join(sides) + ")"


@lru_cache(maxsize=16)
def _by_script(patterns: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """The fragments that may start with a character below U+0370 (Latin, or unknown), in order, and
    the characters the others start with."""
    latin, other = [], set()
    for p in patterns:
        _, chars = _start(p)
        if chars is None or any(c < "\u0370" for c in chars):
            latin.append(p)
        else:
            other |= chars
    return tuple(latin), "".join(sorted(other))


class RefusalRecogniser:
    """Texts → 1 (refused), 0 (complied), -1 (no text), by one regex search per text.

    ``patterns`` are regular-expression fragments (default :data:`DEFAULT_REFUSAL_PATTERNS`), joined
    into one case-insensitive alternation; each is validated on its own, so an invalid one raises a
    ``ValueError`` naming it and the ``re`` error (so does a capturing group: write ``(?:…)``).

    Only the first ``max_chars`` characters of a text are searched. A refusal states itself early
    (after at most a greeting and an apology), while long compliant answers often quote refusal-like
    phrases further down (pasted logs, dialogue, a policy excerpt); the cut also bounds the cost per
    record, whatever the length of the output. A text that is ``None``, blank or not a string is -1.

    >>> r = RefusalRecogniser(max_chars=20)
    >>> r.recognise(["Here is the report. " + "I can't help with that.", "", "I can't."]).tolist()
    [0, -1, 1]
    """

    def __init__(self, patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS, max_chars: int = 600):
        if isinstance(patterns, str):
            raise TypeError("patterns must be a sequence of regex fragments, not one string")
        patterns = list(patterns)
        if not patterns:
            raise ValueError("at least one refusal pattern is required")
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}")
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"invalid refusal pattern {pattern!r}: not a non-empty string")
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as e:
                raise ValueError(f"invalid refusal pattern {pattern!r}: {e}") from None
            if compiled.groups:
                raise ValueError(f"invalid refusal pattern {pattern!r}: capturing group; write (?:...), "
                                 "the patterns are joined into one regex where group numbers and names clash")
        self.patterns: tuple[str, ...] = tuple(patterns)
        self.max_chars = max_chars
        try:
            self.regex = re.compile(_alternation(self.patterns), re.IGNORECASE)
            latin, other_starts = _by_script(self.patterns)
            # Fragments that can only start with a Cyrillic, CJK, Hangul ... character cannot match a
            # text without one: such texts (most, in most logs) are searched without them, ~2× faster.
            self._latin = re.compile(_alternation(latin), re.IGNORECASE) if latin else None
            self._other = re.compile(f"[{re.escape(other_starts)}]", re.IGNORECASE) if other_starts else None
        except re.error as e:  # e.g. a global flag such as (?x) inside a fragment
            raise ValueError(f"invalid refusal patterns: they cannot be joined into one regex: {e}") from None

    def search(self, text: str) -> re.Match[str] | None:
        """The first refusal phrase in the searched prefix of ``text`` (for explaining a label)."""
        cut = self.max_chars
        if self._other is None or self._other.search(text, 0, cut):
            return self.regex.search(text, 0, cut)
        return self._latin.search(text, 0, cut) if self._latin is not None else None

    def recognise(self, texts: Sequence[str | None]) -> np.ndarray:
        """int8 array, one code per text: 1 refused, 0 complied, -1 no text (``None``, blank, not a string)."""
        out = np.empty(len(texts), dtype=np.int8)
        search = self.search
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text or text.isspace():
                out[i] = NO_TEXT
            else:
                out[i] = search(text) is not None
        return out

    def __repr__(self) -> str:
        return f"RefusalRecogniser({len(self.patterns)} patterns, max_chars={self.max_chars})"
