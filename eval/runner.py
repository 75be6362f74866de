"""`rag eval`: ask every labeled question, score the answers, write the reports, apply the gates.

    labels (eval/labels.yaml) or a public set (eval/datasets.py)
      -> an index: corpus/ ingested into its own index, or the public set's documents into one kept per set
      -> Service.ask for each question (with its history), for each answerer asked for
      -> eval/metrics.py per question, then per type and overall
      -> reports/eval-<suite>.md, .json, .png, and a summary table on standard output
      -> eval/gates.yaml: exit code 1 when a gate fails
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eval import datasets
from eval.judge import ExactFirst, build_judge
from eval.labels import Label, gold_spans, load_gates, load_labels
from eval.metrics import citation_problems, citation_support, fact_hits, gold_coverage, summarise
from eval.report import print_table, write_reports
from rag.config import Settings, repo_root
from rag.errors import RagError, UsageError
from rag.ingest import IngestSummary
from rag.llm import ChatModels
from rag.service import ANSWERERS, Service

WHOLE_DOCUMENT = (0, 1 << 62)
GoldSpans = list[dict[str, list[tuple[int, int]]]]


def score_answer(
    label: Label,
    ans: dict[str, Any],
    *,
    doc_text: Callable[[str], str],
    gold: GoldSpans,
    judge: ExactFirst,
    public_score: datasets.Scorer | None = None,
) -> dict[str, Any]:
    """One question's row: what was answered and every metric of it."""
    abstained = bool(ans.get("abstained"))
    cites = ans.get("citations") or []
    hits = fact_hits(ans.get("answer", ""), label.facts) if not abstained else [False] * len(label.facts)
    problems = citation_problems(ans, doc_text)
    quotes = {c["n"]: c["quote"] for c in cites}
    support = citation_support(ans["answer"], quotes, judge.is_supported) if not abstained else None
    covered = gold_coverage(cites, gold) if gold else []
    row: dict[str, Any] = {
        "id": label.id,
        "type": label.type,
        "question": label.question,
        "answer": ans.get("answer", ""),
        "abstained": abstained,
        "answerable": label.answerable,
        "facts": list(label.facts),
        "fact_hits": hits,
        "fact_recall": (sum(hits) / len(hits)) if hits else None,
        "citation_problems": problems,
        "support": vars(support) if support else {"sentences": 0, "supported": 0, "citations": 0, "relevant": 0},
        "gold_hit": (any(covered) if covered else None) if label.answerable else None,
        "gold_recall": (sum(covered) / len(covered) if covered else None) if label.answerable else None,
        "conflict_covered": all(covered) if (label.type == "conflict" and covered) else None,
        "citations": [{k: c[k] for k in ("n", "source", "start", "end")} for c in cites],
        "total_ms": (ans.get("timings") or {}).get("total_ms", 0),
        # question to first answer text shown (Service.ask_stream); the whole answer when nothing streams
        "first_token_ms": (ans.get("timings") or {}).get("first_token_ms",
                                                         (ans.get("timings") or {}).get("total_ms", 0)),
        "rewritten_question": ans.get("rewritten_question"),
        "error": ans.get("error"),
    }
    refusal = (ans.get("trace") or {}).get("refusal_reason")
    verdict = ((ans.get("trace") or {}).get("answerable") or {}).get("verdict")
    if verdict is not None:  # the model's P(the passages answer): what a refusal threshold is calibrated on
        row["verdict"] = verdict
    judged = ((ans.get("trace") or {}).get("judge") or {}).get("best")
    if judged is not None:  # the best judged sentence's P(Yes), which the judge's floor is calibrated on
        row["judge_best"] = judged
    if abstained:
        row["refusal_reason"] = refusal or ""
    if public_score is not None:
        row["scores"], passed = public_score(label, ans)
        strings = datasets.gold_strings(label)
        if strings:
            row["answer_recall"] = float(_stage_holds(ans, "retrieve", strings, doc_text))
        row["lost_at"] = None if passed else lost_at(label, ans, strings, doc_text)
    elif label.answerable:
        passed = not abstained and all(hits)
    else:
        passed = abstained
    row["passed"] = bool(passed and not problems and not row["error"])
    return row


STAGES = ("retrieve", "evidence", "answerable", "write", "verify")


