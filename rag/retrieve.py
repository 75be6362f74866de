"""Retrieval: a question in, the best chunks out.

Hybrid by default: BM25 (rag/bm25.py, bm25s) and dense search (Chroma) each rank their best candidates,
and their scores, each scaled to 0-1, are mixed (`fuse_scores`; reciprocal rank fusion is the other
choice). Why: on RealTimeQA news questions BM25 finds rare names and numbers that MiniLM blurs, and MiniLM
finds paraphrases BM25 misses; the measured table is docs/retrieval.md#hybrid-search. `as_of` keeps
only documents published on or before a date (undated ones stay), since a news question is asked at a
point in time. Each publisher ("did The Verge report ...") and each day ("on October 7, 2023") a question
names adds a BM25 ranking over the documents of that publisher or published that day to the fusion
(rag/named.py).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from rag.bm25 import BM25Index, recency_weight
from rag.embedding import _NumpyEmbedding
from rag.named import Publishers
from rag.store import Store, local_name
from rag.text import named_dates, normalise_date, without_when_asked
from rag.types import Hit

MODES = ("hybrid", "dense", "bm25")
# Each side contributes this many candidates to the fusion; deeper lists gained nothing measurable.
CANDIDATES = 50
# At most this many chunks of one document in the results, and each document's best chunk before any
# document's second, so that other documents get a place (docs/retrieval.md#one-chunk-per-document-first).
# Over the whole corpora, against two chunks a document in rank order: MultiHop-RAG recall@10 0.793 ->
# 0.804, RealTimeQA hit@5 / MRR@10 0.661 / 0.524 -> 0.670 / 0.534 (--as-of 0.902 / 0.754 -> 0.929 / 0.761),
# SQuAD2 unchanged.
PER_DOC = 2
# With an as-of date, each side's scores are multiplied by 0.5 ** (age in days / this) before ranking:
# a news question asks about the days before it is asked (112 of RealTimeQA's 120 gold articles are 0-6
# days older than their question). RealTimeQA dev over all 3,789 articles, --as-of the question date:
# hit@5 / MRR@10 0.696 / 0.538 without it; with it (2 chunks a document) 0.929 / 0.747 at 14 days,
# 0.902 / 0.754 at 30, 0.875 / 0.758 at 60, 0.884 / 0.765 at 90. A month: round, and not fitted to
# one set's weeks.
RECENCY_HALF_LIFE = 30.0
# Each publisher and day a question names adds the best this many chunks (BM25) of the documents of that
# publisher or published that day to the fusion, weighted as one more ranking. MultiHop-RAG over MultiHop +
# RealTimeQA, recall@10 0.804 without, 0.910 with publishers, 0.915 with days too (docs/retrieval.md#named-rankings).
NAMED_DEPTH = 10
# In score fusion, a named ranking's first chunk gains this much (on the 0-1 scale of the two sides' mix).
NAMED_SHARE = 0.5
# How the two sides (and the named rankings) are merged: "rrf" or "scores" (fuse_scores). One run each
# (docs/retrieval.md#score-fusion), scores against RRF: SQuAD2 hit@1 0.934 / 0.905 (hit@10 0.983 / 0.992),
# RealTimeQA --as-of hit@5 / MRR@10 0.911 / 0.758 against 0.929 / 0.753, MultiHop recall@10 0.922 / 0.914,
# RealTimeQA without a date recall@10 0.790 / 0.821. RRF ranks a strong BM25 match no higher than a weak
# one of the same rank; scores keep the margin, which SQuAD's wording-close questions need.
FUSION = "scores"
FUSIONS = ("rrf", "scores")
# The words that date a question ("this week", "recently") are dropped from the query
# (rag/text.py, without_when_asked): every news page says "this week" in its menus. realtimeqa_2026, all 248
# answerable questions over all 2,022 pages, answer-recall@3 / @5 / @8 / @10 of the hybrid ranking 0.411 /
# 0.504 / 0.548 / 0.565 with them, 0.435 / 0.504 / 0.552 / 0.577 without (docs/retrieval.md#question-cleaning).
# The usual RRF constant: a rank-1 hit from one side outweighs a rank-5 hit from both only slightly.
RRF_K = 60


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None,
        k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores sum(weight / (k + rank)) over the lists it appears in."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse_scores(dense: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]],
                named: Sequence[Sequence[str]] = (), keyword_share: float = 0.5,
                k: int = RRF_K) -> list[tuple[str, float]]:
    """Score fusion: each side's scores scaled to 0-1 over its candidates (best 1, last 0) and mixed,
    `keyword_share` of BM25 and the rest of dense; each named ranking (publisher, day) adds NAMED_SHARE at
    its rank 1, falling with rank as in RRF (NAMED_SHARE * (k + 1) / (k + rank))."""
    out: dict[str, float] = {}
    for side, share in ((dense, 1.0 - keyword_share), (keyword, keyword_share)):
        if not side:
            continue
        lo, hi = min(s for _, s in side), max(s for _, s in side)
        for cid, s in side:
            out[cid] = out.get(cid, 0.0) + share * ((s - lo) / (hi - lo) if hi > lo else 1.0)
    for ranking in named:
        for rank, cid in enumerate(ranking, 1):
            out[cid] = out.get(cid, 0.0) + NAMED_SHARE * (k + 1) / (k + rank)
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def bm25_folder(index: Path, collection: str, chroma_url: str = "") -> Path:
    """Where the BM25 side of an index lives: inside the local index folder, even with a Chroma server
    (then named after the server too, so that two servers' collections never share one file)."""
    return index / f"bm25-{local_name(collection, chroma_url)}"


class Retriever:
    """Hybrid (BM25 + dense, fused by RRF), dense-only or BM25-only search over the store's chunks."""

    def __init__(self, store: Store, embedder: _NumpyEmbedding, *, mode: str = "hybrid",
                 bm25: BM25Index | None = None, candidates: int = CANDIDATES,
                 bm25_weight: float = 1.0, spell: bool = True, per_doc: int = PER_DOC,
                 recency_half_life: float = RECENCY_HALF_LIFE, publishers: bool = True,
                 days: bool = True, fusion: str = FUSION,
                 clean_question: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.candidates = candidates
        self.bm25_weight = bm25_weight
        self.spell = spell
        self.per_doc = per_doc  # at most this many chunks of one document in the results; 0: no limit
        self.recency_half_life = recency_half_life
        self.publishers = publishers  # hybrid mode: a ranking for each publisher the question names
        self.days = days  # hybrid mode: a ranking for each day the question names
        self.fusion = fusion
        self.clean_question = clean_question  # "this week" and the like are dropped from the query
        self._bm25 = bm25
        self._bm25_lock = threading.Lock()  # one sync at a time; searches keep reading the index they got
        self._publishers: tuple[str, Publishers] | None = None  # (BM25 fingerprint, names)

    @property
    def bm25(self) -> BM25Index:
        """The BM25 side, in step with the store: whoever wrote to it (this process or another) since the
        last question, the next one searches what is there now (see BM25Index.synced)."""
        with self._bm25_lock:
            if self._bm25 is None:
                s = self.store.settings
                self._bm25 = BM25Index(bm25_folder(s.index, s.collection, s.chroma_url), self.store)
            else:
                self._bm25 = self._bm25.synced()
            return self._bm25

    def refresh(self) -> None:
        """Bring the BM25 side in step after this process wrote to the store (ingest calls it)."""
        with self._bm25_lock:
            if self._bm25 is not None:
                new = copy.copy(self._bm25)
                new.sync(force=True)
                self._bm25 = new

    def search(self, query: str, k: int = 5, *, as_of: str | None = None) -> list[Hit]:
        """The k best chunks for the query, best first."""
        date = normalise_date(as_of) if as_of else ""
        if self.clean_question:
            query = without_when_asked(query)
        n = max(self.candidates, k)
        bm25 = self.bm25  # one state for the whole search, even if another thread syncs meanwhile
        dense: list[Hit] = []
        if self.mode in ("hybrid", "dense"):
            # Misspelled words split into odd word pieces; the hybrid mode embeds the spell-corrected
            # question (words the BM25 vocabulary lacks, one edit from a word it has).
            text = bm25.spell(query) if self.mode == "hybrid" and self.spell else query
            vector = self.embedder.embed_array([text], is_query=True)[0].tolist()
            # A date limit drops some of Chroma's neighbours afterwards, so ask for more of them: twice as
            # many. RealTimeQA --as-of, hit@5 / MRR@10 / p50: 0.929 / 0.761 / 54 ms at 4x, 0.920 / 0.754 /
            # 40 ms at 3x, 0.929 / 0.753 / 30 ms at 2x (docs/retrieval.md#as-of-candidates).
            dense = self.store.query(vector, n * 2 if date else n)
            if date:
                dense = [h for h in dense if _published_by(h.publish_date, date)]
                if self.recency_half_life:
                    w = recency_weight(np.array([normalise_date(h.publish_date or "") for h in dense]),
                                       date, self.recency_half_life)
                    weighted = np.array([h.score for h in dense]) * w
                    dense = [replace(dense[i], score=float(weighted[i]))
                             for i in np.argsort(-weighted, kind="stable")]
            dense = dense[:n]
            if self.mode == "dense":
                keep = {cid for cid, _ in self._limit([(h.chunk_id, h.score) for h in dense], k)}
                return [h for h in dense if h.chunk_id in keep]
        mask = bm25.date_mask(date) if date else None
        weights = bm25.recency(date, self.recency_half_life) if date and self.recency_half_life else None
        scores = bm25.scores(query, correct=self.spell)
        keyword = bm25.best(scores, n, mask, weights=weights)
        if self.mode == "bm25":
            return _with_scores(self.store, self._limit(keyword, k), {})
        named_rows = [bm25.doc_mask(docs) for docs in self._named(query, bm25)] if self.publishers else []
        named_rows += [bm25.dates == day for day in named_dates(query)] if self.days else []
        named = []
        for rows in named_rows:
            best = bm25.best(scores, NAMED_DEPTH, rows if mask is None else rows & mask, weights=weights)
            if best:
                named.append([cid for cid, _ in best])
        if self.fusion == "scores":
            fused = fuse_scores([(h.chunk_id, h.score) for h in dense], keyword, named,
                                self.bm25_weight / (1.0 + self.bm25_weight))
        else:
            rankings = [[h.chunk_id for h in dense], [cid for cid, _ in keyword], *named]
            fused = rrf(rankings, [1.0, self.bm25_weight] + [1.0] * len(named))
        return _with_scores(self.store, self._limit(fused, k), {h.chunk_id: h for h in dense})

    def _named(self, query: str, bm25: BM25Index) -> list[frozenset[str]]:
        """The document sets of the publishers the query names (titles read again when the chunks change)."""
        key = bm25.print
        if self._publishers is None or self._publishers[0] != key:
            docs = self.store.documents()
            self._publishers = (key, Publishers((m["doc_id"], str(m.get("title") or "")) for m in docs.values()))
        return self._publishers[1].named(query)

    def _limit(self, ranked: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
        """The k best, every document's best chunk before any document's second one (and at most `per_doc`
        chunks of one document): over many documents the k come from k documents; a corpus of a few
        documents still fills k with their next chunks."""
        if not self.per_doc:
            return ranked[:k]
        rounds: list[list[tuple[str, float]]] = [[] for _ in range(self.per_doc)]
        seen: dict[str, int] = {}
        for cid, score in ranked:
            doc = cid.rsplit(":", 1)[0]  # a chunk id is "<doc_id>:<start>-<end>"
            n = seen.get(doc, 0)
            if n < self.per_doc:
                seen[doc] = n + 1
                rounds[n].append((cid, score))
                if len(rounds[0]) == k:
                    break
        return [item for r in rounds for item in r][:k]


def _published_by(publish_date: str, date: str) -> bool:
    d = normalise_date(publish_date or "")
    return not d or d <= date


def _with_scores(store: Store, ranked: list[tuple[str, float]], known: dict[str, Hit]) -> list[Hit]:
    """Hits for ranked chunk ids, carrying the ranking's score; ids not yet seen are read from the store."""
    missing = [cid for cid, _ in ranked if cid not in known]
    if missing:
        known = {**known, **store.hits(missing)}
    out = []
    for cid, score in ranked:
        h = known.get(cid)
        if h is not None:  # a chunk deleted since BM25 last synced is simply skipped
            out.append(replace(h, score=float(score)))
    return out
