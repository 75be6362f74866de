"""OCR speed per scanned page, through the same path ingest takes (`read_file` on an image-only PDF).

The page is a letter page at 150 dpi holding `--lines` lines of 11-point-sized print (23 px), about what
a typed report page holds; the pages are made with Pillow, so nothing is downloaded. Prints seconds a page
and CPU seconds a page (what it costs on an idle core: OCR runs one thread), what a 100-page scan costs,
and the load average, so a busy machine shows as such.

    nice -n 10 .venv/bin/python -m bench.ocr_speed [--pages 3] [--lines 45]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rag import ocr
from rag.sources import read_file


def page_image(lines: int, seed: int):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1275, 1650), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=23)
    for i in range(lines):
        n = seed * 100 + i
        draw.text((110, 90 + 32 * i), f"Item {n}: berth {n % 17} was inspected on day {n % 28 + 1} and "
                                      f"{n % 9} bollards need work.", fill="black", font=font)
    return image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=3)
    ap.add_argument("--lines", type=int, default=45)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "scan.pdf"
        images = [page_image(args.lines, k) for k in range(args.pages)]
        images[0].save(str(pdf), "PDF", resolution=150, save_all=True, append_images=images[1:])
        t0 = time.perf_counter()
        ocr._engine()
        load = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        doc = read_file(pdf, Path(tmp))
        per_page = (time.perf_counter() - t0) / args.pages
        cpu_page = (time.process_time() - c0) / args.pages  # what it costs on an idle core (one OCR thread)
    found = len(doc.ocr_lines)
    print(f"engine load {load:.1f} s; {args.pages} pages of {args.lines} lines: {per_page:.1f} s a page "
          f"({cpu_page:.1f} s of CPU), {found}/{args.pages * args.lines} lines recognised; a 100-page scan: "
          f"{100 * per_page / 60:.0f} min here, {100 * cpu_page / 60:.0f} min of CPU "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
