"""Replay the generative answerer's evidence floor over a public set, without the model.

For every question: the answer path's own retrieval and sentence selection (`GenerativeAnswerer.select`),
the best sentence's evidence score, and whether that sentence holds a gold answer. Then, for a sweep of
floors, the share of unanswerable questions the floor alone refuses, of answerable ones it refuses, and how
many of those had the gold answer in the best sentence (docs/abstention.md#floor-titled).

    nice -n 10 .venv/bin/python -m bench.evidence_floor squad2_500 multihop_rag_500
    nice -n 10 .venv/bin/python -m bench.evidence_floor realtimeqa_2026 --rtqa-index DIR

realtimeqa_2026 reads the index `rag ingest --jsonl ../shared/datasets/realtimeqa_2026/corpus.jsonl.gz`
builds (all pages); the other sets are indexed into `.rag/eval/floor-NAME`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eval import datasets
from eval.runner import index_public_set
from rag.config import Settings, repo_root, set_offline_env

FLOORS = (0.40, 0.45, 0.50, 0.55)


def answer_path(name: str, rtqa_index: Path | None, bench: str) -> tuple[datasets.PublicSet, Any, Any]:
    """(the set, a Service over its index, its generative answerer): realtimeqa_2026 over `rtqa_index`,
    the other sets indexed into `.rag/eval/floor-NAME`."""
    from rag.answer.generative import GenerativeAnswerer
    from rag.service import Service

    data = datasets.load(name, None)
    index = rtqa_index if name == "realtimeqa_2026" and rtqa_index else repo_root() / ".rag" / "eval" / f"floor-{name}"
    svc = Service(Settings.from_env(index=index, corpus=index / "no-corpus"))
    if index != rtqa_index:
        index_public_set(svc, data, own=True)
    if not isinstance(svc.answerer, GenerativeAnswerer):
        raise SystemExit(f"bench.{bench}: the generative answerer is not available (run scripts/setup.sh)")
    return data, svc, svc.answerer


def replay(name: str, rtqa_index: Path | None) -> list[tuple[bool, float, bool]]:
    """(answerable, best evidence score, gold answer in the best sentence) per question."""
    from rag.service import clean_question
    from rag.text import without_when_asked

    data, svc, answerer = answer_path(name, rtqa_index, "evidence_floor")
    out = []
    for it in data.items:
        q = without_when_asked(clean_question(it.question))
        trace: dict = {}
        _, cands, _ = answerer.select(q, svc.search(q, answerer.retrieve_k), svc.doc_text, answerer.budget(q), trace)
        golds = datasets.gold_strings(it) or it.extra.get("answers") or [it.extra.get("answer", "")]
        top = cands[0].text if cands else ""
        out.append((it.answerable, trace["evidence"].get("best_score", 0.0),
                    any(g and datasets.contains(top, g) for g in golds)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", choices=["realtimeqa_2026", "squad2_500", "multihop_rag_500"])
    ap.add_argument("--rtqa-index", type=Path, default=None)
    args = ap.parse_args()
    set_offline_env()
    for name in args.names:
        rows = replay(name, args.rtqa_index)
        unans = [r for r in rows if not r[0]]
        ans = [r for r in rows if r[0]]
        print(f"\n{name}: {len(unans)} unanswerable + {len(ans)} answerable")
        print("| floor | unanswerable refused | answerable refused | of those, gold in the best sentence |")
        print("| --- | --- | --- | --- |")
        for t in FLOORS:
            refused = [r for r in ans if r[1] < t]
            print(f"| {t:.2f} | {sum(r[1] < t for r in unans) / max(1, len(unans)):.2f} | "
                  f"{len(refused) / max(1, len(ans)):.2f} | {sum(r[2] for r in refused)} |")


if __name__ == "__main__":
    main()
