"""Should the generative answerer refuse? Calibrate its two checks of "do the passages answer the question"
(a cheap first one, and a second judge asked when the first is unsure) on a public set with unanswerable
questions (SQuAD 2.0), and report how the rule fares on the hand-labeled questions (eval/labels.yaml),
which it was not chosen on.

    nice -n 10 .venv/bin/python -m bench.calibrate_answerable [--limit 200]
    .venv/bin/python -m bench.calibrate_answerable --rows reports/eval-realtimeqa_2026.json [...]

With `--rows`, nothing is asked: the scored rows of earlier runs (a `rag eval` report, or the rows
`bench.ablation --rows` writes) are re-decided with the band's low end raised to each cut in turn. A row
keeps the model's verdict, so this is exact for a low end up to the band's high end: an answer whose
verdict is under the cut would have been refused, and one above it was kept by the same checks.

Only questions whose evidence passes the extractive refusal rules reach the check (the others are refused
before it), so those are the ones scored. The public set is indexed where `rag eval --dataset squad2_500`
keeps it (.rag/eval/squad2_500), so after an eval run nothing is embedded.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from rag.config import Settings, repo_root, set_offline_env


def _scored(gen, svc, items) -> list[tuple[float, float, bool]]:  # type: ignore[no-untyped-def]
    """(first check, second judge, answerable) for each question whose evidence reaches the checks."""
    out = []
    for question, answerable in items:
        evidence = gen.evidence(question, svc.search(question), svc.doc_text)
        if evidence:
            second = gen.judge.answers(question, " ".join(e.text for e in evidence))
            out.append((gen.answerability(question, evidence), second, answerable))
    return out


def _line(name: str, scored: list[tuple[float, float, bool]], band: tuple[float, float]) -> str:
    """How the answerer's refusal rule (`answered`) fares with this band."""
    from rag.answer.generative import answered

    asked: list[float] = []
    decided = [(answered(p, band, lambda q=q: asked.append(q) or q), a) for p, q, a in scored]
    kept = sum(ok for ok, a in decided if a)
    refused = sum(not ok for ok, a in decided if not a)
    n_pos = sum(a for _, a in decided)
    return (f"{name}: answerable kept {kept}/{n_pos}, unanswerable refused {refused}/{len(scored) - n_pos}, "
            f"second judge asked {len(asked)}/{len(scored)}")


def _rows_of(path: Path) -> dict[str, list[dict[str, Any]]]:
    """{run name: scored rows} of a `rag eval` report (each answerer's run) or an ablation rows file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return {path.stem: data}
    return {f"{path.stem} {run['answerer']}": run["rows"] for run in data["runs"]}


def _cut(rows: list[dict[str, Any]], cut: float) -> str:
    """The ablation's figures with every answer whose verdict is under `cut` refused."""
    from bench.ablation import figures

    def refused(r: dict[str, Any]) -> bool:
        return bool(r.get("abstained")) or (r.get("verdict") is not None and r["verdict"] < cut)
    redecided = [{**r, "abstained": refused(r), "passed": bool(r["passed"]) and not refused(r)} for r in rows]
    n = sum(bool(r["answerable"]) for r in rows)
    return f"{figures(redecided, labeled=False)}  ({n} answerable, {len(rows) - n} not)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="squad2_500")
    ap.add_argument("--limit", type=int, default=200, help="questions of the public set (fixed sample)")
    ap.add_argument("--rows", type=Path, nargs="+", help="re-decide the rows of earlier runs, asking nothing")
    args = ap.parse_args()
    if args.rows:
        from rag.answer.generative import ANSWERABLE
        cuts = sorted({ANSWERABLE[0], 0.6, 0.65, 0.7, 0.75, 0.8, 0.9})
        print("right / unanswerable refused / answerable refused, refusing verdicts under each cut")
        for path in args.rows:
            for name, rows in _rows_of(path).items():
                for cut in cuts:
                    print(f"{name}  cut {cut:.2f}: {_cut(rows, cut)}")
        return
    set_offline_env()
    from eval import datasets
    from eval.labels import load_labels
    from eval.runner import index_public_set
    from rag.answer.extractive import ExtractiveAnswerer
    from rag.answer.generative import ANSWERABLE, GenerativeAnswerer
    from rag.answer.verify import SupportJudge, best_threshold
    from rag.llm import load_chat_model
    from rag.service import Service

    index = repo_root() / ".rag" / "eval" / args.dataset
    public = Service(Settings.from_env(env={}, index=index, corpus=index / "no-corpus", answerer="extractive"))
    data = datasets.load(args.dataset, args.limit)
    index_public_set(public, data, own=True)
    labeled = Service(Settings.from_env(env={}, index=Path(tempfile.mkdtemp(prefix="bench-answerable-")),
                                        answerer="extractive"), embedder=public.embedder)
    labeled.ingest()
    llm = load_chat_model(public.settings)
    gen = GenerativeAnswerer(llm, selector=ExtractiveAnswerer(public.embedder), judge=SupportJudge(llm))

    on_public = _scored(gen, public, [(x.question, x.answerable) for x in data.items])
    on_labels = _scored(gen, labeled, [(x.question, x.answerable) for x in load_labels() if x.type != "followup"])
    print(f"{args.dataset}: {len(data.items)} questions, {len(on_public)} reach the checks")
    print("first check alone, best cut (accuracy):", best_threshold([(p, a) for p, _, a in on_public]))
    print("second judge alone, best cut (accuracy):", best_threshold([(q, a) for _, q, a in on_public]))
    for band in sorted({ANSWERABLE, (0.5, 0.65), (0.55, 0.62), (0.58, 0.66), (0.6, 0.6), (0.0, 1.0)}):
        print(f"band {band}  " + _line(args.dataset, on_public, band) + "  |  " + _line("labeled", on_labels, band))


if __name__ == "__main__":
    main()
