"""The extractive answerer's choices, on hand-made passages with a deterministic embedder."""

from __future__ import annotations

from rag.answer.base import CANNOT_ANSWER, MARKER
from rag.answer.extractive import ExtractiveAnswerer, entities_covered, names_found, question_entities, spoken_date
from rag.types import Hit

DOCS = {
    "d1": "The Harbor Bridge opened in 1932. It carries eight lanes of traffic. Tolls were removed in 2001.",
    "d2": "Critics said the Harbor Bridge opened in 1931, a year earlier than the official record.",
}


def _hits():
    return [Hit(doc_id=d, chunk_id=f"{d}:0-{len(t)}", score=0.5, start=0, end=len(t), source=f"{d}.txt", text=t)
            for d, t in DOCS.items()]


def test_answer_quotes_the_sentence_and_cites_its_exact_span(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, evidence_threshold=0.3).answer(
        "When did the Harbor Bridge open?", _hits(), DOCS.__getitem__)
    assert not ans.abstained
    first = ans.citations[0]
    assert first.quote == "The Harbor Bridge opened in 1932." == DOCS[first.doc_id][first.start : first.end]
    assert sorted(int(n) for n in MARKER.findall(ans.answer)) == [c.n for c in ans.citations]


def test_disagreeing_documents_are_both_cited(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, evidence_threshold=0.3).answer(
        "When did the Harbor Bridge open?", _hits(), DOCS.__getitem__)
    assert {c.doc_id for c in ans.citations} == {"d1", "d2"}
    assert "1932" in ans.answer and "1931" in ans.answer


def test_below_threshold_it_abstains_without_citations(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, evidence_threshold=0.95).answer(
        "When did the Harbor Bridge open?", _hits(), DOCS.__getitem__)
    assert ans.abstained and ans.answer == CANNOT_ANSWER and ans.citations == []


def test_a_name_the_passages_never_mention_means_abstain(hash_embedder):
    ans = ExtractiveAnswerer(hash_embedder, evidence_threshold=0.3).answer(
        "When did the Golden Gate Bridge open?", _hits(), DOCS.__getitem__)
    assert ans.abstained


def test_question_entities():
    assert question_entities("When did the Harbor Bridge open in 1932?") == {"harbor", "bridge", "1932"}
    assert question_entities("how many shells were sent?") == set()
    assert entities_covered("Who is Xavier Brunsen?", "Gen. Xavier Brunson said")  # prefix match
    assert not entities_covered("Who is Xavier Brunsen?", "Gen. Smith said")


MULTI = {
    "v1": "The Verge reported that Google paid Apple to stay the default search engine.",
    "t1": "TechCrunch wrote that Epic Games won its case against Google in December.",
    "o1": "A bakery in Lyon sold bread.",
}


def _multi_hits(*ids, title=""):
    return [Hit(doc_id=d, chunk_id=f"{d}:0", score=0.5, start=0, end=len(MULTI[d]), source=d, text=MULTI[d],
                title=title, publish_date="2023-12-11") for d in ids]


def test_many_names_may_spread_over_the_retrieved_documents():
    q = "Did The Verge say Google paid Apple, while TechCrunch said Epic Games beat Google?"
    assert names_found(q, _multi_hits("v1", "t1"), _multi_hits("v1")[0], MULTI.__getitem__)
    # the same question over documents naming almost none of it
    assert not names_found(q, _multi_hits("o1"), _multi_hits("o1")[0], MULTI.__getitem__)


def test_few_names_must_all_be_in_the_best_sentences_document():
    q = "Did Epic Games beat Google?"
    v1, t1 = _multi_hits("v1", "t1")
    assert names_found(q, [v1, t1], t1, MULTI.__getitem__)
    assert not names_found(q, [v1, t1], v1, MULTI.__getitem__)  # "Epic" is only in the other document


def test_a_month_in_the_question_matches_the_documents_date():
    assert spoken_date("2023-12-11") == "December 11 2023" and spoken_date("") == ""
    q = "What did the TechCrunch article of December say about Epic?"
    assert names_found(q, _multi_hits("t1"), _multi_hits("t1")[0], MULTI.__getitem__)
    assert not names_found("What did TechCrunch say in March about Epic?", _multi_hits("t1"),
                           _multi_hits("t1")[0], MULTI.__getitem__)


def test_a_long_question_is_on_topic_before_every_word_is_matched(hash_embedder):
    ex = ExtractiveAnswerer(hash_embedder, evidence_threshold=0.0)
    short = "Did Epic Games win?"
    best = ex.candidates(short, _multi_hits("t1"), MULTI.__getitem__)[0]
    assert ex.evidence_score(short, best) == best.score
    # twelve content words, seven of them in the sentence: past six the wording counts as complete
    long = "Did TechCrunch write that Epic Games won its case against Google in court, unlike Valve and Steam?"
    best = ex.candidates(long, _multi_hits("t1"), MULTI.__getitem__)[0]
    assert abs(ex.evidence_score(long, best) - (best.score + 0.5 * (1 - 7 / 12))) < 1e-9


def test_a_which_question_prefers_the_sentence_that_names_something_new(hash_embedder):
    from rag.answer.evidence import score_sentences

    text = "The city faces a water emergency this year. Corpus Christi may run dry by next spring."
    hits = [Hit(doc_id="w", chunk_id="w:0", score=0.5, start=0, end=len(text), source="w.txt", text=text)]
    question = "Which city faces a water emergency?"
    with_rule = score_sentences(question, hits, {"w": text}.__getitem__, hash_embedder)
    without = {c.text: c.score for c in score_sentences(question, hits, {"w": text}.__getitem__, hash_embedder,
                                                         name_rule=False)}
    scores = {c.text: c.score for c in with_rule}
    first, second = text.split(". ")
    assert round(without[first + "."] - scores[first + "."], 6) == 0.1  # names nothing the question lacks
    assert scores[second] == without[second]  # names Corpus Christi


def test_only_questions_asking_for_a_name_and_new_capitalised_words_count():
    from rag.answer.evidence import names_new, wants_name

    assert wants_name("which city ran out of water?") and wants_name("Who won?") and wants_name("What is it?")
    assert not wants_name("How many troops were sent?") and not wants_name("When did it open?")
    words = {"which", "city", "in", "texas"}
    assert names_new(words, "The mayor of Austin spoke.")
    assert not names_new(words, "Texas is dry.")  # its first word is not counted, and Texas is asked
    assert not names_new(words, "The city in Texas is dry.")


def test_the_title_is_read_with_each_sentence_unless_switched_off(hash_embedder):
    from rag.answer.evidence import score_sentences

    text = "It may run dry by next spring, officials said."
    hit = Hit(doc_id="w", chunk_id="w:0", score=0.5, start=0, end=len(text), source="w.txt", text=text,
              title="Corpus Christi water emergency")
    question = "Which Texas city may run out of water?"
    titled = score_sentences(question, [hit], {"w": text}.__getitem__, hash_embedder, name_rule=False)
    plain = score_sentences(question, [hit], {"w": text}.__getitem__, hash_embedder, titled=False,
                            name_rule=False)
    assert titled[0].text == plain[0].text == text  # the quote is the sentence alone
    assert titled[0].score != plain[0].score
