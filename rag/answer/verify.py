"""The support judge: does a passage support a sentence? The same small model, asked for Yes or No.

The score is P(Yes) / (P(Yes) + P(No)) for the first token of the reply, read from the model's logits,
so it is a number that can be thresholded, not a word to parse. A literal check runs first: a sentence
with a number or a name that the passage never mentions is unsupported whatever the model says.

The threshold comes from `eval/support_pairs.jsonl` (supported and unsupported pairs written from the
seed articles: paraphrases, wrong numbers, swapped figures, the other source's figure, negations, extra
claims) by `bench/calibrate_judge.py`, which prints the accuracy at each threshold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rag.config import repo_root
from rag.llm import ChatModel, Message
from rag.text import NUMBER_WORDS

# Calibrated by bench/calibrate_judge.py on eval/support_pairs.jsonl (44 pairs, 21 supported): with the
# literal check first, accuracy is 0.91 at 0.5 (3 unsupported pass) and 0.91-0.93 for cuts in the gap
# between 0.57 and 0.66 (2 pass: a swapped pair of figures and a negation). 0.6 sits in that gap rather than
# on a score, since one pair either side of a cut fitted that closely is noise.
DEFAULT_THRESHOLD = 0.6

JUDGE_SYSTEM = (
    "You check facts. Given a passage and a claim, reply Yes if the passage states everything the claim "
    "says (same numbers, names, places and dates), otherwise reply No. Reply with one word."
)
# Two worked examples keep the 1.5B model from answering Yes to anything on topic. They sit in the fixed
# prefix, which llama.cpp keeps evaluated, so they cost nothing per call.
_EXAMPLES: list[tuple[str, str, str]] = [
    ("The bridge, opened in 1932, carries about 10,000 vehicles a day.",
     "The bridge carries 100,000 vehicles a day.", "No"),
    ("The bridge, opened in 1932, carries about 10,000 vehicles a day.",
     "About 10,000 vehicles cross the bridge daily.", "Yes"),
]


FIGURE_SYSTEM = (
    "You check whether a passage gives the figure a question asks for. Reply Yes if the passage states a "
    "number for what the question asks about (an estimate, a range or other words count), No if its "
    "numbers count something else. Reply with one word."
)
# Made-up facts: a figure of another event in the same passage (No), a figure phrased as a "loss of", one
# inside a list, and a figure given next to a larger one it is part of. Without examples the model said No
# to "the loss of nearly 5,000 soldiers" for "how many soldiers were lost" (P 0.47); with them 0.89.
_FIGURE_EXAMPLES: list[tuple[str, str, str]] = [
    ("Officials said the storm damaged about 300 homes and left 12 people dead.",
     "How many people were evacuated before the storm?", "No"),
    ("According to the ministry, the floods have caused the loss of nearly 2,000 cattle.",
     "How many animals died in the floods?", "Yes"),
    ("Critics accused the firm of shipping a range of goods abroad, including grain, textiles and "
     "between 300 and 400 tractors.", "What is the number of tractors the firm exported?", "Yes"),
    ("The city says 40,000 residents were moved, and 150 of them were injured on the way.",
     "How many residents were injured?", "Yes"),
]


def _ask_figure(passage: str, question: str) -> str:
    return f"Passage: {passage}\nQuestion: {question}\nDoes the passage give the figure asked for?"


def _ask(passage: str, claim: str) -> str:
    return f"Passage: {passage}\nClaim: {claim}\nDoes the passage support the claim?"


def judge_messages(sentence: str, passage: str) -> list[Message]:
    """The judge's prompt: fixed instructions and examples, then this pair."""
    msgs: list[Message] = [{"role": "system", "content": JUDGE_SYSTEM}]
    for p, c, a in _EXAMPLES:
        msgs += [{"role": "user", "content": _ask(p, c)}, {"role": "assistant", "content": a}]
    msgs.append({"role": "user", "content": _ask(clean_claim(passage), clean_claim(sentence))})
    return msgs


def clean_claim(text: str) -> str:
    """Text without our `[n]` markers or a source's own reference numbers, on one line."""
    text = re.sub(r"\s*(?:[,;]?\s*\[\d+\])+", "", text)  # "[1], [3]" groups, with their separators
    return re.sub(r"\s+", " ", text).strip()


_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+")
_NOT_NAMES = frozenset("The This That These Those It Its In On At By For And But Or According Up About "
                       "Nearly Some Both Another One Sources Estimates While However".split())




