"""OCR for scanned PDF pages and images: rapidocr-onnxruntime, whose wheel carries its three ONNX models.

Why this engine: its PP-OCRv4 detection and recognition models ship inside the PyPI wheel (no download
path in its code; it loads `models/*.onnx` beside itself) and run on the onnxruntime chromadb already
brings. A PDF page without a text layer is rendered by pypdfium2 at `RENDER_DPI`, so a line's box is a
place on the page as shown; boxes are kept as fractions of the page (x0, y0, x1, y1 from the top left),
the same whatever the rendering scale. Both come with the `ocr` extra.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.errors import UsageError
from rag.formats import MissingExtra

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
# 200 dpi: on an 11-point test page rendered at 150 dpi the model ran the words of 9 of 14 lines together
# ("Item3:berth3was..."); at 200 dpi it kept every space, for about the same time (docs/formats.md).
RENDER_DPI = 200
MIN_SCORE = 0.5  # recognised lines the model itself doubts are noise (speckles, rules, stamps)
MAX_IMAGE_PIXELS = 50_000_000  # a 7000x7000 scan; larger is a poster or a decompression bomb
MAX_OCR_PAGES = 500  # about 15 minutes of OCR on this machine (docs/formats.md); split larger scans

Line = tuple[str, tuple[float, float, float, float]]
_lock = threading.Lock()  # one recognition at a time: the engine keeps per-call state


def _missing(what: str) -> MissingExtra:
    return MissingExtra(f"{what} needs the `ocr` extra: run `pip install -e '.[ocr]'` (scripts/setup.sh installs it)")


@lru_cache(maxsize=1)
def _load_engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    # One thread: ingest embeds in parallel with parsing, and on 2 busy cores one thread recognised a
    # 20-line page in 10.7 s against 14.4 s with two (docs/formats.md). No angle classifier: on upright
    # print it turned 10 of 45 lines of a test page upside down into garbage; scans come upright.
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, use_cls=False)


def _engine(what: str = "OCR") -> Any:
    try:
        return _load_engine()
    except ImportError:
        raise _missing(what) from None


def available() -> bool:
    """Whether the OCR engine and the PDF renderer are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("rapidocr_onnxruntime", "pypdfium2"))


def recognise(image: Any, what: str = "OCR") -> list[Line]:
    """The text lines of a PIL image in reading order, each with its box as fractions of the image."""
    engine = _engine(what)
    width, height = image.size
    with _lock:
        result, _elapsed = engine(image.convert("RGB"))
    lines: list[Line] = []
    for box, text, score in result or []:
        text = " ".join(str(text).split())
        if not text or float(score) < MIN_SCORE:
            continue
        xs, ys = [float(p[0]) for p in box], [float(p[1]) for p in box]
        lines.append((text, (round(min(xs) / width, 4), round(min(ys) / height, 4),
                             round(max(xs) / width, 4), round(max(ys) / height, 4))))
    return lines


def image_lines(path: Path) -> list[Line]:
    """An image file's recognised lines; UsageError for a file that is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UsageError(f"{path}: {image.width}x{image.height} pixels is over the "
                                 f"{MAX_IMAGE_PIXELS // 1_000_000} megapixel limit; scale it down")
            image.load()
            return recognise(image, f"{path}: reading an image")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise UsageError(f"{path}: not a readable image ({' '.join(str(e).split())[:120]})") from None


def pdf_page_lines(path: Path, pages: list[int]) -> dict[int, list[Line]]:
    """Recognised lines of the given 0-based pages of a PDF, each page rendered at RENDER_DPI."""
    if len(pages) > MAX_OCR_PAGES:
        raise UsageError(f"{path}: {len(pages)} scanned pages is over the {MAX_OCR_PAGES}-page OCR limit; "
                         "split the PDF")
    what = f"{path}: no text layer (a scanned PDF); reading it"
    try:
        import pypdfium2
    except ImportError:
        raise _missing(what) from None
    _engine(what)  # a missing engine fails before any page is rendered
    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as e:
        raise UsageError(f"{path}: its scanned pages cannot be rendered ({e}); re-save the PDF") from None
    try:
        out = {}
        for i in pages:
            page = document[i]
            try:
                image = page.render(scale=RENDER_DPI / 72).to_pil()
            finally:
                page.close()
            out[i] = recognise(image, what)
        return out
    finally:
        document.close()
