"""Evidence selection, shared by both answerers: which retrieved text bears on the question.

    hits -> every whole sentence of the documents that a retrieved chunk touches, scored against the
            question (`score_sentences`: meaning and wording)
         -> passages (`passages`): the best sentences, each with its neighbours (a window), merged where
            they touch, near-copies dropped (web pages repeat themselves), within a character budget

A sentence is a span of the stored document text, so whatever is later quoted from a passage is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer.base import DocTexts, strip_reference_marks
from rag.embedding import _NumpyEmbedding
from rag.text import sentence_spans
from rag.types import Hit

STOPWORDS = frozenset(
    """a an the of to in on at by for with from and or but is are was were be been being has have had do
    does did what which who whom whose when where why how many much that this these those it its as into
    about than then there their they them he she his her him i you we our your my me not no yes can could
    would should will shall may might must so if also any some such per via up out over under more most
    say says said according tell told""".split()
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:[.,][0-9]+)*")
_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|"
                     r"billion|dozen)\b", re.I)


def _stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_terms(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text) if w.lower() not in STOPWORDS}


def lexical_overlap(question_terms: set[str], sentence: str) -> float:
    """Share of the question's content terms that the sentence contains (prefix match on 5 letters)."""
    if not question_terms:
        return 0.0
    sent = content_terms(sentence)
    prefixes = {t[:5] for t in sent}
    hits = sum(1 for t in question_terms if t in sent or (len(t) >= 5 and t[:5] in prefixes))
    return hits / len(question_terms)


def wants_number(question: str) -> bool:
    return bool(re.match(r"\s*how (many|much|long|old|far)\b|\s*what (number|percentage)", question, re.I))


def wants_name(question: str) -> bool:
    """A question whose answer is usually a name: it opens with which, what, who(m/se) or where."""
    return bool(re.match(r"\s*(which|what|who|whom|whose|where)\b", question, re.I))


_CAPITALISED = re.compile(r"\b[A-Z][a-z]+")


def names_new(question_words: set[str], sentence: str) -> bool:
    """Whether the sentence has a capitalised word, after its first letter, that the question lacks."""
    return any(w.lower() not in question_words for w in _CAPITALISED.findall(sentence[1:]))


@dataclass(frozen=True)
class Candidate:
    """One whole sentence of a retrieved document, scored against the question."""

    hit: Hit
    start: int
    end: int
    text: str
    score: float
    rank: int  # the rank of the retrieved chunk it came from


def score_sentences(question: str, hits: list[Hit], doc_text: DocTexts, embedder: _NumpyEmbedding,
                    dense_weight: float = 0.5, *, titled: bool = True, name_rule: bool = True) -> list[Candidate]:
    """Every sentence the hits touch, scored `dense_weight` x cosine + the rest x wording share, best first.

    A chunk may open or close inside a sentence; the whole sentence is taken, so a quote is never cut.
    A sentence that cannot hold the kind of answer asked loses 0.1: a "how many" question's sentence without
    a figure (docs/abstention.md#extractive-rules) and, with `name_rule`, a "which/what/who/where" question's
    sentence that names nothing the question does not. `titled`: the cosine is taken for the sentence with
    its document's title ahead of it, as a page's sentence often leaves out the subject its title names.
    docs/answers.md#sentence-kind-and-title has the measurements."""
    spans: list[tuple[Hit, int, int, str, int]] = []
    seen: set[tuple[str, int, int]] = set()
    for rank, hit in enumerate(hits):
        text = doc_text(hit.doc_id)
        for s, e in doc_sentences(hit.doc_id, text):
            if e <= hit.start or s >= hit.end:
                continue
            key = (hit.doc_id, s, e)
            sentence = text[s:e]
            if key in seen or len(sentence.split()) < 4:
                continue
            seen.add(key)
            spans.append((hit, s, e, sentence, rank))
    if not spans:
        return []
    q_terms = content_terms(question)
    number = wants_number(question)
    name = name_rule and wants_name(question)
    q_words = {w.lower() for w in re.findall(r"[A-Za-z]+", question)}
    q_vec = embedder.embed_array([question], is_query=True)[0]
    shown = [f"{s[0].title}. {s[3]}" if titled and s[0].title else s[3] for s in spans]
    dense = embedder.embed_array([strip_reference_marks(t) for t in shown]) @ q_vec
    out = []
    for (hit, s, e, sentence, rank), d in zip(spans, dense, strict=True):
        score = dense_weight * float(d) + (1 - dense_weight) * lexical_overlap(q_terms, sentence)
        if number and not _NUMBER.search(sentence):
            score -= 0.1
        if name and not names_new(q_words, sentence):
            score -= 0.1
        out.append(Candidate(hit, s, e, sentence, score, rank))
    out.sort(key=lambda c: (-c.score, c.rank, c.start))
    return out


