"""Units of the HTTP API (ui/api*.py) and `rag ask --stream`, with a scripted stand-in for the Service.

The slot test runs the real API under uvicorn on a loopback port with a real HTTP client: only the
Service is a double, one whose answer waits until the test lets it go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest

from rag.errors import Busy, UsageError
from rag.types import Answer, Citation
from tests.helpers import free_port


class ScriptedService:
    """ask_stream: one delta, then (for "slow") a wait the test ends, then a second delta and the answer."""

    settings = SimpleNamespace(as_of="")

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []
        self.closed: list[str] = []
        self.finished: list[str] = []

    def ask_stream(self, question: str, history: Any = None, k: Any = None) -> Iterator[tuple[str, Any]]:
        self.started.append(question)
        try:
            yield "delta", "first piece"
            if question == "slow":
                assert self.release.wait(120)
            yield "delta", " and more"
            yield "answer", Answer(question=question, answer="first piece and more", abstained=False)
            self.finished.append(question)
        finally:
            if question not in self.finished:
                self.closed.append(question)


def _until(check, what: str, limit: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def test_a_client_that_leaves_frees_its_slot_waiting_or_running(monkeypatch):
    from ui.api import Server, build_api

    monkeypatch.delenv("RAG_API_KEYS", raising=False)
    svc = ScriptedService()
    port = free_port()
    server = Server(build_api(svc), "127.0.0.1", port, quiet=True).start()  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{port}"

    def answers() -> dict[str, int]:
        return httpx.get(f"{base}/healthz", timeout=10).json()["queues"]["answer"]

    try:
        # A streams, reads the first piece and leaves while its answer is still being written
        with httpx.stream("POST", f"{base}/v1/ask", json={"question": "slow", "stream": True}, timeout=30) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert (next(lines), next(lines)) == ("event: delta", 'data: {"text": "first piece"}')
        assert answers()["running"] == 1
        # B waits behind A, gives up, and leaves the queue without ever running
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{base}/v1/ask", json={"question": "quick"}, timeout=httpx.Timeout(30, read=1.5))
        _until(lambda: answers()["waiting"] == 0, "B left the queue")
        # A's step ends; its client is gone, so its stream is closed, not finished, and the slot is free
        svc.release.set()
        _until(lambda: answers() == {"running": 0, "waiting": 0}, "A freed its slot")
        assert svc.closed == ["slow"] and "slow" not in svc.finished
        # C is answered at once; B's question never ran
        got = httpx.post(f"{base}/v1/ask", json={"question": "quick"}, timeout=30)
        assert got.status_code == 200 and got.json()["answer"] == "first piece and more"
        assert svc.started == ["slow", "quick"] and svc.finished == ["quick"]
    finally:
        svc.release.set()
        server.close()


def test_slots_run_one_at_a_time_and_refuse_past_the_queue():
    from ui.api_base import Slots

    async def main() -> list[str]:
        slots, log = Slots("answer", queue_size=2), []

        async def job(name: str, hold: anyio.Event) -> None:
            async with slots.hold():
                log.append(f"start {name}")
                await hold.wait()
                log.append(f"end {name}")

        gates = [anyio.Event() for _ in range(3)]
        async with anyio.create_task_group() as tg:
            for name, gate in zip("abc", gates, strict=True):
                tg.start_soon(job, name, gate)
                await anyio.sleep(0.01)
            assert slots.state() == {"running": 1, "waiting": 2}
            with pytest.raises(Busy, match="2 answer requests are already waiting"):
                async with slots.hold():
                    pass
            for gate in gates:
                gate.set()
        return log

    log = anyio.run(main)
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]


def test_bearer_auth_accepts_only_a_listed_key():
    from ui.api import BearerAuth

    auth = BearerAuth(app=None, keys=["alpha-key", "beta-key"], app_auth=False)  # type: ignore[arg-type]
    assert auth.allows("Bearer alpha-key") and auth.allows("bearer beta-key")
    for header in ("", "alpha-key", "Bearer ", "Bearer alpha", "Bearer alpha-key2", "Basic alpha-key"):
        assert not auth.allows(header), header
    assert BearerAuth(app=None, keys=[], app_auth=True).closed  # type: ignore[arg-type]
    assert not BearerAuth(app=None, keys=[], app_auth=False).closed  # type: ignore[arg-type]


def test_chat_messages_become_the_question_and_its_history():
    from ui.api_chat import ChatMessage, question_and_history

    msgs = [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="Who leads USFK?"),
            ChatMessage(role="assistant", content="Gen. Brunson [1]."),
            ChatMessage(role="user", content=[{"type": "text", "text": "What did he say?"}, {"type": "image_url"}])]
    question, history = question_and_history(msgs)
    assert question == "What did he say?"
    assert history == [{"role": "user", "content": "Who leads USFK?"},
                       {"role": "assistant", "content": "Gen. Brunson [1]."}]
    with pytest.raises(UsageError, match='role "user"'):
        question_and_history([ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="x")])


def test_ask_stream_prints_the_text_as_it_comes_then_the_sources(capsys):
    from rag import cli

    cite = Citation(n=1, doc_id="d", chunk_id="d:0-9", source="a.txt", title="A", start=0, end=9, quote="six mill.")
    writes: list[str] = []

    class Streaming:
        def ask_stream(self, question: str, history: Any = None, k: Any = None) -> Iterator[tuple[str, Any]]:
            yield "delta", "Six million [1]."
            writes.append(capsys.readouterr().out)  # what the user saw before the rest was written
            yield "delta", " By sea [1]."
            yield "answer", Answer(question=question, answer="Six million [1]. By sea [1].", abstained=False,
                                   citations=[cite])

    cli._stream_answer(Streaming(), "How many?", None)
    assert writes == ["Six million [1]."]
    assert capsys.readouterr().out == ' By sea [1].\n\n[1] a.txt (0-9): "six mill."\n'


def test_ask_stream_refuses_json_and_stdin(capsys):
    from rag import cli

    assert cli.main(["ask", "How many?", "--stream", "--json"]) == 2
    assert cli.main(["ask", "-", "--stream"]) == 2
    assert "--stream prints one answer as text" in capsys.readouterr().err
