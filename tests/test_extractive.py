"""The extractive answerer's choices, on hand-made passages with a deterministic embedder."""

from __future__ import annotations

from rag.answer.base import CANNOT_ANSWER, MARKER
from rag.answer.extractive import ExtractiveAnswerer, entities_covered, question_entities
from rag.types import Hit

DOCS = {
    "d1": "The Harbor Bridge opened in 1932. It carries eight lanes of traffic. Tolls were removed in 2001.",
    "d2": "Critics said the Harbor Bridge opened in 1931, a year earlier than the official record.",
}


def _hits():
    return [Hit(doc_id=d, chunk_id=f"{d}:0-{len(t)}", score=0.5, start=0, end=len(t), source=f"{d}.txt", text=t)
            for d, t in DOCS.items()]


def test_answer_quotes_the_sentence_and_cites_its_exact_span(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, threshold=0.3).answer(
        "When did the Harbor Bridge open?", _hits(), DOCS.__getitem__)
    assert not ans.abstained
    first = ans.citations[0]
    assert first.quote == "The Harbor Bridge opened in 1932." == DOCS[first.doc_id][first.start : first.end]
    assert sorted(int(n) for n in MARKER.findall(ans.answer)) == [c.n for c in ans.citations]


def test_disagreeing_documents_are_both_cited(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, threshold=0.3).answer(
        "When did the Harbor Bridge open?", _hits(), DOCS.__getitem__)
    assert {c.doc_id for c in ans.citations} == {"d1", "d2"}
    assert "1932" in ans.answer and "1931" in ans.answer


def test_below_threshold_it_abstains_without_citations(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, threshold=0.95).answer(
        "When did the Harbor Bridge open?", _hits(), DOCS.__getitem__)
    assert ans.abstained and ans.answer == CANNOT_ANSWER and ans.citations == []


def test_a_name_the_passages_never_mention_means_abstain(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, threshold=0.3).answer(
        "When did the Golden Gate Bridge open?", _hits(), DOCS.__getitem__)
    assert ans.abstained


def test_question_entities():
    assert question_entities("When did the Harbor Bridge open in 1932?") == {"harbor", "bridge", "1932"}
    assert question_entities("how many shells were sent?") == set()
    assert entities_covered("Who is Xavier Brunsen?", "Gen. Xavier Brunson said")  # prefix match
    assert not entities_covered("Who is Xavier Brunsen?", "Gen. Smith said")
