"""The Chroma index: chunk vectors (through llama-index's ChromaVectorStore) and a document table.

Two collections, both in Chroma so that a Chroma server holds everything the index needs:
- `<name>`: one record per chunk, with its embedding, offsets and document fields;
- `<name>-docs`: one record per document: its full text (what citation offsets index into), its source,
  content hash, metadata and state. Chroma needs a vector per record; these carry a constant 1-d one.
The document collection's metadata records how the index was built (embedding model, chunking).

A document is written in three steps: its record as `pending`, its chunks, then its record as `done`.
A crash leaves at most a `pending` record, whose chunks the next ingest removes before anything else.
Ingest writes documents in groups (`add_documents`), each step once for the whole group.

Several processes (docs/limits.md#several-processes): every write moves a generation stamp (`generation`),
which readers compare per request (`follow`: an embedded index is opened again when another process wrote,
since Chroma's embedded client never reloads its vectors); writers hold `lock()` (rag/locks.py), with its
record on the server too when there is one (`<name>-lock`).

Where things live: with `RAG_CHROMA_URL` both collections, and so the build info, are on the server
(`chromadb.HttpClient`, the same code path as the embedded `PersistentClient`). A server that stops
answering is retried briefly, then reported in one line (BackendUnavailable).

PDF pages: a chunk's metadata holds `page` (where it starts) and `page_starts` (offsets inside it where a
later page begins), so a quote anywhere in a retrieved chunk gets its own page (`Hit.page_at`); the document
record holds every page start (`pages`).

Locations (docx paragraphs, slides, sheet rows, chapters, scanned pages) travel the same way: a chunk holds
`location` (the unit where it starts, JSON) and `location_starts` (later units beginning inside it), and
the document record holds every unit (`locations`) and, for OCR, each recognised line's box (`ocr_lines`).
Indexes written before these fields existed need no rebuild: their chunks simply have no location, which is
right for the formats they could hold (text, HTML, text PDFs).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from rag.config import Settings
from rag.errors import BackendUnavailable, IndexMismatch, RagError, UsageError
from rag.locks import IngestLock
from rag.types import Chunk, Document, Hit

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode, TextNode

DOC_VECTOR = [1.0]
FETCH_BATCH = 2000  # chunks read from Chroma per call
_WRITES = itertools.count()
# An embedded client replaced by a reopen (Store._reopen) is stopped at a later reopen once it is this old,
# or when more than MAX_RETIRED wait: each holds its own copy of the vector index (about 40 MB at 20,000
# chunks, freed when stopped), while a search that was using it needs it for well under a second.
RETIRE_SECONDS = 5.0
MAX_RETIRED = 2


def local_name(collection: str, chroma_url: str = "") -> str:
    """The name of an index's files in the local index folder (BM25 state, lock, stamp): the collection,
    with a server's address in front, so that two servers' collections never share a file."""
    if not chroma_url:
        return collection
    server = re.sub(r"[^A-Za-z0-9.]+", "-", chroma_url.split("://", 1)[-1]).strip("-")
    return f"{server}-{collection}"
RETRY_DELAYS = (0.5, 1.0)  # a server that restarts gets 1.5 s; a dead one fails in about that


def _server_down(url: str, error: Exception) -> BackendUnavailable:
    port = urlparse(url).port or 8000
    return BackendUnavailable(
        f"the Chroma server at {url} does not answer ({type(error).__name__}: {error}); "
        f"start it with `chroma run --path DIR --port {port}` or unset RAG_CHROMA_URL"
    )


class _Guarded:
    """A server collection whose connection failures are retried briefly, then raised as one clear line."""

    def __init__(self, inner: Any, url: str) -> None:
        self._inner = inner
        self._url = url

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            import httpx

            for delay in (*RETRY_DELAYS, None):
                try:
                    return attr(*args, **kwargs)
                except httpx.ConnectError as e:  # the request never reached the server: safe to repeat
                    if delay is None:
                        raise _server_down(self._url, e) from None
                    time.sleep(delay)
                except httpx.TransportError as e:
                    raise _server_down(self._url, e) from None
            raise AssertionError("unreachable")

        return call


def _client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise UsageError(f"RAG_CHROMA_URL={settings.chroma_url!r} is not a URL like http://127.0.0.1:8000")
        last: Exception | None = None
        for delay in (0.0, 0.5, 1.0):  # a server that is starting gets a moment; a dead one fails fast
            time.sleep(delay)
            try:
                return chromadb.HttpClient(
                    host=url.hostname,
                    port=url.port or (443 if url.scheme == "https" else 80),
                    ssl=url.scheme == "https",
                    settings=chroma_settings,
                )
            except Exception as e:  # chromadb raises plain ValueError/ConnectionError here
                last = e
        raise BackendUnavailable(
            f"no Chroma server answers at {settings.chroma_url} ({type(last).__name__}); "
            f"start one with `chroma run --path DIR --port {url.port or 8000}` or unset RAG_CHROMA_URL"
        )
    try:
        settings.index.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # read-only, not a folder, no permission
        raise UsageError(f"cannot write the index folder {settings.index} ({e.strerror}); "
                         "choose another with --index or RAG_INDEX") from None
    try:
        return chromadb.PersistentClient(path=str(settings.index), settings=chroma_settings)
    except Exception as e:  # chromadb raises InternalError for a folder that holds something else
        raise RagError(f"cannot open the index at {settings.index} ({' '.join(str(e).split())}); move that "
                       "folder away or choose another with --index, then run `rag ingest`") from None


def _page_starts(doc: Document, chunk: Chunk) -> str:
    """Offsets inside the chunk where a later page begins, as JSON; empty for documents without pages."""
    inside = [p for p in doc.pages if chunk.start < p < chunk.end]
    return json.dumps(inside) if inside else ""


def _location_meta(doc: Document, chunk: Chunk) -> dict[str, str]:
    """The chunk's starting unit and the units that begin inside it, as JSON; empty without units."""
    if not doc.locations:
        return {"location": "", "location_starts": ""}
    at = doc.location_at(chunk.start)
    inside = [[start, loc] for start, loc in doc.locations if chunk.start < start < chunk.end]
    return {"location": json.dumps(at) if at else "", "location_starts": json.dumps(inside) if inside else ""}


