"""Sentence-ranking experiment on realtimeqa_2026: which scoring puts the answering sentence among those read?

Collects, once per answerable question, every sentence the k retrieved chunks touch (and, with
`--docs N`, every sentence of the N best documents) with the features a scorer could use, then prints how
often the first gold-holding sentence ranks in the top 1/2/4/8 under each formula. No model is asked.

    nice -n 10 .venv/bin/python -m bench.rank_features --index DIR [--k 8] [--docs 3] [--limit N] [--rows F]

The index is the one `rag ingest --jsonl ../shared/datasets/realtimeqa_2026/corpus.jsonl.gz --index DIR`
builds; `--rows` keeps the features, so that a new formula is scored in seconds.
"""

from __future__ import annotations

import argparse
import math
import pickle
from pathlib import Path

import numpy as np

from eval import datasets
from rag.config import Settings, set_offline_env

TOPS = (1, 2, 4, 8)


def collect(args: argparse.Namespace) -> list[dict]:
    from rag.answer.base import strip_reference_marks
    from rag.answer.evidence import (
        _NUMBER,
        content_terms,
        doc_sentences,
        lexical_overlap,
        names_new,
        wants_name,
        wants_number,
    )
    from rag.service import Service, clean_question
    from rag.text import terms, without_when_asked

    data = datasets.load("realtimeqa_2026", None)
    items = [x for x in data.items if x.answerable][: args.limit]
    svc = Service(Settings.from_env(index=args.index, corpus=args.index / "no-corpus"))
    bm25 = svc.retriever.bm25._bm25
    vocab = bm25.vocab_dict
    indptr = np.asarray(bm25.scores["indptr"])
    n_docs = bm25.scores["num_docs"]

    def idf(w: str) -> float:
        t = vocab.get(w)
        df = 0 if t is None else int(indptr[t + 1] - indptr[t])
        return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))

    emb = svc.embedder
    rows = []
    for it in items:
        golds = datasets.gold_strings(it)
        q = without_when_asked(clean_question(it.question))
        hits = svc.search(q, args.k)
        q_terms = content_terms(q)
        q_bm = sorted(set(terms(q)))
        q_idf = {w: idf(w) for w in q_bm}
        q_words = {w.lower() for w in q.split()}
        spans, seen = [], set()
        for rank, hit in enumerate(hits):
            text = svc.doc_text(hit.doc_id)
            for s, e in doc_sentences(hit.doc_id, text):
                inside = not (e <= hit.start or s >= hit.end)
                if not inside:
                    continue
                key = (hit.doc_id, s, e)
                if key in seen or len(text[s:e].split()) < 4:
                    continue
                seen.add(key)
                spans.append((hit, s, e, text[s:e], rank, True))
        if args.docs:
            docs = []
            for h in hits:
                if h.doc_id not in docs:
                    docs.append(h.doc_id)
            first = {h.doc_id: (i, h) for i, h in reversed(list(enumerate(hits)))}
            for d in docs[: args.docs]:
                rank, hit = first[d]
                text = svc.doc_text(d)
                for s, e in doc_sentences(d, text):
                    key = (d, s, e)
                    if key in seen or len(text[s:e].split()) < 4:
                        continue
                    seen.add(key)
                    spans.append((hit, s, e, text[s:e], rank, False))
        if not spans:
            rows.append({"q": q, "cands": []})
            continue
        qv = emb.embed_array([q], is_query=True)[0]
        shown = [strip_reference_marks(f"{sp[0].title}. {sp[3]}" if sp[0].title else sp[3]) for sp in spans]
        dense_t = emb.embed_array(shown) @ qv
        dense_p = emb.embed_array([strip_reference_marks(sp[3]) for sp in spans]) @ qv
        cands = []
        for (hit, _s, _e, sent, rank, inside), dt, dp in zip(spans, dense_t, dense_p, strict=True):
            sw = set(terms(sent))
            cands.append({
                "gold": any(datasets.contains(sent, g) for g in golds),
                "dense": float(dt), "dense_plain": float(dp),
                "lex": lexical_overlap(q_terms, sent),
                "idf": sum(v for w, v in q_idf.items() if w in sw) / (sum(q_idf.values()) or 1),
                "rank": rank, "inside": inside,
                "num": bool(_NUMBER.search(sent)), "names_new": names_new(q_words, sent),
                "doc": hit.doc_id,
                "matched": [w for w in q_bm if w in sw],
            })
        rows.append({"q": q, "cands": cands, "wants_number": wants_number(q), "wants_name": wants_name(q),
                     "q_idf": q_idf})
        if len(rows) % 20 == 0:
            print(f"{len(rows)} / {len(items)}", flush=True)
    return rows


