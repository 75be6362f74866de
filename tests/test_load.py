"""Load: concurrent chats through gradio_client, answers while an ingest runs, a 500-question batch's memory.

Everything runs on 127.0.0.1, with the extractive answerer (the generative one gives the same queueing at
about 5 s an answer, which is too long for CI), and with bounded request counts and timeouts. Figures are
printed (run with -s to see them); they are measurements, not pass marks.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rag.answer.base import MARKER
from rag.service import Service, clean_question
from tests.conftest import CORPUS, DATASETS, ROOT
from tests.helpers import ingested_seed_copy, running_app
from tests.test_seed_questions import ANSWERABLE

# slow: 20 concurrent chats, an ingest of 200 documents beside the chat, a 500-question batch
pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHATS = 20
REQUEST_TIMEOUT = 300  # seconds for one answer, queueing included; a busy CI machine is slow, not stuck
BATCH = 500
RTQA = DATASETS / "realtimeqa"
FOLLOW_UP = ("Who is the commander of U.S. Forces Korea?", "What did he say Russia is sharing?", "space, nuclear")


@pytest.fixture(scope="module")
def service(tmp_path_factory, embedder) -> Service:
    return ingested_seed_copy(tmp_path_factory.mktemp("load"), embedder)


@pytest.fixture(scope="module")
def app_url(service):
    with running_app(service) as url:
        yield url


def check_answer(service: Service, got: dict[str, Any], pattern: str) -> None:
    """A correct, cited answer: the fact is there, every marker resolves, every quote is the exact span."""
    assert not got["abstained"], got
    assert re.search(pattern, got["answer"]) or any(re.search(pattern, c["quote"]) for c in got["citations"]), got
    assert sorted({int(n) for n in MARKER.findall(got["answer"])}) == [c["n"] for c in got["citations"]]
    for c in got["citations"]:
        assert service.doc_text(c["doc_id"])[c["start"] : c["end"]] == c["quote"]


def _chat(url: str, i: int) -> list[tuple[float, dict[str, Any], str]]:
    """One user's chat: a question, then (every other chat) a follow-up that needs the first turn."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    out = []
    if i % 2:
        first, follow, needle = FOLLOW_UP
        t0 = time.perf_counter()
        got = client.submit(first, api_name="/ask").result(timeout=REQUEST_TIMEOUT)
        out.append((time.perf_counter() - t0, got, "Xavier Brunson"))
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": got["answer"]}]
        t0 = time.perf_counter()
        got = client.submit(follow, history, api_name="/ask").result(timeout=REQUEST_TIMEOUT)
        out.append((time.perf_counter() - t0, got, needle))
    else:
        question, pattern, _ = ANSWERABLE[i % len(ANSWERABLE)]
        t0 = time.perf_counter()
        got = client.submit(question, api_name="/ask").result(timeout=REQUEST_TIMEOUT)
        out.append((time.perf_counter() - t0, got, pattern))
    return out


def test_twenty_concurrent_chats_all_get_cited_answers(service, app_url):
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CHATS) as pool:
        chats = list(pool.map(lambda i: _chat(app_url, i), range(CHATS)))
    wall = time.perf_counter() - t0
    replies = [r for chat in chats for r in chat]
    for _, got, needle in replies:
        check_answer(service, got, needle)
    waits = sorted(s for s, _, _ in replies)
    print(f"\n{CHATS} chats, {len(replies)} answers in {wall:.1f} s; latency with queueing "
          f"p50 {statistics.median(waits):.2f} s, max {waits[-1]:.2f} s")
    assert len(replies) == CHATS + CHATS // 2


