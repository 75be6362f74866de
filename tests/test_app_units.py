"""The app's own pieces without a server: HTML escaping, the quote in context, upload checks, RAG_AUTH."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import UsageError
from rag.types import Answer, Citation
from ui.render import Turn, chat_html, context_window, documents_html, sources_html, trace_lines
from ui.uploads import check_name, check_upload, place

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="alert(1)"> {{value}} ${value}'


def _answer(text: str, quote: str) -> Answer:
    c = Citation(n=1, doc_id="d", chunk_id="d:0-5", source="evil.txt", title=HOSTILE, start=0, end=len(quote),
                 quote=quote)
    return Answer(question=HOSTILE, answer=text, abstained=False, citations=[c])


def test_document_text_questions_and_titles_render_as_text_never_markup():
    turn = Turn(HOSTILE, answer=_answer(f"{HOSTILE} [1]", HOSTILE))
    turn.sources = [{"n": 1, "title": HOSTILE, "source": "evil.txt", "date": "", "url": "javascript:alert(1)",
                     "page": None, "start": 0, "end": 5, "before": HOSTILE, "quote": HOSTILE, "after": HOSTILE,
                     "cut_before": False, "cut_after": False}]
    page = chat_html([turn], "intro") + sources_html([turn]) + documents_html(
        [{"source": HOSTILE, "title": HOSTILE, "chunks": 1}])
    assert "<script" not in page and "<img" not in page and "{{" not in page and "${" not in page
    assert "javascript:" not in page
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in page
    assert 'class="cite"' in page  # our own badge markup is still there


def test_only_cited_markers_become_buttons():
    turn = Turn("q", answer=_answer("Six million [1], not [7].", "Six million"))
    html = chat_html([turn], "")
    assert html.count("<button") == 1 and 'data-n="1"' in html and 'cite pending">7<' in html


def test_refusal_has_no_sources_and_reads_differently():
    turn = Turn("q", answer=Answer(question="q", answer="The corpus does not say.", abstained=True))
    assert "msg bot refusal" in chat_html([turn], "") and "<button" not in chat_html([turn], "")
    assert "No sources" in sources_html([turn])


def test_the_quote_sits_inside_whole_sentences_around_it():
    text = "First one. Second one. The U.S. Forces said three. Fourth one. Fifth one."
    start = text.index("The U.S.")
    end = text.index("three.") + len("three.")
    before, quote, after, cut_before, cut_after = context_window(text, start, end)
    assert (before, quote, after) == ("Second one. ", "The U.S. Forces said three.", " Fourth one.")
    assert not cut_before and not cut_after


@pytest.mark.parametrize("name", ["../evil.txt", "a/b.txt", ".hidden.txt", "x.exe", "noext", "a..txt",
                                  "doc.txt.meta.json", "bad|name.txt", "x" * 200 + ".txt"])
def test_bad_upload_names_are_refused(name):
    with pytest.raises(UsageError):
        check_name(name)


def test_uploads_are_checked_for_content_and_size(tmp_path: Path):
    corpus = tmp_path / "corpus"
    good = tmp_path / "notes.md"
    good.write_text("# Notes\nThe bridge opened in 1932.\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(UsageError, match="empty"):
        check_upload(empty, "empty.txt", corpus)
    with pytest.raises(UsageError, match="UTF-8") as e:
        check_upload(latin, "latin.txt", corpus)
    assert str(tmp_path) not in str(e.value)  # the message names the file, not the temporary path
    dest, replaced = place(check_upload(good, "notes.md", corpus), corpus)
    assert dest == corpus / "notes.md" and not replaced and dest.read_bytes() == good.read_bytes()
    assert place(check_upload(good, "notes.md", corpus), corpus)[1] is True



def test_the_trace_names_the_verdict_and_the_refusal():
    trace = {"answerable": {"verdict": 0.2, "refuse_below": 0.55, "answer_from": 0.75},
             "refusal_reason": "the model's verdict 0.20 < 0.55: the passages do not give the answer"}
    assert trace_lines(trace) == [
        "Answerable: the model's verdict 0.20 (refuse below 0.55, answer from 0.75).",
        "Refused: the model's verdict 0.20 < 0.55: the passages do not give the answer.",
    ]


def test_the_trace_names_the_judge_of_the_best_sentences():
    trace = {"judge": {"judged": [{"answers": 0.41}, {"answers": 0.12}], "best": 0.41, "threshold": 0.8},
             "refusal_reason": "no sentence read answers the question: the judge's best is 0.41 < 0.8"}
    assert trace_lines(trace) == [
        "Judge: none of the 2 best sentences answers the question (best P(Yes) 0.41, needs 0.8).",
        "Refused: no sentence read answers the question: the judge's best is 0.41 < 0.8.",
    ]
    answered = {"judge": {"judged": [{"answers": 0.2}, {"answers": 0.93}], "best": 0.93, "threshold": 0.7,
                          "yes_at": 1}}
    assert trace_lines(answered) == [
        "Judge: sentence 2 of the best says it answers the question (P(Yes) 0.93, needs 0.7)."]
