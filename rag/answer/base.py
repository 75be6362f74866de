"""The answerer interface and the pieces every answerer shares: citations and the refusal."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from rag.types import Answer, Citation, Hit

# One refusal sentence, shared by prompts, answerers and the eval (which recognises refusals by it).
CANNOT_ANSWER = "The corpus does not say."

DocTexts = Callable[[str], str]
"""doc_id -> the document's stored text (what citation offsets index into)."""

MARKER = re.compile(r"\[(\d+)\]")


class Answerer(Protocol):
    name: str

    def answer(self, question: str, hits: list[Hit], doc_text: DocTexts) -> Answer:
        """An answer to `question` from `hits`, or a refusal."""
        ...

    # Optional, for answerers that produce text over time:
    #   def stream(self, question, hits, doc_text) -> Iterator[tuple[str, object]]
    # yields ("delta", str) pieces of *verified* answer text, then exactly one ("answer", Answer).


def cite(n: int, hit: Hit, start: int, end: int, doc_text: DocTexts, page: int | None = None) -> Citation:
    """A citation of `text[start:end]` of the hit's document; the quote is sliced, never copied.

    `page` defaults to the PDF page where the quote starts (from the hit's page starts); `location` is the
    unit (slide, sheet row, ...) where the quote starts."""
    text = doc_text(hit.doc_id)
    if page is None:
        page = hit.page_at(start)
    if not (0 <= start < end <= len(text)):
        raise ValueError(f"span {start}-{end} is outside document {hit.doc_id} ({len(text)} characters)")
    return Citation(n=n, doc_id=hit.doc_id, chunk_id=hit.chunk_id, source=hit.source, title=hit.title,
                    start=start, end=end, quote=text[start:end], page=page, location=hit.location_at(start))


def abstain(question: str, reason: str = "") -> Answer:
    """The plain refusal: no citations."""
    text = CANNOT_ANSWER if not reason else f"{CANNOT_ANSWER} {reason}"
    return Answer(question=question, answer=text, abstained=True, citations=[])


def strip_reference_marks(text: str) -> str:
    """Remove a source's own bracketed reference numbers ("... pace [1].") so they are not read as ours."""
    return re.sub(r"\s*\[\d+\]", "", text)