_SENTENCES: dict[tuple[str, int], list[tuple[int, int]]] = {}


def doc_sentences(doc_id: str, text: str) -> list[tuple[int, int]]:
    """The document's sentence spans, cached by id (an id names one text)."""
    key = (doc_id, len(text))
    if key not in _SENTENCES:
        if len(_SENTENCES) > 512:
            _SENTENCES.clear()
        _SENTENCES[key] = sentence_spans(text)
    return _SENTENCES[key]


@dataclass(frozen=True)
class Passage:
    """What the model reads as one numbered passage: consecutive whole sentences of one document."""

    hit: Hit
    sentences: tuple[tuple[int, int], ...]  # document spans, in order
    score: float  # its best sentence's
    best: Candidate

    @property
    def start(self) -> int:
        return self.sentences[0][0]

    @property
    def end(self) -> int:
        return self.sentences[-1][1]

    @property
    def doc_id(self) -> str:
        return self.hit.doc_id

    def text(self, doc_text: DocTexts) -> str:
        return doc_text(self.hit.doc_id)[self.start:self.end]


def single(c: Candidate) -> Passage:
    """A passage of one sentence (a conflict's side, or a quoted fallback)."""
    return Passage(c.hit, ((c.start, c.end),), c.score, c)


def passages(cands: list[Candidate], doc_text: DocTexts, *, limit: int, window: int, budget: int,
             floor: float | None = None) -> list[Passage]:
    """The best sentences with `window` neighbours each side, best first, at most `limit` passages and
    about `budget` characters in all; a window touching one already taken joins it. `floor`: sentences
    scoring under it start no passage."""
    chosen: list[tuple[Candidate, list[tuple[int, int]]]] = []  # (best sentence, its spans)
    used = 0
    for c in cands:
        if floor is not None and c.score < floor:
            break
        same_doc = [spans for best, spans in chosen if best.hit.doc_id == c.hit.doc_id]
        if any((c.start, c.end) in spans for spans in same_doc):
            continue
        text = doc_text(c.hit.doc_id)
        sents = doc_sentences(c.hit.doc_id, text)
        i = next((j for j, sp in enumerate(sents) if sp == (c.start, c.end)), None)
        if i is None:
            continue
        win = [sp for sp in sents[max(0, i - window): i + window + 1]
               if sp == (c.start, c.end) or len(text[sp[0]:sp[1]].split()) >= 3]
        gap = 2 if window else 0  # windows that meet join; lone sentences (window 0) stay apart
        touching = next((spans for spans in same_doc
                         if win[0][0] < spans[-1][1] + gap and spans[0][0] < win[-1][1] + gap), None)
        if touching is not None:
            merged = sorted(set(touching) | set(win))
            used += sum(e - s for s, e in merged) - sum(e - s for s, e in touching)
            touching[:] = merged
            continue
        if len(chosen) >= limit or (chosen and used >= budget):
            continue
        words = content_terms(" ".join(text[s:e] for s, e in win))
        if any(_near_copy(words, content_terms(" ".join(doc_text(best.hit.doc_id)[s:e] for s, e in spans)))
               for best, spans in chosen):
            continue  # the same story on another page
        chosen.append((c, win))
        used += sum(e - s for s, e in win)
    return [Passage(best.hit, tuple(spans), best.score, best) for best, spans in chosen]


def _near_copy(a: set[str], b: set[str]) -> bool:
    return bool(a) and len(a & b) / len(a | b) > 0.8
