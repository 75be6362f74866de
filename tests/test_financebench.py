"""Page-exact citations on real SEC filings (FinanceBench, ../shared/datasets/financebench).

Two small filings keep this fast enough for CI. Each page's text is extracted again here, independently
of the index, and every sentence of every retrieved passage, and every quote of every answer, must sit on
the page the service names. Questions whose gold page (counted from 0 in the dataset) is retrieved in the
top 5 must get that page for the passage that comes from it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.answer.base import cite
from rag.text import sentence_spans
from tests.conftest import DATASETS

# slow: ingesting the two filings takes 104 s under load 8
pytestmark = [pytest.mark.integration, pytest.mark.slow]

FB = DATASETS / "financebench"
FILINGS = ["ULTABEAUTY_2023Q4_EARNINGS", "JOHNSON_JOHNSON_2023_8K_dated-2023-08-30"]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _page_texts(pdf: Path) -> list[str]:
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    if reader.is_encrypted:
        reader.decrypt("")
    return [_norm(page.extract_text() or "") for page in reader.pages]


def _true_pages(quote: str, pages: list[str]) -> set[int]:
    """1-based pages whose own text holds the quote."""
    q = _norm(quote)
    return {i for i, text in enumerate(pages, 1) if q in text}


@pytest.fixture(scope="module")
def filings(tmp_path_factory, embedder):
    if not FB.exists():
        pytest.fail(f"{FB} is missing: the shared datasets must sit beside the repository")
    corpus = tmp_path_factory.mktemp("financebench")
    for name in FILINGS:
        shutil.copy(FB / "pdfs" / f"{name}.pdf", corpus)
    from rag.config import Settings
    from rag.service import Service

    svc = Service(Settings.from_env(env={}, corpus=corpus, index=corpus.parent / "fb-index", answerer="extractive"),
                  embedder=embedder)
    summary = svc.ingest()
    assert summary.added == len(FILINGS) and not summary.skipped
    pages = {f"{name}.pdf": _page_texts(corpus / f"{name}.pdf") for name in FILINGS}
    with open(FB / "queries.jsonl", encoding="utf-8") as fh:
        queries = [q for q in map(json.loads, fh) if q["doc_name"] in FILINGS]
    return svc, pages, queries


def test_every_retrieved_sentence_and_every_quote_names_its_own_page(filings):
    svc, pages, queries = filings
    checked = gold_retrieved = 0
    for q in queries:
        gold = {int(g.split("#p")[1]) + 1 for g in q["gold_pages"]}
        for hit in svc.search(q["question"], 5):
            text = svc.doc_text(hit.doc_id)
            for s, e in sentence_spans(text, hit.start, hit.end):
                true = _true_pages(text[s:e], pages[hit.source])
                if len(_norm(text[s:e])) < 25 or not true:
                    continue
                page = cite(1, hit, s, e, svc.doc_text).page
                assert page in true, (hit.source, text[s:e], page, true)
                checked += 1
                if hit.source == f"{q['doc_name']}.pdf" and true <= gold:
                    gold_retrieved += 1
                    assert page in gold
        for c in svc.ask(q["question"]).citations:
            assert svc.doc_text(c.doc_id)[c.start : c.end] == c.quote
            true = _true_pages(c.quote, pages[c.source])
            assert c.page in true, (c.source, c.quote, c.page, true)
            checked += 1
    assert checked > 100 and gold_retrieved > 0, (checked, gold_retrieved)
