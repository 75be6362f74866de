"""Office documents, spreadsheets and e-books as stored text with located units.

Each reader returns the text the index stores (what citation offsets index into) and where each unit
starts in it, with the unit's label, so a quote's start offset names its place:
- `.docx` (python-docx): paragraphs, headings and tables in body order, one unit each -> `{"paragraph": N}`,
  N counting the body's non-empty paragraphs and tables from 1;
- `.pptx` (python-pptx): each slide's title, text frames, tables (groups included) and notes -> `{"slide": N}`;
- `.xlsx` (openpyxl, read-only) and `.csv` (the csv module): each sheet a section opened by its name, each
  row `header: value; header: value`, so a figure is quoted with its column names ->
  `{"sheet": NAME, "row": N}`, N the row number the spreadsheet shows;
- `.epub` (ebooklib): each chapter of the spine, its HTML turned to text the way `.html` files are ->
  `{"chapter": N}`.
The four zip-based formats are checked before parsing (`check_zip`): a broken zip, a password-protected
Office file (an OLE container, not a zip) and a zip bomb (the directory's uncompressed sizes) are refused
with one line. Python's zipfile never inflates a member past the size its directory declares, so the
check cannot be lied to.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import UsageError
from rag.types import Location, OcrLine

OFFICE_SUFFIXES = {".docx", ".pptx", ".xlsx"}
SHEET_SUFFIXES = {".xlsx", ".csv"}
EPUB_SUFFIXES = {".epub"}
ZIP_SUFFIXES = OFFICE_SUFFIXES | EPUB_SUFFIXES
# A zip whose members unpack to more than this is refused unread; real reports, decks and books stay far
# below it (a 300-page EPUB with pictures is tens of megabytes), a zip bomb is gigabytes.
MAX_UNZIPPED_BYTES = 500_000_000
MAX_RATIO = 200  # compression ratio of one large member above which it is a bomb, not a document
MAX_SHEET_XML_BYTES = 30_000_000  # one worksheet's XML; a 50 MB sheet is refused before parsing
MAX_SHEET_ROWS = 50_000  # rows a sheet may have (xlsx or csv); more is a database export, not a document
UNIT_SEPARATOR = "\n\n"
ROW_SEPARATOR = "\n"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .doc/.xls/.ppt files


class MissingExtra(UsageError):
    """An optional parser is not installed; the message names the extra that installs it."""


@dataclass
class Extracted:
    """A file's stored text, its units (start offset, label), its title and, for OCR, its lines."""

    text: str = ""
    locations: list[tuple[int, Location]] = field(default_factory=list)
    title: str = ""
    ocr_lines: list[OcrLine] = field(default_factory=list)

    def add(self, text: str, location: Location | None, separator: str = UNIT_SEPARATOR) -> int:
        """Append one unit (skipped when blank); returns where its text starts."""
        text = clean_text(text)
        if not text:
            return -1
        if self.text:
            self.text += separator
        start = len(self.text)
        self.text += text
        if location is not None:
            self.locations.append((start, location))
        return start


def clean_text(text: str) -> str:
    """Extracted text with runs of spaces and blank lines collapsed: what the index stores and quotes."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def need(module: str, extra: str, path: Path) -> Any:
    """Import an optional parser, or refuse in one line naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{path}: reading {path.suffix.lower()} files needs the `{extra}` extra: "
                         f"run `pip install -e '.[{extra}]'` (scripts/setup.sh installs it)") from None


def check_zip(path: Path) -> None:
    """Refuse a zip-based document that is encrypted, broken or a zip bomb, before any parser opens it."""
    kind = path.suffix.lower().lstrip(".")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == OLE_MAGIC:
        raise UsageError(f"{path}: password-protected (or an old binary Office format); "
                         f"save an unprotected .{kind} copy")
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise UsageError(f"{path}: not a readable .{kind} file ({e}); re-save it") from None
    total = sum(m.file_size for m in members)
    if total > MAX_UNZIPPED_BYTES:
        raise UsageError(f"{path}: unpacks to {total / 1e6:.0f} MB, over the {MAX_UNZIPPED_BYTES / 1e6:.0f} MB "
                         "limit (a zip bomb or an oversized file); not read")
    for m in members:
        # a big sheet compresses well too, so its own limit is checked first and named as such
        if kind == "xlsx" and m.filename.startswith("xl/worksheets/") and m.file_size > MAX_SHEET_XML_BYTES:
            raise UsageError(f"{path}: a sheet ({m.filename}) is {m.file_size / 1e6:.0f} MB, over the "
                             f"{MAX_SHEET_XML_BYTES / 1e6:.0f} MB sheet limit; split it or export the rows you need")
        if m.file_size > 1024 * 1024 and m.file_size > MAX_RATIO * max(1, m.compress_size):
            raise UsageError(f"{path}: {m.filename} is compressed {m.file_size // max(1, m.compress_size)}:1 "
                             "(a zip bomb); not read")
        if m.flag_bits & 0x1:
            raise UsageError(f"{path}: encrypted zip entries; save an unprotected .{kind} copy")


def read_structured(path: Path, html_to_text: Callable[[str], str]) -> Extracted:
    """A .docx, .pptx, .xlsx, .csv or .epub file as text with units; UsageError with the reason otherwise."""
    suffix = path.suffix.lower()
    if suffix in ZIP_SUFFIXES:
        check_zip(path)
    reader: Callable[[Path], Extracted] = {
        ".docx": read_docx, ".pptx": read_pptx, ".xlsx": read_xlsx, ".csv": read_csv,
        ".epub": lambda p: read_epub(p, html_to_text),
    }[suffix]
    try:
        return reader(path)
    except UsageError:
        raise
    except Exception as e:  # each parser has its own errors for a damaged file; all mean the same here
        why = " ".join(str(e).split())[:160]
        raise UsageError(f"{path}: not a readable {suffix} file ({type(e).__name__}: {why}); re-save it") from None