def _numbers(text: str) -> set[str]:
    """Numbers written with digits, plus small ones written as words ("six million" holds a 6)."""
    found = {n.replace(",", "").rstrip(".") for n in _NUM.findall(text)}
    words = set(re.findall(r"[a-z]+", text.lower()))
    return found | {str(i) for i, w in enumerate(NUMBER_WORDS) if w in words}


def ungrounded_terms(sentence: str, passage: str) -> list[str]:
    """Numbers and names in the sentence that the passage never mentions.

    The 1.5B judge says Yes to a claim that takes the passage's topic and changes a figure or a place
    (eval/support_pairs.jsonl: "15,000 troops" against the passage that says 10,000-12,000; "in Pyongyang"
    against a passage that names no city); a literal check catches those.
    """
    claim, text = clean_claim(sentence), clean_claim(passage)
    missing = sorted({n for n in _numbers(claim) if n in _NUM.findall(claim.replace(",", ""))}
                     - _numbers(text))
    words = {w.lower()[:5] for w in re.findall(r"[A-Za-z]+", text)}
    for name in _NAME.findall(claim):
        if name not in _NOT_NAMES and name.lower()[:5] not in words:
            missing.append(name)
    return missing


def _verbatim(sentence: str, passage: str) -> bool:
    claim = clean_claim(sentence).rstrip(".!?\"'”’ ").lower()
    return len(claim.split()) >= 4 and claim in clean_claim(passage).lower()


class SupportJudge:
    """`supports(sentence, passage)` -> probability that the passage supports the sentence."""

    def __init__(self, llm: ChatModel, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.llm = llm
        self.threshold = threshold
        self.calls = 0

    def supports(self, sentence: str, passage: str) -> float:
        """1 for a sentence the passage holds word for word; 0 when the sentence has a number or name the
        passage lacks; else the model's P(Yes)."""
        if _verbatim(sentence, passage):
            return 1.0  # the model copied its passage: nothing to judge (saves a call, about 0.5 s)
        if ungrounded_terms(sentence, passage):
            return 0.0
        self.calls += 1
        return self.llm.yes_probability(judge_messages(sentence, passage))

    def answers(self, question: str, passage: str) -> float:
        """Probability that the passage answers the question: the generative answerer's judge of its best
        sentences (`GenerativeAnswerer.judged`), and its second opinion when the verdict is unsure."""
        self.calls += 1
        msgs: list[Message] = [
            {"role": "system", "content": "Reply Yes if the passage answers the question, otherwise No. "
                                          "Reply with one word."},
            # The question first: judging several passages for one question re-evaluates only the passage.
            {"role": "user", "content": f"Question: {question}\nPassage: {clean_claim(passage)}\n"
                                        "Does the passage answer the question?"},
        ]
        return self.llm.yes_probability(msgs)

    def gives_figure(self, question: str, passage: str) -> float:
        """Probability that the passage states a number for what the question asks about (not a number
        that counts something else): picks each document's side of a conflict."""
        self.calls += 1
        msgs: list[Message] = [{"role": "system", "content": FIGURE_SYSTEM}]
        for p, q, a in _FIGURE_EXAMPLES:
            msgs += [{"role": "user", "content": _ask_figure(p, q)}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": _ask_figure(clean_claim(passage), question)})
        return self.llm.yes_probability(msgs)

    def is_supported(self, sentence: str, passage: str) -> bool:
        return self.supports(sentence, passage) >= self.threshold


@dataclass(frozen=True)
class SupportPair:
    sentence: str
    passage: str
    supported: bool
    kind: str = ""


def support_pairs(path: Path | None = None) -> list[SupportPair]:
    """The labeled calibration pairs."""
    path = path or repo_root() / "eval" / "support_pairs.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [SupportPair(r["sentence"], r["passage"], bool(r["supported"]), r.get("kind", "")) for r in rows]


def best_threshold(scored: list[tuple[float, bool]]) -> tuple[float, float]:
    """(threshold, accuracy): the cut with the best accuracy; among ties the highest, since showing an
    unsupported sentence costs more than dropping a supported one."""
    cuts = sorted({s for s, _ in scored} | {0.5})
    best = (0.5, -1.0)
    for i, cut in enumerate(cuts):
        # a cut halfway between neighbouring scores generalises better than a cut on a score
        t = cut if i == 0 else (cuts[i - 1] + cut) / 2
        acc = sum((s >= t) == y for s, y in scored) / len(scored)
        if acc >= best[1]:
            best = (t, acc)
    return best
