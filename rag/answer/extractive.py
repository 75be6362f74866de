"""The extractive answerer: the retrieved sentences that answer the question, each cited exactly.

Each sentence of the top passages is scored against the question by a mix of meaning (cosine of
embeddings) and wording (share of the question's content words it contains). The best sentence answers;
the best sentence of each other document joins when it scores close, so that an answer needing two
documents, or two documents that disagree, shows both. Nothing is said when the best sentence answers the
question too weakly (the evidence score), or when the retrieved documents do not name what the question
names (the names rule). Both were calibrated on SQuAD2-500 and MultiHop-RAG-500 with
`python -m bench.abstention` (docs/abstention.md#extractive-rules).
"""

from __future__ import annotations

import re
from typing import Any

from rag.answer.base import DocTexts, abstain, cite, strip_reference_marks
from rag.answer.evidence import STOPWORDS, Candidate, content_terms, lexical_overlap, score_sentences
from rag.embedding import _NumpyEmbedding
from rag.text import spoken_date
from rag.types import Answer, Hit

__all__ = ["Candidate", "ExtractiveAnswerer", "content_terms", "lexical_overlap", "names_found", "spoken_date"]

_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-zA-Z]+|\d[\d,.]*)")


def question_entities(question: str) -> set[str]:
    """Names (capitalised words not opening the question) and numbers the question mentions."""
    q = question.strip()
    return {m.group(1).rstrip(".,").lower() for m in _NAME.finditer(q, 1)
            if m.group(1).lower() not in STOPWORDS}


def _found(entity: str, low: str) -> bool:
    return entity in low or (len(entity) > 5 and entity[:5] in low)


def entities_covered(question: str, text: str) -> bool:
    """Whether every name and number of the question occurs in `text` (prefix match on 5 letters)."""
    low = text.lower()
    return all(_found(e, low) for e in question_entities(question))


def document_words(hit: Hit, doc_text: DocTexts) -> str:
    """What the names rule searches in a retrieved document: its text, title and publication date."""
    return " ".join((doc_text(hit.doc_id), hit.title, hit.publish_date, spoken_date(hit.publish_date)))


# A question naming more than this many names and numbers is about several things (MultiHop-RAG's name two
# or three sources, their dates and subjects), and retrieval rarely brings back every document it names.
FEW_NAMES = 3
# ... so such a question needs this share of its names in the retrieved documents (MultiHop-RAG-500 and
# SQuAD2-500, bench/abstention.py: docs/abstention.md#evidence-threshold).
MANY_NAMES_SHARE = 0.5


def names_found(question: str, hits: list[Hit], best: Hit, doc_text: DocTexts) -> bool:
    """The names rule: a question with few names needs all of them in the best sentence's document (a
    passage on the right topic that never names the question's subject does not answer it); a question
    with many needs `MANY_NAMES_SHARE` of them somewhere in the retrieved documents."""
    names = question_entities(question)
    if not names:
        return True
    if len(names) <= FEW_NAMES:
        low = document_words(best, doc_text).lower()
        return all(_found(e, low) for e in names)
    docs = {h.doc_id: h for h in hits}
    low = " ".join(document_words(h, doc_text) for h in docs.values()).lower()
    return sum(_found(e, low) for e in names) / len(names) >= MANY_NAMES_SHARE


# Calibrated with bench/abstention.py on SQuAD2-500 and MultiHop-RAG-500 (docs/abstention.md#extractive-rules).
EVIDENCE_THRESHOLD = 0.45
TERM_CAP = 6


