"""The judge stage measured on its own: does the model, asked of each of the best sentences "does it answer
the question?", put the answering sentence first, and does its best P(Yes) tell answerable from not?

For every question: the answer path's own retrieval and sentence selection (`GenerativeAnswerer.select`)
with the judge's refusal switched off, so that its P(Yes) for each of the `judged` best sentences is kept.
Then, without the model again:
- for a sweep of weights, how often a gold-holding sentence ranks 1st, in the best 2 and 4 when the judged
  sentences are ordered by score + weight x P(Yes) (weight 0 is the selector alone);
- for a sweep of floors, the share of unanswerable questions refused (by the evidence floor, or by the best
  P(Yes) under the floor) and of answerable ones, and how many of those had a gold sentence among the judged.

    nice -n 10 .venv/bin/python -m bench.judged squad2_500 multihop_rag_500 --limit 200 --rows DIR
    nice -n 10 .venv/bin/python -m bench.judged realtimeqa_2026 --rtqa-index DIR --rows DIR

realtimeqa_2026 reads the index `rag ingest --jsonl ../shared/datasets/realtimeqa_2026/corpus.jsonl.gz`
builds (all pages); the other sets are indexed into `.rag/eval/floor-NAME`. `--rows` keeps each question's
scores as JSON lines, read again instead of asking the model when the file exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from eval import datasets
from eval.runner import index_public_set
from rag.config import Settings, repo_root, set_offline_env

WEIGHTS = (0.0, 0.3, 0.5, 1.0, 100.0)
FLOORS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)


def collect(name: str, rtqa_index: Path | None, limit: int | None) -> list[dict]:
    """Per question: answerable, refused by the evidence floor, and the judged sentences' (score, P(Yes),
    holds a gold answer)."""
    from rag.answer.generative import GenerativeAnswerer
    from rag.service import Service, clean_question
    from rag.text import without_when_asked

    data = datasets.load(name, None)
    index = rtqa_index if name == "realtimeqa_2026" and rtqa_index else repo_root() / ".rag" / "eval" / f"floor-{name}"
    svc = Service(Settings.from_env(index=index, corpus=index / "no-corpus"))
    if index != rtqa_index:
        index_public_set(svc, data, own=True)
    answerer = svc.answerer
    if not isinstance(answerer, GenerativeAnswerer):
        raise SystemExit("bench.judged: the generative answerer is not available (run scripts/setup.sh)")
    answerer.settings = dataclasses.replace(answerer.settings, judge_floor=0.0)
    rows = []
    for it in data.items[:limit]:
        q = without_when_asked(clean_question(it.question))
        trace: dict = {}
        _, cands, refusal = answerer.select(q, svc.search(q, answerer.retrieve_k), svc.doc_text,
                                            answerer.budget(q), trace)
        golds = [g for g in (datasets.gold_strings(it) or it.extra.get("answers") or [it.extra.get("answer", "")]) if g]
        by_span = {(c.hit.doc_id, c.start, c.end): c for c in cands}
        judged = [(j["score"], j["answers"],
                   any(datasets.contains(by_span[(j["doc_id"], j["start"], j["end"])].text, g) for g in golds))
                  for j in trace.get("judge", {}).get("judged", [])]
        rows.append({"id": it.id, "answerable": it.answerable, "floor_refused": bool(refusal), "judged": judged})
        print(f"{len(rows)} / {len(data.items[:limit])}", end="\r", flush=True)
    return rows


def report(name: str, rows: list[dict]) -> None:
    ans = [r for r in rows if r["answerable"]]
    unans = [r for r in rows if not r["answerable"]]
    print(f"\n{name}: {len(ans)} answerable + {len(unans)} unanswerable")
    print("| weight of P(Yes) | gold 1st | in the best 2 | in the best 4 |")
    print("| --- | --- | --- | --- |")
    for w in WEIGHTS:
        tops = [0, 0, 0]
        for r in ans:
            ranked = sorted(r["judged"], key=lambda j: -(j[0] + w * j[1]))
            k = next((i for i, j in enumerate(ranked) if j[2]), None)
            for i, n in enumerate((1, 2, 4)):
                tops[i] += k is not None and k < n
        label = "P(Yes) alone" if w >= 100 else f"{w:g}"
        print(f"| {label} | {' | '.join(f'{t / max(1, len(ans)):.3f}' for t in tops)} |")

    def refused(r: dict, floor: float) -> bool:
        return r["floor_refused"] or not r["judged"] or max(j[1] for j in r["judged"]) < floor

    print("| judge floor | unanswerable refused | answerable refused | of those, gold among the judged |")
    print("| --- | --- | --- | --- |")
    for floor in (0.0, *FLOORS):
        out = [r for r in ans if refused(r, floor)]
        print(f"| {floor:.2f} | {sum(refused(r, floor) for r in unans) / max(1, len(unans)):.2f} | "
              f"{len(out) / max(1, len(ans)):.2f} | {sum(any(j[2] for j in r['judged']) for r in out)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", choices=["realtimeqa_2026", "squad2_500", "multihop_rag_500"])
    ap.add_argument("--rtqa-index", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None, help="the first N questions of each set")
    ap.add_argument("--rows", type=Path, default=None, help="a folder for each set's rows (JSON lines)")
    args = ap.parse_args()
    set_offline_env()
    for name in args.names:
        path = args.rows / f"judged-{name}.jsonl" if args.rows else None
        if path and path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            rows = collect(name, args.rtqa_index, args.limit)
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        report(name, rows)


if __name__ == "__main__":
    main()
