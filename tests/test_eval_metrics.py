"""Unit tests of the eval's metrics, judges, gates and public-set scoring: plain data, no model."""

from __future__ import annotations

import pytest

from eval.datasets import contains, exact_match, f1
from eval.judge import ExactFirst, LexicalJudge
from eval.labels import Gold, Label, gold_spans
from eval.metrics import (
    citation_problems,
    citation_support,
    fact_hits,
    gold_coverage,
    percentile,
    sentences_with_markers,
    summarise,
)
from eval.runner import check_gates, score_answer

TEXT = "Alpha ships six million shells by sea. Beta says 15,000 troops went. Gamma counts 600 killed."
SIX = "(six|6) million|6,000,000"


def _cite(n: int, quote: str, doc: str = "d1", text: str = TEXT) -> dict:
    start = text.index(quote)
    return {"n": n, "doc_id": doc, "source": f"{doc}.txt", "start": start, "end": start + len(quote),
            "quote": quote}


def _answer(answer: str, cites: list[dict], abstained: bool = False) -> dict:
    return {"answer": answer, "abstained": abstained, "citations": cites, "timings": {"total_ms": 10}}


@pytest.mark.parametrize("answer,hit", [
    ("Up to six million shells [1].", True),
    ("Up to 6 million shells.", True),
    ("Up to SIX  MILLION shells.", True),
    ("Up to 6,000,000 shells.", True),
    ("Up to seven million shells [1].", False),
    ("Up to sixty million shells.", False),
])
def test_fact_patterns_accept_number_variants_and_reject_other_numbers(answer, hit):
    assert fact_hits(answer, [SIX]) == [hit]


def test_fact_matching_ignores_curly_quotes_dashes_and_markers():
    assert fact_hits("between 10,000 – 12,000 troops [2]", ["10,000 (and|to|-) 12,000"]) == [True]
    assert fact_hits("the North’s “original major benefactor”", ["north's \"original major benefactor\""]) == [True]


def test_valid_citations_have_no_problems():
    ans = _answer("Alpha ships six million shells by sea [1].", [_cite(1, "Alpha ships six million shells")])
    assert citation_problems(ans, lambda d: TEXT) == []


@pytest.mark.parametrize("mutate,problem", [
    (lambda a: a["citations"][0].update(end=a["citations"][0]["end"] + 1), "quote is not text"),
    (lambda a: a.update(answer=a["answer"] + " More [2]."), "markers without a citation"),
    (lambda a: a.update(answer="No marker here."), "citations never marked"),
    (lambda a: a["citations"].append(dict(a["citations"][0])), "citation numbers repeat"),
    (lambda a: a.update(abstained=True), "a refusal carries citations"),
])
def test_each_kind_of_broken_citation_is_reported(mutate, problem):
    ans = _answer("Alpha ships six million shells by sea [1].", [_cite(1, "Alpha ships six million shells")])
    mutate(ans)
    problems = citation_problems(ans, lambda d: TEXT)
    assert any(problem in p for p in problems), problems


def test_sentences_split_after_markers_but_not_inside_abbreviations():
    got = sentences_with_markers("A title [1] The U.S. Army Gen. Smith said so [2]. Both [1], and [3]. Bare.")
    assert got == [("A title [1]", [1]), ("The U.S. Army Gen. Smith said so [2].", [2]),
                   ("Both [1], and [3].", [1, 3]), ("Bare.", [])]


def _judge_by_table(table: dict[tuple[str, str], bool]):
    return lambda sentence, passage: table.get((sentence, passage), False)


def test_citation_recall_and_precision_follow_alce():
    quotes = {1: "P1", 2: "P2"}
    answer = "S1 [1][2]. S2 [2]. S3."
    table = {("S1 [1][2].", "P1 P2"): True, ("S1 [1][2].", "P1"): True, ("S1 [1][2].", "P2"): False,
             ("S2 [2].", "P2"): False}
    s = citation_support(answer, quotes, _judge_by_table(table))
    # S1 supported (jointly), S2 not, S3 cites nothing: recall 1/3
    assert (s.sentences, s.supported) == (3, 1)
    # [1] in S1 is needed; [2] in S1 is redundant (P1 alone supports); [2] in S2 supports nothing
    assert (s.citations, s.relevant) == (3, 1)
    assert s.recall == pytest.approx(1 / 3) and s.precision == pytest.approx(1 / 3)


def test_a_citation_needed_jointly_counts_as_relevant():
    table = {("S [1][2].", "P1 P2"): True}  # neither alone supports, together they do
    s = citation_support("S [1][2].", {1: "P1", 2: "P2"}, _judge_by_table(table))
    assert (s.supported, s.relevant, s.citations) == (1, 2, 2)


