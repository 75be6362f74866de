"""The Chroma index: chunk vectors (through llama-index's ChromaVectorStore) and a document table.

Two collections, both in Chroma so that a Chroma server holds everything the index needs:
- `<name>`: one record per chunk, with its embedding, offsets and document fields;
- `<name>-docs`: one record per document: its full text (what citation offsets index into), its source,
  content hash, metadata and state. Chroma needs a vector per record; these carry a constant 1-d one.
The document collection's metadata records how the index was built (embedding model, chunking).

A document is written in three steps: its record as `pending`, its chunks, then its record as `done`.
A crash leaves at most a `pending` record, whose chunks the next ingest removes before anything else.
Ingest writes documents in groups (`add_documents`), each step once for the whole group.

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

import json
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from rag.config import Settings
from rag.errors import BackendUnavailable, IndexMismatch, RagError, UsageError
from rag.types import Chunk, Document, Hit

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode, TextNode

DOC_VECTOR = [1.0]
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


class Store:
    """Chunks and documents in Chroma; the only module that talks to it."""

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self.client = client if client is not None else _client(settings)
        name = settings.collection
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
    def build_info(self) -> dict[str, Any]:
        meta = dict(self.docs.metadata or {})
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
        meta = {f"build_{k}": v for k, v in info.items()}
        self.docs.modify(metadata=meta)

    def reset(self) -> None:
        """Drop everything (for `--rebuild`)."""
        for col in (self.chunks.name, self.docs.name):
            try:
                self.client.delete_collection(col)
            except Exception:  # already gone
                pass
        Store.__init__(self, self.settings, client=self.client)  # the collections anew, on the same client

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

    def recover(self) -> int:
        """Remove documents left half-written by an interrupted ingest; returns how many."""
        pending = self.documents(state="pending")
        for rec in pending.values():
            self.delete_document(rec["doc_id"])
        return len(pending)

    def chunk_count(self) -> int:
        return int(self.chunks.count())

    def chunk_ids(self, doc_id: str) -> list[str]:
        return list(self.chunks.get(where={"doc_id": doc_id}, include=[])["ids"])

    # --- query ----------------------------------------------------------------------------------
    def query(self, embedding: list[float], k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        """The k nearest chunks by cosine similarity (Chroma's default space is L2 on unit vectors)."""
        from llama_index.core.vector_stores.types import VectorStoreQuery

        if self.chunk_count() == 0:
            return []
        res = self.vector_store.query(
            VectorStoreQuery(query_embedding=embedding, similarity_top_k=k),
            where=where or None,
        )
        hits = []
        for found, sim in zip(res.nodes or [], res.similarities or [], strict=False):
            node = cast("TextNode", found)  # ChromaVectorStore rebuilds the TextNodes `add` wrote
            m = node.metadata
            hits.append(Hit(
                doc_id=m["doc_id"], chunk_id=node.node_id, score=float(sim),
                start=int(node.start_char_idx or 0), end=int(node.end_char_idx or 0),
                source=m["source"], text=node.get_content(), title=m.get("title", ""),
                publish_date=m.get("publish_date", ""), page=int(m.get("page") or 0) or None,
                page_starts=tuple(json.loads(m["page_starts"])) if m.get("page_starts") else (),
                **location_fields(m),
            ))
        return hits
