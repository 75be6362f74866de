"""Retrieval benchmark: method x dataset -> hit@1/5/10, MRR@10, recall@10, latency p50/p95.

Every row runs the real `Retriever` over a real Chroma index (built once per model, chunking and corpus
under /tmp/rag-bench/index from the cached vectors of bench/corpora.py), so BM25-only, dense-only and
hybrid rows come from the same run on the same chunks. Metrics count documents: a question is a hit at k
when one of the first k chunks belongs to a gold document; recall@10 is the share of a question's gold
documents found among the documents of the first 10 chunks (MultiHop needs 2-4 of them).

    nice -n 10 .venv/bin/python -m bench.retrieval                      # the default model and chunking
    nice -n 10 .venv/bin/python -m bench.retrieval --model e5-small-q4 --datasets squad2,realtimeqa-sub
    nice -n 10 .venv/bin/python -m bench.retrieval --chunk 128/16 --datasets squad2,realtimeqa-sub
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.corpora import DATASET_CORPORA, Question, documents, embedded, questions
from rag.config import ChunkingSettings, Settings, set_offline_env

INDEX_ROOT = Path("/tmp/rag-bench/index")


def build_store(model: str, chunking: ChunkingSettings, corpora: list[str], root: Path = INDEX_ROOT):  # noqa: ANN201
    """A Chroma store holding the corpora's cached chunks and vectors; reused when already complete."""
    from rag.store import Store
    from rag.types import Chunk

    name = f"{model}-{chunking.chunk_size}-{chunking.chunk_overlap}-{'+'.join(corpora)}"
    settings = Settings.from_env(env={}, index=root / name, embed_model=model, chunking=chunking)
    store = Store(settings)
    parts = [embedded(model, chunking, c) for c in corpora]
    total = sum(len(p.sources) for p in parts)
    if store.chunk_count() == total and store.build_info() == settings.build_info():
        return store
    store.reset()
    store.record_build(settings.build_info())
    for corpus, part in zip(corpora, parts, strict=True):
        docs = {d.source: d for d in documents(corpus)}
        by_doc: dict[str, list[int]] = {}
        for i, s in enumerate(part.sources):
            by_doc.setdefault(s, []).append(i)
        batch = []
        for source, rows in by_doc.items():
            doc = docs[source]
            chunks = [Chunk(doc.doc_id, int(part.starts[i]), int(part.ends[i]), part.texts[i]) for i in rows]
            batch.append((doc, chunks, part.vectors[rows].tolist()))
            if len(batch) >= 200:
                store.add_documents(batch)
                batch = []
        store.add_documents(batch)
    return store


