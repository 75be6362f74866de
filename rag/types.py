"""Plain data passed between the steps: documents, chunks, hits, citations, answers."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any

Location = dict[str, Any]
"""Where a span is in a format without pages: `{"paragraph": 12}`, `{"slide": 4}`,
`{"sheet": "Sheet1", "row": 12}`, `{"chapter": 3}`, `{"page": 2, "scanned": True}`."""
OcrLine = tuple[int, int, int, tuple[float, float, float, float]]


def content_hash(text: str) -> str:
    """SHA-256 of the text, hex, first 16 characters: enough to tell versions of a document apart."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def make_doc_id(source: str, text: str) -> str:
    """A document id from its source path and its content, so an unchanged file keeps its id."""
    return hashlib.sha256(f"{source}\0{content_hash(text)}".encode()).hexdigest()[:20]


def make_chunk_id(doc_id: str, start: int, end: int) -> str:
    """A chunk id from its document and span."""
    return f"{doc_id}:{start}-{end}"


@dataclass(frozen=True)
class Document:
    """One source document; `text` is what every offset indexes into."""

    source: str
    text: str
    title: str = ""
    url: str = ""
    publish_date: str = ""
    pages: tuple[int, ...] = ()  # start offset of each page, for PDFs; empty otherwise
    # Where each located unit starts (paragraph, slide, sheet row, chapter, scanned page) and its label,
    # in offset order; empty for plain text, HTML and text-only PDFs.
    locations: tuple[tuple[int, Location], ...] = field(default=(), compare=False)
    # Each OCR-recognised line: (start, end, 1-based page, (x0, y0, x1, y1) as fractions of the page
    # from its top left), so a viewer can highlight a quote on the scan.
    ocr_lines: tuple[OcrLine, ...] = field(default=(), compare=False)

    @property
    def doc_id(self) -> str:
        return make_doc_id(self.source, self.text)

    @property
    def hash(self) -> str:
        return content_hash(self.text)

    def page_at(self, offset: int) -> int | None:
        """1-based page holding `offset`, or None for documents without pages."""
        if not self.pages:
            return None
        return max(1, bisect_right(self.pages, offset))

    def location_at(self, offset: int) -> Location | None:
        """The label of the unit holding `offset` (`{"slide": 4}`), None for documents without units."""
        return locate(self.locations, offset)


def locate(locations: tuple[tuple[int, Location], ...], offset: int) -> Location | None:
    """The label of the last unit starting at or before `offset`, None before the first."""
    i = bisect_right([start for start, _ in locations], offset)
    return dict(locations[i - 1][1]) if i else None


@dataclass(frozen=True)
class Chunk:
    """A span of a document: `text == document.text[start:end]`."""

    doc_id: str
    start: int
    end: int
    text: str

    @property
    def chunk_id(self) -> str:
        return make_chunk_id(self.doc_id, self.start, self.end)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score and where it came from."""

    doc_id: str
    chunk_id: str
    score: float
    start: int
    end: int
    source: str
    text: str
    title: str = ""
    publish_date: str = ""
    page: int | None = None  # 1-based page where the chunk starts, for PDFs
    page_starts: tuple[int, ...] = ()  # document offsets inside the chunk where a new page begins
    location: Location | None = field(default=None, compare=False)  # the unit where the chunk starts
    # later units beginning inside the chunk: (document offset, label)
    location_starts: tuple[tuple[int, Location], ...] = field(default=(), compare=False)

    def location_at(self, offset: int) -> Location | None:
        """The unit label of a document offset inside this chunk (a quote's start); None without units."""
        return locate(self.location_starts, offset) or (dict(self.location) if self.location else None)

    def page_at(self, offset: int) -> int | None:
        """1-based page of a document offset inside this chunk (a quote's start), None without pages."""
        if self.page is None:
            return None
        return self.page + bisect_right(self.page_starts, offset)

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "score": round(float(self.score), 6),
            "start": self.start,
            "end": self.end,
            "source": self.source,
            "page": self.page,
            "text": self.text,
        }


@dataclass(frozen=True)
class Citation:
    """Where a claim comes from: `quote == text[start:end]` of document `doc_id`."""

    n: int
    doc_id: str
    chunk_id: str
    source: str
    title: str
    start: int
    end: int
    quote: str
    page: int | None = None
    location: Location | None = field(default=None, compare=False)  # see Location; null for plain text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """An answer with `[n]` markers, each resolved to a citation."""

    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    timings: dict[str, int] = field(default_factory=dict)
    rewritten_question: str | None = None
    conflict: bool = False
    # How the answer was reached, stage by stage (retrieve, evidence, answerable, write, verify, cite), with
    # the scores and thresholds that decided; a refusal holds `refusal_reason`.
    trace: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "timings": self.timings,
        }
        if self.rewritten_question is not None:
            out["rewritten_question"] = self.rewritten_question
        if self.conflict:
            out["conflict"] = True
        out["trace"] = self.trace
        return out
