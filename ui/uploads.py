"""Uploaded files, checked before anything reaches the corpus folder: name, type, size, readable text."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError, UsageError
from rag.sources import META_SUFFIX, SUPPORTED_SUFFIXES, read_file, size_limit

# Letters, digits and a few separators; starts with a letter or digit (no hidden files, no "..").
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,149}")


@dataclass(frozen=True)
class Upload:
    """A checked upload: the temporary file and the name it will have in the corpus folder."""

    path: Path
    name: str


def check_name(name: str) -> None:
    """Raise UsageError unless `name` is a plain, visible file name of a supported type."""
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise UsageError(f"{name!r}: a file name without folders, '..' or a leading dot is needed; rename it")
    if not SAFE_NAME.fullmatch(name):
        raise UsageError(f"{name!r}: use letters, digits, spaces and . _ - ( ) + in the name (at most 150)")
    if name.lower().endswith(META_SUFFIX):
        raise UsageError(f"{name!r}: metadata sidecars cannot be uploaded; upload the document itself")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UsageError(f"{name!r}: {suffix or 'no extension'} files are not supported; use {kinds}")


def check_upload(path: Path, name: str, corpus: Path) -> Upload:
    """The upload if its name, size and content are acceptable; UsageError saying what is wrong otherwise."""
    check_name(name)
    size = path.stat().st_size
    limit = size_limit(Path(name).suffix)
    if size == 0:
        raise UsageError(f"{name!r} is empty; upload a file with text in it")
    if size > limit:
        raise UsageError(f"{name!r} is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit; split it")
    try:
        read_file(path, corpus)  # decodes and extracts exactly as ingest will
    except RagError as e:
        raise UsageError(f"{name!r}: {str(e).replace(str(path), '').lstrip(': ')}") from None
    return Upload(path=path, name=name)


def place(upload: Upload, corpus: Path) -> tuple[Path, bool]:
    """Copy a checked upload into the corpus folder; returns its path and whether it replaced a file."""
    corpus.mkdir(parents=True, exist_ok=True)
    dest = corpus / upload.name
    if dest.resolve().parent != corpus.resolve():
        raise UsageError(f"{upload.name!r} would land outside the corpus folder; rename it")
    existed = dest.exists()
    shutil.copyfile(upload.path, dest)
    return dest, existed
