"""The hand-labeled questions (eval/labels.yaml) and the gates (eval/gates.yaml), read and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rag.errors import UsageError

EVAL_DIR = Path(__file__).resolve().parent
LABELS = EVAL_DIR / "labels.yaml"
GATES = EVAL_DIR / "gates.yaml"
TYPES = ("single", "multi_fact", "both_docs", "conflict", "unanswerable", "paraphrase", "misspelling", "followup",
         "list", "comparison", "overview", "lower_case", "capital")


@dataclass(frozen=True)
class Gold:
    """A passage that supports the answer: each of `quotes` (alternatives saying the same thing) occurs
    verbatim in document `doc`; citing any of them covers this gold passage."""

    doc: str
    quotes: tuple[str, ...]


@dataclass(frozen=True)
class Label:
    id: str
    type: str
    question: str
    facts: tuple[str, ...] = ()
    gold: tuple[Gold, ...] = ()
    history: tuple[dict[str, str], ...] = ()
    # For the public sets: gold document ids (sources) instead of quotes, and the dataset's own scoring.
    gold_docs: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def load_labels(path: Path = LABELS) -> list[Label]:
    """The labels in `path`; UsageError naming the entry when one is malformed."""
    raw = _read_yaml(path, "labels")
    if not isinstance(raw, list):
        raise UsageError(f"{path}: expected a list of questions")
    out, seen = [], set()
    for i, rec in enumerate(raw, 1):
        where = f"{path.name} entry {i} ({rec.get('id', '?') if isinstance(rec, dict) else '?'})"
        if not isinstance(rec, dict) or not rec.get("id") or not rec.get("question"):
            raise UsageError(f"{where}: needs an id and a question")
        if rec["id"] in seen:
            raise UsageError(f"{where}: the id is used twice")
        seen.add(rec["id"])
        if rec.get("type") not in TYPES:
            raise UsageError(f"{where}: type must be one of {', '.join(TYPES)}")
        facts = tuple(rec.get("facts") or ())
        for f in facts:
            try:
                re.compile(f)
            except re.error as e:
                raise UsageError(f"{where}: fact {f!r} is not a valid pattern ({e})") from None
        gold = []
        for g in rec.get("gold") or ():
            quotes = g.get("quote") if isinstance(g, dict) else None
            quotes = [quotes] if isinstance(quotes, str) else quotes
            if not (isinstance(g, dict) and isinstance(g.get("doc"), str) and quotes
                    and all(isinstance(q, str) and q for q in quotes)):
                raise UsageError(f"{where}: each gold passage needs a doc and a quote (or a list of quotes)")
            gold.append(Gold(g["doc"], tuple(quotes)))
        if rec["type"] == "unanswerable" and (facts or gold):
            raise UsageError(f"{where}: an unanswerable question has no facts and no gold passages")
        if rec["type"] != "unanswerable" and not (facts and gold):
            raise UsageError(f"{where}: an answerable question needs facts and gold passages")
        out.append(Label(id=rec["id"], type=rec["type"], question=rec["question"], facts=facts, gold=tuple(gold),
                         history=tuple(rec.get("history") or ())))
    return out


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"{path}: cannot read the {what} ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"{path}{where}: the {what} are not valid YAML ({problem}); fix the file") from None


def gold_spans(gold: Gold, text: str) -> list[tuple[int, int]]:
    """Every (start, end) where one of the gold quotes occurs in the document's text."""
    spans = []
    for quote in gold.quotes:
        at = text.find(quote)
        while at >= 0:
            spans.append((at, at + len(quote)))
            at = text.find(quote, at + 1)
    return spans


def load_gates(path: Path = GATES) -> dict[str, Any]:
    """The gate thresholds: {suite: {answerer: {metric: {min|max: value}, must_pass: [ids]}}}."""
    raw = _read_yaml(path, "gates") or {}
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a mapping of suites to gates")
    return raw
