"""One index, many processes: a running `rag serve` follows what a separate `rag ingest` writes, ingests
take turns through the index's lock, and a watched corpus folder is ingested as it changes.

The scenario a user meets: the app open, a file in the corpus changed, `rag ingest` run from a terminal,
and the next question must answer from the new text (then, once the file is removed, from nothing), on the
embedded index and on a Chroma server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.cli import main as rag_main
from rag.config import Settings
from rag.errors import IngestRunning
from rag.service import Service
from tests.conftest import CORPUS, ROOT, SEED_SHELLS, SEED_TROOPS
from tests.helpers import start_serve, stop_process

pytestmark = pytest.mark.integration

FRESH = "harbour.txt"
QUESTION = "Who is the new lighthouse keeper of the harbour of Veltrana?"
VERSION_1 = ("The harbour of Veltrana reopened in March after the winter storms had closed it for six weeks. "
             "The new lighthouse keeper of the harbour of Veltrana is Orsolya Brandt, who came from the "
             "northern islands.\n")
VERSION_2 = VERSION_1.replace("Orsolya Brandt", "Tamsin Okafor")
SHELLS = "How many artillery shells has North Korea sent to Russia?"
ANSWER_TIMEOUT = 300  # one extractive answer on a busy 2-core machine


def _env(corpus: Path, index: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAG_CHROMA_URL", "RAG_COLLECTION", "RAG_AUTH", "RAG_API_KEYS", "RAG_WATCH")}
    env.update(RAG_CORPUS=str(corpus), RAG_INDEX=str(index), RAG_ANSWERER="extractive", **extra)
    return env



def rag_ingest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`rag ingest` as a separate process, the way a user runs it from a terminal."""
    return subprocess.run([sys.executable, "-m", "rag.cli", "ingest", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=600)


def ask(base: str, question: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/v1/ask", json={"question": question}, timeout=ANSWER_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def check_citations(got: dict[str, Any], corpus: Path) -> None:
    """Every quote is the exact span of the file as it is now."""
    for c in got["citations"]:
        assert (corpus / c["source"]).read_text(encoding="utf-8")[c["start"] : c["end"]] == c["quote"], c


@pytest.mark.slow
def test_a_running_app_answers_from_what_another_process_ingested(tmp_path, backend):
    """The issue's scenario: `rag serve` running, the corpus changed and `rag ingest` run beside it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in os.listdir(CORPUS):
        (corpus / name).write_bytes((CORPUS / name).read_bytes())
    extra = {"RAG_CHROMA_URL": backend["chroma_url"], "RAG_COLLECTION": backend["collection"]} if backend else {}
    env = _env(corpus, tmp_path / "index", **extra)
    proc, base = start_serve(env, tmp_path / "serve.log")
    try:
        before = ask(base, QUESTION)
        assert not any(c["source"] == FRESH for c in before["citations"])

        (corpus / FRESH).write_text(VERSION_1, encoding="utf-8")
        done = rag_ingest(env)
        assert done.returncode == 0 and "added 1" in done.stdout, done.stderr
        got = ask(base, QUESTION)
        assert "Orsolya Brandt" in got["answer"] and any(c["source"] == FRESH for c in got["citations"]), got
        check_citations(got, corpus)

        (corpus / FRESH).write_text(VERSION_2, encoding="utf-8")
        done = rag_ingest(env)
        assert done.returncode == 0 and "updated 1" in done.stdout, done.stderr
        got = ask(base, QUESTION)
        assert "Tamsin Okafor" in got["answer"] and "Orsolya" not in got["answer"], got
        check_citations(got, corpus)
        hits = httpx.get(f"{base}/v1/search", params={"q": "lighthouse keeper Orsolya Brandt", "k": 5},
                         timeout=ANSWER_TIMEOUT).json()["hits"]
        assert all("Orsolya" not in h["text"] for h in hits), hits

        (corpus / FRESH).unlink()
        done = rag_ingest(env)
        assert done.returncode == 0 and "removed 1" in done.stdout, done.stderr
        got = ask(base, QUESTION)
        assert not any(c["source"] == FRESH for c in got["citations"]), got
        assert "Tamsin" not in got["answer"], got
        check_citations(got, corpus)
        stats = httpx.get(f"{base}/v1/stats", timeout=60).json()
        assert stats["documents"] == 2

        # A document the app had loaded when it started, removed by the other process: dense search too
        # must stop finding it (an embedded Chroma client never reloads its vectors by itself).
        (corpus / SEED_SHELLS).unlink()
        done = rag_ingest(env)
        assert done.returncode == 0 and "removed 1" in done.stdout, done.stderr
        hits = httpx.get(f"{base}/v1/search", params={"q": SHELLS, "k": 10}, timeout=ANSWER_TIMEOUT).json()["hits"]
        assert hits and all(h["source"] != SEED_SHELLS for h in hits), [h["source"] for h in hits]
        got = ask(base, SHELLS)
        assert all(c["source"] != SEED_SHELLS for c in got["citations"]), got
        check_citations(got, corpus)

        # `--rebuild` elsewhere drops and recreates the collections under the running app
        done = rag_ingest(env, "--rebuild")
        assert done.returncode == 0 and "added 1" in done.stdout, done.stderr
        got = ask(base, SHELLS)
        assert got["citations"] and all(c["source"] == SEED_TROOPS for c in got["citations"]), got
        check_citations(got, corpus)
        assert httpx.get(f"{base}/v1/stats", timeout=60).json()["documents"] == 1
    finally:
        stop_process(proc, 30)


# --- the writer lock ------------------------------------------------------------------------------------
HOLD = """
import sys, time
from pathlib import Path
from rag.config import Settings
from rag.store import Store
store = Store(Settings.from_env(env={}, index=Path(sys.argv[1])))
with store.lock().hold():
    print("held", flush=True)
    if sys.argv[2] == "die":
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(sys.argv[2]))
"""


def _hold(index: Path, how: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(index), how], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _service(corpus: Path, index: Path, embedder: Any) -> Service:
    return Service(Settings.from_env(env={}, corpus=corpus, index=index, answerer="extractive", embed_model="hash"),
                   embedder=embedder)


def test_a_second_ingest_with_no_wait_exits_2_naming_the_holder(tmp_path, corpus_copy, capsys):
    index = tmp_path / "index"
    holder = _hold(index, "60")
    try:
        code = rag_main(["ingest", "--no-wait", "--corpus", str(corpus_copy), "--index", str(index)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"another ingest into {index} is running, started" in err, err
        assert f"by PID {holder.pid}" in err and "s ago" in err and "--no-wait" in err, err
    finally:
        holder.kill()
        holder.wait()


def test_a_second_ingest_waits_saying_for_whom_then_runs(tmp_path, corpus_copy, hash_embedder):
    index = tmp_path / "index"
    holder = _hold(index, "2")
    lines: list[str] = []
    t0 = time.monotonic()
    summary = _service(corpus_copy, index, hash_embedder).ingest(notify=lines.append)
    waited = time.monotonic() - t0
    holder.wait()
    assert summary.added == 2 and waited > 1.0
    assert lines and lines[0].startswith("waiting for another ingest into"), lines
    assert f"ago by PID {holder.pid}" in lines[0], lines


def test_a_lock_left_by_a_killed_ingest_is_cleared(tmp_path, corpus_copy, hash_embedder):
    index = tmp_path / "index"
    holder = _hold(index, "die")
    holder.wait()
    assert holder.returncode == -signal.SIGKILL
    lines: list[str] = []
    svc = _service(corpus_copy, index, hash_embedder)
    summary = svc.ingest(wait=False, notify=lines.append)  # the dead holder's lock does not count as held
    assert summary.added == 2
    assert any(f"left by PID {holder.pid}" in line and "cleared" in line for line in lines), lines
    assert svc.store.lock().holder() == {}  # released cleanly this time


def test_readers_do_not_wait_for_the_lock(tmp_path, corpus_copy, hash_embedder):
    index = tmp_path / "index"
    svc = _service(corpus_copy, index, hash_embedder)
    svc.ingest()
    holder = _hold(index, "60")
    try:
        t0 = time.monotonic()
        assert svc.search("artillery shells", 3)
        assert svc.stats()["documents"] == 2
        assert time.monotonic() - t0 < 10
        with pytest.raises(IngestRunning, match=f"PID {holder.pid}"):
            svc.ingest(wait=False)
    finally:
        holder.kill()
        holder.wait()


# --- watching the corpus folder -------------------------------------------------------------------------
def _sync_after(base: str, since: int, timeout: float = 30.0) -> dict[str, Any]:
    """The watcher's first sync record (from /v1/stats) after the `since`-th."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sync = httpx.get(f"{base}/v1/stats", timeout=30).json().get("sync")
        if sync and sync["n"] > since:
            return sync
        time.sleep(0.2)
    pytest.fail(f"no sync within {timeout} s")


def test_a_watched_folder_is_ingested_as_it_changes(make_service, corpus_copy, hash_embedder):
    from tests.helpers import running_app
    from ui.render import sync_html

    svc = make_service(corpus_copy, embedder=hash_embedder, embed_model="hash", watch=True)
    with running_app(svc) as url:
        base = url.rstrip("/")
        first = _sync_after(base, 0)
        assert first["trigger"] == "start" and first["error"] is None
        t0 = time.monotonic()
        (corpus_copy / FRESH).write_text(VERSION_1, encoding="utf-8")
        (corpus_copy / "broken.txt").write_bytes(b"\x00\x01\x02 not text \xff\xfe")
        added = _sync_after(base, first["n"])
        if added["added"] == 0:  # the two files landed in two batches
            added = _sync_after(base, added["n"])
        took = time.monotonic() - t0
        assert added["added"] == 1 and added["error"] is None, added
        assert [s["path"] for s in added["skipped"]] == ["broken.txt"] and added["skipped"][0]["reason"], added
        print(f"\nwatch: a new file ingested {took:.1f} s after it was written")
        assert took < 15, took
        assert any(h.source == FRESH for h in svc.search("lighthouse keeper Veltrana", 3))
        html = sync_html(added)
        assert "broken.txt" in html and "1 added" in html
        (corpus_copy / FRESH).unlink()
        removed = _sync_after(base, added["n"])
        assert removed["removed"] == 1, removed
        assert FRESH not in {d["source"] for d in svc.documents()}


# --- an answer cites what is stored ---------------------------------------------------------------------
class _CitesFirstHit:
    """An answerer that quotes the first hit, and the first time also removes that document, the way
    another process's ingest could while the answer is being written."""

    def __init__(self, store: Any) -> None:
        self.store, self.calls = store, 0

    def answer(self, question: str, hits: list[Any], doc_text: Any) -> Any:
        from rag.types import Answer, Citation

        self.calls += 1
        h = hits[0]
        quote = doc_text(h.doc_id)[h.start : h.end]
        if self.calls == 1:
            self.store.delete_document(h.doc_id)  # gone before the answer is handed back
        return Answer(question, "It says so [1].", False, [Citation(1, h.doc_id, h.chunk_id, h.source, h.title,
                                                                      h.start, h.end, quote)])


def test_an_answer_citing_a_document_removed_meanwhile_is_written_again(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder, embed_model="hash")
    svc.ingest()
    fake = _CitesFirstHit(svc.store)
    svc._answerer = fake
    ans = svc.ask("How many artillery shells has North Korea sent to Russia?")
    assert fake.calls == 2 and ans.trace["attempts"] == 2
    (cited,) = ans.citations
    assert svc.store.stored([cited.doc_id]) == {cited.doc_id}
    assert svc.doc_text(cited.doc_id)[cited.start : cited.end] == cited.quote


def test_machines_sharing_a_chroma_server_take_turns(chroma_server, tmp_path, corpus_copy, hash_embedder):
    """Two clients with their own index folders (as on two machines) and one server: the lock record on the
    server makes the second wait or, with --no-wait, refuse; a record left silent by a dead holder is cleared."""
    import threading
    import uuid

    from rag.store import _LockRecord

    collection = f"t-{uuid.uuid4().hex[:12]}"

    def client(name: str) -> Service:
        return Service(Settings.from_env(env={}, corpus=corpus_copy, index=tmp_path / name, answerer="extractive",
                                         embed_model="hash", chroma_url=chroma_server, collection=collection),
                       embedder=hash_embedder)

    first, second = client("machine-a"), client("machine-b")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.store.lock().hold():
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(IngestRunning, match=f"collection '{collection}' on {chroma_server} is running"):
            second.ingest(wait=False)
        lines: list[str] = []
        threading.Timer(1.5, release.set).start()
        assert second.ingest(notify=lines.append).added == 2
        assert lines and lines[0].startswith("waiting for another ingest into collection"), lines
    finally:
        release.set()
        t.join(30)
    _LockRecord(second.store.client, collection, chroma_server).write(
        {"pid": 999999, "host": "elsewhere", "started": time.time() - 120, "beat": time.time() - 60, "token": "x"})
    lines = []
    assert second.ingest(wait=False, notify=lines.append).unchanged == 2
    assert any("left by PID 999999 on elsewhere, silent for" in line for line in lines), lines
