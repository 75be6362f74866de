"""The judge stage measured on its own: asked of each of the best sentences "does it answer the question?",
does the model's P(Yes) find the answering sentence, and tell answerable questions from the rest?

For every question: the answer path's own retrieval and sentence selection (`GenerativeAnswerer.select`,
judge off), then the judge's P(Yes) for each of the `judged` best sentences, all of them. Then, without the
model, for a sweep of floors, the stage as the answerer runs it (asking stops at the first sentence at the
floor; none: refused): the share of unanswerable questions refused (by the evidence floor or the judge) and
of answerable ones, how many refused ones had a gold sentence among the judged, how often an answered
question's best sentence holds the gold answer, and the judge calls a question costs. Floor 0 is the stage
off.

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

from bench.evidence_floor import answer_path
from eval import datasets
from rag.config import set_offline_env

FLOORS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def collect(name: str, rtqa_index: Path | None, limit: int | None) -> list[dict]:
    """Per question: answerable, refused by the evidence floor, and the judged sentences' (score, P(Yes),
    holds a gold answer)."""
    from rag.answer.generative import after_title
    from rag.service import clean_question
    from rag.text import without_when_asked

    data, svc, answerer = answer_path(name, rtqa_index, "judged")
    judged = answerer.settings.judged
    answerer.settings = dataclasses.replace(answerer.settings, judged=0)
    rows = []
    for it in data.items[:limit]:
        q = without_when_asked(clean_question(it.question))
        trace: dict = {}
        _, cands, refusal = answerer.select(q, svc.search(q, answerer.retrieve_k), svc.doc_text,
                                            answerer.budget(q), trace)
        golds = [g for g in (datasets.gold_strings(it) or it.extra.get("answers") or [it.extra.get("answer", "")]) if g]
        top = [] if refusal else cands[:judged]
        rows.append({"id": it.id, "answerable": it.answerable, "floor_refused": bool(refusal),
                     "judged": [(c.score, answerer.judge.answers(q, after_title(c.hit.title, c.text)),
                                 any(datasets.contains(c.text, g) for g in golds)) for c in top]})
        print(f"{len(rows)} / {len(data.items[:limit])}", end="\r", flush=True)
    return rows


def report(name: str, rows: list[dict]) -> None:
    ans = [r for r in rows if r["answerable"]]
    unans = [r for r in rows if not r["answerable"]]
    print(f"\n{name}: {len(ans)} answerable + {len(unans)} unanswerable")
    print("| judge floor | unanswerable refused | answerable refused | of those, gold among the judged | "
          "gold in the best sentence, answered | judge calls a question |")
    print("| --- | --- | --- | --- | --- | --- |")
    for floor in FLOORS:
        refused, first, calls = {}, 0, []
        for r in rows:
            js = r["judged"]
            at = next((i for i, j in enumerate(js) if j[1] >= floor), None)
            refused[id(r)] = r["floor_refused"] or at is None
            calls.append(0 if floor == 0 else len(js) if at is None else at + 1)
            first += r["answerable"] and not refused[id(r)] and bool(js) and js[0][2]
        out = [r for r in ans if refused[id(r)]]
        print(f"| {floor:.2f} | {sum(refused[id(r)] for r in unans) / max(1, len(unans)):.2f} | "
              f"{len(out) / max(1, len(ans)):.2f} | {sum(any(j[2] for j in r['judged']) for r in out)} | "
              f"{first / max(1, len(ans)):.3f} | {sum(calls) / max(1, len(calls)):.1f} |")


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
