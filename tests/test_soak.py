"""Soak: one index, a writer process and ten readers, for a few minutes, on loopback.

A `rag serve` (embedded Chroma, extractive answers) runs over a folder of 200 short documents, each
stating one fact ("The code word of station 17 is plovrak."). Beside it, rounds of `rag ingest` run as
separate processes, each after adding, editing and deleting documents in the folder; one round's ingest
is killed with SIGKILL once it has written its first documents, and the next run finishes its work.
Meanwhile 10 clients ask about the stations, half through the app (gradio_client, `/ask`) and half through
the HTTP API (`POST /v1/ask`).

Checked: no request fails; every citation quotes exactly the text of a version of its document that was
written (document ids are content hashes, so the id names the text); no answer that started after an
ingest had finished removing a version cites that version; at the end the index holds exactly what a
clean build of the final folder holds (document ids, chunk ids). The figures are printed (run with -s).
`RAG_SOAK_SECONDS` sets the writer's time (default 120 s; the whole test takes about 3-4 minutes).
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.config import Settings
from rag.store import Store
from rag.types import make_doc_id
from tests.conftest import ROOT
from tests.test_processes import _env, start_serve

# slow: minutes of ingests beside ten clients
pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECONDS = float(os.environ.get("RAG_SOAK_SECONDS", "120"))
DOCS = 200
CLIENTS = 10
REQUEST_TIMEOUT = 300
KILL_ROUND = 2  # this round's ingest is killed part-way (see _ingest); the next run finishes its work
SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sha", "vor", "pel", "dri", "on", "zu", "bex", "quin", "ya"]
FILLER = ("The station keeps a log of the weather every morning and sends it to the coast at noon. "
          "Visitors are asked to sign the book at the gate and to leave before dark. ")


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3))


def _text(i: int, word: str) -> str:
    return (f"Station {i} report\n\n{FILLER}The code word of station {i} is {word}. "
            f"Station {i} was last inspected in spring.\n")


class Folder:
    """The corpus folder and every version of every document ever written to it, by document id."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        root.mkdir(parents=True)
        self.live: dict[int, str] = {}  # station -> its current code word
        self.texts: dict[str, str] = {}  # doc id -> text, for every version written
        self.next = 0
        self.lock = threading.Lock()

    def write(self, i: int) -> None:
        """A new version of station i's document, with a new code word."""
        word = _word(self.rng)
        text = _text(i, word)
        name = f"station_{i:04d}.txt"
        self.texts[make_doc_id(name, text)] = text
        (self.root / name).write_text(text, encoding="utf-8")
        self.live[i] = word

    def current_id(self, i: int) -> str:
        return make_doc_id(f"station_{i:04d}.txt", _text(i, self.live[i]))

    def add(self) -> None:
        self.write(self.next)
        self.next += 1

    def edit(self, i: int) -> str:
        """Rewrite station i; returns the id of the version replaced."""
        old = self.current_id(i)
        self.write(i)
        return old

    def delete(self, i: int) -> str:
        old = self.current_id(i)
        (self.root / f"station_{i:04d}.txt").unlink()
        del self.live[i]
        return old


