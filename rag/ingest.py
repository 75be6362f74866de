"""Incremental ingestion: unchanged documents are skipped, changed ones replaced, removed ones deleted.

The flow is a two-stage pipeline, because embedding is nearly all the cost (RealTimeQA: chunking runs at
tens of documents a second, MiniLM at tens of chunks a second on 2 cores):
- a worker thread reads, parses (PDF, HTML) and chunks documents and skips the unchanged ones;
- this thread embeds the chunks of several documents together (`EMBED_GROUP_CHUNKS`, sorted by length so
  a batch pads little) while the worker prepares the next ones (onnxruntime releases the GIL), then writes
  the group to the store in three bulk steps (pending, chunks, done: see rag/store.py).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.chunking import chunk_document
from rag.config import Settings
from rag.embedding import _NumpyEmbedding
from rag.errors import RagError
from rag.sources import SUPPORTED_SUFFIXES, Skipped, read_file, read_jsonl, source_name, walk
from rag.store import Store
from rag.types import Chunk, Document

# Chunks embedded and written together: big enough that a batch of the model and a write to Chroma carry
# little overhead, small enough that an interrupted ingest loses seconds of work.
EMBED_GROUP_CHUNKS = 256
MAX_GROUP_DOCS = 200
PREFETCH_DOCS = 64  # documents the parsing thread may run ahead of the embedder


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
                f"unchanged {self.unchanged}, chunks embedded {self.chunks}, {self.seconds:.1f} s")
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

    bar = tqdm(total=total, unit="doc", file=sys.stderr, leave=False, mininterval=0.5)

    def update(done: int, tot: int, name: str) -> None:
        bar.total = max(tot, done)
        bar.set_postfix_str(name[-40:], refresh=False)
        bar.update(done - bar.n)  # redraws at most every `mininterval`

    return update, bar.close


@dataclass
class _Prepared:
    """A document as the parsing thread hands it on: its chunks when it must be (re-)embedded."""

    doc: Document
    old: dict[str, Any] | None = None
    chunks: list[Chunk] | None = None  # None: unchanged (or a repeated source), nothing to do


def _prepare(docs: Iterable[Document], existing: dict[str, dict[str, Any]], settings: Settings,
             ) -> Iterator[_Prepared]:
    seen: set[str] = set()
    for doc in docs:
        old = existing.get(doc.source)
        if doc.source in seen or (old is not None and old["hash"] == doc.hash
                                  and old["doc_id"] == doc.doc_id):
            seen.add(doc.source)
            yield _Prepared(doc, old)
            continue
        seen.add(doc.source)
        yield _Prepared(doc, old, chunk_document(doc, settings.chunking))


def _in_background(items: Iterator[_Prepared], ahead: int) -> Iterator[_Prepared]:
    """Run `items` in a worker thread up to `ahead` items ahead; its exceptions surface here."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as e:  # handed to the consumer, which raises it
            put(("error", e))

    worker = threading.Thread(target=work, name="rag-ingest-parse", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join(timeout=5)


def _embed_group(embedder: _NumpyEmbedding, group: list[_Prepared]) -> list[list[list[float]]]:
    """Vectors for each document's chunks, the whole group embedded at once, shortest texts first."""
    texts = [c.text for item in group for c in item.chunks or []]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors: list[list[float]] = [[] for _ in texts]
    if texts:
        for i, vec in zip(order, embedder.embed_array([texts[i] for i in order]).tolist(), strict=True):
            vectors[i] = vec
    out, at = [], 0
    for item in group:
        n = len(item.chunks or [])
        out.append(vectors[at : at + n])
        at += n
    return out


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
    group: list[_Prepared] = []
    group_chunks = 0

    def write_group() -> None:
        nonlocal done, group, group_chunks
        vectors = _embed_group(embedder, group)
        for item in group:
            if item.old is not None:
                store.delete_document(item.old["doc_id"])
        store.add_documents([(item.doc, item.chunks or [], vecs) for item, vecs in zip(group, vectors,
                                                                                       strict=True)])
        for item in group:
            if item.old is not None:
                summary.updated += 1
            else:
                summary.added += 1
            summary.chunks += len(item.chunks or [])
            summary.embedded += len(item.chunks or [])
            done += 1
            progress(done, max(total or 0, done), item.doc.source)
        group, group_chunks = [], 0

    try:
        for item in _in_background(_prepare(docs, existing, settings), PREFETCH_DOCS):
            if item.chunks is None:
                if item.doc.source not in seen:
                    summary.unchanged += 1
                seen.add(item.doc.source)
                done += 1
                progress(done, max(total or 0, done), item.doc.source)
                continue
            seen.add(item.doc.source)
            group.append(item)
            group_chunks += len(item.chunks)
            if group_chunks >= EMBED_GROUP_CHUNKS or len(group) >= MAX_GROUP_DOCS:
                write_group()
        if group:
            write_group()
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


def _readable(paths: list[Path], corpus: Path, summary: IngestSummary,
              named: dict[Path, Document] | None = None) -> Iterable[Document]:
    for path in paths:
        try:
            yield (named or {}).get(path) or read_file(path, corpus)
        except RagError as e:
            summary.skipped.append(Skipped(source_name(path, corpus), str(e)))
        except OSError as e:
            summary.skipped.append(Skipped(source_name(path, corpus), f"{path}: {e.strerror}"))
        except Exception as e:  # a parser choking on a malformed file must not stop the rest of the folder
            why = " ".join(str(e).split())[:200]
            summary.skipped.append(Skipped(source_name(path, corpus),
                                           f"{path}: could not be read ({type(e).__name__}: {why})"))


def ingest_paths(
    store: Store, embedder: _NumpyEmbedding, settings: Settings, paths: list[Path] | None = None,
    *, progress: Progress | None = None,
) -> IngestSummary:
    """Index files and folders (default: the corpus folder); documents gone from a folder are removed."""
    corpus = settings.corpus
    roots = paths or [corpus]
    files = list(walk(roots, corpus))
    # A file named on the command line that cannot be read is a usage error (exit 2), not a skip.
    named = {root: read_file(root, corpus) for root in roots if root.is_file()}
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
    return ingest_documents(store, embedder, settings, _readable(files, corpus, summary, named),
                            prune=prune if prefixes else None, progress=progress, total=len(files),
                            summary=summary)


def ingest_jsonl(
    store: Store, embedder: _NumpyEmbedding, settings: Settings, path: Path,
    *, progress: Progress | None = None,
) -> IngestSummary:
    """Index JSONL records; each record's `_id` is its source. Nothing is removed."""
    summary = IngestSummary()
    docs = list(read_jsonl(path, summary.skipped))  # validate every line before writing anything
    return ingest_documents(store, embedder, settings, docs, progress=progress, total=len(docs),
                            summary=summary)