def _spans(ans: dict[str, Any], stage: str) -> list[tuple[str, int, int]]:
    """(doc_id, start, end) of the text a stage of the answer's trace handed on."""
    trace = ans.get("trace") or {}
    if stage == "retrieve":
        out = []
        for h in (trace.get("retrieve") or {}).get("hits", []):
            doc, _, span = h["chunk_id"].rpartition(":")
            start, _, end = span.partition("-")
            out.append((doc, int(start), int(end)))
        return out
    key = "judged" if stage == "judge" else "passages"  # the judge stage hands on the sentences it judged
    return [(p["doc_id"], p["start"], p["end"]) for p in (trace.get(stage) or {}).get(key, [])]


def _stage_holds(ans: dict[str, Any], stage: str, strings: Sequence[str], doc_text: Callable[[str], str]) -> bool:
    text = " ".join(doc_text(d)[s:e] for d, s, e in _spans(ans, stage))
    return any(datasets.contains(text, g) for g in strings)


def lost_at(label: Label, ans: dict[str, Any], strings: Sequence[str], doc_text: Callable[[str], str]) -> str:
    """The stage that lost a question the answer got wrong: where the gold string was last seen, or for a
    question to refuse, the stage that let it through."""
    trace = ans.get("trace") or {}
    decided = "answerable" in trace or "judge" in trace  # the verdict, or the judge of the best sentences
    if not label.answerable:
        return "answerable" if decided else "evidence"
    if not _stage_holds(ans, "retrieve", strings, doc_text):
        return "retrieve"
    if "passages" in (trace.get("evidence") or {}) and not _stage_holds(ans, "evidence", strings, doc_text):
        return "evidence"
    if ans.get("abstained"):
        if "answerable" not in trace and "judge" in trace:  # refused by the judge: was the answer judged?
            return "answerable" if _stage_holds(ans, "judge", strings, doc_text) else "evidence"
        return "answerable" if decided else "evidence"
    write = (trace.get("write") or {}).get("text")
    if write is None:
        return "evidence"  # an extractive answer: its quotes are the selection
    if not any(datasets.contains(write, g) for g in strings):
        return "write"
    return "verify"


