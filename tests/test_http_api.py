"""The HTTP API of `rag serve` (docs/api.md), against real `rag serve` processes on loopback ports.

Two servers over temporary indexes of corpus/: one with the default (generative) answerer and no keys, for
the official `openai` client and the streams; one extractive with RAG_API_KEYS set, for keys, errors,
documents, MCP and 20 concurrent chats (the queueing is the same with either answerer; extractive answers
keep the test short on two cores). Every citation is checked against the stored text from MCP `show`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.answer.base import MARKER
from tests.conftest import CORPUS, SEED_SHELLS
from tests.helpers import free_port, start_serve, stop_process
from tests.test_seed_questions import ANSWERABLE

pytestmark = pytest.mark.integration

SHELLS = "How many artillery shells has North Korea sent to Russia?"
KEYS = ("first-key-0123456789", "second-key-abcdefghij")
AUTH = {"Authorization": f"Bearer {KEYS[1]}"}
ANSWER_TIMEOUT = 600  # seconds for one answer on a busy 2-core machine, queueing included
CHATS = 20


def _start(root: Path, **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    corpus, log = root / "corpus", root / "serve.log"
    shutil.copytree(CORPUS, corpus)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAG_CHROMA_URL", "RAG_AUTH", "RAG_API_KEYS", "RAG_ANSWERER", "RAG_HOST", "RAG_PORT")}
    env.update(RAG_CORPUS=str(corpus), RAG_INDEX=str(root / "index"), **env_extra)
    return start_serve(env, log)


@pytest.fixture(scope="module")
def generative(tmp_path_factory):
    proc, base = _start(tmp_path_factory.mktemp("api-generative"))  # the default answerer
    yield base
    stop_process(proc, 30)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    proc, base = _start(tmp_path_factory.mktemp("api-keyed"), RAG_ANSWERER="extractive",
                        RAG_API_KEYS=f" {KEYS[0]}, {KEYS[1]} ")
    yield base
    stop_process(proc, 30)


# --- MCP, also the way tests read a document's stored text -------------------------------------------
async def _mcp(base: str, calls: list[tuple[str, dict[str, Any]]],
               key: str | None = None) -> tuple[list[str], list[Any]]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=ANSWER_TIMEOUT)) as http:
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            results = [await client.call_tool(name, args) for name, args in calls]
    return tools, results


def stored_texts(base: str, doc_ids: set[str], key: str | None = None) -> dict[str, str]:
    """doc_id -> the text the index stores, through the MCP `show` tool."""
    ids = sorted(doc_ids)
    _, results = asyncio.run(_mcp(base, [("show", {"doc_id": d}) for d in ids], key))
    assert not any(r.is_error for r in results), results
    return {d: r.content[0].text for d, r in zip(ids, results, strict=True)}


def check_cited(content: str, citations: list[dict[str, Any]], texts: dict[str, str]) -> None:
    """Every marker resolves to a citation, every citation is used, every quote is the stored span."""
    assert citations, content
    assert sorted({int(n) for n in MARKER.findall(content)}) == sorted(c["n"] for c in citations), content
    for c in citations:
        assert texts[c["doc_id"]][c["start"] : c["end"]] == c["quote"], c


def _events(resp: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent event stream."""
    out, event = [], "message"
    for line in resp.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
            event = "message"
    return out


# --- the default answerer, through the official openai client ----------------------------------------
def test_openai_client_gets_a_cited_answer_streaming_and_not(generative):
    from openai import OpenAI

    client = OpenAI(base_url=f"{generative}/v1", api_key="unused", timeout=ANSWER_TIMEOUT, max_retries=0)
    assert [m.id for m in client.models.list()] == ["rag"]

    reply = client.chat.completions.create(model="rag", messages=[
        {"role": "system", "content": "Answer briefly."}, {"role": "user", "content": SHELLS}])
    content, citations = reply.choices[0].message.content, reply.model_extra["citations"]
    assert re.search(r"six million|6 million|6,000,000", content, re.I) and MARKER.search(content), content
    texts = stored_texts(generative, {c["doc_id"] for c in citations})
    check_cited(content, citations, texts)
    assert any(c["source"] == SEED_SHELLS for c in citations)

    pieces, final = [], None
    for chunk in client.chat.completions.create(model="rag", stream=True,
                                                messages=[{"role": "user", "content": SHELLS}]):
        assert final is None, "nothing may follow the chunk that carries the citations"
        pieces.append(chunk.choices[0].delta.content or "")
        if chunk.choices[0].finish_reason == "stop":
            final = chunk.model_extra["citations"]
    streamed = "".join(pieces)
    assert final is not None and re.search(r"six million|6 million|6,000,000", streamed, re.I), streamed
    check_cited(streamed, final, texts | stored_texts(generative, {c["doc_id"] for c in final}))


