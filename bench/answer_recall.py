"""Passage-level retrieval on realtimeqa_2026: does a top-k chunk hold the answer string?

Document-level hit rates hide the problem on messy web pages: the right page is found, the passage that
states the answer is not. This counts, for each answerable question asked without a date:
- answer-recall@k: a gold choice is in one of the first k chunks' texts (what the answerer can read);
- page-recall@k: a gold choice is in the whole text of one of those chunks' documents.
Every retrieval variant runs over one index, in one run, so the rows compare. The index is the one
`rag eval` builds for the whole set:

    .venv/bin/rag eval --dataset realtimeqa_2026 --limit 1 --all-documents --index /tmp/rtqa26
    nice -n 10 .venv/bin/python -m bench.answer_recall --index /tmp/rtqa26
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from eval import datasets
from rag.config import Settings, set_offline_env
from rag.types import Hit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--k", default="5,10", help="comma list of cut-offs")
    ap.add_argument("--limit", type=int, default=None, help="the first N answerable questions")
    ap.add_argument("--methods", default="bm25,dense,hybrid,hybrid-uncleaned")
    ap.add_argument("--around", type=int, default=0,
                    help="also count the answer within this many characters either side of a chunk")
    args = ap.parse_args()
    set_offline_env()
    from rag.embedding import load_embedder
    from rag.retrieve import Retriever
    from rag.store import Store

    settings = Settings.from_env(index=args.index)
    store = Store(settings)
    embedder = load_embedder(settings.embed_model)
    data = datasets.load("realtimeqa_2026")
    items = [it for it in data.items if it.answerable][: args.limit]
    ks = [int(k) for k in args.k.split(",")]
    raw = {rec["doc_id"]: store.document(rec["doc_id"])[0]  # type: ignore[index]
           for rec in store.documents().values()}
    docs = {d: datasets.normalise(t) for d, t in raw.items()}

    variants: dict[str, Callable[[str, int], list[Hit]]] = {
        "bm25": Retriever(store, embedder, mode="bm25").search,
        "dense": Retriever(store, embedder, mode="dense").search,
        "hybrid": Retriever(store, embedder).search,
        "hybrid-uncleaned": Retriever(store, embedder, clean_question=False).search,
    }
    print(f"{len(items)} answerable questions, {store.chunk_count()} chunks, {len(docs)} pages")
    cols = ["answer", "page"] + ([f"±{args.around}"] if args.around else [])
    print(f"| method | {' | '.join(f'{c}@{k}' for k in ks for c in cols)} | p50 ms |")
    print(f"|---|{'---|' * len(cols) * len(ks)}---|")
    for name in args.methods.split(","):
        search = variants[name]
        found = {k: [0, 0, 0] for k in ks}
        times = []
        for it in items:
            golds = [datasets.normalise(g) for g in datasets.gold_strings(it)]
            t0 = time.perf_counter()
            hits = search(it.question, max(ks))
            times.append(time.perf_counter() - t0)
            # each hit judged once, then counted at every cut-off
            in_chunk = [any(datasets.contains(datasets.normalise(h.text), g) for g in golds) for h in hits]
            in_page = [any(datasets.contains(docs.get(h.doc_id, ""), g) for g in golds) for h in hits]
            near = [bool(args.around) and h.doc_id in raw and any(datasets.contains(datasets.normalise(
                raw[h.doc_id][max(0, h.start - args.around): h.end + args.around]), g) for g in golds) for h in hits]
            for k in ks:
                for i, flags in enumerate((in_chunk, in_page, near)):
                    found[k][i] += any(flags[:k])
        cells = " | ".join(f"{found[k][i] / len(items):.3f}" for k in ks for i in range(len(cols)))
        print(f"| {name} | {cells} | {np.median(times) * 1000:.0f} |", flush=True)


if __name__ == "__main__":
    main()
