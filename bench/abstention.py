"""Calibrate the extractive answerer's abstention threshold on SQuAD2-500.

SQuAD 2.0's unanswerable questions were written against the same paragraphs as the answerable ones, so
they look relevant: this is a hard test of "does a passage actually answer this?". For every question the
script retrieves from the SQuAD2-500 paragraphs, records the best sentence score, then prints, for a sweep
of thresholds, how often the answerer abstains on unanswerable questions (abstention recall), how often an
abstention is right (abstention precision), and how many answerable questions still get an answer whose
cited sentence holds a gold answer string.

    nice .venv/bin/python -m bench.abstention [--index /tmp/squad-index]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rag.answer.extractive import ExtractiveAnswerer, entities_covered
from rag.config import Settings, repo_root, set_offline_env

DATA = repo_root().parent / "shared" / "datasets" / "squad2_500"


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def main() -> None:
    set_offline_env()
    from rag.service import Service

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, default=Path("/tmp/rag-bench/squad2"))
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    svc = Service(Settings.from_env(env={}, index=args.index, corpus=DATA, answerer="extractive"))
    print(svc.ingest(jsonl=DATA / "corpus.jsonl").line())
    answerer = ExtractiveAnswerer(svc.embedder)
    rows = []
    for line in (DATA / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        hits = svc.search(q["question"], args.k)
        cands = answerer.candidates(q["question"], hits, svc.doc_text)
        best = cands[0] if cands else None
        golds = [_norm(a) for a in q["answers"] if a.strip()]
        correct = bool(best and golds and any(g in _norm(best.text) for g in golds))
        covered = bool(best) and entities_covered(q["question"], svc.doc_text(best.hit.doc_id))
        rows.append((q["is_impossible"], best.score if best else -1.0, correct, covered))
    n_imp = sum(1 for r in rows if r[0])
    n_ans = len(rows) - n_imp
    print(f"{len(rows)} questions: {n_ans} answerable, {n_imp} unanswerable")
    print("| threshold | abstain on unanswerable (recall) | abstentions right (precision) | "
          "answerable answered | answerable answered with gold in cited sentence |")
    print("|---|---|---|---|---|")
    for t, need_entities in [(x / 100, e) for e in (False, True) for x in range(20, 76, 5)]:
        if need_entities and t == 0.20:
            print("\nWith the named-entity rule (abstain when a name or number of the question is absent):")
        flags = [r[1] < t or (need_entities and not r[3]) for r in rows]
        abst = [r for r, f in zip(rows, flags, strict=True) if f]
        rec = sum(1 for r in abst if r[0]) / max(n_imp, 1)
        prec = sum(1 for r in abst if r[0]) / max(len(abst), 1)
        answered = [r for r, f in zip(rows, flags, strict=True) if not r[0] and not f]
        good = sum(1 for r in answered if r[2])
        print(f"| {t:.2f} | {rec:.3f} | {prec:.3f} | {len(answered) / n_ans:.3f} | {good / n_ans:.3f} |")


if __name__ == "__main__":
    main()
