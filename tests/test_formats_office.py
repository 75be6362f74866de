"""Word, PowerPoint, Excel, CSV, EPUB, scanned PDFs and images: the stored text, each quote's location,
the skip reasons for bad files, and a corpus of one file of each type answering a question per file."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from rag import ocr
from rag.config import Settings
from rag.errors import UsageError
from rag.service import Service
from rag.sources import SUPPORTED_SUFFIXES, read_file, walk
from tests.format_files import (
    DECK_NOTE,
    EPUB_FACT,
    PHOTO_LINES,
    REPORT_FACT,
    SCAN_LINES,
    make_big_sheet,
    make_csv,
    make_docx,
    make_epub,
    make_png,
    make_pptx,
    make_scanned_pdf,
    make_xlsx,
    make_zip_bomb,
)
from ui.render import location_label


def _at(doc, fact: str):  # type: ignore[no-untyped-def]
    return doc.location_at(doc.text.index(fact))


def test_docx_keeps_headings_paragraphs_and_table_rows_in_body_order(tmp_path):
    doc = read_file(make_docx(tmp_path / "report.docx"), tmp_path)
    assert doc.title == "Varn ferry annual report"
    order = ["Varn ferry annual report", "This report covers", "Traffic", REPORT_FACT,
             "Vessel | Built | Capacity", "Vessel: Borealis; Built: 2011; Capacity: 600 passengers",
             "Both vessels were refitted"]
    at = [doc.text.index(part) for part in order]
    assert at == sorted(at)
    assert _at(doc, REPORT_FACT) == {"paragraph": 4}
    assert _at(doc, "Vessel: Aurora") == {"paragraph": 5}  # the table is one block
    assert _at(doc, "Both vessels") == {"paragraph": 6}


def test_pptx_reads_each_slide_with_its_table_and_notes(tmp_path):
    doc = read_file(make_pptx(tmp_path / "deck.pptx"), tmp_path)
    assert doc.title == "Lighthouse programme 2026"
    assert _at(doc, "Board meeting") == {"slide": 1}
    assert _at(doc, "Lamp upgrade") == {"slide": 2}
    assert _at(doc, "Site: Skarv; Cost: 90,000 EUR") == {"slide": 2}
    assert _at(doc, f"Notes: {DECK_NOTE}") == {"slide": 2}
    assert _at(doc, "Tender the cable work") == {"slide": 3}


def test_xlsx_rows_are_quotable_with_their_column_names(tmp_path):
    doc = read_file(make_xlsx(tmp_path / "figures.xlsx"), tmp_path)
    assert "Region: North; Quarter: Q3; Revenue (EUR): 1200\n" in doc.text
    assert "Region: South; Quarter: Q3; Revenue (EUR): 950.5" in doc.text
    assert _at(doc, "Region: North") == {"sheet": "Revenue", "row": 2}
    assert _at(doc, "Department: Sales; Headcount: 17") == {"sheet": "Staff", "row": 4}  # row 3 is empty
    assert _at(doc, "Staff\nDepartment | Headcount") == {"sheet": "Staff", "row": 1}


def test_csv_is_one_sheet_named_after_the_file(tmp_path):
    doc = read_file(make_csv(tmp_path / "rain.csv"), tmp_path)
    assert doc.text == "rain\nCity | Rainfall (mm)\nCity: Bergen; Rainfall (mm): 2250\nCity: Oslo; Rainfall (mm): 760"
    assert _at(doc, "City: Oslo") == {"sheet": "rain", "row": 3}


def test_epub_chapters_in_spine_order_without_the_navigation_page(tmp_path):
    doc = read_file(make_epub(tmp_path / "skarv.epub"), tmp_path)
    assert doc.title == "The Skarv Light"
    assert doc.text.index("raised in 1899") < doc.text.index(EPUB_FACT)
    assert _at(doc, "raised in 1899") == {"chapter": 1}
    assert _at(doc, EPUB_FACT) == {"chapter": 2}


def test_a_scanned_pdf_is_read_by_ocr_with_each_lines_page_and_box(tmp_path):
    pdf = make_scanned_pdf(tmp_path / "scan.pdf", [SCAN_LINES, PHOTO_LINES])
    doc = read_file(pdf, tmp_path)
    squeeze = lambda t: t.replace(" ", "")  # noqa: E731 - the model may drop a space between words
    assert [squeeze(p) for p in doc.text.split("\n\n")] == [squeeze("\n".join(SCAN_LINES)),
                                                             squeeze("\n".join(PHOTO_LINES))]
    assert len(doc.pages) == 2
    at = doc.text.index("85 kroner")
    assert doc.page_at(at) == 2
    assert doc.location_at(at) == {"page": 2, "scanned": True}
    assert [(squeeze(doc.text[s:e]), p) for s, e, p, _ in doc.ocr_lines] == [
        (squeeze(t), 1) for t in SCAN_LINES] + [(squeeze(t), 2) for t in PHOTO_LINES]
    # the text was drawn from x = 120 px and y = 150 px + 70 px a line on a 1275 x 1650 page
    x0, y0, x1, y1 = doc.ocr_lines[1][3]
    assert 0.07 < x0 < 0.11 and 0.11 < y0 < 0.15 and x0 < x1 < 0.8 and y0 < y1 < 0.18


def test_an_image_is_read_by_ocr(tmp_path):
    doc = read_file(make_png(tmp_path / "notice.png", PHOTO_LINES), tmp_path)
    assert doc.text == "\n".join(PHOTO_LINES)
    assert doc.location_at(len(doc.text) - 1) == {"scanned": True}
    assert doc.pages == ()


def test_walk_finds_every_new_type(tmp_path):
    for suffix in (".docx", ".pptx", ".xlsx", ".csv", ".epub", ".png", ".jpg", ".jpeg"):
        (tmp_path / f"a{suffix}").write_bytes(b"x")
        assert suffix in SUPPORTED_SUFFIXES
    assert len(list(walk([tmp_path], tmp_path))) == 8


@pytest.mark.parametrize("module,maker,extra", [
    ("docx", make_docx, "formats"), ("pptx", make_pptx, "formats"), ("openpyxl", make_xlsx, "formats"),
    ("ebooklib", make_epub, "formats"),
])
def test_a_missing_parser_names_its_extra(tmp_path, monkeypatch, module, maker, extra):
    path = maker(tmp_path / f"f.{ {'openpyxl': 'xlsx', 'ebooklib': 'epub'}.get(module, module)}")
    monkeypatch.setitem(sys.modules, module, None)  # `import docx` now raises ImportError
    with pytest.raises(UsageError, match=rf"needs the `{extra}` extra: run `pip install -e '\.\[{extra}\]'`") as e:
        read_file(path, tmp_path)
    assert "\n" not in str(e.value)


def test_missing_ocr_names_its_extra_for_scans_and_images(tmp_path, monkeypatch):
    pdf = make_scanned_pdf(tmp_path / "scan.pdf", [SCAN_LINES])
    png = make_png(tmp_path / "notice.png", PHOTO_LINES)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    ocr._load_engine.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"scan\.pdf: no text layer \(a scanned PDF\); reading it needs "
                                             r"the `ocr` extra"):
            read_file(pdf, tmp_path)
        with pytest.raises(UsageError, match=r"notice\.png: reading an image needs the `ocr` extra"):
            read_file(png, tmp_path)
    finally:
        ocr._load_engine.cache_clear()


def _encrypted(path: Path) -> Path:
    # An encrypted Office file is an OLE compound file (it starts with this signature), not a zip.
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4000)
    return path


def _broken_xlsx(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "a zip, but no workbook inside")
    return path


def _blank_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (600, 400), "white").save(str(path))
    return path


BAD_FILES = {
    "secret.docx": (_encrypted, "password-protected"),
    "broken.pptx": (lambda p: p.write_bytes(b"PK\3\4 not really a zip") and p, "not a readable .pptx file"),
    "empty-book.xlsx": (_broken_xlsx, "not a readable .xlsx file"),
    "bomb.docx": (make_zip_bomb, "zip bomb"),
    "huge.xlsx": (make_big_sheet, "over the 30 MB sheet limit"),
    "blank.png": (_blank_png, "no text found by OCR"),
    "garbled.jpg": (lambda p: p.write_bytes(b"\xff\xd8\xff not a jpeg") and p, "not a readable image"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_refused_in_one_line(tmp_path, name):
    make, reason = BAD_FILES[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(UsageError, match=reason) as e:
        read_file(path, tmp_path)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(path))


def test_unzipped_size_is_checked_before_parsing(tmp_path, monkeypatch):
    from rag import formats

    path = make_docx(tmp_path / "report.docx")
    monkeypatch.setattr(formats, "MAX_UNZIPPED_BYTES", 10_000)
    with pytest.raises(UsageError, match=r"unpacks to .* MB limit \(a zip bomb or an oversized file\); not read"):
        read_file(path, tmp_path)


def test_a_sheet_over_the_row_limit_is_refused(tmp_path, monkeypatch):
    from rag import formats

    monkeypatch.setattr(formats, "MAX_SHEET_ROWS", 2)
    with pytest.raises(UsageError, match=r"sheet 'rain' has over 2 rows; split it"):
        read_file(make_csv(tmp_path / "rain.csv"), tmp_path)


@pytest.mark.parametrize("page,location,label", [
    (None, {"slide": 4}, "slide 4"),
    (None, {"sheet": "Sheet1", "row": 12}, "Sheet1, row 12"),
    (3, {"page": 3, "scanned": True}, "page 3 (scanned)"),
    (3, None, "page 3"),
    (None, {"chapter": 2}, "chapter 2"),
    (None, {"paragraph": 7}, "paragraph 7"),
    (None, {"scanned": True}, "scanned image"),
    (None, None, ""),
])
def test_the_source_card_names_the_location(page, location, label):
    assert location_label(page, location) == label


# --- one corpus of every type, the real embedding model, real Chroma ----------------------------------
QUESTIONS = [  # question, the fact the quote holds, source, page, location
    ("How many passengers did the Varn ferry company carry in 2025?", "412,000 passengers", "report.docx",
     None, {"paragraph": 4}),
    ("From how far away is the new lamp visible?", "24 nautical miles", "deck.pptx", None, {"slide": 2}),
    ("What is the headcount of the Sales department?", "Department: Sales; Headcount: 17", "figures.xlsx",
     None, {"sheet": "Staff", "row": 4}),
    ("What is the rainfall in Bergen?", "City: Bergen; Rainfall (mm): 2250", "rain.csv", None,
     {"sheet": "rain", "row": 2}),
    ("Who kept the Skarv lighthouse from 1950 to 1975?", "Ingrid Holm", "skarv.epub", None, {"chapter": 2}),
    ("How long is the Skerry bridge?", "1240 metres", "scan.pdf", 1, {"page": 1, "scanned": True}),
    ("How much are the mooring fees a night?", "85 kroner", "notice.png", None, {"scanned": True}),
]


@pytest.fixture(scope="module")
def every_format(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    corpus = tmp_path_factory.mktemp("formats")
    make_docx(corpus / "report.docx")
    make_pptx(corpus / "deck.pptx")
    make_xlsx(corpus / "figures.xlsx")
    make_csv(corpus / "rain.csv")
    make_epub(corpus / "skarv.epub")
    make_scanned_pdf(corpus / "scan.pdf", [SCAN_LINES])
    make_png(corpus / "notice.png", PHOTO_LINES)
    for name in ("secret.docx", "bomb.docx", "blank.png"):
        BAD_FILES[name][0](corpus / name)
    svc = Service(Settings.from_env(env={}, corpus=corpus, index=tmp_path_factory.mktemp("formats-index"),
                                    answerer="extractive"), embedder=embedder)
    return svc, svc.ingest()


@pytest.mark.integration
def test_every_format_ingests_and_bad_files_are_skipped_with_their_reason(every_format):
    svc, summary = every_format
    assert summary.added == 7
    reasons = {s.path: s.reason for s in summary.skipped}
    assert sorted(reasons) == ["blank.png", "bomb.docx", "secret.docx"]
    assert "no text found by OCR" in reasons["blank.png"]
    assert "zip bomb" in reasons["bomb.docx"]
    assert "password-protected" in reasons["secret.docx"]
    again = svc.ingest()  # nothing changed: nothing re-read into the index, the bad files still skipped
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 7)
    rec = svc.store.documents()["scan.pdf"]
    lines = svc.store.ocr_lines(rec["doc_id"])
    assert [svc.show(rec["doc_id"])[ln["start"]:ln["end"]] for ln in lines] == SCAN_LINES
    assert lines[0]["page"] == 1 and len(lines[0]["box"]) == 4


@pytest.mark.integration
@pytest.mark.parametrize("question,fact,source,page,location", QUESTIONS, ids=[q[2] for q in QUESTIONS])
def test_each_format_answers_with_a_located_citation(every_format, question, fact, source, page, location):
    svc, _ = every_format
    ans = svc.ask(question)
    assert not ans.abstained, ans.answer
    for c in ans.citations:
        assert svc.show(c.doc_id)[c.start : c.end] == c.quote
    cited = [c for c in ans.citations if fact in c.quote]
    assert cited, ans.to_json()
    c = cited[0]
    assert (c.source, c.page, c.location) == (source, page, location)
    assert json.loads(json.dumps(c.to_json()))["location"] == location


def test_chunk_metadata_carries_locations_and_old_chunks_have_none(tmp_path):
    from rag.chunking import chunk_document
    from rag.config import ChunkingSettings
    from rag.store import _location_meta, location_fields
    from rag.types import Hit

    doc = read_file(make_xlsx(tmp_path / "figures.xlsx"), tmp_path)
    (chunk,) = chunk_document(doc, ChunkingSettings(chunk_size=1024, chunk_overlap=0))
    meta = _location_meta(doc, chunk)
    hit = Hit(doc_id=doc.doc_id, chunk_id=chunk.chunk_id, score=1.0, start=chunk.start, end=chunk.end,
              source=doc.source, text=chunk.text, **location_fields(json.loads(json.dumps(meta))))
    for fact, where in [("Revenue\nRegion", {"sheet": "Revenue", "row": 1}),
                        ("Region: South", {"sheet": "Revenue", "row": 3}),
                        ("Headcount: 17", {"sheet": "Staff", "row": 4})]:
        assert hit.location_at(doc.text.index(fact)) == where == doc.location_at(doc.text.index(fact))
    # an index written before locations existed: its chunks' metadata has neither key
    assert location_fields({"doc_id": "x", "page": 0}) == {"location": None, "location_starts": ()}


def test_the_source_card_shows_the_location_label():
    from rag.types import Citation
    from ui.render import _source_html, source_record

    text = "Staff\nDepartment | Headcount\nDepartment: Sales; Headcount: 17"
    start = text.index("Department: Sales")
    c = Citation(n=1, doc_id="d", chunk_id="d:0-1", source="figures.xlsx", title="figures", start=start,
                 end=len(text), quote=text[start:], location={"sheet": "Staff", "row": 4})
    card = _source_html(source_record(c, {}, lambda _: text), 0)
    assert '<span class="page">Staff, row 4</span>' in card


def test_uploads_take_the_new_types_and_refuse_bad_ones_in_one_line(tmp_path):
    from ui.uploads import check_upload

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    deck = make_pptx(tmp_path / "deck.pptx")
    assert check_upload(deck, "deck.pptx", corpus).name == "deck.pptx"
    bomb = make_zip_bomb(tmp_path / "report.docx")
    with pytest.raises(UsageError, match=r"^'report\.docx': .*\(a zip bomb\); not read$"):
        check_upload(bomb, "report.docx", corpus)
    assert list(corpus.iterdir()) == []


def test_a_pdf_with_text_and_scanned_pages_keeps_the_text_layer_and_labels_every_page(tmp_path):
    from pypdf import PdfWriter

    from tests.test_formats import make_pdf

    text_pdf = make_pdf(tmp_path / "text.pdf", [["Minutes of the harbour board", "The board met on 3 May."]])
    scan_pdf = make_scanned_pdf(tmp_path / "scan.pdf", [SCAN_LINES])
    writer = PdfWriter()
    for part in (text_pdf, scan_pdf):
        writer.append(str(part))
    with open(tmp_path / "mixed.pdf", "wb") as fh:
        writer.write(fh)
    doc = read_file(tmp_path / "mixed.pdf", tmp_path)
    assert doc.text.startswith("Minutes of the harbour board\nThe board met on 3 May.\n\n")
    assert _at(doc, "The board met") == {"page": 1}
    at = doc.text.index("1240 metres")
    assert (doc.page_at(at), doc.location_at(at)) == (2, {"page": 2, "scanned": True})
    assert {p for _, _, p, _ in doc.ocr_lines} == {2}
