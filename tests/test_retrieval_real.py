"""Hybrid retrieval with the real embedding model over the seeds: questions as people type them."""

from __future__ import annotations

import pytest

from rag.retrieve import Retriever

pytestmark = pytest.mark.integration

SHELLS = "001_03f627dd5a2244df.txt"
TROOPS = "000_24a73b5c3e6d1f5c.txt"


@pytest.mark.parametrize("question, source", [
    ("How many artillery shells has North Korea sent to Russia?", SHELLS),
    ("how many artillery shells has north korea sent to russia", SHELLS),
    ("How many artilery shels has Noth Korea sent to Rusia?", SHELLS),
    ("HOW MANY SOLDIERS DID NORTH KOREA LOSE?", TROOPS),
])
def test_questions_as_typed_find_the_right_seed_first(seed_service, question, source):
    hits = seed_service.search(question, 3)
    assert hits[0].source == source
    for h in hits:
        assert seed_service.doc_text(h.doc_id)[h.start : h.end] == h.text


def test_hybrid_ranks_the_answering_chunk_no_lower_than_either_side(seed_service, embedder):
    """The chunk holding "six million" is found first by the fused ranking."""
    q = "How many artillery shells has North Korea shipped to Russia?"
    fused = Retriever(seed_service.store, embedder).search(q, 5)
    assert "six million" in fused[0].text