def location_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """`Hit` keyword arguments for the location held in a chunk's metadata (see `_location_meta`)."""
    starts = json.loads(meta["location_starts"]) if meta.get("location_starts") else []
    return {"location": json.loads(meta["location"]) if meta.get("location") else None,
            "location_starts": tuple((int(start), loc) for start, loc in starts)}


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in meta.items()}


def _hit(node: TextNode, score: float) -> Hit:
    """The one place a `Hit` is made from a chunk as Chroma holds it (a llama-index node and its metadata)."""
    m = node.metadata
    return Hit(
        doc_id=m["doc_id"], chunk_id=node.node_id, score=float(score),
        start=int(node.start_char_idx or 0), end=int(node.end_char_idx or 0),
        source=m["source"], text=node.get_content(), title=m.get("title", ""),
        publish_date=m.get("publish_date", ""), page=int(m.get("page") or 0) or None,
        page_starts=tuple(json.loads(m["page_starts"])) if m.get("page_starts") else (),
        **location_fields(m),
    )


class _LockRecord:
    """The writer lock's record on a Chroma server (rag/locks.py's SharedRecord): one record in a
    `<name>-lock` collection, so that machines sharing the server take turns too."""

    def __init__(self, client: Any, collection: str, url: str) -> None:
        self.col = _Guarded(client.get_or_create_collection(f"{collection}-lock", embedding_function=None), url)

    def read(self) -> dict[str, Any]:
        got = self.col.get(ids=["lock"], include=["metadatas"])
        return dict(got["metadatas"][0] or {}) if got["ids"] else {}

    def write(self, record: dict[str, Any]) -> None:
        self.col.upsert(ids=["lock"], embeddings=[DOC_VECTOR], documents=[""], metadatas=[_clean_meta(record)])

    def clear(self, token: str) -> None:
        if self.read().get("token") == token:
            self.col.delete(ids=["lock"])


