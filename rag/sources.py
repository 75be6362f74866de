"""Read documents: text, Markdown, HTML, PDF, Office, CSV, EPUB and image files from folders, and JSONL records.

A file's metadata (title, date, links) lives beside it in `NAME.meta.json`, so the text that citation
offsets index into is the file itself, byte for byte after UTF-8 decoding. HTML and PDF have no such text:
for them the index stores the extracted text (`rag show` prints it) and offsets index into that.
- HTML: trafilatura's main-content text (navigation, footers and scripts dropped); a page where it finds
  no article falls back to all the visible text of the body.
- PDF: pypdf's text of each page, pages joined by a blank line; `Document.pages` holds where each page
  starts, so any offset maps back to its 1-based page. A page without a text layer (a scan) is read by OCR
  (rag/ocr.py, the `ocr` extra); then every page also gets a location, `{"page": N, "scanned": true}` for
  the scanned ones, and each recognised line keeps its box (`Document.ocr_lines`).
- Word, PowerPoint, Excel, CSV and EPUB: rag/formats.py (the `formats` extra); images: OCR.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from rag import ocr
from rag.errors import UsageError
from rag.formats import EPUB_SUFFIXES, OFFICE_SUFFIXES, Extracted, read_structured
from rag.formats import clean_text as _clean_extracted
from rag.types import Document

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
STRUCTURED_SUFFIXES = OFFICE_SUFFIXES | EPUB_SUFFIXES | {".csv"}
IMAGE_SUFFIXES = ocr.IMAGE_SUFFIXES
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | STRUCTURED_SUFFIXES | IMAGE_SUFFIXES
META_SUFFIX = ".meta.json"
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PDF_BYTES = 100 * 1024 * 1024  # filings with embedded images run to tens of megabytes
# Formats that carry pictures get the larger limit; text, HTML, CSV and spreadsheets the smaller one.
LARGE_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES | EPUB_SUFFIXES | {".docx", ".pptx"}


def size_limit(suffix: str) -> int:
    """The largest file of this type that is read (and uploaded), in bytes."""
    return MAX_PDF_BYTES if suffix.lower() in LARGE_SUFFIXES else MAX_FILE_BYTES
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Skipped:
    """A file that could not be read, and why; the rest of the folder still ingests."""

    path: str
    reason: str


def _read_meta(path: Path) -> dict[str, str]:
    meta_path = path.with_name(path.name + META_SUFFIX)
    if not meta_path.exists():
        return {}
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if isinstance(v, str | int | float)} if isinstance(
        data, dict
    ) else {}


def source_name(path: Path, corpus: Path) -> str:
    """The path relative to the corpus folder, or the absolute path for files outside it."""
    try:
        return path.resolve().relative_to(corpus.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def read_file(path: Path, corpus: Path) -> Document:
    """One file as a Document; raises UsageError with the reason when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UsageError(f"{path}: unsupported file type {suffix or '(none)'}; "
                         f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    if path.is_symlink() and _inside(path.parent, corpus) and not _inside(path, corpus):
        # a link in the corpus must not pull in files from elsewhere on the machine
        raise UsageError(f"{path}: links to {path.resolve()}, outside the corpus; not followed "
                         "(copy the file into the corpus instead)")
    size = path.stat().st_size
    limit = size_limit(suffix)
    if size > limit:
        raise UsageError(f"{path}: {size} bytes is over the {limit} byte limit; split the file")
    meta = _read_meta(path)
    pages: tuple[int, ...] = ()
    if suffix in PDF_SUFFIXES:
        found, pages = _pdf_text(path)
    elif suffix in HTML_SUFFIXES:
        text, found_title = _html_text(path, _decode(path, path.read_bytes()))
        found = Extracted(text=text, title=found_title)
    elif suffix in STRUCTURED_SUFFIXES:
        found = read_structured(path, lambda html: _html_text(path, html)[0])
    elif suffix in IMAGE_SUFFIXES:
        found = _image_text(path)
    else:
        found = Extracted(text=_decode(path, path.read_bytes()))
    text, found_title = found.text, found.title
    if not text.strip():
        why = "empty file" if suffix in TEXT_SUFFIXES else (
            "no text found by OCR (an image without text)" if suffix in IMAGE_SUFFIXES
            else "no text could be extracted")
        raise UsageError(f"{path}: {why}")
    title = meta.get("title") or found_title or _first_line(text) or path.stem
    return Document(
        source=source_name(path, corpus),
        text=text,
        title=title,
        url=meta.get("url", ""),
        publish_date=meta.get("publish_date", meta.get("date", "")),
        pages=pages,
        locations=tuple(found.locations),
        ocr_lines=tuple(found.ocr_lines),
    )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{path}: UTF-16 text; re-save it as UTF-8")
    if b"\0" in data:
        raise UsageError(f"{path}: looks binary (NUL bytes); only text files are read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 (byte {e.start}); re-save it as UTF-8") from None


def _html_text(path: Path, html: str) -> tuple[str, str]:
    """The page's main text and title: trafilatura, else every visible line of the body."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, with_metadata=True, include_tables=True, favor_recall=True)
    text = (getattr(doc, "text", None) or "").strip() if doc is not None else ""
    title = (getattr(doc, "title", None) or "").strip() if doc is not None else ""
    if not text:
        text, fallback_title = _visible_text(html)
        title = title or fallback_title
    return _clean_extracted(text), title


class _VisibleText(HTMLParser):
    """Text outside script, style and head; block elements end lines."""

    HIDDEN = {"script", "style", "head", "noscript", "template"}
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
              "table", "ul", "ol", "blockquote", "pre", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        self._in_title = self._in_title or tag == "title"
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1
        if tag == "title":
            self._in_title = False
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


def _visible_text(html: str) -> tuple[str, str]:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts), " ".join("".join(parser.title).split())


def _image_text(path: Path) -> Extracted:
    """An image's OCR text, one recognised line a line, each line's box kept."""
    out = Extracted()
    _add_ocr_page(out, ocr.image_lines(path), {"scanned": True}, 1)
    return out


def _add_ocr_page(out: Extracted, lines: list[ocr.Line], location: dict[str, object], page: int) -> None:
    """Append a page of recognised lines at the end of `out`, recording the page and each line's box."""
    if not lines:
        return
    at = len(out.text)
    out.locations.append((at, location))
    for k, (text, box) in enumerate(lines):  # recognised lines are single-spaced and trimmed already
        out.ocr_lines.append((at, at + len(text), page, box))
        at += len(text) + 1
        out.text += text + ("\n" if k < len(lines) - 1 else "")


def _pdf_text(path: Path) -> tuple[Extracted, tuple[int, ...]]:
    """The PDF's text page by page, where each page starts in it, and its title (from its metadata).

    Pages without a text layer are read by OCR when the `ocr` extra is installed; a PDF with no text layer
    at all is refused with the extra's name when it is not."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable files warn per object
    try:
        reader = PdfReader(path)
        # Many filings are encrypted with an empty user password (only editing is restricted): readable.
        if reader.is_encrypted and not reader.decrypt(""):
            raise UsageError(f"{path}: the PDF needs a password; save an unencrypted copy")
        page_texts = [_clean_extracted(page.extract_text() or "") for page in reader.pages]
        info = reader.metadata
        title = str((info.get("/Title") if info else None) or "").strip()
        if len(title.split()) < 2:  # filings often carry an accession number or a file name there
            title = ""
    except (PdfReadError, DependencyError) as e:
        raise UsageError(f"{path}: not a readable PDF ({e})") from None
    blank = [i for i, page in enumerate(page_texts) if not page]
    scanned: dict[int, list[ocr.Line]] = {}
    # Without the extra a PDF with some text keeps it (as before); one with none says what to install.
    if blank and (ocr.available() or len(blank) == len(page_texts)):
        scanned = ocr.pdf_page_lines(path, blank)
    out = Extracted(title=title)
    starts: list[int] = []
    for i, page in enumerate(page_texts):
        if i:
            out.text += PAGE_SEPARATOR
        starts.append(len(out.text))
        if i in scanned:
            _add_ocr_page(out, scanned[i], {"page": i + 1, "scanned": True}, i + 1)
        elif scanned and page:  # beside scanned pages each page says which it is, so no label runs over
            out.locations.append((len(out.text), {"page": i + 1}))
            out.text += page
        else:
            out.text += page
    return out, tuple(starts)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return ""


def walk(paths: list[Path], corpus: Path) -> Iterator[Path]:
    """Every supported file under `paths`, sorted, skipping hidden ones and metadata sidecars."""
    for root in paths:
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise UsageError(f"{root}: no such file or folder")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if path.name.endswith(META_SUFFIX) or not path.is_file():
                continue
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                yield path


def read_jsonl(path: Path, skipped: list[Skipped] | None = None) -> Iterator[Document]:
    """Records `{"_id", "text", "title"?, "url"?, "publish_date"?}`, plain or gzipped, one per line.

    A record without text raises UsageError, or, given a `skipped` list, is noted there and passed over
    (real corpora have some: 39 of RealTimeQA's 3,789 articles are empty)."""
    if not path.exists():
        raise UsageError(f"{path}: no such file; give a .jsonl or .jsonl.gz file")
    for lineno, line in _jsonl_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise UsageError(f"{path}:{lineno}: not valid JSON; fix or remove that line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("_id"), str | int):
            raise UsageError(f"{path}:{lineno}: a record needs an \"_id\"; fix or remove that line")
        text = rec.get("text")
        if not isinstance(text, str) or not text.strip():
            reason = f"{path}:{lineno}: record {rec['_id']} has no \"text\""
            if skipped is None:
                raise UsageError(reason)
            skipped.append(Skipped(str(rec["_id"]), reason))
            continue
        yield Document(
            source=str(rec["_id"]),
            text=text,
            title=str(rec.get("title") or ""),
            url=str(rec.get("url") or ""),
            publish_date=str(rec.get("publish_date") or ""),
        )


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a plain or gzipped file; a line that is not UTF-8 or a broken gzip is a UsageError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UsageError(f"{path}:{lineno}: not UTF-8 (byte {e.start} of the line); "
                                     "re-save the file as UTF-8") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise UsageError(f"{path}: not a readable gzip file ({e}); give plain .jsonl or a whole .jsonl.gz") from None
