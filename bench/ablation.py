"""Ablation of the generative answer path: each rule group switched off, in one run, on several sets.

Every variant is a `PipelineSettings` (rag/answer/generative.py) with one group off; all variants answer the
same questions over the same indexes with the same model, so the rows compare. Sets: the labeled seed
questions (eval/labels.yaml) and samples of the public sets (the first N of each set's fixed order;
realtimeqa_2026 over all its pages when `--rtqa-index` names the index `rag eval` built for it).

    nice -n 10 .venv/bin/python -m bench.ablation --limit 40 --rtqa-index /tmp/rtqa26

It prints one table: per variant and set, the share right (fact recall on the labeled set, the set's own
scorer elsewhere), unanswerable questions refused and answerable ones refused.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from eval import datasets
from eval.judge import build_judge
from eval.labels import gold_spans, load_labels
from eval.metrics import summarise
from eval.runner import WHOLE_DOCUMENT, ask_all, index_public_set
from rag.answer.generative import Budget, GenerativeAnswerer
from rag.config import Settings, repo_root, set_offline_env
from rag.service import Service

VARIANTS: dict[str, dict[str, Any]] = {
    "all rules": {},
    "- evidence floor": {"evidence_floor": False},
    "- count rule": {"count_rule": False},
    "- second opinion": {"second_opinion": False},
    "- model verdict": {"answerable": (0.0, 0.0)},
    "- conflict stage": {"conflict_stage": False},
    "- question cleaning": {"clean_question": False},
    "- sentence titles": {"titled": False},
    "- name rule": {"name_rule": False},
    "- sentence titles - name rule": {"titled": False, "name_rule": False},
    "- passage titles": {"passage_titles": False},
    "- miss example": {"miss_example": False},
    "- pick example - miss example": {"pick_example": False, "miss_example": False},
    "- quote cited": {"quote_cited": False},
    "- judge": {"judged": 0},
    "- judge's refusal": {"judge_floor": 0.0},
    # the default until session 10: one-fact questions read the two best sentences, no pick or miss example
    "one fact reads 2 sentences": {"one_fact": Budget(passages=2, window=0, chars=1800, max_tokens=80, margin=0.12),
                                   "pick_example": False, "miss_example": False},
    "one fact reads 6 sentences": {"one_fact": Budget(6, 0, 2400, 80, 0.25)},
    # a larger candidate pool: the sentences are chosen from 16 retrieved chunks, not 8
    "retrieve 16 chunks": {"retrieve_k": 16},
}


def figures(rows: list[dict[str, Any]], labeled: bool) -> str:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    # labeled: fact recall; a public set: its own scorer's verdict on the answerable questions
    if labeled:
        right = summarise(rows)["fact_recall"]
    else:
        right = sum(r["passed"] for r in answerable) / max(1, len(answerable))
    refused = sum(bool(r.get("abstained")) for r in unanswerable) / max(1, len(unanswerable))
    false = sum(bool(r.get("abstained")) for r in answerable) / max(1, len(answerable))
    return f"{(right or 0):.2f} / {refused:.2f} / {false:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=40, help="questions of each public set")
    ap.add_argument("--sets", default="realtimeqa_2026,squad2_500,multihop_rag_500,labeled")
    ap.add_argument("--limits", default="", help="per-set limits, e.g. realtimeqa_2026=60,squad2_500=20")
    ap.add_argument("--rtqa-index", type=Path, default=None,
                    help="the index of all realtimeqa_2026 pages (else a sample is indexed)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rows", type=Path, default=None, help="a folder for each variant's scored rows (JSON)")
    args = ap.parse_args()
    set_offline_env()
    judge = build_judge("auto", Settings.from_env())
    table: dict[str, dict[str, str]] = {}
    for name in args.sets.split(","):
        if name == "labeled":
            index = repo_root() / ".rag" / "eval" / "labeled"
            svc = Service(Settings.from_env(index=index))
            svc.ingest()
            texts = {d["source"]: svc.show(d["source"]) for d in svc.documents()}
            items = load_labels()

            def gold_for(label: Any, texts: dict[str, str] = texts) -> Any:
                return [{g.doc: gold_spans(g, texts.get(g.doc, ""))} for g in label.gold]
            score = None
        else:
            limit = dict(kv.split("=") for kv in args.limits.split(",") if kv).get(name, args.limit)
            limit = int(limit)
            full = name == "realtimeqa_2026" and args.rtqa_index is not None
            data = datasets.load(name, None if full else limit)
            # its own folder: `rag eval --limit N` prunes `.rag/eval/NAME-sample` to its own sample
            index = args.rtqa_index if full else repo_root() / ".rag" / "eval" / f"ablation-{name}-{limit}"
            svc = Service(Settings.from_env(index=index, corpus=index / "no-corpus"))
            if not full:
                index_public_set(svc, data, own=True)
            items = datasets._sample(data.items, limit) if full else data.items[:limit]
            score = data.score

            def gold_for(label: Any) -> Any:
                sides = label.extra.get("sides") or [[d] for d in label.gold_docs]
                return [dict.fromkeys(side, [WHOLE_DOCUMENT]) for side in sides]
        answerer = svc.answerer
        if not isinstance(answerer, GenerativeAnswerer):
            sys.exit("bench.ablation: the generative answerer is not available (run scripts/setup.sh)")
        base = answerer.settings
        for variant in args.variants.split(","):
            answerer.settings = replace(base, **VARIANTS[variant])
            t0 = time.perf_counter()
            rows = ask_all(svc, items, judge=judge, gold_for=gold_for, public_score=score)
            table.setdefault(variant, {})[name] = figures(rows, name == "labeled")
            p50 = statistics.median(r["total_ms"] for r in rows) / 1000 if rows else 0
            print(f"{name:18} {variant:18} {table[variant][name]}  ({len(items)} q, "
                  f"{time.perf_counter() - t0:.0f} s, p50 {p50:.1f} s)", file=sys.stderr, flush=True)
            if args.rows:
                args.rows.mkdir(parents=True, exist_ok=True)
                slug = re.sub(r"\W+", "-", variant).strip("-")
                (args.rows / f"{name}.{slug}.json").write_text(json.dumps(rows, indent=1))
        answerer.settings = base
    sets = args.sets.split(",")
    print("right / unanswerable refused / answerable refused")
    print(f"| variant | {' | '.join(sets)} |")
    print(f"|---|{'---|' * len(sets)}")
    for variant, cells in table.items():
        print(f"| {variant} | {' | '.join(cells.get(s, '') for s in sets)} |")


if __name__ == "__main__":
    main()
