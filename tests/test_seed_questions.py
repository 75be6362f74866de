"""Integration: corpus/ with the real embedding model and a real embedded Chroma, extractive answers."""

from __future__ import annotations

import re

import pytest

from rag.answer.base import CANNOT_ANSWER, MARKER
from tests.conftest import CORPUS, SEED_SHELLS, SEED_TROOPS

pytestmark = pytest.mark.integration

# (question, a pattern the answer must contain, the document one citation must come from)
ANSWERABLE = [
    ("How many artillery shells has North Korea sent to Russia?", r"six million", SEED_SHELLS),
    ("How many North Korean soldiers were sent to Russia?", r"15,000", SEED_TROOPS),
    ("Who is the commander of U.S. Forces Korea?", r"Xavier Brunson", None),
    ("How many North Korean troops have been killed fighting for Russia?", r"600 killed", SEED_SHELLS),
    ("How many North Korean troops were wounded?", r"4,100", SEED_SHELLS),
    ("How fast is North Korea producing artillery shells compared with its annual average?",
     r"four times", SEED_SHELLS),
    ("Which news agency reported Kim Jong Un's order?", r"Korean Central News Agency|KCNA", SEED_SHELLS),
    ("What weapons have the U.S. and South Korean militaries accused North Korea of sending?",
     r"152 mm|ballistic missiles", SEED_SHELLS),
    ("What does Russia share with North Korea in return?", r"space, nuclear|missile", None),
    ("Where did Kim Jong Un visit a weapons factory?", r"Pyongyang", SEED_SHELLS),
    ("How many North Korean soldiers were lost according to South Korean intelligence?",
     r"5,000|600 killed", None),
    ("How did North Korea ship shells to Russia?", r"by sea|containers", SEED_SHELLS),
]

UNANSWERABLE = [
    "What is the population of Brazil?",
    "Who won the 2018 FIFA World Cup?",
    "What is the boiling point of ethanol?",
]


def _check_citations(svc, ans):
    markers = sorted({int(n) for n in MARKER.findall(ans.answer)})
    assert markers == [c.n for c in ans.citations], ans.answer
    for c in ans.citations:
        text = (CORPUS / c.source).read_text(encoding="utf-8")
        assert text[c.start : c.end] == c.quote
        assert svc.show(c.doc_id) == text


@pytest.mark.parametrize("question,pattern,source", ANSWERABLE)
def test_answerable_seed_questions(seed_service, question, pattern, source):
    ans = seed_service.ask(question)
    assert not ans.abstained, ans.answer
    assert re.search(pattern, ans.answer), ans.answer
    _check_citations(seed_service, ans)
    cited = [c for c in ans.citations if re.search(pattern, c.quote)]
    assert cited, "the fact must sit inside a cited quote"
    if source:
        assert any(c.source == source for c in cited)


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_abstain(seed_service, question):
    ans = seed_service.ask(question)
    assert ans.abstained, ans.answer
    assert ans.answer.startswith(CANNOT_ANSWER) and ans.citations == []


def test_conflicting_troop_numbers_show_both_sources(seed_service):
    ans = seed_service.ask("How many troops has North Korea sent to Russia?")
    _check_citations(seed_service, ans)
    assert "15,000" in ans.answer and "10,000 and 12,000" in ans.answer
    assert {c.source for c in ans.citations} >= {SEED_SHELLS, SEED_TROOPS}


def test_search_hits_are_exact_spans(seed_service):
    hits = seed_service.search("artillery shells shipped by sea", 5)
    assert hits and any("by sea" in h.text for h in hits)
    for h in hits:
        assert seed_service.doc_text(h.doc_id)[h.start : h.end] == h.text
