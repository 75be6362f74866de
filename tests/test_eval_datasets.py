"""The public sets load in place, sample the same questions every run, and score answers as documented."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eval import datasets
from rag.cli import main as cli_main
from tests.conftest import DATASETS

pytestmark = pytest.mark.skipif(not DATASETS.is_dir(), reason="../shared/datasets is not on this machine")


def _ans(text: str, abstained: bool = False, conflict: bool = False) -> dict:
    return {"answer": text, "abstained": abstained, "citations": [], "conflict": conflict}


@pytest.mark.parametrize("name", datasets.NAMES)
def test_a_sample_is_stable_and_its_gold_documents_are_indexed(name):
    a, b = datasets.load(name, 5), datasets.load(name, 5)
    assert [it.id for it in a.items] == [it.id for it in b.items] and len(a.items) == 5
    sources = {d.source for d in a.documents}
    assert len(sources) == len(a.documents)
    for it in a.items:
        assert it.question and set(it.gold_docs) <= sources, it.id


def test_realtimeqa_sample_indexes_gold_articles_and_a_bounded_number_of_others():
    data = datasets.load("realtimeqa", 5)
    gold = {d for it in data.items for d in it.gold_docs}
    assert len(data.documents) == len(gold) + 5 * datasets.RTQA_DISTRACTORS_PER_QUESTION


def test_realtimeqa_is_right_only_with_the_gold_choice_and_no_other():
    data = datasets.load("realtimeqa", 1)
    it = data.items[0]
    gold = it.extra["answers"][0]
    other = next(c for c in it.extra["choices"] if c not in it.extra["answers"])
    assert data.score(it, _ans(f"It was {gold} [1]."))[1]
    assert not data.score(it, _ans(f"It was {gold} or {other} [1]."))[1]
    assert not data.score(it, _ans("", abstained=True))[1]


def test_multihop_and_squad_count_refusals_on_the_unanswerable():
    mh = datasets.load("multihop_rag_500")
    # the questions name articles by publisher: the titles carry it
    assert all(d.title.endswith((" - The Verge", " - TechCrunch")) for d in mh.documents[:50]
               if "theverge.com" in d.url or "techcrunch.com" in d.url)
    assert sum(not it.answerable for it in mh.items) == 71
    refuse = next(it for it in mh.items if not it.answerable)
    assert mh.score(refuse, _ans("The corpus does not say.", abstained=True))[1]
    assert not mh.score(refuse, _ans("Google did it [1]."))[1]
    sq = datasets.load("squad2_500")
    assert sum(not it.answerable for it in sq.items) == 258
    impossible = next(it for it in sq.items if not it.answerable)
    scores, ok = sq.score(impossible, _ans("The corpus does not say.", abstained=True))
    assert ok and scores["exact_match"] == 1.0 and scores["f1"] == 1.0


def test_rgb_tells_a_flagged_conflict_from_a_repeated_false_value():
    data = datasets.load("rgb_en_fact")
    it = data.items[0]
    true, fake = it.extra["answers"][0], it.extra["fake"]
    assert data.score(it, _ans(f"{true} [1], though one source says {fake} [2]."))[0]["flags_conflict"] == 1.0
    scores, ok = data.score(it, _ans(f"It was {fake} [1]."))
    assert scores["repeats_false_value"] == 1.0 and not ok


@pytest.mark.parametrize("argv,message", [
    (["eval", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["eval", "--limit", "5"], "--limit applies to a public set"),
    (["eval", "--dataset", "squad2_500", "--limit", "0"], "--limit 0 is out of range"),
])
def test_bad_eval_options_exit_2_with_one_line(argv, message, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_rgb_conflict_coverage_needs_a_true_and_a_falsified_snippet_cited():
    from eval.judge import ExactFirst, LexicalJudge
    from eval.runner import WHOLE_DOCUMENT, score_answer

    data = datasets.load("rgb_en_fact", 1)
    it = data.items[0]
    texts = {d.source: d.text for d in data.documents}
    gold = [dict.fromkeys(side, [WHOLE_DOCUMENT]) for side in it.extra["sides"]]

    def cite(n, source):
        return {"n": n, "doc_id": source, "source": source, "start": 0, "end": 20, "quote": texts[source][:20]}

    def covered(*sources):
        marks = " ".join(f"Claim [{n}]." for n in range(1, len(sources) + 1))
        ans = {"answer": marks, "abstained": False, "citations": [cite(n, s) for n, s in enumerate(sources, 1)]}
        return score_answer(it, ans, doc_text=texts.__getitem__, gold=gold, judge=ExactFirst(LexicalJudge),
                            public_score=data.score)["conflict_covered"]

    true, false = it.extra["sides"][0][0], it.extra["sides"][1][0]
    assert covered(true, false) is True
    assert covered(true) is False


def test_a_public_set_index_is_kept_and_brought_up_to_the_set(make_service, embedder, tmp_path):
    from eval.runner import index_public_set

    svc = make_service(embedder=embedder, index=tmp_path / "rgb")
    one, two = datasets.load("rgb_en_fact", 1), datasets.load("rgb_en_fact", 2)
    first = index_public_set(svc, two, own=True)
    assert first.added == len(two.documents) and first.chunks > 0
    again = make_service(embedder=embedder, index=tmp_path / "rgb")  # a later run over the same folder
    second = index_public_set(again, two, own=True)
    assert (second.unchanged, second.added, second.chunks) == (len(two.documents), 0, 0)
    # a smaller set: nothing embedded, the documents it lacks are removed
    third = index_public_set(again, one, own=True)
    assert third.chunks == 0 and third.removed == len(two.documents) - len(one.documents)
    assert {d["source"] for d in again.documents()} == {d.source for d in one.documents}
    # a title the loader now reads differently: that document is indexed again, with the new title
    renamed = replace(one, documents=[replace(one.documents[0], title="A new title")] + one.documents[1:])
    fourth = index_public_set(again, renamed, own=True)
    assert (fourth.added, fourth.unchanged) == (1, len(one.documents) - 1)
    assert again.record(one.documents[0].source)["title"] == "A new title"


def test_public_index_folders(tmp_path):
    from eval.runner import EvalOptions, public_index

    assert public_index(EvalOptions(dataset="squad2_500"), "squad2_500").parts[-3:] == (".rag", "eval", "squad2_500")
    assert public_index(EvalOptions(limit=5, dataset="all"), "rgb_en_fact").name == "rgb_en_fact-sample"
    assert public_index(EvalOptions(index=tmp_path, dataset="realtimeqa"), "realtimeqa") == tmp_path
    assert public_index(EvalOptions(index=tmp_path, limit=5, dataset="all"), "realtimeqa") == tmp_path / "realtimeqa"


def test_realtimeqa_2026_sample_holds_pages_stating_each_answer_and_refusals_pass_only_when_refused():
    data = datasets.load("realtimeqa_2026", 5)
    texts = [datasets.normalise(d.text) for d in data.documents]
    for it in data.items:
        if it.answerable:
            assert any(datasets.contains(t, g) for t in texts for g in datasets.gold_strings(it)), it.id
    refuse = next(it for it in datasets.load("realtimeqa_2026").items if not it.answerable)
    assert data.score(refuse, _ans("The corpus does not say.", abstained=True))[1]
    assert not data.score(refuse, _ans(refuse.extra["answers"][0]))[1]


def test_a_lost_question_is_put_on_the_stage_that_last_held_its_answer():
    from eval.runner import lost_at

    label = next(it for it in datasets.load("realtimeqa_2026").items if it.answerable)
    gold = datasets.gold_strings(label)[0]
    texts = {"d": f"Officials said {gold} was chosen. Nothing else."}
    end = len(texts["d"])
    base = {"retrieve": {"hits": [{"chunk_id": f"d:0-{end}"}]},
            "evidence": {"passages": [{"doc_id": "d", "start": 0, "end": end}]}}
    lost = lambda trace, **a: lost_at(label, {"trace": trace, **a}, [gold], texts.__getitem__)  # noqa: E731
    assert lost({"retrieve": {"hits": []}}) == "retrieve"
    assert lost({**base, "evidence": {"passages": [{"doc_id": "d", "start": end - 14, "end": end}]}}) == "evidence"
    assert lost({**base, "answerable": {"verdict": 0.1}}, abstained=True) == "answerable"
    # refused by the judge of the best sentences, before any passage: it lost the answer if it judged it
    judged = {"retrieve": base["retrieve"], "evidence": {}}
    whole, tail = {"doc_id": "d", "start": 0, "end": end}, {"doc_id": "d", "start": end - 14, "end": end}
    assert lost({**judged, "judge": {"judged": [whole]}}, abstained=True) == "answerable"
    assert lost({**judged, "judge": {"judged": [tail]}}, abstained=True) == "evidence"
    assert lost({**base, "answerable": {}, "write": {"text": "Someone else."}}) == "write"
    assert lost({**base, "answerable": {}, "write": {"text": f"It was {gold}."}}) == "verify"
