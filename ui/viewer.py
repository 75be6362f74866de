"""The document viewer: a cited document's whole stored text with the quote highlighted, or its PDF page.

Text is always escaped (`esc`), never rendered as HTML. A PDF page is drawn offline by pypdfium2 as an
image; the quote's highlight boxes come from pdfium's character boxes. The stored PDF text is pypdf's
(rag/sources.py: each page's text cleaned, pages joined by PAGE_SEPARATOR), so the quote's offsets are first
made relative to its page, then the page's stored characters are aligned with pdfium's characters on their
non-space characters (whitespace is what the two extractors and the cleaning disagree on); only characters
that align get a box, so a box is never guessed.
"""

from __future__ import annotations

import base64
import io
from bisect import bisect_right
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path

from rag.sources import PAGE_SEPARATOR
from ui.render import esc

WINDOW_CHARS = 20_000  # a larger document shows this much around the quote first, then the whole text
RENDER_SCALE = 1.5  # 612-point pages become 918-pixel images: legible, about 100 kB a page
Span = tuple[int, int, int]  # (n, start, end)


def window(text_len: int, start: int, end: int) -> tuple[int, int]:
    """The neighbourhood of a quote rendered first: the whole text when it is small."""
    if text_len <= WINDOW_CHARS:
        return 0, text_len
    lo = max(0, min(start - WINDOW_CHARS // 2, text_len - WINDOW_CHARS))
    return lo, max(end, min(text_len, lo + WINDOW_CHARS))


def text_html(text: str, spans: Sequence[Span], focus: int, lo: int = 0, hi: int | None = None) -> str:
    """text[lo:hi] escaped, each citation span a <mark>; the focused one is the target of focus and scroll."""
    hi = len(text) if hi is None else hi
    out = [f'<p class="cut">… {lo:,} characters before</p>'] if lo else []
    out.append('<div class="doc-text">')
    at = lo
    for n, start, end in sorted(spans, key=lambda s: s[1]):
        start, end = max(start, at), min(end, hi)
        if start >= end:
            continue
        out.append(esc(text[at:start]))
        attrs = (f'id="viewer-hl" class="hl focus" tabindex="-1" aria-label="cited passage {n}"' if n == focus
                 else f'class="hl other" title="passage {n}"')
        out.append(f'<mark {attrs} data-n="{n}">{esc(text[start:end])}</mark>')
        at = end
    out.append(esc(text[at:hi]) + "</div>")
    if hi < len(text):
        out.append(f'<p class="cut">… {len(text) - hi:,} characters after (loading the whole document)</p>')
    return "".join(out)


def _page_text(text: str, pages: Sequence[int], i: int) -> str:
    end = pages[i + 1] - len(PAGE_SEPARATOR) if i + 1 < len(pages) else len(text)
    return text[pages[i]:end]


def char_map(stored: str, pdfium_chars: Sequence[str]) -> dict[int, int]:
    """Stored page offset -> pdfium char index, for the non-space characters the two texts share."""
    s_idx = [i for i, ch in enumerate(stored) if not ch.isspace()]
    p_idx = [i for i, ch in enumerate(pdfium_chars) if ch and not ch.isspace()]
    a = "".join(stored[i] for i in s_idx)
    b = "".join(pdfium_chars[i] for i in p_idx)
    if a == b:
        return dict(zip(s_idx, p_idx, strict=True))
    out = {}
    for blk in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(blk.size):
            out[s_idx[blk.a + k]] = p_idx[blk.b + k]
    return out


def _boxes(textpage: object, indexes: list[int], width: float, height: float) -> list[tuple[float, ...]]:
    """Char boxes merged along each line, as (left, top, width, height) percentages of the page."""
    rects: list[list[float]] = []
    for idx in sorted(indexes):
        left, bottom, right, top = textpage.get_charbox(idx)  # type: ignore[attr-defined]
        last = rects[-1] if rects else None
        if last and abs(last[1] - bottom) < 0.5 * (top - bottom) and left >= last[0] - 1:
            last[2], last[3] = max(last[2], right), max(last[3], top)
            last[1] = min(last[1], bottom)
        else:
            rects.append([left, bottom, right, top])
    return [(100 * lft / width, 100 * (height - t) / height, 100 * (r - lft) / width, 100 * (t - b) / height)
            for lft, b, r, t in rects]


def _ocr_boxes(lines: Sequence[dict], page: int, start: int, end: int) -> list[tuple[float, ...]]:
    """A scanned page has no characters to box: the recognised lines the span touches, whole (their boxes
    are all OCR keeps, as fractions of the page from its top left)."""
    return [(100 * x0, 100 * y0, 100 * (x1 - x0), 100 * (y1 - y0))
            for ln in lines if ln["page"] == page and ln["start"] < end and start < ln["end"]
            for x0, y0, x1, y1 in [ln["box"]]]


def pdf_pages_html(path: Path, text: str, pages: Sequence[int], spans: Sequence[Span], focus: int,
                   ocr_lines: Sequence[dict] = ()) -> str:
    """Every page the focused quote touches, drawn as an image with each citation's characters boxed
    (a scanned page's recognised lines, from `ocr_lines`, when it has no text layer)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    _, f_start, f_end = next(s for s in spans if s[0] == focus)
    first = bisect_right(pages, f_start) - 1
    last = bisect_right(pages, max(f_start, f_end - 1)) - 1
    pdf = pdfium.PdfDocument(str(path))
    out = []
    try:
        for i in range(first, last + 1):
            page = pdf[i]
            width, height = page.get_size()
            textpage = page.get_textpage()
            chars = [chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, k)) for k in range(textpage.count_chars())]
            mapping = char_map(_page_text(text, pages, i), chars)
            page_end = pages[i] + len(_page_text(text, pages, i))
            marks = []
            for n, start, end in spans:
                lo, hi = max(start, pages[i]) - pages[i], min(end, page_end) - pages[i]
                if lo >= hi:
                    continue
                idx = [mapping[k] for k in range(lo, hi) if k in mapping]
                boxes = (_boxes(textpage, idx, width, height) if idx else
                         _ocr_boxes(ocr_lines, i + 1, lo + pages[i], hi + pages[i]))
                cls = "hl focus" if n == focus else "hl other"
                for j, (x, y, w, h) in enumerate(boxes):
                    anchor = ' id="viewer-hl" tabindex="-1"' if n == focus and i == first and j == 0 else ""
                    marks.append(f'<span class="{cls}"{anchor} data-n="{n}" style="left:{x:.3f}%;top:{y:.3f}%;'
                                 f'width:{w:.3f}%;height:{h:.3f}%" aria-label="cited passage {n}"></span>')
            buf = io.BytesIO()
            page.render(scale=RENDER_SCALE).to_pil().save(buf, format="PNG")
            src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
            out.append(f'<figure class="pdf-page" data-page="{i + 1}">'
                       f'<div class="page-box" style="aspect-ratio:{width:.2f}/{height:.2f}">'
                       f'<img src="{src}" alt="page {i + 1} of {esc(path.name)}">{"".join(marks)}</div>'
                       f'<figcaption>page {i + 1}<span class="sr-only">, cited passage {focus}: '
                       f'{esc(text[max(f_start, pages[i]):min(f_end, page_end)])}</span></figcaption></figure>')
            textpage.close()
            page.close()
    finally:
        pdf.close()
    return "".join(out)


def dialog_html(title: str, source: str, body: str, version: str, note: str = "") -> str:
    """The viewer's dialog around a rendered body; `version` tells the page script a new one arrived."""
    note_html = f'<p class="viewer-note">{esc(note)}</p>' if note else ""
    return (f'<div class="viewer-dialog" role="dialog" aria-modal="true" aria-label="Document {esc(source)}" '
            f'data-v="{esc(version)}"><div class="viewer-head"><div><div class="viewer-title">{esc(title)}</div>'
            f'<div class="viewer-file">{esc(source)}</div></div>'
            '<button type="button" class="viewer-close" aria-label="Close the document (Escape)">Close</button>'
            f'</div>{note_html}<div class="viewer-body">{body}</div></div>')
