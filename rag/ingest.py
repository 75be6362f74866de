"""Incremental ingestion: unchanged documents are skipped, changed ones replaced, removed ones deleted."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embedding import _NumpyEmbedding
from rag.errors import RagError
from rag.sources import SUPPORTED_SUFFIXES, Skipped, read_file, read_jsonl, source_name, walk
from rag.store import Store
from rag.types import Document


@dataclass
class IngestSummary:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0  # chunks embedded by this run
    embedded: int = 0
    seconds: float = 0.0
    recovered: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def line(self) -> str:
        text = (f"added {self.added}, updated {self.updated}, removed {self.removed}, "
                f"unchanged {self.unchanged}, chunks {self.chunks}, {self.seconds:.1f} s")
        if self.skipped:
            text += f", skipped {len(self.skipped)}"
        return text

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["skipped"] = [asdict(s) for s in self.skipped]
        return out


Progress = Callable[[int, int, str], None]


def _tqdm_progress(total: int) -> tuple[Progress, Callable[[], None]]:
    if not sys.stderr.isatty() or total == 0:
        return (lambda done, tot, name: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="doc", file=sys.stderr, leave=False)

    def update(done: int, tot: int, name: str) -> None:
        bar.n = done
        bar.set_postfix_str(name[-40:], refresh=True)

    return update, bar.close


def ingest_documents(
    store: Store,
    embedder: _NumpyEmbedding,
    settings: Settings,
    docs: Iterable[Document],
    *,
    prune: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
    total: int | None = None,
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Index `docs`; afterwards remove documents whose source `prune(source)` claims but were not seen."""
    t0 = time.perf_counter()
    summary = summary or IngestSummary()
    summary.recovered += store.recover()
    existing = store.documents()
    seen: set[str] = set()
    done = 0
    if progress is None:
        progress, close = _tqdm_progress(total or 0)
    else:
        close = lambda: None  # noqa: E731
    try:
        for doc in docs:
            done += 1
            progress(done, total or done, doc.source)
            if doc.source in seen:
                continue
            seen.add(doc.source)
            old = existing.get(doc.source)
            if old is not None and old["hash"] == doc.hash and old["doc_id"] == doc.doc_id:
                summary.unchanged += 1
                continue
            chunks = chunk_document(doc, settings.chunking)
            vectors = embedder.embed_array([c.text for c in chunks]).tolist() if chunks else []
            if old is not None:
                store.delete_document(old["doc_id"])
                summary.updated += 1
            else:
                summary.added += 1
            store.add_document(doc, chunks, vectors)
            summary.chunks += len(chunks)
            summary.embedded += len(chunks)
        if prune is not None:
            # A file that is there but could not be read this time keeps its old version.
            seen |= {s.path for s in summary.skipped}
            for source, rec in existing.items():
                if source not in seen and prune(source):
                    store.delete_document(rec["doc_id"])
                    summary.removed += 1
    finally:
        close()
    summary.seconds += time.perf_counter() - t0
    return summary


def _readable(paths: list[Path], corpus: Path, summary: IngestSummary) -> Iterable[Document]:
    for path in paths:
        try:
            yield read_file(path, corpus)
        except RagError as e:
            summary.skipped.append(Skipped(source_name(path, corpus), str(e)))
        except OSError as e:
            summary.skipped.append(Skipped(source_name(path, corpus), f"{path}: {e.strerror}"))


def ingest_paths(
    store: Store, embedder: _NumpyEmbedding, settings: Settings, paths: list[Path] | None = None,
    *, progress: Progress | None = None,
) -> IngestSummary:
    """Index files and folders (default: the corpus folder); documents gone from a folder are removed."""
    corpus = settings.corpus
    roots = paths or [corpus]
    files = list(walk(roots, corpus))
    prefixes = []
    for root in roots:
        if root.is_dir():
            rel = source_name(root, corpus)
            prefixes.append("" if rel == "." else rel.rstrip("/") + "/")

    def prune(source: str) -> bool:
        # Files under a walked folder; JSONL records (sources without a file suffix) are never pruned.
        return any(source.startswith(p) for p in prefixes) and Path(source).suffix.lower() in (
            SUPPORTED_SUFFIXES
        )

    summary = IngestSummary()
    return ingest_documents(store, embedder, settings, _readable(files, corpus, summary),
                            prune=prune if prefixes else None, progress=progress, total=len(files),
                            summary=summary)


def ingest_jsonl(
    store: Store, embedder: _NumpyEmbedding, settings: Settings, path: Path,
    *, progress: Progress | None = None,
) -> IngestSummary:
    """Index JSONL records; each record's `_id` is its source. Nothing is removed."""
    docs = list(read_jsonl(path))  # validate every line before writing anything
    return ingest_documents(store, embedder, settings, docs, progress=progress, total=len(docs))
