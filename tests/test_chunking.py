"""Chunks and sentences are exact slices of the document text."""

from __future__ import annotations

import pytest

from rag.chunking import chunk_document
from rag.config import ChunkingSettings
from rag.sources import read_file
from rag.text import sentence_spans
from tests.conftest import CORPUS, SEED_SHELLS, SEED_TROOPS


@pytest.mark.parametrize("name", [SEED_SHELLS, SEED_TROOPS])
@pytest.mark.parametrize("size,overlap", [(64, 8), (256, 32), (1024, 200)])
def test_every_chunk_is_an_exact_slice_of_the_seed(name, size, overlap):
    doc = read_file(CORPUS / name, CORPUS)
    chunks = chunk_document(doc, ChunkingSettings(size, overlap))
    assert chunks
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
    # together the chunks cover the text from its first word to its last
    assert chunks[0].start == len(doc.text) - len(doc.text.lstrip())
    assert chunks[-1].end == len(doc.text.rstrip())


def test_curly_quotes_and_dashes_survive():
    doc = read_file(CORPUS / SEED_TROOPS, CORPUS)
    assert "’" in doc.text and "“" in doc.text and "—" in doc.text
    chunks = chunk_document(doc, ChunkingSettings(64, 8))
    joined = "".join(c.text for c in chunks)
    assert "“In return, Russia" in joined and "Korea’s" in joined


def test_chunk_ids_are_stable_and_depend_on_content():
    doc = read_file(CORPUS / SEED_SHELLS, CORPUS)
    a = [c.chunk_id for c in chunk_document(doc, ChunkingSettings(128, 16))]
    b = [c.chunk_id for c in chunk_document(read_file(CORPUS / SEED_SHELLS, CORPUS), ChunkingSettings(128, 16))]
    assert a == b and len(set(a)) == len(a)
    assert all(cid.startswith(doc.doc_id + ":") for cid in a)


def test_sentences_split_glued_text_and_keep_abbreviations():
    text = "War in Ukraine.Kim Jong Un visited. Army Gen. Xavier Brunson spoke. The U.S. and Seoul agreed."
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == [
        "War in Ukraine.",
        "Kim Jong Un visited.",
        "Army Gen. Xavier Brunson spoke.",
        "The U.S. and Seoul agreed.",
    ]


def test_sentences_drop_list_markers_and_respect_lines():
    text = "Quick Takes\n- 15,000 soldiers sent, with losses.\n- Output doubled."
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == ["Quick Takes", "15,000 soldiers sent, with losses.", "Output doubled."]


def test_sentence_spans_stay_inside_the_window():
    text = "One two three. Four five six. Seven eight nine."
    spans = sentence_spans(text, 15, 29)
    assert [text[s:e] for s, e in spans] == ["Four five six."]
