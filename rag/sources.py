"""Read documents: text and Markdown files from folders, and JSONL records.

A file's metadata (title, date, links) lives beside it in `NAME.meta.json`, so the text that citation
offsets index into is the file itself, byte for byte after UTF-8 decoding.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import UsageError
from rag.types import Document

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED_SUFFIXES = set(TEXT_SUFFIXES)
META_SUFFIX = ".meta.json"
MAX_FILE_BYTES = 20 * 1024 * 1024


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
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UsageError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} byte limit; split the file")
    data = path.read_bytes()
    if b"\0" in data:
        raise UsageError(f"{path}: looks binary (NUL bytes); only text files are read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 (byte {e.start}); re-save it as UTF-8") from None
    if not text.strip():
        raise UsageError(f"{path}: empty file")
    meta = _read_meta(path)
    title = meta.get("title") or _first_line(text) or path.stem
    return Document(
        source=source_name(path, corpus),
        text=text,
        title=title,
        url=meta.get("url", ""),
        publish_date=meta.get("publish_date", meta.get("date", "")),
    )


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


def read_jsonl(path: Path) -> Iterator[Document]:
    """Records `{"_id", "text", "title"?, "url"?, "publish_date"?}`, plain or gzipped, one per line."""
    if not path.exists():
        raise UsageError(f"{path}: no such file; give a .jsonl or .jsonl.gz file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for lineno, line in enumerate(fh, 1):
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
                raise UsageError(f"{path}:{lineno}: record {rec['_id']} has no \"text\"")
            yield Document(
                source=str(rec["_id"]),
                text=text,
                title=str(rec.get("title") or ""),
                url=str(rec.get("url") or ""),
                publish_date=str(rec.get("publish_date") or ""),
            )