def _rtqa_openings(n: int, skip: int = 0) -> list[tuple[str, str]]:
    out = []
    with gzip.open(RTQA / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["text"].strip():
                out.append((rec["_id"], rec["text"][:1500]))
            if len(out) == n + skip:
                break
    return out[skip:]


def test_answers_keep_coming_while_an_ingest_runs(service, app_url):
    from gradio_client import Client

    if not RTQA.exists():
        pytest.skip(f"{RTQA} is not there")
    client = Client(app_url, verbose=False)
    question, pattern, _ = ANSWERABLE[0]

    def ask() -> float:
        t0 = time.perf_counter()
        check_answer(service, client.submit(question, api_name="/ask").result(timeout=REQUEST_TIMEOUT),
                     pattern)
        return time.perf_counter() - t0

    idle = [ask() for _ in range(3)]
    folder = service.settings.corpus / "incoming"
    folder.mkdir()
    for doc_id, text in _rtqa_openings(200):
        (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    result: dict[str, Any] = {}
    ingest = threading.Thread(target=lambda: result.update(summary=service.ingest([folder])))
    ingest.start()
    during: list[float] = []
    deadline = time.monotonic() + 600
    while ingest.is_alive() and time.monotonic() < deadline and len(during) < 50:
        seconds = ask()
        if ingest.is_alive():
            during.append(seconds)
    ingest.join(timeout=600)
    assert not ingest.is_alive() and result["summary"].added == 200
    print(f"\nanswer latency idle p50 {statistics.median(idle):.2f} s; during an ingest of 200 documents "
          f"p50 {statistics.median(during):.2f} s, max {max(during):.2f} s over {len(during)} answers; "
          f"the ingest took {result['summary'].seconds:.1f} s")
    assert len(during) >= 3  # answered again and again while the ingest was writing
    ask()  # and after it


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (from /proc), a figure other load does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, in MB (from /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _batch_questions() -> list[str]:
    """500 different questions: the seed questions (numbered) and RealTimeQA's news questions."""
    rtqa = [json.loads(line)["question"] for line in (RTQA / "queries_dev.jsonl").read_text("utf-8").splitlines()]
    seeds = [f"{q} ({i})" for i in range(20) for q, _, _ in ANSWERABLE]
    return (rtqa + seeds)[:BATCH]


def test_a_500_question_batch_keeps_memory_bounded(service, tmp_path):
    if not (RTQA / "queries_dev.jsonl").exists():
        pytest.skip(f"{RTQA} is not there")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_CORPUS=str(CORPUS), RAG_INDEX=str(tmp_path / "index"), RAG_ANSWERER="extractive")
    subprocess.run([sys.executable, "-m", "rag.cli", "ingest"], env=env, cwd=ROOT, check=True, capture_output=True,
                   timeout=300)
    questions = _batch_questions()
    assert len(set(questions)) == BATCH
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ask", "-", "--json"], env=env, cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    writer = threading.Thread(target=lambda: proc.stdin.write("".join(q + "\n" for q in questions)))
    writer.start()  # stdin stays open until the end, so the process is still alive to be measured
    samples: list[tuple[int, float, float]] = []
    cpu: dict[int, float] = {}
    answers = []
    t0 = time.perf_counter()
    try:
        for n in range(1, BATCH + 1):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.poll() is not None else "no answer"
            answers.append(json.loads(line))
            if n in (10, 100, 200, 300, 400, 500):
                samples.append((n, *_rss_mb(proc.pid)))
                cpu[n] = _cpu_seconds(proc.pid)
        seconds = time.perf_counter() - t0
    finally:
        writer.join(timeout=60)
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    assert [a["question"] for a in answers] == [clean_question(q) for q in questions]  # in order, one each
    assert all("error" not in a for a in answers)
    print(f"\n{BATCH} questions in {seconds:.1f} s ({BATCH / seconds:.1f}/s), "
          f"{(cpu[500] - cpu[10]) / 490:.2f} CPU s an answer; RSS after n answers (MB):")
    for n, rss, peak in samples:
        print(f"  {n:>4}: {rss:7.1f}   peak {peak:7.1f}")
    start, end = samples[0][1], samples[-1][1]
    # Bounded: after the models are loaded, 490 more answers may not grow the process by more than 10%.
    assert end <= start * 1.10, samples