def test_ask_streams_verified_deltas_then_the_whole_answer(generative):
    with httpx.stream("POST", f"{generative}/v1/ask", json={"question": SHELLS, "stream": True},
                      timeout=ANSWER_TIMEOUT) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = _events(resp)
    kinds = [e for e, _ in events]
    assert kinds[-1] == "answer" and kinds.count("answer") == 1 and set(kinds[:-1]) == {"delta"}, kinds
    answer = events[-1][1]
    assert "".join(d["text"] for _, d in events[:-1]) == answer["answer"]
    assert set(answer) >= {"question", "answer", "abstained", "citations", "timings"} and not answer["abstained"]
    check_cited(answer["answer"], answer["citations"],
                stored_texts(generative, {c["doc_id"] for c in answer["citations"]}))


# --- keys -------------------------------------------------------------------------------------------
CALLS = [("GET", "/v1/models", None), ("GET", "/v1/stats", None), ("GET", "/v1/documents", None),
         ("GET", "/v1/search?q=troops", None), ("POST", "/v1/ask", {"question": SHELLS}),
         ("POST", "/v1/chat/completions", {"model": "rag", "messages": [{"role": "user", "content": SHELLS}]}),
         ("DELETE", f"/v1/documents/{SEED_SHELLS}", None), ("POST", "/v1/documents", None),
         ("GET", "/v1/no-such-route", None), ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
         ("GET", "/mcp", None)]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEYS[0]},
                                     {"Authorization": f"Basic {KEYS[0]}"}],
                         ids=["none", "wrong", "no-scheme", "basic"])
def test_without_a_valid_key_every_v1_and_mcp_call_is_401(keyed, headers):
    for method, path, body in CALLS:
        resp = httpx.request(method, f"{keyed}{path}", json=body, headers=headers, timeout=30)
        assert resp.status_code == 401, (method, path, resp.text)
        assert "Authorization: Bearer" in resp.json()["error"] and KEYS[0] not in resp.text
    assert httpx.get(f"{keyed}/v1/documents", headers=AUTH, timeout=30).status_code == 200
    docs = httpx.get(f"{keyed}/v1/documents", headers={"Authorization": f"bearer {KEYS[0]}"}, timeout=30)
    assert {d["source"] for d in docs.json()["documents"]} >= {SEED_SHELLS}  # the seed was not deleted
    assert httpx.get(f"{keyed}/healthz", timeout=30).status_code == 200  # liveness and the app stay open
    assert httpx.get(f"{keyed}/", timeout=30).status_code == 200