# --- query variants (robustness) ------------------------------------------------------------------
def misspell(text: str, seed: int) -> str:
    """One typo (two neighbouring letters swapped, or one dropped) in every third word of 5+ letters."""
    rng = random.Random(seed)
    words = re.split(r"(\W+)", text)
    long_ = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for n, i in enumerate(long_):
        if n % 3:
            continue
        w = words[i]
        j = rng.randrange(1, len(w) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if rng.random() < 0.5 else w[:j] + w[j + 1:]
    return "".join(words)


VARIANTS: dict[str, Callable[[str, int], str]] = {
    "": lambda q, i: q,
    "lower case": lambda q, i: q.lower(),
    "misspelled": misspell,
}


# --- metrics --------------------------------------------------------------------------------------
@dataclass
class Row:
    method: str
    dataset: str
    hit1: float
    hit5: float
    hit10: float
    mrr10: float
    recall10: float
    all10: float  # share of questions with every gold document in the top 10
    p50: float
    p95: float
    cpu50: float  # CPU time of the query (all threads), which a busy machine does not inflate
    n: int

    def line(self) -> str:
        return (f"| {self.method} | {self.dataset} | {self.hit1:.3f} | {self.hit5:.3f} | {self.hit10:.3f} | "
                f"{self.mrr10:.3f} | {self.recall10:.3f} | {self.all10:.3f} | {self.p50:.0f} | {self.p95:.0f} | "
                f"{self.cpu50:.1f} |")


HEADER = ("| method | dataset | hit@1 | hit@5 | hit@10 | MRR@10 | recall@10 | all gold@10 | p50 ms | p95 ms "
          "| CPU ms p50 |\n|---|---|---|---|---|---|---|---|---|---|---|")


def evaluate(search: Callable[[Question, str], list[str]], qs: list[Question], variant: str,
             method: str, dataset: str) -> Row:
    """Run every question through `search` (returns the source of each chunk, best first)."""
    hit = {1: 0, 5: 0, 10: 0}
    mrr = rec = all_ = 0.0
    lat, cpu = [], []
    change = VARIANTS[variant]
    for i, q in enumerate(qs):
        text = change(q.text, i)
        t0, c0 = time.perf_counter(), time.process_time()
        sources = search(q, text)
        lat.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        first = next((r for r, s in enumerate(sources[:10], 1) if s in q.gold), None)
        for k in hit:
            hit[k] += first is not None and first <= k
        mrr += 1 / first if first else 0.0
        found = q.gold & set(sources[:10])
        rec += len(found) / len(q.gold)
        all_ += found == q.gold
    n = len(qs)
    return Row(method + (f", {variant} questions" if variant else ""), dataset, hit[1] / n, hit[5] / n,
               hit[10] / n, mrr / n, rec / n, all_ / n, float(np.percentile(lat, 50)),
               float(np.percentile(lat, 95)), float(np.percentile(cpu, 50)), n)


def speed(models: list[str], chunking: ChunkingSettings, n: int = 64, rounds: int = 2) -> None:
    """Passages per second of each model on the same SQuAD chunks, rounds interleaved so that a busy
    machine slows every model alike; the best round counts."""
    from rag.embedding import load_embedder

    texts = embedded(models[0], chunking, "squad2").texts[:n]
    loaded = {m: load_embedder(m) for m in models}
    best = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for m, e in loaded.items():
            t0 = time.perf_counter()
            e.embed_array(texts)
            best[m] = max(best[m], n / (time.perf_counter() - t0))
    for m in models:
        print(f"| {m} | {best[m]:.1f} passages/s ({n} SQuAD chunks, best of {rounds}) |", flush=True)


def _as_of(q: Question) -> str | None:
    return q.date or None


def main() -> None:
    set_offline_env()
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=Settings().embed_model, help="a model, or a comma list of them")
    ap.add_argument("--chunk", default=None, help="SIZE/OVERLAP (default: the configured chunking)")
    ap.add_argument("--datasets", default="realtimeqa,multihop,squad2")
    ap.add_argument("--methods", default="bm25,dense,hybrid",
                    help="comma list of bm25, dense, hybrid, hybrid-wW (BM25 weight W), hybrid-docN (N chunks "
                    "a document), as-of, recencyH[-docN] (as-of with half-life H days), default, "
                    "default-as-of, default-nonames (default without the rankings of named publishers and days), "
                    "default-nodays (without those of named days), default-lower (lower-case questions), "
                    "default-rrf, default-as-of-rrf, default-scores, default-as-of-scores (default with that fusion), "
                    "lower, typo")
    ap.add_argument("--speed", default="", help="comma list of models to time (passages/s) instead")
    args = ap.parse_args()
    from rag.embedding import load_embedder

    chunking = Settings().chunking
    if args.chunk:
        size, overlap = (int(x) for x in args.chunk.split("/"))
        chunking = ChunkingSettings(size, overlap)
    if args.speed:
        return speed(args.speed.split(","), chunking)
    for model in args.model.split(","):
        embedder = load_embedder(model)
        print(f"\nmodel {model}, chunking {chunking.chunk_size}/{chunking.chunk_overlap}", flush=True)
        print(HEADER, flush=True)
        for dataset in args.datasets.split(","):
            bench_dataset(dataset, model, chunking, embedder, args.methods.split(","))


