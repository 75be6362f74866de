"""The keyword side of retrieval: BM25 (bm25s) over the same chunks as the Chroma index.

Chroma is the source of truth; this index is derived data, read through the store's small chunk interface
(`ChunkSource`: counts, ids, hits by id, the generation stamp), never through Chroma itself. It lives in the
local index folder, `<RAG_INDEX>/bm25-<collection>/` (also when the vectors are on a Chroma server), as
`state.npz`: every chunk's id, document id, publish date and word tokens, with a fingerprint of the chunk
ids it was built from. On load, and whenever the store's generation stamp moves (any process wrote), the
chunk count changes or ingest says it wrote something, the index compares that fingerprint with the
store's chunk ids: it tokenizes only the chunks the store gained, drops the ones it lost, re-indexes
(bm25s indexes tokens in about a second per 10,000 chunks) and saves. So an incremental ingest (add,
replace, delete), another process writing to the same index, or a deleted or stale file all end in the
same state, and no ingest code has to know about BM25.

Searches running in other threads keep reading the state they started with: `synced()` returns an updated
copy and leaves the index it was called on as it was.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.text import WORD, terms
from rag.text import normalise_date as normalise_date  # rag/retrieve.py imports it from here
from rag.types import Hit

TITLES = True
# Changes to what is indexed change this, so that state files written before are rebuilt (v3: impossible
# publish dates are stored as none, where v2 kept them and every dated search failed on them; v4: web
# addresses are not indexed).
FORMAT = "v4-no-urls"
# Another process may replace a document without changing the chunk count; the full id comparison
# (a few hundred ms at 30,000 chunks) runs at most this often to notice.
FULL_CHECK_SECONDS = 60.0


class ChunkSource(Protocol):
    """What BM25 needs of the store (rag/store.py's Store is one)."""

    def chunk_count(self) -> int: ...

    def chunk_ids(self, doc_id: str | None = None) -> list[str]: ...

    def hits(self, ids: list[str]) -> dict[str, Hit]: ...

    def generation(self) -> str: ...


def fingerprint(ids: list[str]) -> str:
    """Count and hash of a set of chunk ids: equal fingerprints, equal chunk sets."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode())
        h.update(b"\0")
    return f"{_format()}:{len(ids)}:{h.hexdigest()[:24]}"


def _format() -> str:
    return FORMAT if TITLES else "v2"


class BM25Index:
    """BM25 scores for every chunk of a Chroma collection, kept in step with it."""

    def __init__(self, folder: Path | None, store: ChunkSource) -> None:
        """`store` holds the chunks; `folder` (None: in memory only) holds the state."""
        self.folder = folder
        self.store = store
        self.ids: list[str] = []
        self.doc_ids: list[str] = []
        self.dates: np.ndarray = np.array([], dtype="<U10")
        self._days = np.array([])  # `dates` as day numbers, for recency weights
        self._days_of: np.ndarray | None = None
        self._doc_masks: dict[frozenset[str], np.ndarray] = {}  # see doc_mask
        self._doc_masks_of = ""
        self.tokens: list[list[str]] = []
        self.print = ""
        self._bm25: Any = None
        self._seen_count = -1
        self._seen_generation: str | None = None
        self._checked = 0.0
        self._load()
        self.sync()

    # --- persistence ------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return None if self.folder is None else self.folder / "state.npz"

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            z = np.load(self.path, allow_pickle=False)
            flat, offsets = [str(t) for t in z["flat"]], z["offsets"]
            self.ids = [str(i) for i in z["ids"]]
            self.doc_ids = [str(i) for i in z["doc_ids"]]
            self.dates = z["dates"]
            self.tokens = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            self.print = str(z["fingerprint"])
            if self.print.split(":")[0] != _format():  # indexed another way: start over
                raise ValueError(self.print)
        except (OSError, KeyError, ValueError):  # a damaged file is only a cache: rebuild from Chroma
            self.ids, self.doc_ids, self.tokens, self.print = [], [], [], ""
            self.dates = np.array([], dtype="<U10")
        self._index()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0] + [len(t) for t in self.tokens])
        flat = np.array([w for t in self.tokens for w in t], dtype=str)
        # written whole, then renamed: never half a file (named per process: several may save at once)
        tmp = self.path.with_name(f"state.{os.getpid()}.tmp.npz")
        np.savez(tmp, ids=np.array(self.ids, dtype=str), doc_ids=np.array(self.doc_ids, dtype=str),
                 dates=self.dates, flat=flat, offsets=offsets, fingerprint=np.array(self.print))
        tmp.replace(self.path)

    # --- keeping in step with Chroma ----------------------------------------------------------------
    def stale(self) -> bool:
        """Whether the store may hold other chunks than this index: its generation stamp moved, its chunk
        count differs, or the last full comparison is over FULL_CHECK_SECONDS old."""
        recent = time.monotonic() - self._checked < FULL_CHECK_SECONDS
        if not recent or self.store.generation() != self._seen_generation:
            return True
        count = self.store.chunk_count()
        return not (self._seen_count == count == len(self.ids))

    def synced(self) -> BM25Index:
        """This index when it is in step with the store, else an updated copy (this one stays as it was,
        for the searches that are reading it)."""
        if not self.stale():
            return self
        new = copy.copy(self)
        new.sync(force=True)
        return new

    def sync(self, *, force: bool = False) -> bool:
        """Bring the index in line with the store's chunks; True when something changed.

        Cheap when nothing happened: the generation stamp and the chunk count are compared on every call,
        the full id list when either moved, on first use, once a minute, or with `force`."""
        if not force and not self.stale():
            return False
        generation = self.store.generation()  # read first: a write after it moves it again
        ids = self.store.chunk_ids()
        self._seen_count = len(ids)
        self._seen_generation = generation
        self._checked = time.monotonic()
        fp = fingerprint(ids)
        if fp == self.print and len(ids) == len(self.ids):
            return False
        keep = set(ids)
        rows = [i for i, cid in enumerate(self.ids) if cid in keep]
        have = {self.ids[i] for i in rows}
        ids_, doc_ids = [self.ids[i] for i in rows], [self.doc_ids[i] for i in rows]
        tokens, dates = [self.tokens[i] for i in rows], [str(self.dates[i]) for i in rows]
        got = self.store.hits([cid for cid in ids if cid not in have])
        for cid, hit in got.items():
            ids_.append(cid)
            doc_ids.append(hit.doc_id)
            dates.append(normalise_date(hit.publish_date or ""))
            # The title counts as words of every chunk of its document: a question names a story by
            # its subject, which often only the headline states (MultiHop-RAG, docs/retrieval.md#goals).
            title = hit.title or "" if TITLES else ""
            tokens.append(terms(f"{title}\n{hit.text or ''}"))
        self.ids, self.doc_ids, self.tokens = ids_, doc_ids, tokens
        self.dates = np.array(dates, dtype="<U10")
        # chunks deleted between listing and reading are left out, so the print is of what is indexed
        self.print = fp if len(got) + len(rows) == len(ids) else fingerprint(ids_)
        self._index()
        self._save()
        return True

    def _index(self) -> None:
        import bm25s

        self._bm25 = None
        if not self.ids:
            return
        bm25 = bm25s.BM25()
        bm25.index([t or [""] for t in self.tokens], show_progress=False)
        self._bm25 = bm25

    # --- search -----------------------------------------------------------------------------------
    def scores(self, query: str, *, correct: bool = True) -> np.ndarray:
        """BM25 score of every chunk (row order of `ids`) for the query; zeros when no word matches.
        With `correct`, a word the index lacks counts as its spelling correction."""
        if self._bm25 is None:
            return np.zeros(len(self.ids), dtype=np.float32)
        vocab = self._bm25.vocab_dict
        words = [w if w in vocab or not correct else self.correct(w) for w in terms(query)]
        words = [w for w in words if w]
        if not words:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(words), dtype=np.float32)

    def top(self, query: str, n: int, mask: np.ndarray | None = None,
            *, correct: bool = True, weights: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The n best (chunk id, score) pairs with a positive score, among rows where `mask` is true,
        each score multiplied by its row's weight when `weights` is given."""
        return self.best(self.scores(query, correct=correct), n, mask, weights=weights)

    def best(self, scores: np.ndarray, n: int, mask: np.ndarray | None = None,
             *, weights: np.ndarray | None = None) -> list[tuple[str, float]]:
        """`top` for scores already computed: one query's scores serve several masks."""
        s = scores
        if mask is not None:
            s = np.where(mask, s, 0.0)
        if weights is not None:
            s = s * weights
        n = min(n, int((s > 0).sum()))
        if n == 0:
            return []
        best = np.argpartition(-s, n - 1)[:n]
        best = best[np.argsort(-s[best], kind="stable")]
        return [(self.ids[i], float(s[i])) for i in best]

    def spell(self, query: str) -> str:
        """The query with each word the index lacks replaced by its correction (see `correct`)."""
        if self._bm25 is None:
            return query
        vocab = self._bm25.vocab_dict

        def fix(m: re.Match[str]) -> str:
            folded = terms(m.group(0))
            if not folded or folded[0] in vocab:
                return m.group(0)
            return self.correct(folded[0]) or m.group(0)

        return WORD.sub(fix, query)

    def correct(self, word: str) -> str:
        """A query word the index lacks, mapped to the indexed word one edit away that most chunks hold
        ("artilery" -> "artillery"); "" when there is none. Short words are left alone: one edit away
        from a 4-letter word lies another word."""
        if self._bm25 is None or len(word) < 5 or not word.isalpha():
            return ""
        vocab, indptr = self._bm25.vocab_dict, self._bm25.scores["indptr"]
        found = [w for w in _edits1(word) if w in vocab]
        if not found:
            return ""
        return max(found, key=lambda w: (int(indptr[vocab[w] + 1] - indptr[vocab[w]]), w))

    def doc_mask(self, doc_ids: frozenset[str]) -> np.ndarray:
        """Rows of these documents (cached until the chunks change)."""
        if self._doc_masks_of != self.print:
            self._doc_masks, self._doc_masks_of = {}, self.print
        if doc_ids not in self._doc_masks:
            self._doc_masks[doc_ids] = np.fromiter((d in doc_ids for d in self.doc_ids), bool, len(self.doc_ids))
        return self._doc_masks[doc_ids]

    def date_mask(self, as_of: str) -> np.ndarray:
        """Rows published on or before `as_of` (YYYY-MM-DD); undated rows are kept."""
        return (self.dates <= as_of) | (self.dates == "")

    def recency(self, as_of: str, half_life: float) -> np.ndarray:
        """Each row's recency weight at `as_of` (see `recency_weight`)."""
        if self._days_of is not self.dates:  # sync replaces the array when chunks change
            self._days, self._days_of = _day_numbers(self.dates), self.dates
        return _weights(self._days, as_of, half_life)


def _day_numbers(dates: np.ndarray) -> np.ndarray:
    """Days since 1970 of YYYY-MM-DD dates, NaN where there is none."""
    dates = np.asarray(dates, dtype="<U10")
    days = np.full(len(dates), np.nan)
    dated = dates != ""
    if dated.any():
        days[dated] = dates[dated].astype("datetime64[D]").astype(np.float64)
    return days


def _weights(days: np.ndarray, as_of: str, half_life: float) -> np.ndarray:
    age = np.clip(float(np.datetime64(as_of, "D").astype(np.int64)) - days, 0.0, None)
    return (0.5 ** (np.nan_to_num(age, nan=half_life) / half_life)).astype(np.float32)


def recency_weight(dates: np.ndarray, as_of: str, half_life: float) -> np.ndarray:
    """0.5 ** (days from each date to `as_of` / half_life) for YYYY-MM-DD dates (1.0 on the day, 0.5 one
    half-life earlier); later dates count as that day. An undated row weighs as much as one published a
    half-life before: it is neither favoured over recent news nor buried under old news."""
    return _weights(_day_numbers(dates), as_of, half_life)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _edits1(word: str) -> set[str]:
    """Every string one deletion, swap of neighbours, replacement or insertion away from `word`."""
    cuts = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({a + b[1:] for a, b in cuts if b}
            | {a + b[1] + b[0] + b[2:] for a, b in cuts if len(b) > 1}
            | {a + c + b[1:] for a, b in cuts if b for c in _LETTERS}
            | {a + c + b for a, b in cuts for c in _LETTERS})