class Store:
    """Chunks and documents in Chroma; the only module that talks to it."""

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self.client = client if client is not None else _client(settings)
        self._reopen_lock = threading.Lock()
        self._retired: list[tuple[float, Any]] = []  # (when, Chroma system) replaced by a reopen
        self._open()
        self._view = self.generation()  # the stamp this process's view of the index is from

    def _open(self) -> None:
        """Get (or create) both collections; `reset` calls it again after dropping them."""
        settings, name = self.settings, self.settings.collection
        try:
            # cosine space: similarities are plain cosines, comparable across queries
            self.chunks = self.client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
            self.docs = self.client.get_or_create_collection(f"{name}-docs", embedding_function=None)
            if settings.chroma_url:
                self.chunks = _Guarded(self.chunks, settings.chroma_url)
                self.docs = _Guarded(self.docs, settings.chroma_url)
        except Exception as e:
            if settings.chroma_url:
                raise BackendUnavailable(
                    f"the Chroma server at {settings.chroma_url} failed ({e}); check it runs, "
                    "or unset RAG_CHROMA_URL"
                ) from None
            raise
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.vector_store = ChromaVectorStore(chroma_collection=self.chunks)

    @property
    def backend(self) -> str:
        return f"chroma-server {self.settings.chroma_url}" if self.settings.chroma_url else (
            f"chroma-embedded {self.settings.index}"
        )

    # --- build settings -------------------------------------------------------------------------
    def _docs_meta(self) -> dict[str, Any]:
        """The document collection's metadata as stored now (the collection object caches what it was
        when opened, and another process may have changed it since)."""
        try:
            col = self.client.get_collection(self.docs.name, embedding_function=None)
        except Exception:  # dropped by a `--rebuild` elsewhere: what this process opened is all there is
            return dict(self.docs.metadata or {})
        return dict(col.metadata or {})

    def build_info(self) -> dict[str, Any]:
        meta = self._docs_meta()
        return {k[len("build_"):]: v for k, v in meta.items() if k.startswith("build_")}

    def check_build(self, info: dict[str, Any]) -> None:
        """Refuse an index built with other settings; record the settings on a fresh one."""
        stored = self.build_info()
        if not stored:
            return
        diff = {k: (stored.get(k), v) for k, v in info.items() if stored.get(k) != v}
        if diff:
            what = ", ".join(f"{k} {old!r} (now {new!r})" for k, (old, new) in diff.items())
            raise IndexMismatch(f"the index was built with {what}; run `rag ingest --rebuild` to rebuild it")

    def record_build(self, info: dict[str, Any]) -> None:
        if self.build_info() == info:
            return
        kept = {k: v for k, v in self._docs_meta().items() if not k.startswith("build_")}
        self.docs.modify(metadata={**kept, **{f"build_{k}": v for k, v in info.items()}})

    def reset(self) -> None:
        """Drop everything (for `--rebuild`)."""
        for col in (self.chunks.name, self.docs.name):
            try:
                self.client.delete_collection(col)
            except Exception:  # already gone
                pass
        self._open()
        self._bump()

    # --- several processes: the generation stamp and the writer lock --------------------------------
    def follow(self) -> str:
        """The generation stamp now; with an embedded index that another process wrote since this one
        looked, the index is opened again first. Why: Chroma's embedded client loads the vector index once
        per process and never reloads it, so without this dense search would go on missing what another
        process added and returning chunks it deleted (measured: counts and `get` follow, `query` not).
        On a server the collections are looked up again (a `--rebuild` elsewhere replaces them)."""
        stamp = self.generation()
        if stamp != self._view:
            with self._reopen_lock:
                if stamp != self._view:
                    if self.settings.chroma_url:
                        self._open()  # a `--rebuild` elsewhere replaced the collections
                    else:
                        self._reopen()
                    self._view = stamp
        return stamp

    def _reopen(self) -> None:
        """A new embedded client and collections for the same folder. The old client is only dropped from
        Chroma's per-process cache, not stopped at once: a search of another thread may be using it (see
        RETIRE_SECONDS)."""
        from chromadb.api.shared_system_client import SharedSystemClient

        identifier = str(getattr(self.client, "_identifier", "") or "")
        old = SharedSystemClient._identifier_to_system.pop(identifier, None)
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        self.client = _client(self.settings)
        self._open()
        now = time.monotonic()
        if old is not None:
            self._retired.append((now, old))
        for when, system in [r for i, r in enumerate(self._retired)
                             if now - r[0] > RETIRE_SECONDS or i < len(self._retired) - MAX_RETIRED]:
            self._retired.remove((when, system))
            try:
                system.stop()
            except Exception:  # already stopped; nothing else holds it
                pass

    def _stamp_file(self) -> Path:
        return self.settings.index / f"generation-{local_name(self.settings.collection)}"

    def generation(self) -> str:
        """A stamp that every write to the index changes, whichever process made it; cheap to read (a
        small file beside an embedded index, the document collection's metadata on a server), so a
        reader compares it on every request and refreshes what it derived (BM25, texts) when it moved."""
        if self.settings.chroma_url:
            try:
                return str(self._docs_meta().get("generation") or "")
            except Exception:  # a server that does not answer: the request itself will say so
                return ""
        try:
            return self._stamp_file().read_text(encoding="utf-8")
        except OSError:
            return ""

    def _bump(self) -> None:
        """Move the generation stamp (after every write); unique per write, so writers need no counter."""
        stamp = f"{time.time_ns():x}-{os.getpid()}-{next(_WRITES)}"
        if self.settings.chroma_url:
            self.docs.modify(metadata={**self._docs_meta(), "generation": stamp})
        else:
            path = self._stamp_file()
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(stamp, encoding="utf-8")
            tmp.replace(path)  # whole or not at all: a reader never sees half a stamp
        self._view = stamp  # this process made the change: its own view has it

    def lock(self) -> IngestLock:
        """The writer lock of this index (rag/locks.py): ingests and removals hold it, readers never."""
        s = self.settings
        if s.chroma_url:
            label = f"collection {s.collection!r} on {s.chroma_url}"
        else:
            try:
                label = str(s.index.resolve().relative_to(Path.cwd()))
            except ValueError:
                label = str(s.index)
        shared = _LockRecord(self.client, s.collection, s.chroma_url) if s.chroma_url else None
        return IngestLock(s.index / f"ingest-{local_name(s.collection, s.chroma_url)}.lock", label, shared)

    # --- documents ------------------------------------------------------------------------------
    def documents(self, *, state: str | None = "done") -> dict[str, dict[str, Any]]:
        """Document records by source: doc_id, hash, title, chunks, ..."""
        got = self.docs.get(include=["metadatas"], where={"state": state} if state else None)
        return {m["source"]: {**m, "doc_id": i} for i, m in zip(got["ids"], got["metadatas"], strict=True)}

    def document(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        got = self.docs.get(ids=[doc_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return got["documents"][0], got["metadatas"][0]

    def _doc_meta(self, doc: Document, n_chunks: int, state: str) -> dict[str, Any]:
        return _clean_meta({
            "source": doc.source, "hash": doc.hash, "title": doc.title, "url": doc.url,
            "publish_date": doc.publish_date, "chunks": n_chunks, "state": state,
            "pages": json.dumps(list(doc.pages)) if doc.pages else "",
            "locations": json.dumps([[start, loc] for start, loc in doc.locations]) if doc.locations else "",
            "ocr_lines": json.dumps([list(line) for line in doc.ocr_lines]) if doc.ocr_lines else "",
            "ingested_at": int(time.time()),
        })

    def add_document(self, doc: Document, chunks: list[Chunk], embeddings: list[list[float]]) -> None:
        """Write a document and its chunks; it counts as indexed only once all chunks are in."""
        self.add_documents([(doc, chunks, embeddings)])

    def add_documents(self, batch: list[tuple[Document, list[Chunk], list[list[float]]]]) -> None:
        """Write several documents in three bulk steps (all `pending`, all chunks, all `done`)."""
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

        if not batch:
            return
        ids = [doc.doc_id for doc, _, _ in batch]
        texts = [doc.text for doc, _, _ in batch]
        self.docs.upsert(ids=ids, embeddings=[DOC_VECTOR] * len(batch), documents=texts,
                         metadatas=[self._doc_meta(d, len(c), "pending") for d, c, _ in batch])
        nodes: list[BaseNode] = []
        for (doc, chunks, embeddings), doc_id in zip(batch, ids, strict=True):
            for chunk, emb in zip(chunks, embeddings, strict=True):
                node = TextNode(
                    id_=chunk.chunk_id,
                    text=chunk.text,
                    embedding=emb,
                    start_char_idx=chunk.start,
                    end_char_idx=chunk.end,
                    metadata=_clean_meta({
                        "doc_id": doc_id, "source": doc.source, "title": doc.title,
                        "publish_date": doc.publish_date, "page": doc.page_at(chunk.start) or 0,
                        "page_starts": _page_starts(doc, chunk), **_location_meta(doc, chunk),
                    }),
                )
                node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
                nodes.append(node)
        step = self._max_batch()
        for i in range(0, len(nodes), step):
            self.vector_store.add(nodes[i : i + step])
        self.docs.update(ids=ids, metadatas=[self._doc_meta(d, len(c), "done") for d, c, _ in batch])
        self._bump()

    def _max_batch(self) -> int:
        try:
            return max(1, min(int(self.client.get_max_batch_size()), 5000))
        except Exception:  # older clients or a server without the endpoint
            return 1000

    def pages(self, doc_id: str) -> tuple[int, ...]:
        """Where each page of a PDF starts in its stored text; empty for documents without pages."""
        got = self.document(doc_id)
        raw = got[1].get("pages") if got else ""
        return tuple(json.loads(raw)) if raw else ()

    def locations(self, doc_id: str) -> tuple[tuple[int, dict[str, Any]], ...]:
        """Where each located unit of a document starts, with its label; empty for plain documents."""
        got = self.document(doc_id)
        raw = got[1].get("locations") if got else ""
        return tuple((int(start), loc) for start, loc in json.loads(raw)) if raw else ()

    def ocr_lines(self, doc_id: str) -> list[dict[str, Any]]:
        """Each OCR-recognised line of a document: `start`, `end`, `page` and `box` (fractions of the page)."""
        got = self.document(doc_id)
        raw = got[1].get("ocr_lines") if got else ""
        return [{"start": s, "end": e, "page": p, "box": box} for s, e, p, box in json.loads(raw)] if raw else []

    def delete_document(self, doc_id: str) -> None:
        self.chunks.delete(where={"doc_id": doc_id})
        self.docs.delete(ids=[doc_id])
        self._bump()

    def recover(self) -> int:
        """Remove documents left half-written by an interrupted ingest; returns how many."""
        pending = self.documents(state="pending")
        for rec in pending.values():
            self.delete_document(rec["doc_id"])
        return len(pending)

    def stored(self, doc_ids: list[str]) -> set[str]:
        """Which of these documents are in the index, written completely."""
        if not doc_ids:
            return set()
        got = self.docs.get(ids=list(doc_ids), include=["metadatas"])
        return {i for i, m in zip(got["ids"], got["metadatas"], strict=True) if (m or {}).get("state") == "done"}

    # --- chunks -----------------------------------------------------------------------------------
    def chunk_count(self) -> int:
        return int(self.chunks.count())

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        """The ids of a document's chunks, or (no `doc_id`) of every chunk in the index."""
        if doc_id is not None:
            return list(self.chunks.get(where={"doc_id": doc_id}, include=[])["ids"])
        ids: list[str] = []
        total = self.chunk_count()
        for offset in range(0, total, 10 * FETCH_BATCH):
            ids.extend(self.chunks.get(include=[], limit=10 * FETCH_BATCH, offset=offset)["ids"])
        return ids

    def hits(self, ids: list[str]) -> dict[str, Hit]:
        """Chunks by id, as Hits with score 0 (ids no longer stored are left out)."""
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        out: dict[str, Hit] = {}
        for start in range(0, len(ids), FETCH_BATCH):
            got = self.chunks.get(ids=ids[start : start + FETCH_BATCH], include=["documents", "metadatas"])
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                node = cast("TextNode", metadata_dict_to_node(meta, text=text))
                out[cid] = replace(_hit(node, 0.0), chunk_id=cid)
        return out

    # --- query ----------------------------------------------------------------------------------
    def query(self, embedding: list[float], k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        """The k nearest chunks by cosine similarity (Chroma's default space is L2 on unit vectors)."""
        from llama_index.core.vector_stores.types import VectorStoreQuery

        if self.chunk_count() == 0:
            return []
        question = VectorStoreQuery(query_embedding=embedding, similarity_top_k=k)
        try:
            res = self.vector_store.query(question, where=where or None)
        except Exception:
            if self.settings.chroma_url:
                raise
            # An embedded vector index loaded before another process deleted chunks can name ids whose
            # records are gone ("Error finding id"): open the index again and ask once more.
            with self._reopen_lock:
                self._reopen()
            res = self.vector_store.query(question, where=where or None)
        # ChromaVectorStore rebuilds the TextNodes `add` wrote; a chunk deleted by another process since
        # this one loaded its vectors comes back without its record, and is left out
        return [_hit(cast("TextNode", found), float(sim))
                for found, sim in zip(res.nodes or [], res.similarities or [], strict=False)
                if found.metadata.get("doc_id")]