def ask_all(svc: Service, items: Sequence[Label], *, judge: ExactFirst, gold_for: Callable[[Label], GoldSpans],
            public_score: datasets.Scorer | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Ask each question and score the answer; a question the service rejects is a failed row."""
    rows = []
    for i, label in enumerate(items, 1):
        try:
            ans = svc.ask(label.question, history=[dict(t) for t in label.history] or None).to_json()
        except RagError as e:
            ans = {"question": label.question, "answer": "", "abstained": False, "citations": [],
                   "timings": {}, "error": str(e)}
        rows.append(score_answer(label, ans, doc_text=svc.doc_text, gold=gold_for(label), judge=judge,
                                 public_score=public_score))
        if progress:
            print(f"\r  {i}/{len(items)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return rows


def by_type(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    types = sorted({r["type"] for r in rows})
    return {t: summarise([r for r in rows if r["type"] == t]) for t in types}


# --- gates --------------------------------------------------------------------------------------------
def check_gates(summary: dict[str, Any], rows: Sequence[dict[str, Any]], gates: dict[str, Any] | None) -> list[str]:
    """What failed (empty: the run passes). `gates`: {min: {metric: v}, max: {metric: v}, must_pass: [ids]}."""
    if not gates:
        return []
    failed = []
    for metric, floor in (gates.get("min") or {}).items():
        value = summary.get(metric)
        if value is None or value < floor:
            failed.append(f"{metric} {_fmt(value)} < {floor}")
    for metric, ceiling in (gates.get("max") or {}).items():
        value = summary.get(metric)
        if value is None or value > ceiling:
            failed.append(f"{metric} {_fmt(value)} > {ceiling}")
    by_id = {r["id"]: r for r in rows}
    for qid in gates.get("must_pass") or ():
        r = by_id.get(qid)
        if r is None:
            failed.append(f"must_pass: {qid} was not asked (is it still in labels.yaml?)")
        elif not r["passed"]:
            failed.append(f"must_pass: {qid} failed: {_why(r)}")
    return failed


def _why(r: dict[str, Any]) -> str:
    if r.get("error"):
        return r["error"]
    if r["citation_problems"]:
        return "; ".join(r["citation_problems"])
    if not r["answerable"]:
        return "answered a question the corpus does not answer"
    if r["abstained"]:
        return "refused"
    missing = [f for f, h in zip(r["facts"], r["fact_hits"], strict=True) if not h]
    return f"the answer lacks {', '.join(repr(m) for m in missing)}"


def _fmt(v: Any) -> str:
    return "not measured" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def gates_for(all_gates: dict[str, Any], suite: str, answerer: str) -> dict[str, Any] | None:
    section = all_gates.get("labeled" if suite == "labeled" else "public") or {}
    return section.get(answerer) or section.get("any")


# --- runs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalOptions:
    """What `rag eval` was asked to do (the CLI builds it from its flags; None: the setting or default)."""

    dataset: str | None = None  # a public set in ../shared/datasets, "all", or None for the labeled suite
    limit: int | None = None  # questions sampled from the public set
    all_documents: bool = False  # with `limit`: index the whole set's documents, not a sample of them
    compare: bool = False  # run extractive and generative side by side
    judge: str = "auto"  # citation support judge: auto, llm or lexical
    reports: Path | None = None  # where reports go (default: reports/)
    json: bool = False  # print the summary as JSON
    corpus: Path | None = None
    index: Path | None = None
    answerer: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvalOptions:
        """The options from parsed `rag eval` flags (those absent keep their defaults)."""
        given = vars(args)
        return cls(**{f.name: given[f.name] for f in fields(cls) if given.get(f.name) is not None})


def _settings(opts: EvalOptions, **over: Any) -> Settings:
    return Settings.from_env(**{"corpus": opts.corpus, "index": opts.index, "answerer": opts.answerer, **over})


def _services(settings: Settings, answerers: Sequence[str], models: ChatModels, *,
              own_cache: bool = False) -> list[Service]:
    """One Service per answerer, sharing the embedder, the index and the run's chat models; an answerer
    that falls back to another one already in the list is dropped, with the Service's notice on standard
    error. `own_cache`: the index folder is the eval's own, emptied first if made with other settings."""
    first = Service(settings.replace(answerer=answerers[0]), models=models)
    if own_cache:
        first.reset_if_built_otherwise()
    out = [first] + [first.for_answerer(name) for name in answerers[1:]]
    kept, names = [], set()
    for svc in out:
        actual = svc.answerer.name
        if actual not in names:
            kept.append(svc)
            names.add(actual)
    return kept


def _answerers(opts: EvalOptions, settings: Settings) -> list[str]:
    return list(ANSWERERS) if opts.compare else [settings.answerer]


LABELED_CACHE = repo_root() / ".rag" / "eval" / "labeled"


def _labeled_index(opts: EvalOptions) -> Path:
    """The labeled suite gets its own index (beside the default one) unless one is named: whatever else
    was ingested into the default index must not change the figures."""
    settings = _settings(opts)
    if "index" in settings.model_fields_set:  # by --index or RAG_INDEX
        return settings.index
    return LABELED_CACHE


def run_labeled(opts: EvalOptions, judge: ExactFirst, models: ChatModels) -> tuple[str, list[dict[str, Any]]]:
    labels = load_labels()
    settings = _settings(opts, index=_labeled_index(opts))
    services = _services(settings, _answerers(opts, settings), models, own_cache=settings.index == LABELED_CACHE)
    summary = services[0].ingest()
    texts = {d["source"]: services[0].show(d["source"]) for d in services[0].documents()}

    def gold_for(label: Label) -> GoldSpans:
        return [{g.doc: gold_spans(g, texts.get(g.doc, ""))} for g in label.gold]

    runs = []
    for svc in services:
        t0, judge.exact, judge.judged = time.perf_counter(), 0, 0  # judge counts are per run
        rows = ask_all(svc, labels, judge=judge, gold_for=gold_for, progress=sys.stderr.isatty())
        runs.append(_run_record("labeled", svc, rows, judge, time.perf_counter() - t0,
                                note=f"corpus {settings.corpus} ({summary.line()})"))
    return "labeled", runs


def public_index(opts: EvalOptions, name: str) -> Path:
    """Where a public set is indexed. Kept between runs, so that a re-run embeds only what changed:
    `--index DIR` for one set (`DIR/NAME` with `--dataset all`), else `.rag/eval/NAME` for the whole set
    and `.rag/eval/NAME-sample` for a `--limit` sample (a sample of RealTimeQA indexes fewer articles, and
    sharing one folder would re-embed the difference at every switch)."""
    if opts.index is not None:
        return Path(opts.index) / name if opts.dataset == "all" else Path(opts.index)
    sample = opts.limit is not None and not opts.all_documents
    folder = f"{name}-sample" if sample else name
    return repo_root() / ".rag" / "eval" / folder


def index_public_set(svc: Service, data: datasets.PublicSet, *, own: bool) -> IngestSummary:
    """Bring the service's index up to the set's documents: unchanged ones embed nothing, documents that are
    not in the set are removed. `own`: the folder is the eval's cache, rebuilt if made with other settings
    (chunking, model); a folder the user named is never dropped (a mismatch is an error saying so)."""
    if own:
        svc.reset_if_built_otherwise()
    return svc.ingest_documents(data.documents, prune=lambda source: True)


def run_public(opts: EvalOptions, name: str, judge: ExactFirst, models: ChatModels) -> list[dict[str, Any]]:
    data = datasets.load(name, opts.limit, all_documents=opts.all_documents)
    index = public_index(opts, name)
    # corpus: a folder that is never read (the documents come from the set), so no file is touched
    settings = _settings(opts, index=index, corpus=index / "no-corpus")
    own = opts.index is None
    services = _services(settings, _answerers(opts, settings), models, own_cache=own)
    ingested = index_public_set(services[0], data, own=own)

    def gold_for(label: Label) -> GoldSpans:
        sides = label.extra.get("sides") or [[d] for d in label.gold_docs]
        return [dict.fromkeys(side, [WHOLE_DOCUMENT]) for side in sides]

    runs = []
    for svc in services:
        t0, judge.exact, judge.judged = time.perf_counter(), 0, 0  # judge counts are per run
        rows = ask_all(svc, data.items, judge=judge, gold_for=gold_for, public_score=data.score,
                       progress=sys.stderr.isatty())
        runs.append(_run_record(name, svc, rows, judge, time.perf_counter() - t0,
                                note=f"{data.note}; index {index}: {ingested.line()}"))
    return runs


def _run_record(suite: str, svc: Service, rows: list[dict[str, Any]], judge: ExactFirst, seconds: float,
                note: str) -> dict[str, Any]:
    return {"suite": suite, "answerer": svc.answerer.name, "judge": judge.name, "note": note,
            "seconds": round(seconds, 1), "summary": summarise(rows), "by_type": by_type(rows), "rows": rows,
            "judge_calls": {"verbatim": judge.exact, "judged": judge.judged}}


def main(opts: EvalOptions) -> int:
    """Run the suite(s) the options name; 0 when every gate passes, 1 when one fails."""
    dataset = opts.dataset
    if dataset is None and opts.limit is not None:
        raise UsageError("--limit applies to a public set; give --dataset NAME too")
    names = list(datasets.NAMES) if dataset == "all" else [dataset] if dataset else []
    for n in names:
        if n not in datasets.NAMES:
            raise UsageError(f"unknown dataset {n!r}; use one of {', '.join(datasets.NAMES)} or all")
    gates = load_gates()
    models = ChatModels()  # the run's: its generative answerers and the LLM judge share one loaded model
    judge = build_judge(opts.judge, _settings(opts), models)
    runs: list[dict[str, Any]] = []
    if not names:
        suite, runs = run_labeled(opts, judge, models)
    else:
        suite = "public" if dataset == "all" else dataset
        for n in names:
            runs += run_public(opts, n, judge, models)
    for run in runs:
        run["gates_failed"] = check_gates(run["summary"], run["rows"], gates_for(gates, run["suite"],
                                                                                   run["answerer"]))
        run["gated"] = gates_for(gates, run["suite"], run["answerer"]) is not None
    out_dir = Path(opts.reports or repo_root() / "reports")
    payload = {"suite": suite, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "runs": runs}
    paths = write_reports(out_dir, f"eval-{suite}", payload)
    if opts.json:
        print(json.dumps({"suite": suite, "passed": not any(r["gates_failed"] for r in runs),
                          "runs": [{k: r[k] for k in ("suite", "answerer", "judge", "summary", "gates_failed")}
                                   for r in runs], "reports": [str(p) for p in paths]}))
    else:
        print_table(runs)
        for p in paths:
            print(f"report: {p}")
    for r in runs:
        if not r["gated"]:
            print(f"rag eval: eval/gates.yaml sets no gates for {r['suite']} with the {r['answerer']} answerer; "
                  "its figures are reported, not gated", file=sys.stderr)
    failed = [(r, f) for r in runs for f in r["gates_failed"]]
    for r, f in failed:
        print(f"rag eval: gate failed ({r['suite']}, {r['answerer']}): {f}", file=sys.stderr)
    return 1 if failed else 0
