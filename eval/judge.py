"""Support judges for the ALCE citation metrics: does a passage support a sentence?

Every judge has `supports(sentence, passage) -> float` in [0, 1] and a `threshold`. The best one here is
the bundled LLM asked Yes or No (rag/answer/verify.py, `SupportJudge`); `LexicalJudge` needs no model and
serves unit tests and machines without the LLM. Both sit behind `ExactFirst`, which settles the common
case without a model: a sentence that is a verbatim part of its passage is supported.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from rag.answer.base import MARKER, strip_reference_marks
from rag.answer.extractive import content_terms

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.llm import ChatModels

_NUM = re.compile(r"\d[\d,.]*\d|\d")
_NUM_WORDS = re.compile(r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                        r"fifty|hundred|thousand|million|billion|dozen|half|double|twice|triple)\b", re.I)


class Judge(Protocol):
    name: str
    threshold: float

    def supports(self, sentence: str, passage: str) -> float: ...


def clean(text: str) -> str:
    """Text without [n] markers or a source's own reference numbers, quotes straight, on one line."""
    text = strip_reference_marks(MARKER.sub("", text))
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip()


class LexicalJudge:
    """Share of the sentence's content words found in the passage; 0 when a number of the sentence is not
    in the passage (a wrong figure is the error that matters most here)."""

    name = "lexical"

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold

    def supports(self, sentence: str, passage: str) -> float:
        s, p = clean(sentence), clean(passage)
        nums = {n.replace(",", "") for n in _NUM.findall(s)} | {w.lower() for w in _NUM_WORDS.findall(s)}
        if nums - {n.replace(",", "") for n in _NUM.findall(p)} - {w.lower() for w in _NUM_WORDS.findall(p)}:
            return 0.0
        terms = content_terms(s)
        if not terms:
            return 1.0
        return len(terms & content_terms(p)) / len(terms)


class ExactFirst:
    """A verbatim sentence is supported by the passage it was cut from; anything else goes to `inner`,
    which is built only when first needed (loading the LLM costs seconds and 2 GB)."""

    def __init__(self, make_inner: Callable[[], Judge]) -> None:
        self._make_inner = make_inner
        self._inner: Judge | None = None
        self.exact = 0
        self.judged = 0

    @property
    def inner(self) -> Judge:
        if self._inner is None:
            self._inner = self._make_inner()
        return self._inner

    @property
    def name(self) -> str:
        return self._inner.name if self._inner is not None else "exact"

    @property
    def threshold(self) -> float:
        return self.inner.threshold

    def supports(self, sentence: str, passage: str) -> float:
        s = clean(sentence).rstrip(".!?\"' ")
        if len(s) > 10 and s.lower() in clean(passage).lower():
            self.exact += 1
            return 1.0
        self.judged += 1
        return self.inner.supports(sentence, passage)

    def is_supported(self, sentence: str, passage: str) -> bool:
        score = self.supports(sentence, passage)
        return score >= 1.0 or score >= self.threshold


class _LLMJudge:
    """rag/answer/verify.py's SupportJudge over the bundled model (or RAG_LLM_URL), under the Judge face."""

    name = "llm"

    def __init__(self, settings: Settings, models: ChatModels | None = None) -> None:
        from rag.answer.verify import SupportJudge
        from rag.llm import ChatModels

        self._judge = SupportJudge((models if models is not None else ChatModels()).get(settings))
        self.threshold = float(self._judge.threshold)

    def supports(self, sentence: str, passage: str) -> float:
        return float(self._judge.supports(sentence, passage))


def build_judge(kind: str, settings: Settings, models: ChatModels | None = None) -> ExactFirst:
    """`llm`, `lexical`, or `auto` (the LLM when it loads, else lexical, with one line saying so). `models`:
    the loaded models to take it from (the eval's, shared with its generative answerer)."""
    if kind == "lexical":
        return ExactFirst(LexicalJudge)
    if kind not in ("llm", "auto"):
        raise ValueError(f"unknown judge {kind!r}")

    def make() -> Judge:
        from rag.errors import RagError

        try:
            return _LLMJudge(settings, models)
        except (ImportError, RagError) as e:
            if kind == "llm":
                raise
            print(f"rag eval: the LLM judge is not available ({e}); judging citations lexically",
                  file=sys.stderr)
            return LexicalJudge()

    return ExactFirst(make)
