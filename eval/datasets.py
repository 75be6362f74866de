"""The public QA sets in ../shared/datasets, read in place (never copied), as documents, questions and a
scorer each.

- realtimeqa: the 112 dev questions whose gold article is in the corpus, over all 3,789 articles (a sample
  of N: their gold articles and 20 N others, at most 500); right when the answer contains the gold choice
  and no other choice. The other 247 dev questions are left out: RealTimeQA marks them has_gold_doc false
  (the article that answers them is not in the corpus), so an answer to them could only be right by luck
  and a refusal could not be told from a miss; the 112 also give gold-article hits and citation support.
  The articles are read with rag.sources.read_jsonl, as `rag ingest --jsonl corpus.jsonl.gz` reads them,
  so an index built that way has the same document ids and can be passed with `--index`.
- realtimeqa_2026: 288 news questions of 2026 over the 2,022 web pages a search engine returned for them
  (navigation text, live blogs, several stories a page). 248 are answerable (right as for realtimeqa);
  the 40 asked in 2024 have their answer nowhere in the corpus and must be refused. A sample of N indexes
  the pages that state a sampled question's gold choice (at most 5 a question, those sharing most words
  with it) and 20 N others, at most 500: the same shape as realtimeqa's sample.
- multihop_rag_500: 500 questions over the 326 articles (evidence sentences only; each title carries its
  publisher, which the questions name); right when the answer contains the gold answer; the 71 answered
  "Insufficient information." must be refused.
- squad2_500: 500 questions over the paragraphs, 258 unanswerable; SQuAD 2.0 exact match and F1 (an empty
  answer is right for the unanswerable), and whether the answer contains a gold answer.
- rgb_en_fact: 100 questions over each one's true snippets, the same snippets falsified, and distractors;
  scored as true value only, flags the conflict (both values), or repeats the falsified value only.

A sample (`--limit N`) takes the first N questions in an order fixed by a hash of their ids, so it is the
same sample every run and spread over the whole set.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.labels import Label
from eval.metrics import normalise
from rag.config import repo_root
from rag.errors import UsageError
from rag.sources import read_jsonl
from rag.types import Document

NAMES = ("realtimeqa", "realtimeqa_2026", "multihop_rag_500", "squad2_500", "rgb_en_fact")
REFUSAL_ANSWER = "insufficient information"
# Articles indexed beside the gold ones in a sample run: enough that retrieval must choose, few enough that
# a CI sample ingests in seconds.
RTQA_DISTRACTORS_PER_QUESTION = 20
RTQA_MAX_DISTRACTORS = 500

Scorer = Callable[[Label, dict[str, Any]], tuple[dict[str, float | None], bool]]


@dataclass
class PublicSet:
    name: str
    documents: list[Document]
    items: list[Label]
    score: Scorer  # (label, answer JSON) -> (scores, passed)
    note: str = ""


def datasets_dir() -> Path:
    return repo_root().parent / "shared" / "datasets"


def _stable_order(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())


def _sample(items: list[Label], limit: int | None) -> list[Label]:
    if limit is None:
        return items
    by_id = {it.id: it for it in items}
    return [by_id[i] for i in _stable_order(by_id)[:limit]]


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _qrels(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        q, d, *_ = line.split("\t")
        out.setdefault(q, []).append(d)
    return out


# --- matching answers --------------------------------------------------------------------------------
def contains(answer: str, phrase: str) -> bool:
    """Whether the normalised answer contains the normalised phrase as whole words."""
    p = normalise(phrase).strip(" \"'.,;:!?")
    if not p:
        return False
    return re.search(r"(?<!\w)" + re.escape(p) + r"(?!\w)", normalise(answer)) is not None


def _squad_tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = normalise(text)
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def exact_match(prediction: str, gold: str) -> float:
    return float(_squad_tokens(prediction) == _squad_tokens(gold))


def f1(prediction: str, gold: str) -> float:
    p, g = _squad_tokens(prediction), _squad_tokens(gold)
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def answer_text(ans: dict[str, Any]) -> str:
    """The answer as a prediction: empty for a refusal."""
    return "" if ans.get("abstained") else normalise(ans.get("answer", ""))


# --- the sets ----------------------------------------------------------------------------------------
def _quiz(q: dict[str, Any], kind: str, gold_docs: tuple[str, ...]) -> Label:
    """A RealTimeQA question: its choices and gold answers ride along for the scorer."""
    return Label(id=q["_id"], type=kind, question=q["question"], gold_docs=gold_docs,
                 extra={"choices": q["choices"], "answers": q["answers"],
                        "question_date": q.get("question_date", "")})


def realtimeqa(root: Path, limit: int | None) -> PublicSet:
    qrels = _qrels(root / "qrels_dev.tsv")
    items = []
    for q in _jsonl(root / "queries_dev.jsonl"):
        if q["_id"] in qrels:
            items.append(_quiz(q, "news_quiz", tuple(qrels[q["_id"]])))
    items = _sample(items, limit)
    docs = list(read_jsonl(root / "corpus.jsonl.gz", skipped=[]))
    note = f"all {len(docs)} articles indexed"
    if limit is not None:
        gold = {d for it in items for d in it.gold_docs}
        others = _stable_order(d.source for d in docs if d.source not in gold)
        others = others[: min(RTQA_DISTRACTORS_PER_QUESTION * limit, RTQA_MAX_DISTRACTORS)]
        keep = gold | set(others)
        docs = [d for d in docs if d.source in keep]
        note = f"{len(docs)} articles indexed: the sample's gold articles and {len(others)} others"

    return PublicSet("realtimeqa", docs, items, _choice_scorer, note)


def _choice_scorer(label: Label, ans: dict[str, Any]) -> tuple[dict[str, float | None], bool]:
    """Right when the answer contains a gold choice and no other choice; an unanswerable one must be refused."""
    if not label.answerable:
        return {"choice_accuracy": None}, bool(ans.get("abstained"))
    text = answer_text(ans)
    gold = [c for c in label.extra["choices"] if c in label.extra["answers"]]
    wrong = [c for c in label.extra["choices"] if c not in label.extra["answers"]]
    right = any(contains(text, c) for c in gold) and not any(contains(text, c) for c in wrong)
    return {"choice_accuracy": float(right)}, right


def gold_strings(label: Label) -> list[str]:
    """The strings whose presence in a retrieved passage counts as the answer being retrieved."""
    return [c for c in label.extra.get("choices", []) if c in label.extra.get("answers", [])]


GOLD_PAGES_PER_QUESTION = 5


def realtimeqa_2026(root: Path, limit: int | None) -> PublicSet:
    items = []
    for q in _jsonl(root / "queries.jsonl"):
        items.append(_quiz(q, "news_quiz" if q["answerable"] else "unanswerable", ()))
    items = _sample(items, limit)
    docs = list(read_jsonl(root / "corpus.jsonl.gz", skipped=[]))
    note = f"all {len(docs)} pages indexed"
    if limit is not None:
        keep: set[str] = set()
        texts = {d.source: normalise(d.text) for d in docs}  # once: 19.5 M characters
        words = {src: set(re.findall(r"\w{4,}", t)) for src, t in texts.items()}
        for it in items:
            golds = [normalise(g) for g in gold_strings(it)] if it.answerable else []
            stating = [src for src, t in texts.items() if any(g in t for g in golds)]
            stating = [src for src in stating if any(contains(texts[src], g) for g in golds)]
            asked = set(re.findall(r"\w{4,}", normalise(it.question)))
            stating.sort(key=lambda src: -len(asked & words[src]))
            keep |= set(stating[:GOLD_PAGES_PER_QUESTION])
        others = _stable_order(d.source for d in docs if d.source not in keep)
        others = others[: min(RTQA_DISTRACTORS_PER_QUESTION * limit, RTQA_MAX_DISTRACTORS)]
        gold_n = len(keep)
        keep |= set(others)
        docs = [d for d in docs if d.source in keep]
        note = f"{len(docs)} pages indexed: {gold_n} stating a sampled question's answer and {len(others)} others"
    return PublicSet("realtimeqa_2026", docs, items, _choice_scorer, note)


def multihop(root: Path, limit: int | None) -> PublicSet:
    items = []
    for q in _jsonl(root / "queries.jsonl"):
        refuse = normalise(q["answer"]).rstrip(".") == REFUSAL_ANSWER
        items.append(Label(id=f"mhr-{q['_id']}", type="unanswerable" if refuse else q["question_type"],
                           question=q["question"], gold_docs=tuple(q.get("gold_article_ids") or ()),
                           extra={"answer": q["answer"]}))
    items = _sample(items, limit)
    docs = []
    for a in _jsonl(root / "articles.jsonl"):
        # The questions name articles by publisher ("the TechCrunch article"): the title carries it, as a
        # news site's page title does.
        title = " - ".join(p for p in (a.get("title") or "", a.get("source") or "") if p)
        docs.append(Document(source=a["_id"], text=a["text"], title=title,
                             url=a.get("url") or "", publish_date=(a.get("published_at") or "")[:10]))

    def score(label: Label, ans: dict[str, Any]) -> tuple[dict[str, float | None], bool]:
        if not label.answerable:
            return {"answer_contained": None}, bool(ans.get("abstained"))
        hit = contains(answer_text(ans), label.extra["answer"])
        return {"answer_contained": float(hit)}, hit

    return PublicSet("multihop_rag_500", docs, items, score, f"{len(docs)} articles (evidence sentences only)")


def squad2(root: Path, limit: int | None) -> PublicSet:
    items = []
    for q in _jsonl(root / "queries.jsonl"):
        items.append(Label(id=q["_id"], type="unanswerable" if q["is_impossible"] else "answerable",
                           question=q["question"].strip(), gold_docs=(q["gold_context_id"],),
                           extra={"answers": q["answers"]}))
    items = _sample(items, limit)
    docs = [Document(source=c["_id"], text=c["text"], title=c.get("title") or "")
            for c in _jsonl(root / "corpus.jsonl")]

    def score(label: Label, ans: dict[str, Any]) -> tuple[dict[str, float | None], bool]:
        pred = answer_text(ans)
        golds = label.extra["answers"] or [""]
        em = max(exact_match(pred, g) for g in golds)
        f = max(f1(pred, g) for g in golds)
        contained = None
        if label.answerable:
            contained = float(any(contains(pred, g) for g in golds))
            return {"exact_match": em, "f1": f, "answer_contained": contained}, bool(contained)
        return {"exact_match": em, "f1": f, "answer_contained": None}, bool(ans.get("abstained"))

    return PublicSet("squad2_500", docs, items, score, f"{len(docs)} paragraphs")


def _flat(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [s for v in value for s in _flat(v)]


def rgb_fact(root: Path, limit: int | None) -> PublicSet:
    items, docs_by_item = [], {}
    for q in _jsonl(root / "en_fact.jsonl"):
        qid = f"rgb-{q['id']}"
        true = tuple(f"{qid}-true-{j}" for j in range(len(q["positive"])))
        false = tuple(f"{qid}-false-{j}" for j in range(len(q["positive_wrong"])))
        # two sides, each cited by any of its snippets: conflict coverage asks for both
        items.append(Label(id=qid, type="conflict", question=q["query"], gold_docs=true,
                           extra={"answers": _flat(q["answer"]), "fake": q["fakeanswer"], "sides": [true, false]}))
        docs_by_item[qid] = (
            [Document(source=f"{qid}-true-{j}", text=t) for j, t in enumerate(q["positive"])]
            + [Document(source=f"{qid}-false-{j}", text=t) for j, t in enumerate(q["positive_wrong"])]
            + [Document(source=f"{qid}-other-{j}", text=t) for j, t in enumerate(q["negative"])]
        )
    items = _sample(items, limit)
    docs = [d for it in items for d in docs_by_item[it.id] if d.text.strip()]

    def score(label: Label, ans: dict[str, Any]) -> tuple[dict[str, float | None], bool]:
        text = answer_text(ans)
        true = any(contains(text, a) for a in label.extra["answers"])
        fake = contains(text, label.extra["fake"])
        flagged = (true and fake) or bool(ans.get("conflict"))
        return ({"true_value_only": float(true and not fake), "flags_conflict": float(flagged),
                 "repeats_false_value": float(fake and not true)}, true)

    return PublicSet("rgb_en_fact", docs, items, score,
                     f"{len(docs)} snippets: each question's true, falsified and distracting snippets")


LOADERS = {"realtimeqa": realtimeqa, "realtimeqa_2026": realtimeqa_2026, "multihop_rag_500": multihop,
           "squad2_500": squad2, "rgb_en_fact": rgb_fact}


def load(name: str, limit: int | None = None, root: Path | None = None, *, all_documents: bool = False) -> PublicSet:
    """The named public set, sampled to `limit` questions; UsageError for an unknown name or a missing folder."""
    if name not in LOADERS:
        raise UsageError(f"unknown dataset {name!r}; use one of {', '.join(NAMES)} or all")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit} is out of range; use 1 or more")
    folder = (root or datasets_dir()) / name
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such dataset folder; the public sets live in ../shared/datasets")
    data = LOADERS[name](folder, limit)
    if all_documents and limit is not None:  # the sample's questions over the whole set's documents
        whole = LOADERS[name](folder, None)
        data.documents, data.note = whole.documents, whole.note
    return data