# --- Word ---------------------------------------------------------------------------------------------
def read_docx(path: Path) -> Extracted:
    docx = need("docx", "formats", path)
    from docx.table import Table

    document = docx.Document(str(path))
    out = Extracted(title=(document.core_properties.title or "").strip())
    n = 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            text = "\n".join(_table_lines(_cell_rows(block.rows)))
        else:
            text = block.text
            style = (block.style.name if block.style is not None else "") or ""
            if not out.title and text.strip() and style in ("Title", "Heading 1"):
                out.title = text.strip()
        if clean_text(text):
            n += 1
            out.add(text, {"paragraph": n})
    return out


def _cell_rows(rows: Iterable[Any]) -> list[list[str]]:
    return [[" ".join(cell.text.split()) for cell in row.cells] for row in rows]


def _table_lines(rows: list[list[str]]) -> list[str]:
    """A table's rows: the first as headers, each later one as `header: value; header: value`."""
    rows = [r for r in rows if any(r)]
    if len(rows) < 2:
        return [" | ".join(c for c in r if c) for r in rows]
    return [" | ".join(c for c in rows[0] if c)] + [render_row(rows[0], r) for r in rows[1:]]


def render_row(headers: list[str], values: Iterable[Any]) -> str:
    """`header: value; header: value` for the non-empty cells (a column without a header gets its number)."""
    parts = []
    for i, value in enumerate(values):
        text = _cell_text(value)
        if not text:
            continue
        name = headers[i] if i < len(headers) and headers[i] else f"column {i + 1}"
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


# --- PowerPoint ---------------------------------------------------------------------------------------
def read_pptx(path: Path) -> Extracted:
    pptx = need("pptx", "formats", path)
    presentation = pptx.Presentation(str(path))
    out = Extracted(title=(presentation.core_properties.title or "").strip())
    for number, slide in enumerate(presentation.slides, 1):
        title_shape = slide.shapes.title
        lines = [title_shape.text_frame.text] if title_shape is not None and title_shape.has_text_frame else []
        if not out.title and lines and lines[0].strip():
            out.title = " ".join(lines[0].split())
        for shape in slide.shapes:
            if title_shape is None or shape.shape_id != title_shape.shape_id:
                lines.extend(_shape_lines(shape))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text
            if notes.strip():
                lines.append(f"Notes: {notes}")
        out.add("\n".join(lines), {"slide": number})
    return out


def _shape_lines(shape: Any) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for inner in shape.shapes:
            yield from _shape_lines(inner)
    elif shape.has_text_frame:
        yield shape.text_frame.text
    elif shape.has_table:
        yield from _table_lines(_cell_rows(shape.table.rows))


# --- spreadsheets -------------------------------------------------------------------------------------
def read_xlsx(path: Path) -> Extracted:
    openpyxl = need("openpyxl", "formats", path)
    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        out = Extracted(title=(workbook.properties.title or "").strip())
        for sheet in workbook.worksheets:
            _add_sheet(out, path, sheet.title, sheet.iter_rows(values_only=True))
    finally:
        workbook.close()
    return out


def read_csv(path: Path) -> Extracted:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 (byte {e.start}); re-save it as UTF-8 CSV") from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:  # one column, or too little to tell: plain commas
        dialect = csv.excel
    out = Extracted()
    try:
        _add_sheet(out, path, path.stem, csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as e:
        raise UsageError(f"{path}: not a readable CSV file ({e}); re-save it") from None
    return out


def _add_sheet(out: Extracted, path: Path, name: str, rows: Iterable[tuple[Any, ...] | list[Any]]) -> None:
    """A sheet as a section: its name, then each row under the first non-empty one (the headers)."""
    headers: list[str] | None = None
    for number, row in enumerate(rows, 1):
        if number > MAX_SHEET_ROWS:
            raise UsageError(f"{path}: sheet {name!r} has over {MAX_SHEET_ROWS} rows; split it or keep "
                             "the rows you need")
        if headers is None:
            if any(_cell_text(v) for v in row):
                headers = [_cell_text(v) for v in row]
                out.add(f"{name}\n" + " | ".join(h for h in headers if h), {"sheet": name, "row": number})
            continue
        out.add(render_row(headers, row), {"sheet": name, "row": number}, ROW_SEPARATOR)


# --- EPUB ---------------------------------------------------------------------------------------------
# An EPUB whose encryption.xml names a chapter (not only obfuscated fonts) is DRM-protected.
_ENCRYPTED_CHAPTER = re.compile(r"URI=[\"'][^\"']+\.x?html?[\"']", re.IGNORECASE)


def read_epub(path: Path, html_to_text: Callable[[str], str]) -> Extracted:
    need("ebooklib", "formats", path)
    import ebooklib
    from ebooklib import epub

    with zipfile.ZipFile(path) as zf:
        if "META-INF/encryption.xml" in zf.namelist() and _ENCRYPTED_CHAPTER.search(
                zf.read("META-INF/encryption.xml").decode("utf-8", "replace")):
            raise UsageError(f"{path}: DRM-protected e-book (its chapters are encrypted); use a DRM-free copy")
    book = epub.read_epub(str(path), options={"ignore_ncx": True})
    titles = book.get_metadata("DC", "title")
    out = Extracted(title=str(titles[0][0]).strip() if titles else "")
    n = 0
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        # the navigation page and a cover page are documents too, but not chapters
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or not item.is_chapter():
            continue
        text = html_to_text(item.get_content().decode("utf-8", "replace"))
        if clean_text(text):
            n += 1
            out.add(text, {"chapter": n})
    return out
