"""The document viewer's HTML: escaped text with the cited spans marked, large documents windowed, and PDF
highlight boxes derived from pdfium's character boxes (checked against where the test PDF draws its lines)."""

from __future__ import annotations

import re

from rag.sources import read_file
from tests.test_formats import HARBOUR_PAGES, make_pdf
from ui.viewer import WINDOW_CHARS, char_map, pdf_pages_html, text_html, window

BOX = re.compile(r'<span class="hl (focus|other)"[^>]*data-n="(\d+)" style="left:([\d.]+)%;top:([\d.]+)%;'
                 r'width:([\d.]+)%;height:([\d.]+)%"')


def test_text_is_escaped_and_each_citation_marked():
    text = "Intro <script>x()</script> the quote here, and another one."
    a, b = text.index("the quote"), text.index("another")
    html = text_html(text, [(1, a, a + 15), (2, b, b + 7)], focus=1)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert re.search(r'<mark id="viewer-hl" class="hl focus"[^>]*data-n="1">the quote here,</mark>', html)
    assert re.search(r'<mark class="hl other"[^>]*data-n="2">another</mark>', html)


def test_a_large_document_renders_the_neighbourhood_of_the_quote_first():
    text = "word " * 40_000
    lo, hi = window(len(text), 150_000, 150_050)
    assert hi - lo == WINDOW_CHARS and lo < 150_000 and hi > 150_050
    html = text_html(text, [(1, 150_000, 150_050)], 1, lo, hi)
    assert f"… {lo:,} characters before" in html and "characters after" in html
    assert window(1000, 10, 20) == (0, 1000)


def test_char_map_aligns_on_non_space_characters():
    stored = "The lighthouse\nis tall."
    pdfium = list("The  lighthouse \r\nis tall.")
    m = char_map(stored, pdfium)
    assert m[0] == 0 and m[stored.index("is")] == "".join(pdfium).index("is")
    assert stored.index("\n") not in m  # spaces carry no box


def _pdf(tmp_path):
    path = make_pdf(tmp_path / "harbour.pdf", HARBOUR_PAGES)
    return path, read_file(path, tmp_path)


def test_pdf_boxes_sit_on_the_quoted_line(tmp_path):
    path, doc = _pdf(tmp_path)
    quote = "42 metres tall"
    start = doc.text.index(quote)
    html = pdf_pages_html(path, doc.text, doc.pages, [(1, start, start + len(quote))], 1)
    assert html.count('class="pdf-page"') == 1 and 'data-page="2"' in html
    boxes = BOX.findall(html)
    assert len(boxes) == 1
    _, _, left, top, width, height = (float(x) if i > 1 else x for i, x in enumerate(boxes[0]))
    # make_pdf draws page 2's first line at x=72, baseline y=740 of a 612x792 page, in 11-point Helvetica
    prefix_pt = 72 + 11 * 0.5 * len("The Lindholm lighthouse is ")  # Helvetica averages ~0.5 em a character
    assert abs(left / 100 * 612 - prefix_pt) < 40
    baseline_top = (792 - 740) / 792 * 100
    assert top < baseline_top < top + height + 1 and height < 2.5
    assert 8 < width / 100 * 612 < 110  # 14 characters of 11-point text


def test_a_quote_across_pages_is_highlighted_on_each(tmp_path):
    path, doc = _pdf(tmp_path)
    start = doc.text.index("council.")
    end = doc.text.index("Ferries from") + len("Ferries from")
    html = pdf_pages_html(path, doc.text, doc.pages, [(3, start, end)], 3)
    assert 'data-page="2"' in html and 'data-page="3"' in html and 'data-page="1"' not in html
    pages = html.split('class="pdf-page"')[1:]
    assert all(BOX.search(p) for p in pages)
    assert html.count('id="viewer-hl"') == 1
    # a screen reader hears the quoted words of each page
    assert "cited passage 3: council.</span>" in pages[0] and "cited passage 3: Ferries from</span>" in pages[1]


def test_a_scanned_page_boxes_the_recognised_lines_of_the_quote(tmp_path):
    """No text layer: the page is drawn all the same and the quote's OCR line is boxed where OCR found it."""
    from tests.format_files import SCAN_LINES, make_scanned_pdf

    path = make_scanned_pdf(tmp_path / "scan.pdf", [SCAN_LINES])
    doc = read_file(path, tmp_path)  # the real OCR, as ingest runs it
    start = doc.text.index("1240 metres")
    lines = [{"start": s, "end": e, "page": p, "box": box} for s, e, p, box in doc.ocr_lines]
    html = pdf_pages_html(path, doc.text, doc.pages, [(1, start, start + 11)], 1, lines)
    boxes = BOX.findall(html)
    assert len(boxes) == 1 and 'data-page="1"' in html
    x0, y0, x1, y1 = next(ln["box"] for ln in lines if ln["start"] <= start < ln["end"])
    for got, want in zip(boxes[0][2:], (x0, y0, x1 - x0, y1 - y0), strict=True):
        assert abs(float(got) - 100 * want) < 0.01
