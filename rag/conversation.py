"""Follow-up questions made standalone before retrieval.

"What did he say Russia is sharing?" retrieves nothing useful on its own: "he" is in the earlier turn.
`standalone_question` returns a rewrite that carries its own context, or None when the question already
stands alone (most questions: only those that lean on the conversation are touched).

1. A rule: a pronoun is replaced by the subject of the previous question ("Who is the commander of U.S.
   Forces Korea?" gives "the commander of U.S. Forces Korea"), when that subject is clear.
2. Otherwise, with a language model (the generative answerer's, when there is one), the model rewrites;
   a reply that is not one plausible question is ignored. Measured on a busy 2-core machine: 10-23 s a
   rewrite with the bundled 1.5B model, which is why the rule goes first.
3. Otherwise the previous question is put in front of the follow-up ("And the wounded?"), which is what
   retrieval needs even if it reads less smoothly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": "..."}

PERSONAL = {"he", "she", "him", "they", "them", "it"}
POSSESSIVE = {"his", "her", "their", "its"}
DEMONSTRATIVE_ALONE = re.compile(r"^(?:that|this|those|these|there)\b|\b(?:that|this|those|these)\s*\??$", re.I)
ELLIPTICAL = re.compile(r"^(?:and|but|also|what about|how about|and what about|same for|what of)\b", re.I)
# "Who is X?", "What was X?", "Who are X?": X is what a later "he"/"it"/"they" refers to.
SUBJECT = re.compile(r"^(?:who|what|which)\s+(?:is|was|are|were)\s+(?P<x>.+?)[?.!]*$", re.I)
# "How many shells has North Korea sent?", "What did Kim order?": the actor after the auxiliary.
ACTOR = re.compile(
    r"^(?i:(?:how\s+\w+|what|which|when|where|why|who)(?:\s+\w+)?\s+"
    r"(?:has|have|had|did|does|do|is|was|are|were)\s+)(?P<x>(?:the\s+)?(?:[A-Z][\w.'’-]*\s*)+)"
)
WORD = re.compile(r"[A-Za-z’']+")
MAX_REWRITE_CHARS = 400


class _Streams(Protocol):
    def stream(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 200,
               stop: Sequence[str] = ()) -> Iterator[str]: ...


def _previous_question(history: Sequence[Turn]) -> str:
    for turn in reversed(history):
        if isinstance(turn, dict) and turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return ""


def needs_context(question: str) -> bool:
    """True when the question leans on an earlier turn: a pronoun, a bare demonstrative, an ellipsis."""
    words = [w.lower().replace("’", "'") for w in WORD.findall(question)]
    if any(w in PERSONAL or w in POSSESSIVE for w in words):
        return True
    if ELLIPTICAL.search(question.strip()) or DEMONSTRATIVE_ALONE.search(question.strip()):
        return True
    return len(words) <= 2


def _referent(previous: str) -> tuple[str, set[str]]:
    """The noun phrase a pronoun in the next question most likely points at, and the pronouns that may
    point at it: anything for the subject of "Who is X?"; only he/she for the actor of "What did X say?",
    since "them" after "How many troops has North Korea sent?" means the troops, not North Korea."""
    previous = previous.strip()
    m = SUBJECT.match(previous)
    if m and len(m.group("x").split()) <= 12:
        return m.group("x").strip(), PERSONAL | POSSESSIVE
    m = ACTOR.match(previous)
    if m:
        return m.group("x").strip(), {"he", "she", "him", "his", "her"}
    return "", set()


def _substitute(question: str, referent: str, pronouns: set[str]) -> str | None:
    """The question with its first pronoun replaced by `referent`; None when a pronoun cannot be."""
    for m in WORD.finditer(question):
        word = m.group(0).lower()
        if (word in PERSONAL or word in POSSESSIVE) and word not in pronouns:
            return None
        if word in PERSONAL:
            replacement = referent
        elif word in POSSESSIVE:
            replacement = referent + ("'" if referent.endswith("s") else "'s")
        else:
            continue
        if m.start() == 0:
            replacement = replacement[0].upper() + replacement[1:]
        return question[: m.start()] + replacement + question[m.end():]
    return None


def substitute_referent(question: str, history: Sequence[Turn]) -> str | None:
    """The follow-up with its pronoun replaced by the previous question's subject, when the rule is sure."""
    referent, pronouns = _referent(_previous_question(history))
    if not referent or ELLIPTICAL.search(question):
        return None
    return _substitute(question, referent, pronouns)


def heuristic_rewrite(question: str, history: Sequence[Turn]) -> str | None:
    """A standalone form of a follow-up by rule, or None when the question stands alone."""
    previous = _previous_question(history)
    if not previous or not needs_context(question):
        return None
    return substitute_referent(question, history) or f"{previous.rstrip()[:300]} {question.strip()}"


REWRITE_PROMPT = (
    "Rewrite the last question of a conversation so that it can be understood without the conversation. "
    "Replace pronouns with what they refer to. Keep the meaning and the wording otherwise. "
    "Reply with the rewritten question only, on one line."
)
EXAMPLE = (
    "Conversation:\nuser: Who founded the Red Cross?\nassistant: Henry Dunant founded it in 1863 [1].\n"
    "Last question: Where was he born?",
    "Where was Henry Dunant, the founder of the Red Cross, born?",
)


def _llm_rewrite(question: str, history: Sequence[Turn], llm: _Streams) -> str | None:
    turns = [t for t in history if isinstance(t, dict) and t.get("role") in ("user", "assistant")][-4:]
    convo = "\n".join(f"{t['role']}: {str(t.get('content', ''))[:600]}" for t in turns)
    messages = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": EXAMPLE[0]},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": f"Conversation:\n{convo}\nLast question: {question}"},
    ]
    reply = "".join(llm.stream(messages, max_tokens=80, stop=("\n",))).strip().strip('"')
    plausible = 8 <= len(reply) <= MAX_REWRITE_CHARS and "\n" not in reply and reply.endswith("?")
    return reply if plausible else None


def standalone_question(question: str, history: Sequence[Turn] | None, *, llm: Any = None) -> str | None:
    """The follow-up rewritten to stand alone, or None when it needs no rewriting (or there is no history).

    The rule's substitution comes first: it is instant, and a model call would also evict the answerer's
    cached prompt. The model (when given) handles what the rule cannot resolve; the last resort puts the
    previous question in front."""
    if not history or not _previous_question(history) or not needs_context(question):
        return None
    swapped = substitute_referent(question, history)
    if swapped:
        return swapped
    if llm is not None and hasattr(llm, "stream"):
        try:
            rewritten = _llm_rewrite(question, history, llm)
        except Exception:  # a model that fails mid-call must not cost the user the answer
            rewritten = None
        if rewritten and rewritten.strip().lower() != question.strip().lower():
            return rewritten
    return heuristic_rewrite(question, history)