def _ingest(env: dict[str, str], *, kill: bool = False) -> tuple[int, float, str]:
    """`rag ingest --json` as its own process; with `kill`, SIGKILLed as soon as it has written its first
    group of documents (the generation stamp moved), before its removals."""
    t0 = time.monotonic()
    stamp = Path(env["RAG_INDEX"]) / "generation-rag"
    before = stamp.read_text(encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while kill and proc.poll() is None and time.monotonic() - t0 < 300:
        if stamp.read_text(encoding="utf-8") != before:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, time.monotonic() - t0, out + err


def _writer(folder: Folder, env: dict[str, str], stop_at: float, removed_at: dict[str, float],
            log: dict[str, Any]) -> None:
    rng = folder.rng
    rounds = 0
    while time.monotonic() < stop_at:
        removed: list[str] = []
        with folder.lock:
            for _ in range(30 if rounds == KILL_ROUND else 6):
                folder.add()
                log["added"] += 1
            stations = sorted(folder.live)
            for i in rng.sample(stations, 6):
                removed.append(folder.edit(i))
                log["edited"] += 1
            for i in rng.sample(sorted(folder.live), 4):
                removed.append(folder.delete(i))
                log["deleted"] += 1
        if rounds == KILL_ROUND:
            code, took, out = _ingest(env, kill=True)
            log["killed"] += int(code == -signal.SIGKILL)
            log["ingests"].append(round(took, 1))
        code, took, out = _ingest(env)
        assert code == 0, out
        log["ingests"].append(round(took, 1))
        finished = time.monotonic()
        for doc_id in removed:
            removed_at[doc_id] = finished
        rounds += 1
    log["rounds"] = rounds


def _client(n: int, base: str, folder: Folder, stop: threading.Event, results: list[dict[str, Any]]) -> None:
    rng = random.Random(1000 + n)
    app = None
    if n % 2 == 0:
        from gradio_client import Client

        app = Client(base + "/", verbose=False)
    http = httpx.Client(timeout=REQUEST_TIMEOUT)
    while not stop.is_set():
        with folder.lock:
            i = rng.choice(sorted(folder.live))
            word = folder.live[i]
        question = f"What is the code word of station {i}?"
        t0 = time.monotonic()
        rec: dict[str, Any] = {"via": "app" if app else "api", "station": i, "word": word, "start": t0}
        try:
            if app is not None:
                rec["answer"] = app.submit(question, api_name="/ask").result(timeout=REQUEST_TIMEOUT)
            else:
                r = http.post(f"{base}/v1/ask", json={"question": question})
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
                rec["answer"] = r.json()
        except Exception as e:  # every kind of failure is counted, none stops the soak
            rec["error"] = f"{type(e).__name__}: {e}"[:500]
        rec["end"] = time.monotonic()
        results.append(rec)
    http.close()


def _snapshot(settings: Settings) -> tuple[set[str], set[str]]:
    store = Store(settings)
    return {r["doc_id"] for r in store.documents().values()}, set(store.chunk_ids())


def test_soak_many_processes_one_index(tmp_path):
    rng = random.Random(17)
    folder = Folder(tmp_path / "corpus", rng)
    for _ in range(DOCS):
        folder.add()
    env = _env(folder.root, tmp_path / "index")
    proc, base = start_serve(env, tmp_path / "serve.log")  # it ingests the folder before it listens
    log: dict[str, Any] = {"added": 0, "edited": 0, "deleted": 0, "killed": 0, "ingests": []}
    removed_at: dict[str, float] = {}
    results: list[dict[str, Any]] = []
    stop = threading.Event()
    clients = [threading.Thread(target=_client, args=(n, base, folder, stop, results), daemon=True)
               for n in range(CLIENTS)]
    t0 = time.monotonic()
    try:
        for c in clients:
            c.start()
        _writer(folder, env, t0 + SECONDS, removed_at, log)
        time.sleep(5)  # questions asked after the last ingest finished
        stop.set()
        for c in clients:
            c.join(REQUEST_TIMEOUT)
    finally:
        stop.set()
        from tests.helpers import stop_process

        stop_process(proc, 30)
    wall = time.monotonic() - t0

    errors = [r for r in results if "error" in r]
    bad_quotes, cited_removed, correct, cited = [], [], 0, 0
    for r in results:
        ans = r.get("answer")
        if not ans:
            continue
        for c in ans["citations"]:
            cited += 1
            text = folder.texts.get(c["doc_id"])
            if text is None or text[c["start"] : c["end"]] != c["quote"]:
                bad_quotes.append((r["station"], c))
            gone = removed_at.get(c["doc_id"])
            if gone is not None and r["start"] > gone:
                cited_removed.append((r["station"], c["source"], round(r["start"] - gone, 2)))
        correct += r["word"] in ans["answer"]

    clean = Settings.from_env(env={}, corpus=folder.root, index=tmp_path / "clean")
    build = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", "--json"], cwd=ROOT, text=True,
                           env=_env(folder.root, tmp_path / "clean"), capture_output=True, timeout=900)
    assert build.returncode == 0, build.stderr
    final_docs, final_chunks = _snapshot(Settings.from_env(env={}, corpus=folder.root, index=tmp_path / "index"))
    clean_docs, clean_chunks = _snapshot(clean)
    expected = {folder.current_id(i) for i in folder.live}

    latencies = sorted(r["end"] - r["start"] for r in results if "answer" in r)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    figures = {
        "seconds": round(wall), "requests": len(results), "errors": len(errors),
        "via_app": sum(r["via"] == "app" for r in results), "via_api": sum(r["via"] == "api" for r in results),
        "p50_s": round(statistics.median(latencies), 2) if latencies else None, "p95_s": round(p95, 2),
        "citations": cited, "bad_quotes": len(bad_quotes), "cited_after_removal": len(cited_removed),
        "answers_with_current_fact": f"{correct}/{len(results) - len(errors)}",
        "ingest_rounds": log.get("rounds"), "ingest_runs_s": log["ingests"], "killed": log["killed"],
        "documents_added": log["added"] + DOCS, "edited": log["edited"], "deleted": log["deleted"],
        "final_documents": len(final_docs), "final_chunks": len(final_chunks),
        "index_equals_clean_build": final_docs == clean_docs == expected and final_chunks == clean_chunks,
    }
    print("\nsoak:", json.dumps(figures))
    assert not errors, [e["error"] for e in errors[:5]]
    assert not bad_quotes, bad_quotes[:5]
    assert not cited_removed, cited_removed[:5]
    assert log["killed"] == 1
    assert final_docs == expected, (len(final_docs ^ expected), "documents differ from the folder")
    assert final_docs == clean_docs and final_chunks == clean_chunks
