"""Hybrid retrieval: fusion, the BM25 side's persistence across restarts, and incremental updates of both
sides, on a real embedded Chroma with the deterministic hash embedder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rag.bm25 as bm25_module
from rag.bm25 import BM25Index, recency_weight
from rag.config import ChunkingSettings
from rag.errors import UsageError
from rag.named import Publishers, title_publishers
from rag.retrieve import Retriever, bm25_folder, fuse_scores, rrf
from rag.text import named_dates, normalise_date
from rag.text import terms as tokenize

SHELLS = "001_03f627dd5a2244df.txt"


# --- fusion ---------------------------------------------------------------------------------------
def test_rrf_rewards_agreement_over_one_high_rank():
    fused = dict(rrf([["a", "b", "c"], ["c", "b", "d"]]))
    # b is 2nd in both lists; a is 1st in one only; c is 3rd and 1st
    assert fused["b"] > fused["a"]
    assert fused["c"] > fused["b"]
    assert set(fused) == {"a", "b", "c", "d"}


def test_rrf_weights_tip_the_balance():
    assert rrf([["a"], ["b"]], [1.0, 2.0])[0][0] == "b"
    assert rrf([["a"], ["b"]], [2.0, 1.0])[0][0] == "a"


def test_rrf_ties_break_by_id_so_results_are_stable():
    assert [i for i, _ in rrf([["y", "x"], ["x", "y"]])] == ["x", "y"]


def test_score_fusion_scales_each_side_and_mixes_them():
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.5)]
    keyword = [("c", 12.0), ("b", 10.0), ("d", 2.0)]
    fused = dict(fuse_scores(dense, keyword))
    # each side scaled to 0-1 over its candidates (a: 1 dense; b: 0.75 dense, 0.8 BM25; c: 0 dense, 1 BM25)
    assert fused == pytest.approx({"a": 0.5, "b": 0.775, "c": 0.5, "d": 0.0})
    assert [cid for cid, _ in fuse_scores(dense, keyword)][:1] == ["b"]  # good on both sides beats best on one
    assert fuse_scores(dense, keyword, keyword_share=1.0)[0][0] == "c"


def test_score_fusion_adds_the_named_rankings():
    fused = dict(fuse_scores([("a", 0.9), ("b", 0.1)], [], [["b"], ["x", "b"]]))
    # b: 0 on the dense side, 0.5 at rank 1 of one named ranking and a little less at rank 2 of another
    assert fused["b"] == pytest.approx(0.5 + 0.5 * 61 / 62)
    assert fused["b"] > fused["a"] == pytest.approx(0.5) and fused["x"] == pytest.approx(0.5)


def test_tokenize_folds_case_plurals_and_stop_words():
    assert tokenize("The Missiles of RUSSIA's army") == ["missile", "russia", "army"]
    assert tokenize("gas press") == ["gas", "press"]


def test_tokenize_leaves_web_addresses_out():
    # a reference list's links spell out an article's words ("north-korea-artillery-shells-russia")
    refs = "[1] https://www.stripes.com/asia/2025/north-korea-artillery-shells-russia/ pic.twitter.com/5utUh"
    assert tokenize(refs) == []
    assert tokenize("Shells (see www.example.com/shells) went by sea") == ["shell", "see", "went", "sea"]


def test_normalise_date_reads_the_corpora_forms():
    assert normalise_date("2022/06/12") == "2022-06-12"
    assert normalise_date("2023-09-26T17:01:22+00:00") == "2023-09-26"
    assert normalise_date("June") == ""


# --- the hybrid retriever over a real Chroma --------------------------------------------------------
def _records(tmp_path, records):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_hybrid_finds_what_either_side_finds(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    svc.ingest()
    for mode in ("hybrid", "dense", "bm25"):
        r = Retriever(svc.store, hash_embedder, mode=mode)
        hits = r.search("artillery shells shipped to Russia by sea", 3)
        assert hits and hits[0].source == SHELLS, mode
        # each hit is an exact slice of its document: BM25-only hits are read back from Chroma
        for h in hits:
            assert svc.doc_text(h.doc_id)[h.start : h.end] == h.text


def test_bm25_only_hit_is_fused_in(make_service, tmp_path, hash_embedder):
    """A chunk that only BM25 ranks (dense list empty of it) still reaches the fused results."""
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "a", "text": "Zanzibar copra exports fell sharply this year."},
        {"_id": "b", "text": "Weather was mild across the region."},
    ]))
    r = Retriever(svc.store, hash_embedder, candidates=1)
    # dense contributes its single nearest chunk; the BM25 list brings "a" for the rare word
    hits = r.search("zanzibar", 2)
    assert "a" in [h.source for h in hits]


def test_bm25_side_persists_across_restarts(make_service, corpus_copy, hash_embedder, monkeypatch, tmp_path):
    index = tmp_path / "idx"
    svc = make_service(corpus_copy, embedder=hash_embedder, index=index)
    svc.ingest()
    first = [h.chunk_id for h in svc.search("troops sent to Russia", 5)]
    state = bm25_folder(index, svc.settings.collection) / "state.npz"
    assert state.exists()

    # A new process: no chunk text is tokenized again; only the query (and its words) are.
    calls = []
    real = bm25_module.terms
    monkeypatch.setattr(bm25_module, "terms", lambda t: calls.append(t) or real(t))
    again = make_service(corpus_copy, embedder=hash_embedder, index=index)
    assert [h.chunk_id for h in again.search("troops sent to Russia", 5)] == first
    assert calls and all(c in "troops sent to Russia" for c in calls)


def test_damaged_or_stale_bm25_file_is_rebuilt_from_chroma(make_service, corpus_copy, hash_embedder, tmp_path):
    index = tmp_path / "idx"
    svc = make_service(corpus_copy, embedder=hash_embedder, index=index)
    svc.ingest()
    svc.search("shells", 3)
    state = bm25_folder(index, svc.settings.collection) / "state.npz"
    state.write_bytes(b"not an npz file")
    bm = BM25Index(state.parent, svc.store)
    assert sorted(bm.ids) == sorted(svc.store.chunks.get(include=[])["ids"])
    assert bm.top("artillery shells", 1)


def _sources(r: Retriever, query: str, k: int = 5) -> list[str]:
    return [h.source for h in r.search(query, k)]


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_incremental_ingest_keeps_both_sides_in_step(make_service, corpus_copy, hash_embedder, mode):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    svc.ingest()
    svc._retriever = Retriever(svc.store, hash_embedder, mode=mode)  # the service refreshes it on ingest
    assert "notes/budget.md" not in _sources(svc.retriever, "budget rose percent")

    note = corpus_copy / "notes" / "budget.md"
    note.parent.mkdir()
    note.write_text("# Budget\n\nThe municipal budget rose by four percent.\n", encoding="utf-8")
    svc.ingest()  # add
    assert _sources(svc.retriever, "municipal budget rose percent")[0] == "notes/budget.md"

    note.write_text("# Budget\n\nThe harbour dredging contract was signed.\n", encoding="utf-8")
    svc.ingest()  # replace: the old words are gone, the new ones found
    hits = svc.retriever.search("harbour dredging contract", 5)
    assert hits[0].source == "notes/budget.md"
    text = svc.doc_text(hits[0].doc_id)
    assert "municipal" not in text and text[hits[0].start : hits[0].end] == hits[0].text
    assert all("municipal" not in h.text for h in svc.retriever.search("municipal budget", 10))

    note.unlink()
    svc.ingest()  # delete
    assert "notes/budget.md" not in _sources(svc.retriever, "harbour dredging contract", 10)
    if mode == "bm25":
        assert len(svc.retriever.bm25.ids) == svc.store.chunk_count()


def test_another_process_writing_is_noticed(make_service, corpus_copy, hash_embedder, tmp_path):
    """An app keeps running while `rag ingest` adds a file from another process."""
    index = tmp_path / "idx"
    app = make_service(corpus_copy, embedder=hash_embedder, index=index)
    app.ingest()
    app.search("shells", 3)
    (corpus_copy / "harbour.md").write_text("The harbour dredging contract was signed.\n", encoding="utf-8")
    other = make_service(corpus_copy, embedder=hash_embedder, index=index)
    other.ingest()
    r = Retriever(app.store, hash_embedder, mode="bm25", bm25=app.retriever.bm25)
    assert _sources(r, "harbour dredging")[0] == "harbour.md"


def test_rebuild_resets_the_bm25_side(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    svc.ingest()
    before = len(svc.retriever.bm25.ids)
    svc.ingest(rebuild=True)
    assert len(svc.retriever.bm25.ids) == svc.store.chunk_count() == before
    assert svc.search("artillery shells", 1)[0].source == SHELLS


# --- dates ----------------------------------------------------------------------------------------
def test_as_of_keeps_documents_published_by_that_date(make_service, tmp_path, hash_embedder):
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "old", "text": "The mayor opened the new bridge.", "publish_date": "2022/06/01"},
        {"_id": "new", "text": "The mayor closed the new bridge.", "publish_date": "2022/07/01"},
        {"_id": "undated", "text": "A bridge over the river.", "publish_date": ""},
    ]))
    assert {h.source for h in svc.search("mayor bridge", 5)} == {"old", "new", "undated"}
    assert {h.source for h in svc.search("mayor bridge", 5, as_of="2022-06-15")} == {"old", "undated"}
    assert {h.source for h in svc.search("mayor bridge", 5, as_of="2022/07/01")} == {"old", "new", "undated"}
    for mode in ("dense", "bm25"):
        r = Retriever(svc.store, hash_embedder, mode=mode)
        assert "new" not in {h.source for h in r.search("mayor bridge", 5, as_of="2022-06-15")}


def test_recency_weight_halves_every_half_life():
    dates = np.array(["2022-06-15", "2022-06-08", "2022-06-01", "", "2022-06-20"], dtype="<U10")
    w = recency_weight(dates, "2022-06-15", 7.0)
    # on the day, one and two half-lives before; undated counts as one half-life old; later as the day
    assert w.tolist() == pytest.approx([1.0, 0.5, 0.25, 0.5, 1.0])


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_recency_favours_the_story_of_that_week(make_service, tmp_path, hash_embedder, mode):
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "last-year", "publish_date": "2021/06/10",
         "text": "Heavy rain flooded the harbour district; the flooded harbour district closed its ferry."},
        {"_id": "this-week", "publish_date": "2022/06/13",
         "text": "Heavy rain flooded the harbour and closed the ferry."},
    ]))
    question = "Which harbour district did the rain flood?"
    flat = Retriever(svc.store, hash_embedder, mode=mode, recency_half_life=0.0)
    assert [h.source for h in flat.search(question, 2, as_of="2022-06-15")] == ["last-year", "this-week"]
    with_prior = Retriever(svc.store, hash_embedder, mode=mode, recency_half_life=7.0)
    assert [h.source for h in with_prior.search(question, 2, as_of="2022-06-15")] == ["this-week", "last-year"]
    assert [h.source for h in with_prior.search(question, 2)] == ["last-year", "this-week"]  # no date, no prior


def test_as_of_setting_applies_and_a_bad_date_is_refused(make_service, tmp_path, hash_embedder):
    svc = make_service(embedder=hash_embedder, as_of="2022-06-15")
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "old", "text": "The mayor opened the bridge.", "publish_date": "2022/06/01"},
        {"_id": "new", "text": "The mayor closed the bridge.", "publish_date": "2022/07/01"},
    ]))
    assert [h.source for h in svc.search("mayor bridge", 5)] == ["old"]
    for bad in ("last week", "2025-13-01", "2023-02-30"):
        with pytest.raises(UsageError, match="not a date"):
            svc.search("mayor bridge", 5, as_of=bad)


def test_a_document_with_an_impossible_date_counts_as_undated(make_service, tmp_path, hash_embedder):
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "odd", "text": "The mayor opened the bridge.", "publish_date": "2023-02-30"},
        {"_id": "new", "text": "The mayor closed the bridge.", "publish_date": "2023-03-10"},
    ]))
    assert normalise_date("2023-02-30") == "" and normalise_date("2023/2/28") == "2023-02-28"
    assert [h.source for h in svc.search("mayor bridge", 5, as_of="2023-03-05")] == ["odd"]


def test_date_mask_keeps_undated_rows():
    class Empty:
        def chunk_count(self):
            return 0

        def chunk_ids(self, doc_id=None):
            return []

        def hits(self, ids):
            return {}

        def generation(self):
            return ""

    bm = BM25Index(None, Empty())
    bm.dates = np.array(["2022-06-01", "", "2022-07-01"], dtype="<U10")
    assert bm.date_mask("2022-06-15").tolist() == [True, True, False]


# --- query robustness -----------------------------------------------------------------------------
def test_misspelled_words_are_corrected_against_the_index_vocabulary(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    svc.ingest()
    bm = svc.retriever.bm25
    assert bm.correct("artilery") == "artillery"
    assert bm.correct("zzzzzzz") == ""
    assert bm.spell("How many artilery shells") == "How many artillery shells"
    # BM25 alone finds the seed through the corrected words ("containers" occurs only in the shells article)
    r = Retriever(svc.store, hash_embedder, mode="bm25")
    assert r.search("artilery contaners", 1)[0].source == SHELLS


def test_per_doc_limit_lets_other_documents_in(make_service, tmp_path, hash_embedder):
    svc = make_service(embedder=hash_embedder, chunking=ChunkingSettings(chunk_size=32, chunk_overlap=0))
    long_text = " ".join(f"Ferry timetable note {i} about the ferry timetable." for i in range(30))
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "long", "text": long_text},
        {"_id": "short", "text": "The ferry timetable changes in May."},
    ]))
    for mode in ("hybrid", "dense", "bm25"):
        r = Retriever(svc.store, hash_embedder, mode=mode, per_doc=1)
        hits = r.search("ferry timetable", 2)
        assert sorted(h.source for h in hits) == ["long", "short"], mode
        unlimited = Retriever(svc.store, hash_embedder, mode=mode, per_doc=0).search("ferry timetable", 2)
        assert [h.source for h in unlimited].count("long") == 2, mode


def test_bm25_matches_words_of_the_title(make_service, tmp_path, hash_embedder):
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "a", "title": "Lindholm lighthouse restored", "text": "Work on the tower ended in May."},
        {"_id": "b", "title": "Harbour fees", "text": "Fees rose for the tower cranes."},
    ]))
    hits = Retriever(svc.store, hash_embedder, mode="bm25").search("lighthouse", 2)
    assert [h.source for h in hits] == ["a"]
    assert hits[0].text == "Work on the tower ended in May."  # the title is matched, never quoted


def test_a_state_file_indexed_another_way_is_rebuilt(make_service, corpus_copy, hash_embedder, monkeypatch,
                                                     tmp_path):
    index = tmp_path / "idx"
    svc = make_service(corpus_copy, embedder=hash_embedder, index=index)
    svc.ingest()
    svc.search("shells", 3)
    monkeypatch.setattr(bm25_module, "FORMAT", "v3-other")
    calls = []
    real = bm25_module.terms
    monkeypatch.setattr(bm25_module, "terms", lambda t: calls.append(t) or real(t))
    BM25Index(bm25_folder(index, svc.settings.collection), svc.store)
    assert len(calls) == svc.store.chunk_count()  # every chunk tokenized again


def test_bm25_file_is_local_and_named_after_the_server(tmp_path):
    assert bm25_folder(tmp_path, "rag") == tmp_path / "bm25-rag"
    a = bm25_folder(tmp_path, "rag", "http://127.0.0.1:8000")
    b = bm25_folder(tmp_path, "rag", "http://127.0.0.1:8001")
    assert a.parent == tmp_path and a != b and a.name == "bm25-127.0.0.1-8000-rag"


def test_each_documents_best_chunk_comes_before_any_second_one(make_service, tmp_path, hash_embedder):
    svc = make_service(embedder=hash_embedder, chunking=ChunkingSettings(chunk_size=32, chunk_overlap=0))
    svc.ingest(jsonl=_records(tmp_path, [
        {"_id": "long", "text": " ".join(f"Ferry timetable note {i} about the ferry timetable." for i in range(30))},
        {"_id": "short", "text": "The ferry timetable changes in May."},
    ]))
    r = Retriever(svc.store, hash_embedder, per_doc=2)
    # two documents (the short one a single chunk): both best chunks first, then the long one's second
    assert sorted(h.source for h in r.search("ferry timetable", 2)) == ["long", "short"]
    assert [h.source for h in r.search("ferry timetable", 5)] == ["long", "short", "long"]


# --- publishers a question names ------------------------------------------------------------------
def test_title_publishers_are_the_named_parts_after_the_headline():
    assert title_publishers("Apple defends Google deal - The Verge") == ["The Verge"]
    assert title_publishers("Shoes to buy - The Independent - Life and Style") == ["The Independent",
                                                                                    "Life and Style"]
    assert title_publishers("Contraception demand up | CNN Business") == ["CNN Business"]
    # no separator, a hyphenated word, the rest of a headline (lower case or long) are not names
    assert title_publishers("Well-known bridge reopens") == []
    assert title_publishers("Ukraine war - live updates") == []
    assert title_publishers("Storm - What the council said about the harbour and the ferry") == []


def test_a_question_names_publishers_as_written():
    pubs = Publishers([("a", "Deal - The Verge"), ("b", "Phone - The Verge"), ("c", "Fares - CNN"),
                       ("d", "Rates - CNN Business"), ("e", "Diet - FOX News - Health"), ("f", "Rain"),
                       ("g", "Snow"), ("h", "Hail")])
    assert pubs.named("Did The Verge and CNN report it?") == [frozenset("ab"), frozenset("c")]
    # the longest name counts ("CNN Business", not "CNN"), a name running on into a longer one does not
    assert pubs.named("According to CNN Business, rates rose") == [frozenset("d")]
    assert pubs.named("What did the World Health Organization say?") == []
    assert pubs.named("Did FOX News - Health say so?") == [frozenset("e")]  # two names, one set of documents
    assert pubs.named("did the verge report it?") == []  # a name counts as written


def test_a_name_most_documents_carry_narrows_nothing():
    pubs = Publishers([("a", "Deal - Daily Planet"), ("b", "Phone - Daily Planet"), ("c", "Rain")])
    assert pubs.named("What did Daily Planet say?") == []


def _publisher_corpus(tmp_path):
    stronger = ["Harbour ferry fares rose; the harbour ferry timetable and ferry fares changed at the harbour.",
                "Harbour ferry fares rose and the ferry timetable changed.", "Ferry fares rose.",
                "The harbour ferry timetable changed."]
    return _records(tmp_path, [
        *({"_id": f"planet-{i}", "title": f"Ferry fares {i} - Daily Planet", "text": text, "publish_date":
           "2022/06/01"} for i, text in enumerate(stronger)),
        {"_id": "verge-ferry", "title": "Commuters pay more - The Verge", "publish_date": "2022/06/10",
         "text": "Commuters paid more for the harbour boat this week."},
        *({"_id": f"verge-{i}", "title": f"Gadgets {i} - The Verge", "publish_date": "2022/06/01",
           "text": f"Phone number {i} launched with a new camera."} for i in range(3)),
        *({"_id": f"other-{i}", "title": f"Weather {i}", "text": "Rain fell on the hills."} for i in range(4)),
    ])


@pytest.mark.parametrize("fusion", ["scores", "rrf"])
def test_a_named_publishers_article_is_found_among_stronger_matches(make_service, tmp_path, hash_embedder,
                                                                   fusion):
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_publisher_corpus(tmp_path))
    question = "Did The Verge report that harbour ferry fares rose and the harbour ferry timetable changed?"
    plain = Retriever(svc.store, hash_embedder, publishers=False, fusion=fusion)
    assert "verge-ferry" not in _sources(plain, question, 4)
    named = Retriever(svc.store, hash_embedder, fusion=fusion)
    assert "verge-ferry" in _sources(named, question, 4)
    # the named ranking keeps to the date limit; a question naming no publisher ranks as before
    assert "verge-ferry" not in _sources_as_of(named, question, 4, "2022-06-05")
    other = "Did they report that harbour ferry fares rose and the harbour ferry timetable changed?"
    assert _sources(named, other, 5) == _sources(plain, other, 5)


def _sources_as_of(r: Retriever, query: str, k: int, as_of: str) -> list[str]:
    return [h.source for h in r.search(query, k, as_of=as_of)]


def test_named_dates_reads_the_usual_forms():
    assert named_dates("The Verge on 2023-11-24 and Wired on 2023/11/25") == ["2023-11-24", "2023-11-25"]
    assert named_dates("On October 22, 2023, then Dec. 15 2023 and the 7th of March 2023") == [
        "2023-10-22", "2023-12-15", "2023-03-07"]
    # a month without a day, an impossible day and a word that starts like a month name no day
    assert named_dates("In May 2023, on 31 February 2023, the mayor 3, 2023 said") == []


@pytest.mark.parametrize("fusion", ["scores", "rrf"])
def test_an_article_of_the_day_a_question_names_is_found_among_stronger_matches(make_service, tmp_path,
                                                                                hash_embedder, fusion):
    svc = make_service(embedder=hash_embedder)
    svc.ingest(jsonl=_publisher_corpus(tmp_path))
    question = ("On June 10, 2022, was it reported that harbour ferry fares rose and the harbour ferry timetable "
                "changed?")
    assert "verge-ferry" not in _sources(Retriever(svc.store, hash_embedder, days=False, fusion=fusion), question, 4)
    assert "verge-ferry" in _sources(Retriever(svc.store, hash_embedder, fusion=fusion), question, 4)


def test_the_words_that_date_a_question_are_dropped_for_search():
    from rag.text import without_when_asked

    assert without_when_asked("Which city hosted the summit this week?") == "Which city hosted the summit?"
    assert without_when_asked("Who recently resigned as prime minister?") == "Who resigned as prime minister?"
    assert without_when_asked("this week") == "this week"  # nothing else left: unchanged
