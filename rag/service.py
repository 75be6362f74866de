"""The one entry point the faces (CLI, app, eval) call: ingest, search, ask, stats, show.

Services come in through keywords; `None` means "build it from settings", lazily, once.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag.answer.base import Answerer, abstain
from rag.config import Settings
from rag.conversation import standalone_question
from rag.embedding import _NumpyEmbedding, load_embedder
from rag.errors import EmptyQuestion, IndexNotFound, ModelError, NotFound, UsageError
from rag.ingest import IngestSummary, Progress, ingest_documents, ingest_jsonl, ingest_paths
from rag.llm import ChatModels
from rag.receipts import make_receipt
from rag.retrieve import Retriever
from rag.sources import META_SUFFIX
from rag.store import Store
from rag.text import normalise_date
from rag.types import Answer, Document, Hit

MAX_QUESTION_CHARS = 2000
ANSWERERS = ("generative", "extractive")
# An answer whose cited document another process removed while it was being written is written again
# from what is stored now, at most this many times in all (each pass is one retrieval and one answer).
ANSWER_ATTEMPTS = 3


def clean_question(question: str) -> str:
    """The question without control characters; raises UsageError for an empty or oversized one."""
    if not isinstance(question, str):
        raise UsageError("the question must be text")
    # Terminal escape sequences (colours pasted from a terminal) go whole, not just their ESC byte.
    q = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]", "", question)
    q = "".join(ch if unicodedata.category(ch)[0] != "C" or ch in "\t\n" else " " for ch in q)
    q = re.sub(r"\s+", " ", q).strip()
    if not q:
        raise EmptyQuestion("the question is empty; type a question about the corpus")
    if len(q) > MAX_QUESTION_CHARS:
        raise UsageError(f"the question has {len(q)} characters; keep it under {MAX_QUESTION_CHARS}")
    return q


def check_history(history: object) -> None:
    """Earlier turns must be a list of objects; turns with other roles or no text are passed over later."""
    if history is None:
        return
    if not isinstance(history, list) or not all(isinstance(t, dict) for t in history):
        raise UsageError('the history must be a list of {"role": "user" or "assistant", "content": "..."} turns')


class Service:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: _NumpyEmbedding | None = None,
        store: Store | None = None,
        answerer: Answerer | None = None,
        retriever: Retriever | None = None,
        models: ChatModels | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        if self.settings.answerer not in ANSWERERS:
            raise UsageError(f"unknown answerer {self.settings.answerer!r}; use one of {', '.join(ANSWERERS)}")
        self._embedder = embedder
        self._store = store
        self._answerer = answerer
        self._retriever = retriever
        # the chat models this service loaded (shared with the services made from it): no process-wide one
        self.models = models if models is not None else ChatModels()
        self._texts: dict[str, str] = {}
        self._generation: str | None = None  # the store's stamp when `_texts` was last checked
        self.notice = ""  # one line for the user when a fallback was taken
        self.last_sync: dict[str, Any] | None = None  # set by the folder watcher (rag/watch.py)

    # --- services, built once -----------------------------------------------------------------
    @property
    def embedder(self) -> _NumpyEmbedding:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings.embed_model)
        return self._embedder

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings)
        return self._store

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            self.store.check_build(self.settings.build_info())
            self._retriever = Retriever(self.store, self.embedder)
        return self._retriever

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            self._answerer = self._build_answerer()
        return self._answerer

    def _build_answerer(self) -> Answerer:
        from rag.answer.extractive import ExtractiveAnswerer

        extractive = ExtractiveAnswerer(self.embedder)
        if self.settings.answerer == "extractive":
            return extractive
        try:
            from rag.answer.generative import build_generative

            return build_generative(self.settings, embedder=self.embedder, fallback=extractive, models=self.models)
        except (ImportError, ModelError) as e:
            self.notice = (f"generation is not available ({e}); answering extractively. "
                           "Run the README's setup command to install the bundled model.")
            print(f"rag: {self.notice}", file=sys.stderr)
            return extractive

    # --- operations ---------------------------------------------------------------------------
    def ingest(
        self, paths: list[Path] | None = None, *, jsonl: Path | None = None, rebuild: bool = False,
        progress: Progress | None = None, wait: bool = True, notify: Callable[[str], None] | None = None,
    ) -> IngestSummary:
        """Index files, folders or JSONL records, holding the index's writer lock (rag/locks.py): while
        another ingest runs this waits (`notify` gets a line saying for whom) or, without `wait`, raises
        IngestRunning."""
        with self.store.lock().hold(wait=wait, on_wait=notify, on_cleared=notify):
            self.store.follow()  # write over what is stored now, not over a view from before another ingest
            info = self.settings.build_info()
            if rebuild:
                self.store.reset()
            else:
                self.store.check_build(info)
            self.store.record_build(info)
            self._texts.clear()
            if jsonl is not None:
                summary = ingest_jsonl(self.store, self.embedder, self.settings, jsonl, progress=progress)
            else:
                summary = ingest_paths(self.store, self.embedder, self.settings, paths, progress=progress)
        if self._retriever is not None:  # the BM25 side follows what was just written
            self._retriever.refresh()
        return summary

    def _follow(self) -> None:
        """Forget cached texts when the index changed (any process); one stamp read per request."""
        generation = self.store.follow()
        if generation != self._generation:
            self._texts.clear()
            self._generation = generation

    def doc_text(self, doc_id: str) -> str:
        text = self._texts.get(doc_id)  # read once: another thread's `_follow` may clear the cache
        if text is None:
            got = self.store.document(doc_id)
            if got is None:
                raise NotFound(f"no document {doc_id!r} in the index; `rag stats` lists what is there")
            text = self._texts[doc_id] = got[0]
        return text

    def _texts_of_one_answer(self) -> Callable[[str], str]:
        """`doc_text` for one answer: a text it has read stays the same for the rest of that answer (its
        quotes and its receipt), even if another process removes the document meanwhile."""
        seen: dict[str, str] = {}

        def text(doc_id: str) -> str:
            if doc_id not in seen:
                seen[doc_id] = self.doc_text(doc_id)
            return seen[doc_id]

        return text

    def search(self, query: str, k: int | float | None = None, *, as_of: str | None = None) -> list[Hit]:
        """The k best chunks; `as_of` (default: the setting) keeps documents published by that date."""
        query = clean_question(query)
        as_of = as_of or self.settings.as_of
        if as_of and not normalise_date(as_of):
            raise UsageError(f"--as-of {as_of!r} is not a date; give one like 2022-06-16")
        k = self.settings.top_k if k is None else k
        if isinstance(k, float) and k.is_integer():  # a UI slider may hand over 5.0
            k = int(k)
        if isinstance(k, bool) or not isinstance(k, int):
            raise UsageError(f"--k {k!r} is not a whole number; use 1 to 100")
        if k < 1 or k > 100:
            raise UsageError(f"--k {k} is out of range; use 1 to 100")
        self._follow()
        if self.store.chunk_count() == 0:
            raise IndexNotFound("the index is empty; run `rag ingest` first")
        return self.retriever.search(query, k, as_of=as_of or None)

    def ask(self, question: str, history: list[dict[str, str]] | None = None, k: int | None = None) -> Answer:
        """The whole answer: the last event of `ask_stream`."""
        ans: Answer | None = None
        for kind, value in self.ask_stream(question, history, k):
            if kind == "answer":
                ans = value
        assert ans is not None
        return ans

    def ask_stream(
        self, question: str, history: list[dict[str, str]] | None = None, k: int | None = None
    ) -> Iterator[tuple[str, Any]]:
        """Events for a live view: ("delta", text) pieces as the answer is produced (verified text only),
        then ("answer", Answer). Answerers without a `stream` method produce the whole answer at once.

        Another process may remove a document while its passage is being cited; when the index changed
        during the answer, the cited documents are looked up again and a citation of one that is gone sends
        the question round once more (the repeat is not streamed), so an answer cites what is stored."""
        t0 = time.perf_counter()
        asked = question = clean_question(question)
        check_history(history)
        # a follow-up that leans on earlier turns is made standalone before retrieval (rag/conversation.py)
        rewritten = standalone_question(question, history, llm=getattr(self.answerer, "llm", None))
        question = rewritten or question
        t_search = time.perf_counter()  # a model's rewrite is timed apart from retrieval
        if k is None:  # an answerer may read more chunks than a search shows
            k = getattr(self.answerer, "retrieve_k", None)
        for attempt in range(1, ANSWER_ATTEMPTS + 1):
            generation = self.store.generation()
            doc_text = self._texts_of_one_answer()
            done: Any = None
            try:
                for kind, value in self._answer(question, k, doc_text, stream=attempt == 1):
                    if kind == "done":
                        done = value
                    else:
                        yield kind, value
            except NotFound:  # a retrieved document was removed before its text was read
                if attempt == ANSWER_ATTEMPTS:
                    raise
                self._texts.clear()
                continue
            ans, hits, t1, first = done
            if attempt == ANSWER_ATTEMPTS or not ans.citations or self.store.generation() == generation:
                break
            cited = sorted({c.doc_id for c in ans.citations})
            if self.store.stored(cited) == set(cited):
                break
            self._texts.clear()
        ans.question, ans.rewritten_question = asked, rewritten
        ans.trace = {"retrieve": {"query": question, "k": len(hits), "as_of": self.settings.as_of or None,
                                  "hits": [{"chunk_id": h.chunk_id, "source": h.source, "score": round(h.score, 4)}
                                           for h in hits]},
                     **({"attempts": attempt} if attempt > 1 else {}),
                     **ans.trace}
        if ans.abstained and not ans.trace.get("refusal_reason"):
            ans.trace["refusal_reason"] = "the answerer found no passage that answers the question"
        t2 = time.perf_counter()
        ans.timings = {
            "retrieve_ms": round((t1 - t_search) * 1000),
            **({"rewrite_ms": round((t_search - t0) * 1000)} if rewritten else {}),
            "generate_ms": round((t2 - t1) * 1000),
            "total_ms": round((t2 - t0) * 1000),
            **{k: v for k, v in ans.timings.items() if k not in ("retrieve_ms", "generate_ms", "total_ms")},
            # from the question to the first text shown; the whole answer for answerers that do not stream
            "first_token_ms": round(((first or t2) - t0) * 1000),
        }
        ans.receipt = make_receipt(ans, build=self.store.build_info(), answerer=self.answerer,
                                   settings=self.settings, doc_text=doc_text)
        yield "answer", ans

    def _answer(self, question: str, k: int | None, doc_text: Callable[[str], str], *,
                stream: bool) -> Iterator[tuple[str, Any]]:
        """One retrieval and one answer: ("delta", text) events, then ("done", (answer, hits, t, first))."""
        hits = self.search(question, k)
        t1 = time.perf_counter()
        streamer = getattr(self.answerer, "stream", None) if stream else None
        ans: Answer | None = None
        first: float | None = None  # when the first piece of answer text reached the caller
        if not hits:
            ans = abstain(question)
            ans.trace = {"refusal_reason": "nothing was retrieved for the question"}
        elif streamer is None:
            ans = self.answerer.answer(question, hits, doc_text)
        else:
            for kind, value in streamer(question, hits, doc_text):
                if kind == "answer":
                    ans = value
                else:
                    first = first or time.perf_counter()
                    yield kind, value
        assert ans is not None
        yield "done", (ans, hits, t1, first)

    def stats(self) -> dict[str, Any]:
        docs = self.store.documents()
        info = self.store.build_info() or self.settings.build_info()
        return {
            "documents": len(docs),
            "chunks": self.store.chunk_count(),
            "embedding_model": info.get("embedding_model"),
            "chunking": {"chunk_size": info.get("chunk_size"), "chunk_overlap": info.get("chunk_overlap"),
                         "splitter": "llama-index SentenceSplitter"},
            "backend": self.store.backend,
            **({"sync": self.last_sync} if self.last_sync is not None else {}),
        }

    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents, sorted by source."""
        return sorted(self.store.documents().values(), key=lambda r: r["source"])

    def remove(self, source: str, *, notify: Callable[[str], None] | None = None) -> None:
        """Forget a document: its index records and, for a file in the corpus folder, the file and its
        metadata sidecar (else the next ingest of the folder would bring it back). Holds the writer lock,
        waiting for an ingest that runs."""
        with self.store.lock().hold(on_wait=notify, on_cleared=notify):
            self.store.follow()
            rec = self.store.documents().get(source)
            if rec is None:
                raise UsageError(f"no document {source!r} in the index; the Documents list shows what is there")
            corpus = self.settings.corpus.resolve()
            path = (corpus / source).resolve()
            if path.is_relative_to(corpus) and path.is_file():
                path.unlink()
                path.with_name(path.name + META_SUFFIX).unlink(missing_ok=True)
            self.store.delete_document(rec["doc_id"])
        self._texts.pop(rec["doc_id"], None)
        if self._retriever is not None:  # the BM25 side forgets it too
            self._retriever.refresh()

    def show(self, doc_id: str) -> str:
        """A document's stored text, by id or by source (its path relative to the corpus)."""
        rec = self.store.documents().get(doc_id)
        return self.doc_text(rec["doc_id"] if rec else doc_id)

    # --- other services over the same index ---------------------------------------------------
    def with_settings(self, **changes: Any) -> Service:
        """This service with `changes` to its settings, sharing what they leave valid: the chat models
        always, the embedder and the index unless what shapes or names the index changed, the answerer
        unless the answerer or its model changed. The faces make one per answerer or per as-of date."""
        settings = self.settings.replace(**changes)
        same = {name for name in type(settings).model_fields if getattr(settings, name) == getattr(self.settings, name)}
        index = {"embed_model", "chunking", "index", "chroma_url", "collection"} <= same
        writer = index and {"answerer", "llm", "model_dir"} <= same
        # one retriever for all: an ingest through any of them refreshes the BM25 side they all read
        svc = Service(settings, models=self.models,
                      embedder=self.embedder if "embed_model" in same else None,
                      store=self.store if index else None,
                      retriever=self.retriever if index else None,
                      answerer=self._answerer if writer else None)
        if writer:
            svc.notice = self.notice
        return svc

    def for_answerer(self, name: str) -> Service:
        """This service answering with `name` (one of ANSWERERS), over the same index and models."""
        if name not in ANSWERERS:
            raise UsageError(f"unknown answerer {name!r}; use one of {', '.join(ANSWERERS)}")
        return self if name == self.settings.answerer else self.with_settings(answerer=name)

    # --- what the faces (ui/, eval/, the CLI) read of the index, so that none reaches for the store ----
    def records(self) -> dict[str, dict[str, Any]]:
        """The indexed documents' records, by source."""
        return self.store.documents()

    def record(self, source: str) -> dict[str, Any] | None:
        """One document's record (doc_id, title, url, publish_date, chunks, ...), by source; None if absent."""
        return self.store.documents().get(source)

    def pages(self, doc_id: str) -> tuple[int, ...]:
        """Where each PDF page starts in the document's text; empty for documents without pages."""
        return self.store.pages(doc_id)

    def ocr_lines(self, doc_id: str) -> list[dict[str, Any]]:
        """The lines OCR read on the document's scanned pages, with their boxes."""
        return self.store.ocr_lines(doc_id)

    def chunk_count(self) -> int:
        return self.store.chunk_count()

    def build_info(self) -> dict[str, Any]:
        """The settings the index was built with ({} for a new index)."""
        return self.store.build_info()

    def citation_lookup(self) -> Any:
        """`rag verify`'s lookup of cited documents in this index."""
        from rag.receipts import index_lookup

        return index_lookup(self.store)

    def reset_if_built_otherwise(self) -> bool:
        """Empty an index made with other settings (an eval's cache folder); True when it did."""
        if self.store.build_info() in ({}, self.settings.build_info()):
            return False
        self.store.reset()
        self._texts.clear()
        return True

    def ingest_documents(self, docs: list[Document], *, prune: Callable[[str], bool] | None = None,
                         ) -> IngestSummary:
        """Bring the index up to `docs` (an eval's public set): unchanged ones embed nothing; `prune` says
        which stored sources not among them go. A document whose title, url or date changed is indexed anew
        (incremental ingest compares texts only). Holds the writer lock, as `ingest` does."""
        with self.store.lock().hold(wait=True):
            self.store.follow()
            info = self.settings.build_info()
            self.store.check_build(info)
            self.store.record_build(info)
            stored = self.store.documents()
            for doc in docs:
                rec = stored.get(doc.source)
                if rec and any((rec.get(k) or "") != getattr(doc, k) for k in ("title", "url", "publish_date")):
                    self.store.delete_document(rec["doc_id"])
            self._texts.clear()
            summary = ingest_documents(self.store, self.embedder, self.settings, docs, prune=prune,
                                       total=len(docs))
        if self._retriever is not None:
            self._retriever.refresh()
        return summary
