"""Should the generative answerer refuse? Calibrate the judge's "do these passages answer the question"
on the hand-labeled questions (eval/labels.yaml: answerable ones against the unanswerable ones).

    nice -n 10 .venv/bin/python -m bench.calibrate_answerable
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rag.config import Settings, set_offline_env


def main() -> None:
    set_offline_env()
    from eval.labels import load_labels
    from rag.answer.extractive import ExtractiveAnswerer
    from rag.answer.generative import GenerativeAnswerer
    from rag.answer.verify import SupportJudge, best_threshold
    from rag.llm import load_chat_model
    from rag.service import Service

    svc = Service(Settings.from_env(env={}, index=Path(tempfile.mkdtemp(prefix="bench-answerable-")),
                                    answerer="extractive"))
    svc.ingest()
    llm = load_chat_model(svc.settings)
    gen = GenerativeAnswerer(llm, selector=ExtractiveAnswerer(svc.embedder), judge=SupportJudge(llm))
    scored: list[tuple[float, bool]] = []
    for label in load_labels():
        if label.type == "followup":
            continue
        evidence = gen.evidence(label.question, svc.search(label.question), svc.doc_text)
        answerable = label.type != "unanswerable"
        if not evidence:
            print(f"  -    {'A' if answerable else 'U'} {label.type:12} {label.question[:70]} (no evidence)")
            continue
        p = gen.judge.answers(label.question, " ".join(e.text for e in evidence))
        scored.append((p, answerable))
        print(f"{p:6.3f} {'A' if answerable else 'U'} {label.type:12} {label.question[:70]}")
    for cut in (0.2, 0.3, 0.4, 0.5, 0.6):
        kept = sum(s >= cut and a for s, a in scored)
        refused_u = sum(s < cut and not a for s, a in scored)
        print(f"threshold {cut}: answerable kept {kept}/{sum(a for _, a in scored)}, "
              f"unanswerable refused {refused_u}/{sum(not a for _, a in scored)}")
    print("best threshold (accuracy)", best_threshold(scored))


if __name__ == "__main__":
    main()
