"""A PDF question answered for the app shows the quote's page in its source panel."""

from __future__ import annotations

import re

import pytest

from tests.test_formats import HARBOUR_PAGES, make_pdf
from ui.render import Turn, source_record, sources_html

pytestmark = pytest.mark.integration


def test_source_panel_names_the_page_of_the_quote(make_service, tmp_path, embedder):
    corpus = tmp_path / "pdfs"
    corpus.mkdir()
    make_pdf(corpus / "harbour.pdf", HARBOUR_PAGES)
    svc = make_service(corpus, embedder=embedder)
    svc.ingest()
    ans = svc.ask("How tall is the Lindholm lighthouse?")
    assert not ans.abstained
    docs = {d["source"]: d for d in svc.documents()}
    turn = Turn(question=ans.question, answer=ans,
                sources=[source_record(c, docs, svc.doc_text) for c in ans.citations])
    html = sources_html([turn])
    cited = next(c for c in ans.citations if "42 metres" in c.quote)
    assert cited.page == 2
    card = re.search(rf'<article class="src" id="src-0-{cited.n}".*?</article>', html, re.S)
    assert card and '<span class="page">page 2</span>' in card.group(0)
    assert "harbour.pdf" in card.group(0)
