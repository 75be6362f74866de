"""HTML and PDF documents: the stored text is the extracted text, offsets index into it exactly, and a PDF
citation names the page where its quote starts (not the page where its chunk starts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main as rag_main
from rag.errors import UsageError
from rag.sources import read_file, walk


def _esc(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A PDF whose page i shows the lines `pages[i]` in Helvetica, written by hand (no PDF tool needed)."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    for i, lines in enumerate(pages):
        ops = " T* ".join(f"({_esc(line)}) Tj" for line in lines)
        data = f"BT /F1 11 Tf 14 TL 72 740 Td {ops} ET".encode("latin-1")
        objs.append((f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                     f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>").encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


# Three short pages: one 256-token chunk holds all of them, so the chunk starts on page 1 while the
# lighthouse and ferry facts sit on pages 2 and 3.
HARBOUR_PAGES = [
    ["Harbour of Lindholm: annual report", "The harbour of Lindholm opened in 1871 after six years of work."],
    ["The Lindholm lighthouse is 42 metres tall.", "Its lamp was electrified in 1923 by the city council."],
    ["Ferries from Lindholm carry 9,000 passengers a day.", "The busiest route goes to the island of Varn."],
]

ARTICLE_HTML = """<!DOCTYPE html>
<html><head><title>Glacier retreat measured | Alpine News</title>
<script>var tracking = "do not index this";</script><style>p { color: red }</style></head>
<body>
<nav><a href="/">Home</a> | <a href="/weather">Weather</a> | <a href="/sport">Sport</a></nav>
<article>
<h1>Glacier retreat measured</h1>
<p>The Morteratsch glacier lost 38 metres of length in 2024, according to the Swiss glacier monitoring network.</p>
<p>Researchers from Zurich said the retreat was the fastest since measurements began in 1878, and that
summer heat waves &amp; low snowfall explained most of the loss.</p>
<p>The network measures 176 glaciers every autumn.</p>
</article>
<footer>Copyright Alpine News. Subscribe to our newsletter.</footer>
</body></html>
"""


def test_pdf_text_is_the_pages_in_order_and_offsets_map_to_pages(tmp_path):
    pdf = make_pdf(tmp_path / "harbour.pdf", HARBOUR_PAGES)
    doc = read_file(pdf, tmp_path)
    assert doc.source == "harbour.pdf"
    assert doc.title == "Harbour of Lindholm: annual report"
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    for number, lines in enumerate(HARBOUR_PAGES, 1):
        start = doc.pages[number - 1]
        assert doc.text[start:].startswith("\n".join(lines))
        for line in lines:
            at = doc.text.index(line)
            assert doc.page_at(at) == number
            assert doc.page_at(at + len(line) - 1) == number
    assert doc.page_at(len(doc.text)) == 3


def test_html_text_is_the_article_without_navigation_or_scripts(tmp_path):
    page = tmp_path / "glacier.html"
    page.write_text(ARTICLE_HTML, encoding="utf-8")
    doc = read_file(page, tmp_path)
    assert "The Morteratsch glacier lost 38 metres of length in 2024" in doc.text
    assert "heat waves & low snowfall" in doc.text  # entities decoded
    assert "The network measures 176 glaciers every autumn." in doc.text
    for boilerplate in ("do not index this", "color: red", "Weather", "Subscribe"):
        assert boilerplate not in doc.text
    assert doc.title.startswith("Glacier retreat measured")
    assert doc.pages == ()
    assert doc.page_at(10) is None


def test_walk_finds_html_and_pdf(tmp_path):
    make_pdf(tmp_path / "a.pdf", HARBOUR_PAGES)
    (tmp_path / "b.htm").write_text(ARTICLE_HTML, encoding="utf-8")
    (tmp_path / "c.md").write_text("# C\n\ntext\n", encoding="utf-8")
    (tmp_path / "d.odt").write_bytes(b"PK\3\4")
    assert [p.name for p in walk([tmp_path], tmp_path)] == ["a.pdf", "b.htm", "c.md"]


@pytest.mark.parametrize("name,data,reason", [
    ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n", "PDF"),
    ("blank.pdf", None, "no text could be extracted"),
    ("empty.html", b"<html><head><script>x()</script></head><body></body></html>", "no text could be extracted"),
])
def test_unreadable_documents_are_refused_with_a_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    if data is None:
        make_pdf(path, [[]])
    else:
        path.write_bytes(data)
    with pytest.raises(UsageError, match=reason) as err:
        read_file(path, tmp_path)
    assert "\n" not in str(err.value)


def test_a_bad_pdf_is_skipped_and_the_rest_ingests(make_service, tmp_path, hash_embedder):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\nnot a pdf\n")
    make_pdf(corpus / "harbour.pdf", HARBOUR_PAGES)
    s = make_service(corpus, embedder=hash_embedder).ingest()
    assert s.added == 1
    assert [k.path for k in s.skipped] == ["broken.pdf"]


@pytest.fixture
def mixed_corpus(tmp_path) -> Path:
    corpus = tmp_path / "mixed"
    corpus.mkdir()
    make_pdf(corpus / "harbour.pdf", HARBOUR_PAGES)
    (corpus / "glacier.html").write_text(ARTICLE_HTML, encoding="utf-8")
    (corpus / "notes.md").write_text("# Notes\n\nThe Varn island bridge was finished in 2019.\n", encoding="utf-8")
    return corpus


@pytest.mark.integration
@pytest.mark.parametrize("question,fact,source,page", [
    ("How tall is the Lindholm lighthouse?", "42 metres tall", "harbour.pdf", 2),
    ("How many passengers do Lindholm ferries carry a day?", "9,000 passengers", "harbour.pdf", 3),
    ("When did the harbour of Lindholm open?", "opened in 1871", "harbour.pdf", 1),
    ("How much length did the Morteratsch glacier lose in 2024?", "38 metres", "glacier.html", None),
])
def test_citations_quote_the_stored_text_and_name_the_quotes_page(make_service, mixed_corpus, embedder,
                                                                   backend, question, fact, source, page):
    svc = make_service(mixed_corpus, embedder=embedder, **backend)
    assert svc.ingest().added == 3
    ans = svc.ask(question)
    assert not ans.abstained, ans.answer
    cited = [c for c in ans.citations if fact in c.quote]
    assert cited, ans.to_json()
    for c in ans.citations:
        assert svc.show(c.doc_id)[c.start : c.end] == c.quote
    c = cited[0]
    assert c.source == source
    assert c.page == page
    if source == "harbour.pdf":
        (hit,) = [h for h in svc.search(question, 5) if h.source == source]
        assert hit.page == 1, "the whole PDF is one chunk starting on page 1; the quote's page differs"


@pytest.mark.integration
def test_rag_show_and_search_print_the_extracted_text_and_pages(make_service, mixed_corpus, embedder, capsys,
                                                                 monkeypatch):
    index = mixed_corpus.parent / "index"
    make_service(mixed_corpus, embedder=embedder, index=index).ingest()
    monkeypatch.setenv("RAG_CHROMA_URL", "")
    args = ["--corpus", str(mixed_corpus), "--index", str(index)]
    expected = read_file(mixed_corpus / "harbour.pdf", mixed_corpus).text
    assert rag_main(["show", "harbour.pdf", *args]) == 0
    assert capsys.readouterr().out == expected
    assert rag_main(["show", "glacier.html", *args]) == 0
    assert capsys.readouterr().out == read_file(mixed_corpus / "glacier.html", mixed_corpus).text

    assert rag_main(["search", "lighthouse height", "--k", "3", "--json", *args]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    by_source = {h["source"]: h for h in hits}
    assert by_source["harbour.pdf"]["page"] == 1
    assert by_source["notes.md"]["page"] is None
    for h in hits:
        stored = read_file(mixed_corpus / h["source"], mixed_corpus).text
        assert stored[h["start"] : h["end"]] == h["text"]