def bench_dataset(dataset: str, model: str, chunking: ChunkingSettings, embedder, methods: list[str]) -> None:  # noqa: ANN001
    """Print one table row per method for one dataset."""
    from rag.bm25 import BM25Index
    from rag.retrieve import CANDIDATES, FUSION, PER_DOC, Retriever, bm25_folder

    store = build_store(model, chunking, DATASET_CORPORA[dataset])
    t0 = time.perf_counter()
    bm25 = BM25Index(bm25_folder(store.settings.index, store.settings.collection), store.chunks)
    bm25_s = time.perf_counter() - t0
    qs = questions(dataset.split("-")[0])
    embedder.embed_array([q.text for q in qs[:8]], is_query=True)  # warm up before timing

    def run(retriever: Retriever, as_of: bool = False) -> Callable[[Question, str], list[str]]:
        def search(q: Question, text: str) -> list[str]:
            hits = retriever.search(text, 10, as_of=_as_of(q) if as_of else None)
            return [h.source for h in hits]

        return search

    def retr(mode: str, w: float = 1.0, spell: bool = True, per_doc: int = 0,
             cands: int = CANDIDATES, half_life: float = 0.0) -> Retriever:
        # rows are unlimited per document, without a recency prior and without rankings of the publishers
        # and days a question names unless they say so
        return Retriever(store, embedder, mode=mode, bm25=bm25, bm25_weight=w, spell=spell, per_doc=per_doc,
                         candidates=cands, recency_half_life=half_life, publishers=False, days=False)

    for m in methods:
        if m in ("bm25", "dense", "hybrid"):
            row = evaluate(run(retr(m)), qs, "", m, dataset)
        elif m.startswith("hybrid-w"):
            w = float(m.removeprefix("hybrid-w"))
            row = evaluate(run(retr("hybrid", w)), qs, "", f"hybrid, BM25 weight {w}", dataset)
        elif m.startswith("hybrid-c"):
            n = int(m.removeprefix("hybrid-c"))
            row = evaluate(run(retr("hybrid", cands=n)), qs, "", f"hybrid, {n} candidates a side", dataset)
        elif m.startswith("hybrid-doc"):
            n = int(m.removeprefix("hybrid-doc"))
            row = evaluate(run(retr("hybrid", per_doc=n)), qs, "", f"hybrid, at most {n} chunks a document",
                           dataset)
        elif m == "as-of":
            if not any(q.date for q in qs):
                continue
            row = evaluate(run(retr("hybrid"), as_of=True), qs, "", "hybrid, --as-of question date", dataset)
        elif m.startswith("recency"):  # recencyH[-docN]: --as-of the question date, half-life H days
            if not any(q.date for q in qs):
                continue
            hl, _, doc = m.removeprefix("recency").partition("-doc")
            row = evaluate(run(retr("hybrid", half_life=float(hl), per_doc=int(doc or 0)), as_of=True), qs, "",
                           f"hybrid, --as-of question date, recency half-life {hl} days"
                           + (f", at most {doc} chunks a document" if doc else ""), dataset)
        elif m.removesuffix("-rrf").removesuffix("-scores") in ("default", "default-as-of"):  # as `rag ask` has it
            as_of = m.startswith("default-as-of")
            if as_of and not any(q.date for q in qs):
                continue
            fusion = m.rpartition("-")[2] if m.endswith(("-rrf", "-scores")) else FUSION
            r = Retriever(store, embedder, bm25=bm25, fusion=fusion)
            row = evaluate(run(r, as_of=as_of), qs, "",
                           f"**default** (each document's best chunk first, at most {PER_DOC} a document, "
                           f"{r.fusion} fusion"
                           + (f", --as-of question date, recency half-life {r.recency_half_life:g} days)"
                              if as_of else ")"), dataset)
        elif m == "default-lower":
            row = evaluate(run(Retriever(store, embedder, bm25=bm25)), qs, "lower case", "default", dataset)
        elif m in ("default-nonames", "default-nodays"):
            r = Retriever(store, embedder, bm25=bm25, publishers=m == "default-nodays", days=False)
            row = evaluate(run(r), qs, "", "default without rankings of named " +
                           ("days" if m == "default-nodays" else "publishers and days"), dataset)
        elif m in ("lower", "typo"):
            variant = "lower case" if m == "lower" else "misspelled"
            for mode in ("bm25", "dense", "hybrid"):
                print(evaluate(run(retr(mode)), qs, variant, mode, dataset).line(), flush=True)
            if m == "typo":
                print(evaluate(run(retr("hybrid", spell=False)), qs, variant, "hybrid without spelling fixes",
                               dataset).line(), flush=True)
            continue
        else:
            raise SystemExit(f"unknown method {m!r}")
        print(row.line(), flush=True)
    print(f"<!-- {dataset}: {store.chunk_count()} chunks; BM25 side loaded/synced in {bm25_s:.1f} s -->",
          flush=True)


if __name__ == "__main__":
    main()