class ExtractiveAnswerer:
    """Answers with exact sentences from the passages; abstains below `evidence_threshold`.

    `threshold` is the best single sentence's score below which the generative answerer (which selects its
    evidence with `candidates`) refuses; this answerer decides by `evidence_score` instead."""

    name = "extractive"
    prompt_version = None  # it writes nothing: every sentence is a quote

    def __init__(
        self,
        embedder: _NumpyEmbedding,
        *,
        threshold: float = 0.45,
        evidence_threshold: float = EVIDENCE_THRESHOLD,
        dense_weight: float = 0.5,
        margin: float = 0.12,
        max_sentences: int = 3,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.evidence_threshold = evidence_threshold
        self.dense_weight = dense_weight
        self.margin = margin
        self.max_sentences = max_sentences

    def candidates(self, question: str, hits: list[Hit], doc_text: DocTexts, *, titled: bool = False,
                   name_rule: bool = False) -> list[Candidate]:
        """Every sentence of the hits, scored, best first (the shared evidence scorer). The extractive answer
        scores without the page title and the name rule, as its threshold and gates were set; the generative
        answerer asks for both (measured for it: docs/answers.md#sentence-kind-and-title)."""
        return score_sentences(question, hits, doc_text, self.embedder, self.dense_weight, titled=titled,
                               name_rule=name_rule)

    def choose(self, cands: list[Candidate]) -> list[Candidate]:
        """The sentences an answer quotes: the best, then close ones, one per document first."""
        best = cands[0]
        chosen = [best]
        floor = best.score - self.margin
        docs_used = {best.hit.doc_id}
        for c in cands[1:]:
            if len(chosen) >= self.max_sentences or c.score < floor:
                break
            # Prefer breadth: one sentence per document first, a second from the same only if close.
            if c.hit.doc_id in docs_used and c.score < best.score - self.margin / 2:
                continue
            if any(_overlaps(c, o) or _same_words(c.text, o.text) for o in chosen):
                continue
            chosen.append(c)
            docs_used.add(c.hit.doc_id)
        return chosen

    def evidence_score(self, question: str, best: Candidate) -> float:
        """How well the best sentence answers: its score, with the share of the question's content words
        counted up to `TERM_CAP` words.

        A long question (MultiHop-RAG's run to 20 content words, much of it framing: "Does the article
        from X suggest ... while the report from Y ...") is on topic long before every word is matched,
        and no one sentence holds all of it; SQuAD2-500's short questions are scored as before."""
        terms = content_terms(question)
        if not terms or len(terms) <= TERM_CAP:
            return best.score
        words = content_terms(best.text)
        prefixes = {t[:5] for t in words}
        hits = sum(1 for t in terms if t in words or (len(t) >= 5 and t[:5] in prefixes))
        # the score's wording part, recounted against at most TERM_CAP of the question's words
        return best.score + (1 - self.dense_weight) * (min(1.0, hits / TERM_CAP) - hits / len(terms))

    def evidence(self, question: str, hits: list[Hit], doc_text: DocTexts,
                 trace: dict[str, Any] | None = None) -> list[Candidate]:
        """The sentences to quote, best first; empty when the answerer abstains (`trace` says why)."""
        trace = {} if trace is None else trace
        cands = self.candidates(question, hits, doc_text)
        if not cands:
            trace["refusal_reason"] = "no retrieved passage has a sentence to answer from"
            return []
        score = self.evidence_score(question, cands[0])
        trace["evidence"] = {"sentences": len(cands), "best_score": round(score, 3),
                             "threshold": self.evidence_threshold}
        if score < self.evidence_threshold:
            trace["refusal_reason"] = (f"the best sentence scores {score:.2f} < {self.evidence_threshold} "
                                       "against the question")
            return []
        if not names_found(question, hits, cands[0].hit, doc_text):
            trace["refusal_reason"] = "the retrieved documents do not name what the question names"
            return []
        return self.choose(cands)

    def answer(self, question: str, hits: list[Hit], doc_text: DocTexts) -> Answer:
        trace: dict[str, Any] = {}
        chosen = self.evidence(question, hits, doc_text, trace)
        if not chosen:
            ans = abstain(question)
            ans.trace = trace
            return ans
        parts, citations = [], []
        for n, c in enumerate(chosen, 1):
            parts.append(_with_marker(strip_reference_marks(c.text).rstrip(), n))
            citations.append(cite(n, c.hit, c.start, c.end, doc_text, page=_page(c, doc_text)))
        trace["cite"] = {"citations": len(citations), "quoted": True}
        return Answer(question=question, answer=" ".join(parts), abstained=False, citations=citations,
                      trace=trace)


def _with_marker(sentence: str, n: int) -> str:
    """`sentence [n].`: the marker goes before the final punctuation, as a footnote would."""
    m = re.search(r"[.!?]+[\"'”’)]*$", sentence)
    if m:
        return f"{sentence[:m.start()]} [{n}]{sentence[m.start():]}"
    return f"{sentence} [{n}]"


def _page(c: Candidate, doc_text: DocTexts) -> int | None:
    """The PDF page where the quoted sentence starts (a chunk may run across pages)."""
    return c.hit.page_at(c.start)


def _overlaps(a: Candidate, b: Candidate) -> bool:
    return a.hit.doc_id == b.hit.doc_id and a.start < b.end and b.start < a.end


def _same_words(a: str, b: str) -> bool:
    wa, wb = content_terms(a), content_terms(b)
    return bool(wa) and len(wa & wb) / len(wa | wb) > 0.8


