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
from rag.text import sentence_spans as sentence_spans  # rag/answer/ imports it from here; it lives in rag.text
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
