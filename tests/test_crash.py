"""Crash safety: `rag ingest` killed with SIGKILL partway, then run again, equals a clean build.

The corpus is 300 RealTimeQA articles (the opening ~1,500 characters, about two chunks of each, so the test stays short)
written as .txt files. The clean build is the reference: the same document ids, chunk ids and counts, no
duplicate or half-indexed document, the same vectors, and a vector index that finds every chunk.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.config import Settings
from rag.service import Service
from tests.conftest import DATASETS, ROOT

# slow: ingests of 300 RealTimeQA articles killed and re-run
pytestmark = [pytest.mark.integration, pytest.mark.slow]

RTQA = DATASETS / "realtimeqa" / "corpus.jsonl.gz"
N_DOCS = 300
RAG = [sys.executable, "-m", "rag.cli"]

# Runs `rag ingest`, but dies by SIGKILL in the middle of writing the second group's chunks: the worst
# moment, with documents recorded as pending and only some of their chunks in the index.
DIE_MID_WRITE = """
import os, signal, sys
from llama_index.vector_stores.chroma import ChromaVectorStore
from rag.cli import main
original, calls = ChromaVectorStore.add, []
def add_then_die(self, nodes, **kw):
    calls.append(len(nodes))
    if len(calls) == 2:
        original(self, nodes[: len(nodes) // 2], **kw)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, nodes, **kw)
ChromaVectorStore.add = add_then_die
sys.exit(main(["ingest"]))
"""


def _opening(text: str, limit: int = 1500) -> str:
    """The article up to the last paragraph break before `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit)
    return text[: cut if cut > 200 else limit]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not RTQA.exists():
        pytest.skip(f"{RTQA} is not there")
    folder = tmp_path_factory.mktemp("crash") / "corpus"
    folder.mkdir()
    n = 0
    with gzip.open(RTQA, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if not rec["text"].strip():
                continue
            (folder / f"{n:03d}_{rec['_id']}.txt").write_text(_opening(rec["text"]), encoding="utf-8")
            n += 1
            if n == N_DOCS:
                break
    return folder


def _service(corpus: Path, index: Path, embedder=None) -> Service:
    """A view of the index as it is on disk now.

    Chroma keeps one cached system per folder in a process; after another process (the killed or the
    re-run ingest) wrote to the folder, that cache is stale, so it is dropped first.
    """
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return Service(Settings.from_env(env={}, corpus=corpus, index=index, answerer="extractive"), embedder=embedder)


def index_state(svc: Service) -> dict[str, Any]:
    """Everything the comparison looks at, read back from Chroma."""
    docs = svc.store.docs.get(include=["metadatas"])
    chunks = svc.store.chunks.get(include=["metadatas", "embeddings"])
    return {
        "stats": {k: v for k, v in svc.stats().items() if k != "backend"},
        "documents": {m["source"]: (i, m["hash"], m["state"], m["chunks"])
                      for i, m in zip(docs["ids"], docs["metadatas"], strict=True)},
        "chunk_ids": list(chunks["ids"]),
        "chunk_docs": [m["doc_id"] for m in chunks["metadatas"]],
        "vectors": dict(zip(chunks["ids"], np.asarray(chunks["embeddings"]), strict=True)),
    }


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory, embedder) -> dict[str, Any]:
    """The reference: the corpus ingested once, without interruption, into a fresh index."""
    svc = _service(corpus, tmp_path_factory.mktemp("clean") / "index", embedder)
    summary = svc.ingest()
    assert summary.added == N_DOCS and not summary.skipped
    return index_state(svc)


def _env(corpus: Path, index: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return dict(env, RAG_CORPUS=str(corpus), RAG_INDEX=str(index), RAG_ANSWERER="extractive")


def kill_after(corpus: Path, index: Path, after: int, timeout: float = 600) -> int:
    """Start `rag ingest`, SIGKILL it as soon as its progress bar counts more than `after` documents.

    Standard error is a terminal (a pty), so the command draws its progress bar there, as for a user. The
    bar moves when a group of documents (about 256 chunks) has been written, so the kill lands while the
    next group is being embedded or written. Returns the count the bar showed when the kill was sent.
    """
    master, slave = pty.openpty()
    # a terminal of 0 x 0 characters gets no progress bar from tqdm; give it a real size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(RAG + ["ingest"], env=_env(corpus, index), cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen, tail = 0, b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    tail = (tail + os.read(master, 4096))[-400:]
                except OSError:  # the child closed the terminal: it finished before the mark
                    break
                counts = re.findall(rb"(\d+)/(\d+) \[", tail)
                if counts:
                    seen = int(counts[-1][0])
            if seen > after:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                break
    finally:
        proc.wait(timeout=60)
        os.close(master)
    assert proc.returncode == -signal.SIGKILL, f"ingest ended on its own (code {proc.returncode}) at {seen}"
    return seen


def finish(corpus: Path, index: Path) -> dict[str, Any]:
    proc = subprocess.run(RAG + ["ingest", "--json"], env=_env(corpus, index), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_equals_clean(svc: Service, clean: dict[str, Any]) -> None:
    got = index_state(svc)
    assert got["stats"] == clean["stats"]
    assert got["documents"] == clean["documents"]  # same ids and hashes, every one done
    assert {s for s, d in got["documents"].items() if d[2] != "done"} == set()
    assert len(got["chunk_ids"]) == len(set(got["chunk_ids"])) == got["stats"]["chunks"]
    assert sorted(got["chunk_ids"]) == sorted(clean["chunk_ids"])
    per_doc: dict[str, int] = {}
    for doc_id in got["chunk_docs"]:
        per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
    assert per_doc == {i: n for i, _, _, n in got["documents"].values()}  # no document half-indexed
    for chunk_id, vec in got["vectors"].items():  # the same vectors (batches differ, so not bit for bit)
        assert np.allclose(vec, clean["vectors"][chunk_id], atol=1e-4), chunk_id
    # the vector index (HNSW) survived too: each sampled chunk's own vector finds it first
    for chunk_id in sorted(got["vectors"])[:: max(1, len(got["vectors"]) // 25)]:
        hits = svc.store.query(got["vectors"][chunk_id].tolist(), 1)
        assert hits and hits[0].chunk_id == chunk_id


def test_sigkill_partway_then_rerun_equals_clean_build(corpus, clean, tmp_path, embedder):
    index = tmp_path / "index"
    first = kill_after(corpus, index, 0)
    svc = _service(corpus, index, embedder)
    done = len(svc.store.documents())
    pending = len(svc.store.documents(state="pending"))
    assert 0 < done < N_DOCS, (first, done)
    # killed again, once the re-run has written more, while it recovers and goes on
    second = kill_after(corpus, index, done)
    svc = _service(corpus, index, embedder)
    done2 = len(svc.store.documents())
    assert done <= done2 < N_DOCS, (second, done2)
    summary = finish(corpus, index)
    print(f"\nkilled at {first}/{N_DOCS} ({done} done, {pending} pending), again at {second} ({done2} done); "
          f"the last run recovered {summary['recovered']}, added {summary['added']}, kept {summary['unchanged']}")
    assert summary["added"] + summary["unchanged"] == N_DOCS and summary["updated"] == 0
    assert_equals_clean(_service(corpus, index, embedder), clean)


def test_sigkill_while_chunks_are_half_written(corpus, clean, tmp_path, embedder):
    index = tmp_path / "index"
    proc = subprocess.run([sys.executable, "-c", DIE_MID_WRITE], env=_env(corpus, index), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    svc = _service(corpus, index, embedder)
    pending = svc.store.documents(state="pending")
    assert pending, "the kill should have left documents pending"
    half = sum(len(svc.store.chunk_ids(r["doc_id"])) for r in pending.values())
    assert 0 < half < sum(r["chunks"] for r in pending.values())
    # a reader never sees a pending document: it is not listed, and not counted
    assert not set(pending) & set(svc.store.documents())
    summary = finish(corpus, index)
    assert summary["recovered"] == len(pending)
    assert_equals_clean(_service(corpus, index, embedder), clean)