def local_idf(rows: list[dict]) -> None:
    """`lidf`: the idf-weighted share with document frequencies counted over the question's own sentence
    pool (no index statistics)."""
    for r in rows:
        cs = [c for c in r["cands"] if c["inside"]]
        n = len(cs)
        if not n:
            continue
        df = {w: sum(w in c["matched"] for c in cs) for w in r["q_idf"]}
        w_ = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}
        tot = sum(w_.values()) or 1
        for c in r["cands"]:
            c["lidf"] = sum(w_[w] for w in c["matched"]) / tot


def table(rows: list[dict], formulas: dict) -> None:
    print(f"| formula | {' | '.join(f'top {n}' for n in TOPS)} | anywhere |")
    print(f"|---|{'---|' * (len(TOPS) + 1)}")
    n = len(rows)
    for name, f in formulas.items():
        tops, anywhere = [0] * len(TOPS), 0
        for r in rows:
            cs = [c for c in r["cands"] if f(c, r) is not None]
            ranked = sorted(cs, key=lambda c: -f(c, r))
            rank = next((i for i, c in enumerate(ranked) if c["gold"]), None)
            if rank is not None:
                anywhere += 1
                for j, t in enumerate(TOPS):
                    tops[j] += rank < t
        print(f"| {name} | {' | '.join(f'{t / n:.3f}' for t in tops)} | {anywhere / n:.3f} |")


def kind(c: dict, r: dict, name: bool = True) -> float:
    pen = 0.0
    if r["wants_number"] and not c["num"]:
        pen -= 0.1
    if name and r["wants_name"] and not c["names_new"]:
        pen -= 0.1
    return pen


def inside(f):  # noqa: ANN001, ANN201
    return lambda c, r: f(c, r) if c["inside"] else None


# "default" is `score_sentences` (rag/answer/evidence.py) re-stated over the collected features; the rest
# change one thing each. Session 13's run over all 248 is in docs/answers.md#sentence-kind-and-title.
FORMULAS = {
    "default (0.5 cosine with title + 0.5 wording, kind rules)":
        inside(lambda c, r: 0.5 * c["dense"] + 0.5 * c["lex"] + kind(c, r)),
    "- title": inside(lambda c, r: 0.5 * c["dense_plain"] + 0.5 * c["lex"] + kind(c, r)),
    "- name rule": inside(lambda c, r: 0.5 * c["dense"] + 0.5 * c["lex"] + kind(c, r, False)),
    "- title - name rule": inside(lambda c, r: 0.5 * c["dense_plain"] + 0.5 * c["lex"] + kind(c, r, False)),
    "wording weighted by idf (index)": inside(lambda c, r: 0.5 * c["dense"] + 0.5 * c["idf"] + kind(c, r)),
    "wording weighted by idf (the pool)": inside(lambda c, r: 0.5 * c["dense"] + 0.5 * c["lidf"] + kind(c, r)),
    "0.3 cosine + 0.7 idf wording": inside(lambda c, r: 0.3 * c["dense"] + 0.7 * c["idf"] + kind(c, r)),
    "cosine only": inside(lambda c, r: c["dense"]),
    "wording only": inside(lambda c, r: c["lex"]),
    "- 0.01 x chunk rank": inside(lambda c, r: 0.5 * c["dense"] + 0.5 * c["lex"] + kind(c, r) - 0.01 * c["rank"]),
    "pool: all sentences of the 3 best pages":
        lambda c, r: 0.5 * c["dense"] + 0.5 * c["lex"] + kind(c, r),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--docs", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rows", type=Path, default=None, help="a pickle to write (or read, when it exists)")
    args = ap.parse_args()
    set_offline_env()
    if args.rows and args.rows.exists():
        rows = pickle.loads(args.rows.read_bytes())
    else:
        rows = collect(args)
        if args.rows:
            args.rows.write_bytes(pickle.dumps(rows))
    local_idf(rows)
    print(f"{len(rows)} answerable questions, k={args.k}, docs={args.docs}")
    table(rows, FORMULAS)


if __name__ == "__main__":
    main()