def test_lexical_judge_rejects_a_wrong_number_and_accepts_a_paraphrase():
    judge = LexicalJudge()
    passage = "North Korea has shipped up to six million artillery shells, and 15,000 soldiers went."
    assert judge.supports("15,000 soldiers went to Russia.", passage) < judge.threshold
    assert judge.supports("16,000 soldiers went.", passage) == 0.0
    assert judge.supports("North Korea shipped artillery shells [1].", passage) >= judge.threshold


def test_exact_first_settles_verbatim_sentences_without_building_the_judge():
    built = []

    def make():
        built.append(1)
        return LexicalJudge()

    judge = ExactFirst(make)
    assert judge.is_supported("Alpha ships six million shells by sea [1].", TEXT)
    assert built == [] and judge.exact == 1
    assert not judge.is_supported("Alpha ships seven million shells.", TEXT)
    assert built == [1] and judge.judged == 1


def test_gold_coverage_counts_overlapping_citations_per_gold_passage():
    gold = [{"d1.txt": gold_spans(Gold("d1", ("Beta says 15,000 troops", "no such quote")), TEXT)},
            {"d2.txt": [(0, 10)]}]
    cites = [_cite(1, "15,000 troops went")]
    assert gold_coverage(cites, gold) == [True, False]


def test_percentile_interpolates():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5], 95) == 5
    assert percentile([], 50) is None


LABEL = Label(id="six", type="single", question="How many shells?", facts=(SIX,),
              gold=(Gold("d1", ("six million shells",)),))
NO = Label(id="no", type="unanswerable", question="What is the capital of Peru?")


def _rows(answer_six: str):
    exact = ExactFirst(LexicalJudge)
    gold = [{"d1.txt": gold_spans(LABEL.gold[0], TEXT)}]
    six = score_answer(LABEL, _answer(answer_six + " [1].", [_cite(1, "Alpha ships six million shells")]),
                       doc_text=lambda d: TEXT, gold=gold, judge=exact)
    refused = score_answer(NO, _answer("The corpus does not say.", [], abstained=True), doc_text=lambda d: TEXT,
                           gold=[], judge=exact)
    return [six, refused]


def test_a_run_passes_its_gates_when_the_facts_are_stated():
    rows = _rows("Alpha ships six million shells")
    summary = summarise(rows)
    assert summary["fact_recall"] == 1 and summary["abstention_recall"] == 1 and summary["passed"] == 1
    gates = {"min": {"fact_recall": 1.0, "citation_validity": 1.0}, "must_pass": ["six", "no"]}
    assert check_gates(summary, rows, gates) == []


def test_a_gate_fails_on_a_wrong_fact_and_names_the_question():
    rows = _rows("Alpha ships seven million shells")
    summary = summarise(rows)
    failed = check_gates(summary, rows, {"min": {"fact_recall": 1.0}, "must_pass": ["six", "no"]})
    assert failed[0].startswith("fact_recall 0.000 < 1.0")
    assert any(f.startswith("must_pass: six failed: the answer lacks") for f in failed)
    assert not any("must_pass: no" in f for f in failed)


def test_an_unmeasured_metric_fails_its_gate():
    assert check_gates({"conflict_coverage": None}, [], {"min": {"conflict_coverage": 0.5}}) == [
        "conflict_coverage not measured < 0.5"]


def test_public_set_scoring():
    assert contains("It was held in “Tampa, Florida” [1].", "Tampa, Florida")
    assert not contains("Tampans", "Tampa")
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert f1("in the year 1932", "1932") == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    assert f1("", "") == 1.0 and f1("something", "") == 0.0


def test_reports_for_two_answerers_side_by_side(tmp_path, capsys):
    from eval.report import print_table, write_reports
    from eval.runner import by_type

    runs = []
    for name, answer in (("extractive", "Alpha ships six million shells"), ("generative", "Seven million")):
        rows = _rows(answer)
        runs.append({"suite": "labeled", "answerer": name, "judge": "lexical", "note": "test", "seconds": 1.0,
                     "summary": summarise(rows), "by_type": by_type(rows), "rows": rows,
                     "judge_calls": {"verbatim": 1, "judged": 0}, "gates_failed": [] if name == "extractive"
                     else ["must_pass: six failed"], "gated": True})
    paths = write_reports(tmp_path, "eval-labeled", {"suite": "labeled", "created": "now", "runs": runs})
    assert [p.name for p in paths] == ["eval-labeled.md", "eval-labeled.json", "eval-labeled.png"]
    md = paths[0].read_text(encoding="utf-8")
    assert "| fact_recall | 1.00 | 0.00 |" in md and "labeled / generative: **FAILED**" in md
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    print_table(runs)
    out = capsys.readouterr().out
    assert "labeled / extractive" in out and out.rstrip().endswith("fail")
