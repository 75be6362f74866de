"""Real documents of each format, written with the same libraries the readers use (and Pillow for scans)."""

from __future__ import annotations

import zipfile
from pathlib import Path

REPORT_FACT = "The Varn ferry company carried 412,000 passengers in 2025."
DECK_NOTE = "The new lamp is visible from 24 nautical miles away."
EPUB_FACT = "Ingrid Holm kept the Skarv lighthouse from 1950 to 1975."
SCAN_LINES = ["Skerry Bridge inspection", "The Skerry bridge is 1240 metres long.",
              "Its main span was painted in 2019."]
PHOTO_LINES = ["Harbour notice", "Mooring fees rise to 85 kroner a night."]


def make_docx(path: Path) -> Path:
    """A report: a title, a heading, paragraphs and a table (header row, two data rows)."""
    import docx

    d = docx.Document()
    d.add_heading("Varn ferry annual report", level=0)
    d.add_paragraph("This report covers the year 2025.")
    d.add_heading("Traffic", level=1)
    d.add_paragraph(REPORT_FACT)
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([["Vessel", "Built", "Capacity"], ["Aurora", "1998", "350"],
                             ["Borealis", "2011", "600 passengers"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("Both vessels were refitted in the winter.")
    d.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    """A deck of three slides; the second has a bullet list, a table and speaker notes."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Lighthouse programme 2026"
    s1.placeholders[1].text = "Board meeting, March"
    s2 = prs.slides.add_slide(prs.slide_layouts[1])
    s2.shapes.title.text = "Lamp upgrade"
    s2.placeholders[1].text = "LED lamps replace the halogen ones\nWork starts in May"
    shape = s2.shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1))
    for (r, c), value in {(0, 0): "Site", (0, 1): "Cost", (1, 0): "Skarv", (1, 1): "90,000 EUR"}.items():
        shape.table.cell(r, c).text = value
    s2.notes_slide.notes_text_frame.text = DECK_NOTE
    s3 = prs.slides.add_slide(prs.slide_layouts[1])
    s3.shapes.title.text = "Next steps"
    s3.placeholders[1].text = "Tender the cable work"
    prs.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    """A workbook with two sheets; the second has an empty row, so row numbers are not list positions."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Revenue"
    for row in [["Region", "Quarter", "Revenue (EUR)"], ["North", "Q3", 1200], ["South", "Q3", 950.5]]:
        ws.append(row)
    staff = wb.create_sheet("Staff")
    for row in [["Department", "Headcount"], ["Engineering", 42], [None, None], ["Sales", 17]]:
        staff.append(row)
    wb.save(str(path))
    return path


def make_csv(path: Path) -> Path:
    path.write_text("City,Rainfall (mm)\nBergen,2250\nOslo,760\n", encoding="utf-8")
    return path


def make_epub(path: Path) -> Path:
    """An EPUB of two chapters (and a navigation page, which is not a chapter)."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("skarv-1")
    book.set_title("The Skarv Light")
    book.set_language("en")
    chapters = []
    for i, (head, body) in enumerate([("Building the light", "The tower was raised in 1899 from local granite."),
                                      ("The keepers", EPUB_FACT)], 1):
        ch = epub.EpubHtml(title=head, file_name=f"chap_{i}.xhtml", lang="en")
        ch.content = f"<html><body><h1>{head}</h1><p>{body}</p></body></html>"
        book.add_item(ch)
        chapters.append(ch)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def text_image(lines: list[str], size: tuple[int, int] = (1275, 1650)):  # type: ignore[no-untyped-def]
    """White page with black lines of text, as a scanner would produce at 150 dpi."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=36)
    for i, line in enumerate(lines):
        draw.text((120, 150 + 70 * i), line, fill="black", font=font)
    return image


def make_scanned_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A PDF whose pages are images only (no text layer), like a scanner's."""
    images = [text_image(lines) for lines in pages]
    images[0].save(str(path), "PDF", resolution=150, save_all=True, append_images=images[1:])
    return path


def make_png(path: Path, lines: list[str]) -> Path:
    text_image(lines, (1000, 400)).save(str(path))
    return path


def make_zip_bomb(path: Path) -> Path:
    """A .docx-named zip whose one member inflates 8 MB of zeros from a few kilobytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"\0" * (8 * 1024 * 1024))
    return path


def make_big_sheet(path: Path, megabytes: int = 50) -> Path:
    """A valid workbook whose first sheet's XML is `megabytes` large (rows of distinct numbers)."""
    make_xlsx(path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    rows, size, r = [], 0, 1
    while size < megabytes * 1024 * 1024:
        row = f'<row r="{r}"><c r="A{r}"><v>{r * 7919 % 1000003}</v></c><c r="B{r}"><v>{r}</v></c></row>'
        rows.append(row)
        size += len(row)
        r += 1
    members["xl/worksheets/sheet1.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main"><sheetData>' + "".join(rows) + "</sheetData></worksheet>").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path
