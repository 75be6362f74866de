"""Ingest and query at scale, on the RealTimeQA corpus (3,789 news articles), all figures from one run.

Rows, in the order they run (each on the same machine, one after the other):
1. `rag ingest --jsonl` into a fresh embedded Chroma: documents/s, chunks/s, peak RSS of the process
   (all articles, or the first `--docs`: the whole corpus, 70,748 chunks at 128/16, takes 17-21 minutes
   on an idle 2-core machine).
2. The embedding model alone on the same chunks (plain batches of 32, no parsing, no writes): the ceiling.
3. The naive llama-index pipeline as baseline: `VectorStoreIndex.from_documents` over the same articles,
   same model, llama-index's default settings (SentenceSplitter 1024/200, embed batch 10), into Chroma.
4. Re-ingest of the whole unchanged corpus (nothing may be embedded), then one article changed (only its
   chunks may be embedded). When step 1 ingested only `--docs` articles, this runs on an index of all
   3,789 built with the `hash` embedder (re-ingest never runs the model: the same chunks, records and
   writes, only the vectors are cheap); after a whole-corpus step 1 it runs on that real index.
5. Retrieval latency (question embedding + search) over the RealTimeQA questions: `Service.search` on
   the index of step 1, and dense search at the size of the whole corpus and at 250,000 chunks, both
   synthesised from the real chunk embeddings of step 1: chunk i of the copy is the real vector of chunk
   (i mod n) plus Gaussian noise (sigma 0.02 a dimension, about cosine 0.93 to its origin), renormalised,
   with that chunk's text and metadata. Real vectors keep the distribution of the corpus; the noise keeps
   copies from being exact ties.

    nice -n 10 .venv/bin/python -m bench.ingest [--docs N] [--baseline-docs N] [--model-chunks N]
        [--workdir DIR]   # keeps the index in DIR/index (a whole-corpus one is reused by bench and eval)
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings, repo_root, set_offline_env

DATA = repo_root().parent / "shared" / "datasets" / "realtimeqa"
NOISE_SIGMA = 0.02


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def percentiles(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return q[49], q[94]


def load_records(n: int | None) -> list[dict[str, Any]]:
    with gzip.open(DATA / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    return recs[:n] if n else recs


def questions(n: int) -> list[str]:
    with open(DATA / "queries_dev.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()][:n]


def search_latency(search: Any, qs: list[str]) -> tuple[float, float]:
    for q in qs[:5]:  # warm caches (HNSW pages, tokenizer)
        search(q)
    ms = []
    for q in qs:
        t = time.perf_counter()
        search(q)
        ms.append((time.perf_counter() - t) * 1000)
    return percentiles(ms)


def synthesise(store: Any, target: int, seed: int = 7) -> Any:
    """A collection of `target` chunks made from the store's real ones (see the module docstring)."""
    from rag.store import Store

    embeddings, metas, texts = [], [], []
    page = 5000  # SQLite refuses a query with more variables than that at once
    for offset in range(0, store.chunk_count(), page):
        got = store.chunks.get(include=["embeddings", "metadatas", "documents"], limit=page, offset=offset)
        embeddings.extend(got["embeddings"])
        metas.extend({k: m.get(k, "") for k in ("doc_id", "source", "title", "publish_date", "page")}
                     for m in got["metadatas"])
        texts.extend(got["documents"])
    base = np.asarray(embeddings, dtype=np.float32)
    synth = Store(store.settings.replace(collection=f"synthetic-{target}"))
    synth.reset()
    rng = np.random.default_rng(seed)
    step = 5000
    for at in range(0, target, step):
        idx = np.arange(at, min(at + step, target)) % len(base)
        vecs = base[idx] + rng.normal(0, NOISE_SIGMA, size=(len(idx), base.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        synth.chunks.add(ids=[f"synth-{at + j}" for j in range(len(idx))], embeddings=vecs.tolist(),
                         metadatas=[metas[i] for i in idx], documents=[texts[i] for i in idx])
    return synth


def llama_index_baseline(records: list[dict[str, Any]], embedder_name: str, workdir: Path,
                         chunking: Any = None) -> tuple[float, int]:
    """Seconds and chunks for the naive pipeline: defaults everywhere except the model, the store and,
    given `chunking`, the splitter's size and overlap (to compare at equal numbers of chunks)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.constants import DEFAULT_EMBED_BATCH_SIZE
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from rag.embedding import load_embedder

    model = load_embedder(embedder_name)
    model.embed_batch_size = DEFAULT_EMBED_BATCH_SIZE  # what a default-constructed embedding uses
    client = chromadb.PersistentClient(path=str(workdir / "llama"), settings=ChromaSettings(anonymized_telemetry=False))
    name = "baseline" if chunking is None else f"baseline-{chunking.chunk_size}"
    collection = client.get_or_create_collection(name, embedding_function=None)
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    docs = [Document(text=r["text"], id_=str(r["_id"]), metadata={"title": r.get("title") or ""})
            for r in records if (r.get("text") or "").strip()]
    t = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if chunking is not None:
        from llama_index.core.node_parser import SentenceSplitter

        kwargs["transformations"] = [SentenceSplitter(chunk_size=chunking.chunk_size,
                                                      chunk_overlap=chunking.chunk_overlap)]
    VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=model, **kwargs)
    return time.perf_counter() - t, int(collection.count())


def _reingest(out: dict[str, Any], say: Any, full: list[dict[str, Any]], full_corpus: Path, full_svc: Any,
              chunking: Any) -> None:
    """Step 4: re-ingest unchanged, then with one article changed, then put it back."""
    from rag.chunking import chunk_document
    from rag.sources import read_jsonl

    again = full_svc().ingest(jsonl=full_corpus)
    out["reingest"] = {"seconds": again.seconds, "embedded": again.embedded, "unchanged": again.unchanged}
    say(f"re-ingest unchanged: {again.line()}, embedded {again.embedded}")
    touched = [dict(r) for r in full]
    victim = next(i for i, r in enumerate(touched) if (r.get("text") or "").strip())
    touched[victim]["text"] += "\n\nThis article was updated."
    write_jsonl(full_corpus, touched)
    expect = len(chunk_document(next(read_jsonl(full_corpus, [])), chunking))
    one = full_svc().ingest(jsonl=full_corpus)
    out["touch_one"] = {"seconds": one.seconds, "updated": one.updated, "embedded": one.embedded,
                        "chunks_of_that_doc": expect}
    say(f"one article changed: {one.line()}, embedded {one.embedded} (that article has {expect} chunks)")
    write_jsonl(full_corpus, full)  # put the article back, so the index kept in the workdir is the corpus
    full_svc().ingest(jsonl=full_corpus)


def main() -> int:
    set_offline_env()
    from rag.chunking import chunk_document
    from rag.embedding import load_embedder
    from rag.service import Service
    from rag.sources import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=None, help="first N articles only (default: all 3,789)")
    ap.add_argument("--baseline-docs", type=int, default=None, help="articles for the baseline (default: --docs)")
    ap.add_argument("--model-chunks", type=int, default=None,
                    help="time the model alone on every k-th chunk, N in all (default: every chunk)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--synthetic", type=int, default=250_000)
    ap.add_argument("--no-reingest", action="store_true", help="skip step 4 (re-ingest of the whole corpus)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    records = load_records(args.docs)
    corpus = work / "corpus.jsonl.gz"
    write_jsonl(corpus, records)
    settings = Settings.from_env(env={}, index=work / "index", corpus=work, answerer="extractive")
    out: dict[str, Any] = {"records": len(records), "workdir": str(work)}

    def say(line: str) -> None:
        print(line, flush=True)

    # 1. our ingest
    svc = Service(settings, embedder=load_embedder(settings.embed_model))
    svc.store.reset()
    rss0 = peak_rss_mb()
    s = svc.ingest(jsonl=corpus)
    docs_n, chunks_n = s.added, s.chunks
    out["ingest"] = {"seconds": s.seconds, "documents": docs_n, "chunks": chunks_n, "skipped": len(s.skipped),
                     "docs_per_s": docs_n / s.seconds, "chunks_per_s": chunks_n / s.seconds,
                     "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss0}
    say(f"ingest: {s.line()}; {docs_n / s.seconds:.2f} docs/s, {chunks_n / s.seconds:.1f} chunks/s, "
        f"peak RSS {peak_rss_mb():.0f} MB")

    # 2. the model alone on the same chunks
    docs = list(read_jsonl(corpus, []))
    texts = [c.text for d in docs for c in chunk_document(d, settings.chunking)]
    stride = max(1, len(texts) // args.model_chunks) if args.model_chunks else 1
    sample = texts[::stride]
    t = time.perf_counter()
    svc.embedder.embed_array(sample)
    model_s = time.perf_counter() - t
    out["model_alone"] = {"chunks": len(sample), "of": len(texts), "seconds": model_s,
                          "chunks_per_s": len(sample) / model_s}
    say(f"model alone: {len(sample)} of {len(texts)} chunks in {model_s:.1f} s, {len(sample) / model_s:.1f} chunks/s")

    # 3. the naive llama-index pipeline
    base_records = records[: args.baseline_docs] if args.baseline_docs else records
    base_docs = sum(1 for r in base_records if (r.get("text") or "").strip())
    secs, base_chunks = llama_index_baseline(base_records, settings.embed_model, work)
    out["llama_index"] = {"seconds": secs, "documents": base_docs, "chunks": base_chunks,
                          "docs_per_s": base_docs / secs, "chunks_per_s": base_chunks / secs}
    say(f"llama-index defaults: {base_docs} docs, {base_chunks} chunks in {secs:.1f} s, "
        f"{base_docs / secs:.2f} docs/s, {base_chunks / secs:.1f} chunks/s")
    secs, base_chunks = llama_index_baseline(base_records, settings.embed_model, work, settings.chunking)
    out["llama_index_same_chunking"] = {"seconds": secs, "documents": base_docs, "chunks": base_chunks,
                                        "docs_per_s": base_docs / secs, "chunks_per_s": base_chunks / secs}
    say(f"llama-index, our chunk size {settings.chunking.chunk_size}/{settings.chunking.chunk_overlap}: "
        f"{base_docs} docs, {base_chunks} chunks in {secs:.1f} s, {base_docs / secs:.2f} docs/s, "
        f"{base_chunks / secs:.1f} chunks/s")

    # 4. re-ingest of the whole corpus, unchanged, then one article changed
    full = load_records(None)
    if args.no_reingest:
        full_corpus, full_svc, first_chunks = corpus, None, 0
    elif args.docs is None or args.docs >= len(full):
        # step 1 ingested the whole corpus: re-ingest that real index
        full_corpus, full_svc = corpus, (lambda: svc)
        first_chunks = chunks_n
    else:
        # re-ingest runs no model, so an index of the whole corpus with hash vectors measures it as well
        full_corpus = work / "full.jsonl.gz"
        write_jsonl(full_corpus, full)
        full_settings = settings.replace(index=work / "full-index", embed_model="hash-384")
        hash_embedder = load_embedder("hash-384")

        def full_svc() -> Service:
            return Service(full_settings, embedder=hash_embedder)

        first = full_svc().ingest(jsonl=full_corpus)
        out["full_first_ingest_hash"] = {"seconds": first.seconds, "documents": first.added, "chunks": first.chunks}
        say(f"whole corpus, hash vectors (for the re-ingest rows): {first.line()}")
        first_chunks = first.chunks
    if full_svc is not None:
        _reingest(out, say, full, full_corpus, full_svc, settings.chunking)
    full_chunks = first_chunks

    # 5. retrieval latency
    qs = questions(args.queries)
    p50, p95 = search_latency(lambda q: svc.search(q, 5), qs)
    dense = svc.store
    emb = svc.embedder
    d50, d95 = search_latency(lambda q: dense.query(emb.embed_array([q], is_query=True)[0].tolist(), 5), qs)
    n_chunks = dense.chunk_count()
    out["latency_measured"] = {"chunks": n_chunks, "queries": len(qs), "search_p50_ms": p50, "search_p95_ms": p95,
                               "dense_p50_ms": d50, "dense_p95_ms": d95}
    say(f"latency at {n_chunks} real chunks over {len(qs)} questions: Service.search p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms; dense only p50 {d50:.1f} ms, p95 {d95:.1f} ms")
    for size in (full_chunks, args.synthetic):
        if not size or size == n_chunks:  # the real index already has this size
            continue
        t = time.perf_counter()
        synth = synthesise(dense, size)
        build_s = time.perf_counter() - t
        s50, s95 = search_latency(lambda q, st=synth: st.query(emb.embed_array([q], is_query=True)[0].tolist(), 5),
                                  qs)
        out[f"latency_synthetic_{size}"] = {"chunks": synth.chunk_count(), "build_seconds": build_s,
                                            "dense_p50_ms": s50, "dense_p95_ms": s95, "noise_sigma": NOISE_SIGMA}
        say(f"latency at {synth.chunk_count()} synthetic chunks (built in {build_s:.0f} s): dense p50 {s50:.1f} ms, "
            f"p95 {s95:.1f} ms")
        synth.reset()
        synth.client.delete_collection(synth.chunks.name)  # not 250,000 records left on disk

    ing = out["ingest"]
    say(f"ratios: ingest/model-alone {ing['chunks_per_s'] / out['model_alone']['chunks_per_s']:.2f} (chunks/s); "
        f"ingest/llama-index {ing['docs_per_s'] / out['llama_index']['docs_per_s']:.2f} (docs/s), "
        f"{ing['chunks_per_s'] / out['llama_index']['chunks_per_s']:.2f} (chunks/s); "
        f"ingest/llama-index same chunking {ing['docs_per_s'] / out['llama_index_same_chunking']['docs_per_s']:.2f}"
        " (docs/s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
