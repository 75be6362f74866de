"""The app's `/ask` endpoint through gradio_client, against the app launched on a free local port."""

from __future__ import annotations

import httpx
import pytest

from rag.answer.base import MARKER
from tests.conftest import CORPUS, SEED_SHELLS
from tests.helpers import free_port, running_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_url(seed_service):
    with running_app(seed_service) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_ask_returns_the_json_answer_with_exact_citations(client):
    got = client.predict("How many artillery shells has North Korea sent to Russia?", api_name="/ask")
    assert set(got) >= {"question", "answer", "abstained", "citations", "timings"}
    assert not got["abstained"] and "six million" in got["answer"]
    assert sorted({int(n) for n in MARKER.findall(got["answer"])}) == [c["n"] for c in got["citations"]]
    for c in got["citations"]:
        text = (CORPUS / c["source"]).read_text(encoding="utf-8")
        assert text[c["start"] : c["end"]] == c["quote"]
    assert any(c["source"] == SEED_SHELLS and "six million" in c["quote"] for c in got["citations"])


def test_ask_takes_history_and_rewrites_the_follow_up(client):
    history = [{"role": "user", "content": "Who is the commander of U.S. Forces Korea?"},
               {"role": "assistant", "content": "Army Gen. Xavier Brunson [1]."}]
    got = client.predict("What did he say Russia is sharing?", history, api_name="/ask")
    assert got["question"] == "What did he say Russia is sharing?"
    assert "commander of U.S. Forces Korea" in got["rewritten_question"]
    assert any("space, nuclear" in c["quote"] for c in got["citations"]), got["answer"]


def test_ask_refuses_plainly_when_the_corpus_does_not_know(client):
    got = client.predict("What is the boiling point of ethanol?", api_name="/ask")
    assert got["abstained"] and got["citations"] == []


def test_ask_reports_bad_input_in_one_line(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the question is empty"):
        client.predict("   ", api_name="/ask")


def test_app_binds_to_localhost_only(app_url):
    assert app_url.startswith("http://127.0.0.1:")
    assert httpx.get(app_url, timeout=10).status_code == 200


def test_rag_auth_turns_on_the_login(seed_service):
    from ui.app import serve

    port = free_port()
    app = serve(seed_service.with_settings(auth="reader:s3cret"), port=port, prevent_thread_lock=True, quiet=True)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/config", timeout=10).status_code == 401
        bad = httpx.post(f"{base}/login", data={"username": "reader", "password": "wrong"}, timeout=10)
        assert bad.status_code >= 400
        with httpx.Client(base_url=base, timeout=10) as session:
            assert session.post("/login", data={"username": "reader", "password": "s3cret"}).status_code == 200
            assert session.get("/config").status_code == 200
    finally:
        app.close()