# --- errors -----------------------------------------------------------------------------------------
BAD = [
    ("POST", "/v1/ask", {"json": {"question": "   "}}, 400, "the question is empty"),
    ("POST", "/v1/ask", {"json": {"question": "x" * 2500}}, 400, "keep it under 2000"),
    ("POST", "/v1/ask", {"json": {"question": SHELLS, "as_of": "soon"}}, 400, "not a date"),
    ("POST", "/v1/ask", {"json": {"question": SHELLS, "history": "earlier"}}, 422, "history"),
    ("POST", "/v1/ask", {"json": {"question": SHELLS, "k": 0}}, 422, "k: Input should be greater than"),
    ("POST", "/v1/ask", {"json": {"question": SHELLS, "k": "many"}}, 422, "k: "),
    ("POST", "/v1/ask", {"json": {"questoin": SHELLS}}, 422, "question: Field required"),
    ("POST", "/v1/ask", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422,
     "not valid JSON"),
    ("POST", "/v1/ask", {"content": b"{" + b" " * (2 << 20) + b"}", "headers": {"content-type": "application/json"}},
     413, "over the 1 MB limit"),
    ("POST", "/v1/ask", {"json": {"question": SHELLS, "stream": True, "k": 101}}, 422, "k: "),
    ("POST", "/v1/ask", {"json": {"question": "", "stream": True}}, 400, "the question is empty"),
    ("GET", "/v1/search", {}, 422, "q: Field required"),
    ("GET", "/v1/search?q=troops&k=500", {}, 422, "k: "),
    ("GET", "/v1/search?q=%20", {}, 400, "the question is empty"),
    ("DELETE", "/v1/documents/no-such-file.txt", {}, 404, "no document 'no-such-file.txt'"),
    ("POST", "/v1/documents", {}, 422, "files: Field required"),
    ("POST", "/v1/documents", {"files": {"files": ("tool.exe", b"MZ\x90\x00")}}, 400, ".exe files are not supported"),
    ("POST", "/v1/documents", {"files": {"files": ("empty.txt", b"")}}, 400, "is empty"),
    ("POST", "/v1/documents", {"files": {"files": ("../../escape.txt", b"text\n")}}, 400, "without folders"),
    ("POST", "/v1/documents", {"files": {"files": ("utf16.txt", "text".encode("utf-16"))}}, 400, "UTF-16"),
    ("POST", "/v1/documents", {"files": {"files": ("big.txt", b"a" * (21 << 20))}}, 413, "over the 21 MB limit"),
    ("POST", "/v1/chat/completions", {"json": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}},
     404, "use one of: rag"),
    ("POST", "/v1/chat/completions", {"json": {"model": "rag", "messages": []}}, 422, "messages: "),
    ("POST", "/v1/chat/completions", {"json": {"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]}},
     400, 'the last message must be the question, with role "user"'),
    ("POST", "/v1/chat/completions", {"json": {"model": "rag", "stream": True,
                                               "messages": [{"role": "user", "content": " "}]}}, 400, "empty"),
    ("GET", "/v1/no-such-route", {}, 404, "no route GET /v1/no-such-route"),
    ("POST", "/v1/stats", {}, 405, "use GET"),
]


def test_bad_input_gets_a_status_and_a_one_line_json_error_and_changes_nothing(keyed):
    before = httpx.get(f"{keyed}/v1/stats", headers=AUTH, timeout=30).json()
    docs = httpx.get(f"{keyed}/v1/documents", headers=AUTH, timeout=30).json()
    for method, path, kw, status, needle in BAD:
        resp = httpx.request(method, f"{keyed}{path}", headers={**AUTH, **kw.pop("headers", {})}, timeout=120, **kw)
        assert resp.status_code == status, (path, needle, resp.status_code, resp.text[:300])
        body = resp.json()
        assert set(body) == {"error"} and needle in body["error"] and "\n" not in body["error"], (path, body)
        assert "Traceback" not in resp.text
    assert httpx.get(f"{keyed}/v1/stats", headers=AUTH, timeout=30).json() == before
    assert httpx.get(f"{keyed}/v1/documents", headers=AUTH, timeout=30).json() == docs


# --- documents, search, stats -------------------------------------------------------------------------
def test_documents_can_be_added_found_and_removed(keyed):
    note = "The Zorblax reactor in Vellmar runs on 42 tonnes of blue sand a year.\n"
    added = httpx.post(f"{keyed}/v1/documents", headers=AUTH, timeout=300,
                       files={"files": ("zorblax.txt", note.encode())})
    assert added.status_code == 201, added.text
    assert added.json()["documents"] == [{"source": "zorblax.txt", "replaced": False}]
    assert added.json()["summary"]["added"] == 1
    docs = httpx.get(f"{keyed}/v1/documents", headers=AUTH, timeout=30).json()["documents"]
    assert "zorblax.txt" in {d["source"] for d in docs}
    assert httpx.get(f"{keyed}/v1/stats", headers=AUTH, timeout=30).json()["documents"] == 3

    found = httpx.get(f"{keyed}/v1/search", params={"q": "Zorblax reactor blue sand", "k": 2}, headers=AUTH,
                      timeout=60).json()
    assert found["query"] == "Zorblax reactor blue sand" and found["hits"][0]["source"] == "zorblax.txt"
    assert set(found["hits"][0]) == {"doc_id", "chunk_id", "score", "start", "end", "source", "page", "text"}

    got = httpx.post(f"{keyed}/v1/ask", headers=AUTH, timeout=ANSWER_TIMEOUT,
                     json={"question": "How much blue sand does the Zorblax reactor use a year?"}).json()
    assert "42 tonnes" in got["answer"] and got["citations"][0]["source"] == "zorblax.txt"
    assert got["citations"][0]["quote"] in note

    gone = httpx.delete(f"{keyed}/v1/documents/zorblax.txt", headers=AUTH, timeout=60)
    assert gone.status_code == 200 and gone.json() == {"deleted": "zorblax.txt"}
    docs = httpx.get(f"{keyed}/v1/documents", headers=AUTH, timeout=30).json()["documents"]
    assert "zorblax.txt" not in {d["source"] for d in docs}
    assert httpx.get(f"{keyed}/v1/stats", headers=AUTH, timeout=30).json()["documents"] == 2


# --- MCP ----------------------------------------------------------------------------------------------
def test_mcp_client_lists_and_calls_ask_search_and_show(keyed):
    tools, (ask, search, show, bad) = asyncio.run(_mcp(keyed, [
        ("ask", {"question": SHELLS}), ("search", {"query": "troops sent to Russia", "k": 3}),
        ("show", {"doc_id": SEED_SHELLS}), ("ask", {"question": "  "})], key=KEYS[0]))
    assert sorted(tools) == ["ask", "search", "show"]

    answer, hits = ask.structured_content, search.structured_content["hits"]
    assert not ask.is_error and not search.is_error and "six million" in answer["answer"]
    assert ask.content[0].text.startswith(answer["answer"])  # the text, then the numbered sources
    texts = stored_texts(keyed, {c["doc_id"] for c in answer["citations"]} | {h["doc_id"] for h in hits}, KEYS[0])
    check_cited(answer["answer"], answer["citations"], texts)
    assert len(hits) == 3 and all(texts[h["doc_id"]][h["start"] : h["end"]] == h["text"] for h in hits)
    assert show.content[0].text == (CORPUS / SEED_SHELLS).read_text(encoding="utf-8")  # .txt: the file itself
    assert bad.is_error and "the question is empty" in bad.content[0].text


# --- load ---------------------------------------------------------------------------------------------
def test_twenty_concurrent_chat_completions_all_get_cited_answers(keyed):
    from openai import OpenAI

    client = OpenAI(base_url=f"{keyed}/v1", api_key=KEYS[0], timeout=ANSWER_TIMEOUT, max_retries=0)
    asked = [ANSWERABLE[i % len(ANSWERABLE)] for i in range(CHATS)]

    def chat(i: int) -> tuple[str, list[dict[str, Any]]]:
        question = asked[i][0]
        if i % 4 == 3:  # some stream, as chat front-ends do
            pieces, citations = [], []
            for chunk in client.chat.completions.create(model="rag", stream=True,
                                                        messages=[{"role": "user", "content": question}]):
                pieces.append(chunk.choices[0].delta.content or "")
                citations = (chunk.model_extra or {}).get("citations", citations)
            return "".join(pieces), citations
        reply = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content or "", reply.model_extra["citations"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CHATS) as pool:
        replies = list(pool.map(chat, range(CHATS)))
    wall = time.perf_counter() - t0
    texts = stored_texts(keyed, {c["doc_id"] for _, cites in replies for c in cites}, KEYS[0])
    for (question, pattern, _), (content, citations) in zip(asked, replies, strict=True):
        check_cited(content, citations, texts)
        assert re.search(pattern, content) or any(re.search(pattern, c["quote"]) for c in citations), question
    print(f"\n{CHATS} concurrent chat completions answered in {wall:.1f} s")
    assert httpx.get(f"{keyed}/healthz", timeout=30).json()["queues"]["answer"] == {"running": 0, "waiting": 0}


# --- the app's login keeps the API closed ---------------------------------------------------------------
def test_rag_auth_without_keys_keeps_the_api_closed_and_the_login_works(seed_service):
    from ui.app import serve

    port = free_port()
    closed = seed_service.with_settings(auth="reader:s3cret", api_keys=())
    server = serve(closed, port=port, prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for method, path, body in CALLS:
            resp = httpx.request(method, f"{base}{path}", json=body, timeout=30)
            assert resp.status_code == 401 and "RAG_API_KEYS" in resp.json()["error"], (method, path)
        assert httpx.get(f"{base}/config", timeout=30).status_code == 401  # the app itself asks for the login
        with httpx.Client(base_url=base, timeout=30) as session:
            assert session.post("/login", data={"username": "reader", "password": "s3cret"}).status_code == 200
            assert session.get("/config").status_code == 200
            assert session.get("/v1/stats").status_code == 401  # a browser session is not an API key
    finally:
        server.close()
