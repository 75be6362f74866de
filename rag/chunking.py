"""Split a document into chunks and sentences that keep exact character offsets.

Chunks come from llama-index's sentence-aware `SentenceSplitter`; each returned piece is located in the
document text so that `text[start:end] == chunk.text` always holds (the splitter may trim white space,
so pieces are found, never assumed).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.config import ChunkingSettings
from rag.types import Chunk, Document

if TYPE_CHECKING:  # imported when first needed: llama-index takes a while to load
    from llama_index.core.node_parser import SentenceSplitter


@lru_cache(maxsize=4)
def _splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def chunk_document(doc: Document, settings: ChunkingSettings) -> list[Chunk]:
    """The document's chunks, in order, each an exact slice of `doc.text`."""
    splitter = _splitter(settings.chunk_size, settings.chunk_overlap)
    chunks: list[Chunk] = []
    cursor = 0
    for piece in splitter.split_text(doc.text):
        start = doc.text.find(piece, cursor)
        if start < 0:
            start = doc.text.find(piece)
        if start < 0:
            # The splitter rewrote white space inside the piece; fall back to a span search on words.
            span = _locate_loosely(doc.text, piece, cursor)
            if span is None:
                continue
            start, end = span
        else:
            end = start + len(piece)
        chunks.append(Chunk(doc_id=doc.doc_id, start=start, end=end, text=doc.text[start:end]))
        # Overlapping chunks may start before the previous one ends, never before it starts.
        cursor = start + 1
    return chunks


def _locate_loosely(text: str, piece: str, cursor: int) -> tuple[int, int] | None:
    words = piece.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    m = re.compile(pattern).search(text, max(0, cursor - 1)) or re.compile(pattern).search(text)
    return (m.start(), m.end()) if m else None


# A sentence ends at . ! ? (optionally followed by closing quotes or brackets) before white space, or at
# a line break. The seeds also glue sentences together ("in Ukraine.Kim Jong Un"), so a lower-case letter,
# a period and an upper-case letter followed by a lower-case one also ends a sentence.
_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])"  # end punctuation, space, capital
    r"|\n+"  # line breaks
    r"|(?<=[a-z]{2}\.)(?=[A-Z][a-z])"  # glued sentences
)
_ABBREVIATIONS = {
    "gen", "col", "lt", "sgt", "mr", "mrs", "ms", "dr", "st", "jr", "sr", "u.s", "u.k", "u.n", "no",
    "vs", "inc", "corp", "co", "ltd", "jan", "feb", "mar", "apr", "aug", "sept", "sep", "oct", "nov",
    "dec", "rep", "sen", "gov", "prof", "e.g", "i.e", "a.m", "p.m", "mt", "ft", "vol", "fig",
}


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text[start:end]`, trimmed of surrounding white space."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    seg_start = start
    for m in _BOUNDARY.finditer(text, start, end):
        cut = m.start()
        before = text[seg_start:cut].rstrip()
        last_word = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.split() else ""
        if "\n" not in m.group(0) and last_word in _ABBREVIATIONS:
            continue
        if len(before.split()) < 2 and "\n" not in m.group(0) and not before.endswith((".", "!", "?")):
            continue
        spans.append((seg_start, cut))
        seg_start = m.end()
    spans.append((seg_start, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        bullet = re.match(r"(?:[-–—•*]|\d+[.)])\s+", text[s:e])  # a list item's marker is not the claim
        if bullet:
            s += bullet.end()
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out
