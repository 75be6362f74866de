"""Metrics for one answer and for a run: facts, citations (valid, supported, on gold), refusals, latency.

Each function takes plain data (the answer's JSON form, the document texts) so the public sets and the
hand-labeled set share them, and unit tests need no index.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rag.answer.base import MARKER
from rag.text import sentence_spans

_DASHES = dict.fromkeys(map(ord, "‐‑‒–—―−"), "-")
_QUOTES = {ord("’"): "'", ord("‘"): "'", ord("“"): '"', ord("”"): '"'}
# A cited title or list item has no end punctuation: its [n] marker ends it when a capital follows.
_AFTER_MARKER = re.compile(r"(?<=\[\d\])\s+(?=[A-Z\"“])|(?<=\[\d\d\])\s+(?=[A-Z\"“])")


def normalise(text: str) -> str:
    """Lower case, straight quotes, plain dashes, single spaces, no [n] markers: what facts match against."""
    text = unicodedata.normalize("NFKC", MARKER.sub("", text)).translate(_DASHES).translate(_QUOTES)
    return re.sub(r"\s+", " ", text).strip().lower()


def fact_hits(answer: str, facts: Sequence[str]) -> list[bool]:
    """For each fact pattern, whether the answer states it."""
    text = normalise(answer)
    return [re.search(f, text, re.I) is not None for f in facts]


def citation_problems(ans: dict[str, Any], doc_text: Callable[[str], str]) -> list[str]:
    """What is wrong with the answer's citations (empty when they are valid): every quote is exactly
    text[start:end] of its document, and markers and citations match one to one."""
    problems = []
    cites = ans.get("citations") or []
    numbers = [c["n"] for c in cites]
    if len(set(numbers)) != len(numbers):
        problems.append(f"citation numbers repeat: {numbers}")
    markers = {int(m) for m in MARKER.findall(ans.get("answer", ""))}
    if markers - set(numbers):
        problems.append(f"markers without a citation: {sorted(markers - set(numbers))}")
    if set(numbers) - markers:
        problems.append(f"citations never marked: {sorted(set(numbers) - markers)}")
    if ans.get("abstained") and cites:
        problems.append("a refusal carries citations")
    for c in cites:
        try:
            text = doc_text(c["doc_id"])
        except Exception as e:  # noqa: BLE001 - an unknown document is a finding, not a crash
            problems.append(f"[{c['n']}] cites an unknown document {c['doc_id']}: {e}")
            continue
        if not (0 <= c["start"] < c["end"] <= len(text)) or text[c["start"]:c["end"]] != c["quote"]:
            problems.append(f"[{c['n']}] quote is not text[{c['start']}:{c['end']}] of {c['source']}")
    return problems


def sentences_with_markers(answer: str) -> list[tuple[str, list[int]]]:
    """The answer's sentences, each with the citation numbers it carries."""
    out = []
    for piece in _AFTER_MARKER.split(answer.strip()):
        for start, end in sentence_spans(piece):  # the pipeline's splitter: it knows "U.S." and "Gen."
            s = piece[start:end]
            out.append((s, [int(m) for m in MARKER.findall(s)]))
    return out


@dataclass
class Support:
    """ALCE citation recall and precision counts for one answer."""

    sentences: int = 0
    supported: int = 0
    citations: int = 0
    relevant: int = 0

    @property
    def recall(self) -> float | None:
        return self.supported / self.sentences if self.sentences else None

    @property
    def precision(self) -> float | None:
        return self.relevant / self.citations if self.citations else None


def citation_support(answer: str, quotes: dict[int, str], is_supported: Callable[[str, str], bool]) -> Support:
    """ALCE: a sentence is supported when the passages it cites, together, support it (a sentence citing
    nothing is not); a citation is relevant when its sentence is supported and either it supports the
    sentence alone or the other citations without it do not."""
    out = Support()
    for sentence, numbers in sentences_with_markers(answer):
        numbers = [n for n in dict.fromkeys(numbers) if n in quotes]
        out.sentences += 1
        out.citations += len(numbers)
        if not numbers:
            continue
        joint = " ".join(quotes[n] for n in numbers)
        if not is_supported(sentence, joint):
            continue
        out.supported += 1
        if len(numbers) == 1:
            out.relevant += 1
            continue
        for n in numbers:
            rest = " ".join(quotes[m] for m in numbers if m != n)
            if is_supported(sentence, quotes[n]) or not is_supported(sentence, rest):
                out.relevant += 1
    return out


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def gold_coverage(citations: Sequence[dict[str, Any]], gold: Sequence[dict[str, list[tuple[int, int]]]]) -> list[bool]:
    """For each gold passage (its spans by source), whether a citation overlaps it."""
    out = []
    for g in gold:
        out.append(any(overlaps((c["start"], c["end"]), span)
                       for c in citations for span in g.get(c["source"], ())))
    return out


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between ranks; None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: Iterable[float | None]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Run-level metrics from per-question rows (see runner.score_answer for their keys)."""
    answerable = [r for r in rows if r["answerable"]]
    refused = [r for r in rows if r["abstained"]]
    support = [r["support"] for r in rows if not r["abstained"]]
    cites = sum(s["citations"] for s in support)
    sentences = sum(s["sentences"] for s in support)
    conflict = [r for r in rows if r.get("type") == "conflict"]
    out: dict[str, Any] = {
        "questions": len(rows),
        "passed": ratio(sum(r["passed"] for r in rows), len(rows)),
        "fact_recall": mean(r["fact_recall"] for r in answerable),
        "citation_validity": ratio(sum(not r["citation_problems"] for r in rows), len(rows)),
        "citation_recall": ratio(sum(s["supported"] for s in support), sentences),
        "citation_precision": ratio(sum(s["relevant"] for s in support), cites),
        "gold_hit": mean(r["gold_hit"] for r in answerable if r.get("gold_hit") is not None),
        "gold_recall": mean(r["gold_recall"] for r in answerable if r.get("gold_recall") is not None),
        "abstention_precision": ratio(sum(not r["answerable"] for r in refused), len(refused)),
        "abstention_recall": ratio(sum(r["abstained"] for r in rows if not r["answerable"]),
                                   sum(not r["answerable"] for r in rows)),
        "false_refusals": ratio(sum(r["abstained"] for r in answerable), len(answerable)),
        "conflict_coverage": ratio(sum(bool(r.get("conflict_covered")) for r in conflict), len(conflict)),
        "latency_p50_ms": percentile((r["total_ms"] for r in rows), 50),
        "latency_p95_ms": percentile((r["total_ms"] for r in rows), 95),
        "first_token_p50_ms": percentile((r.get("first_token_ms", r["total_ms"]) for r in rows), 50),
        "first_token_p95_ms": percentile((r.get("first_token_ms", r["total_ms"]) for r in rows), 95),
    }
    recall = [r["answer_recall"] for r in rows if r.get("answer_recall") is not None]
    if recall:
        out["answer_recall"] = mean(recall)
    lost = [r["lost_at"] for r in rows if r.get("lost_at")]
    if any("lost_at" in r for r in rows):
        for stage in ("retrieve", "evidence", "answerable", "write", "verify"):
            out[f"lost_at_{stage}"] = ratio(sum(s == stage for s in lost), len(rows))
    # dataset-specific scores (exact match, F1, choice accuracy, conflict flags) average the same way
    extra_keys = sorted({k for r in rows for k in r.get("scores", {})})
    for k in extra_keys:
        out[k] = mean(r["scores"].get(k) for r in rows)
    return out
