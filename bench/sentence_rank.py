"""Evidence selection on realtimeqa_2026: is the sentence that states the answer among the ones read?

For each answerable question asked without a date, the k best chunks are retrieved as the answer path
retrieves them, their sentences are scored by the answer path's own selector, and the rank of the first
sentence holding a gold choice is counted: among the best 1, 2, 4 or 8, anywhere in the chunks, and in the
passages the default one-fact budget shows the model. No model is asked. The index is the one
`rag eval --dataset realtimeqa_2026 --all-documents --index DIR` builds:

    nice -n 10 .venv/bin/python -m bench.sentence_rank --index DIR [--k 8,16] [--limit N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval import datasets
from rag.config import Settings, set_offline_env

TOPS = (1, 2, 4, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--k", default="8,16", help="comma list of chunk counts")
    ap.add_argument("--limit", type=int, default=None, help="the first N answerable questions")
    args = ap.parse_args()
    set_offline_env()
    from rag.answer.generative import GenerativeAnswerer
    from rag.service import Service, clean_question

    data = datasets.load("realtimeqa_2026", None)
    items = [x for x in data.items if x.answerable][: args.limit]
    svc = Service(Settings.from_env(index=args.index, corpus=args.index / "no-corpus"))
    gen = svc.answerer
    if not isinstance(gen, GenerativeAnswerer):
        raise SystemExit("bench.sentence_rank: the generative answerer is not available (run scripts/setup.sh)")
    print(f"{len(items)} answerable questions")
    print(f"| chunks | {' | '.join(f'top {n}' for n in TOPS)} | anywhere | in the passages read |")
    print(f"|---|{'---|' * (len(TOPS) + 2)}")
    for k in (int(x) for x in args.k.split(",")):
        tops, anywhere, read = [0] * len(TOPS), 0, 0
        for it in items:
            golds = datasets.gold_strings(it)
            question = clean_question(it.question)  # as the answer path reads it
            hits = svc.search(question, k)
            ev, cands, _ = gen.select(question, hits, svc.doc_text, gen.settings.one_fact, {})
            rank = next((i for i, c in enumerate(cands) if any(datasets.contains(c.text, g) for g in golds)), None)
            if rank is not None:
                anywhere += 1
                for j, n in enumerate(TOPS):
                    tops[j] += rank < n
            read += any(datasets.contains(e.text, g) for e in ev for g in golds)
        share = [f"{t / len(items):.3f}" for t in tops]
        print(f"| {k} | {' | '.join(share)} | {anywhere / len(items):.3f} | {read / len(items):.3f} |", flush=True)


if __name__ == "__main__":
    main()
