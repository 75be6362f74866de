"""Calibrate the extractive answerer's abstention on SQuAD2-500 and MultiHop-RAG-500.

SQuAD 2.0's unanswerable questions were written against the same paragraphs as the answerable ones, so
they look relevant: a hard test of "does a passage actually answer this?". MultiHop-RAG's questions need
two to four news articles and name their publishers, dates and subjects; 71 of its 500 must be refused.
For every question the script retrieves (top 5, as `rag ask` does) from the set's own index (the one
`rag eval --dataset NAME` keeps, `.rag/eval/NAME`), then prints, for a sweep of thresholds and both rules:

- before: the best single sentence's score, and every name of the question in that sentence's document;
- after (in use): the best sentence's score with the wording counted up to 6 words (`evidence_score`),
  and the names rule of `names_found` (few names: all in the best document; many: half of them in the
  retrieved documents);

how often it abstains on the questions to refuse (abstention recall), how often an abstention is right
(precision), the share of answerable questions answered (1 - false refusals), and the share answered with
a gold answer inside the best quoted sentence.

    nice -n 10 .venv/bin/python -m bench.abstention [squad2_500] [multihop_rag_500]
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass

from rag.config import Settings, repo_root, set_offline_env


@dataclass
class Row:
    refuse: bool
    best: float  # best single sentence's score
    evidence: float  # evidence_score of the best sentence
    names_before: bool  # every name in the best sentence's document
    names_after: bool  # names_found
    correct: bool  # a gold answer inside the best sentence


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def collect(name: str) -> tuple[list[Row], str]:
    from eval import datasets
    from eval.runner import index_public_set
    from rag.answer.extractive import ExtractiveAnswerer, entities_covered, names_found
    from rag.service import Service

    data = datasets.load(name)
    index = repo_root() / ".rag" / "eval" / name
    svc = Service(Settings.from_env(env={}, index=index, corpus=index / "no-corpus", answerer="extractive"))
    line = index_public_set(svc, data, own=True).line()
    ex = ExtractiveAnswerer(svc.embedder)
    rows = []
    for label in data.items:
        hits = svc.search(label.question)
        cands = ex.candidates(label.question, hits, svc.doc_text)
        if not cands:
            rows.append(Row(not label.answerable, -1.0, -1.0, False, False, False))
            continue
        best = cands[0]
        golds = [_norm(g) for g in label.extra.get("answers") or [label.extra.get("answer", "")] if g.strip()]
        rows.append(Row(
            refuse=not label.answerable,
            best=best.score,
            evidence=ex.evidence_score(label.question, best),
            names_before=entities_covered(label.question, svc.doc_text(best.hit.doc_id)),
            names_after=names_found(label.question, hits, best.hit, svc.doc_text),
            correct=any(g and g in _norm(best.text) for g in golds),
        ))
    return rows, line


def table(rows: list[Row]) -> None:
    n_ref = sum(r.refuse for r in rows)
    n_ans = len(rows) - n_ref
    print(f"{len(rows)} questions: {n_ans} answerable, {n_ref} to refuse")
    print("| rule | threshold | abstains on those to refuse (recall) | abstentions right (precision) | "
          "answerable answered | answered with gold in the best sentence |")
    print("|---|---|---|---|---|---|")
    for rule in ("before", "after"):
        for t in [x / 100 for x in range(30, 61, 5)]:
            if rule == "before":
                flags = [r.best < t or not r.names_before for r in rows]
            else:
                flags = [r.evidence < t or not r.names_after for r in rows]
            right = sum(f and r.refuse for f, r in zip(flags, rows, strict=True))
            answered = [r for f, r in zip(flags, rows, strict=True) if not r.refuse and not f]
            print(f"| {rule} | {t:.2f} | {right / max(n_ref, 1):.3f} | {right / max(sum(flags), 1):.3f} | "
                  f"{len(answered) / n_ans:.3f} | {sum(r.correct for r in answered) / n_ans:.3f} |")


def main() -> None:
    set_offline_env()
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=["squad2_500", "multihop_rag_500"])
    args = ap.parse_args()
    for name in args.names:
        t0, c0 = time.perf_counter(), time.process_time()
        rows, line = collect(name)
        print(f"\n## {name} (index: {line}; {time.perf_counter() - t0:.0f} s, "
              f"{time.process_time() - c0:.0f} CPU s)")
        table(rows)


if __name__ == "__main__":
    main()
