"""Integration: generation through an OpenAI-compatible server (llama.cpp's, with the bundled model)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from rag.answer.base import MARKER
from rag.config import Settings, repo_root
from rag.errors import BackendUnavailable
from rag.llm import assemble_model
from rag.llm.server import ServerModel
from rag.service import Service
from tests.conftest import CORPUS, SEED_SHELLS
from tests.helpers import free_port, stop_process

# slow: starts llama.cpp's server with the bundled LLM
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    """`python -m llama_cpp.server` (through rag.llm.llama_server) on 127.0.0.1, stopped after the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    cmd = [sys.executable, "-m", "rag.llm.llama_server", "--model", str(assemble_model()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "2",
           "--model_alias", "bundled"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=repo_root(), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the LLM server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_process(proc, timeout=20)


def test_answers_through_an_openai_compatible_server(llm_server, seed_service, embedder):
    settings = Settings.from_env({"RAG_LLM_URL": llm_server, "RAG_LLM_MODEL": "bundled"}, corpus=CORPUS,
                                 index=seed_service.settings.index, answerer="generative")
    svc = Service(settings, embedder=embedder, store=seed_service.store)
    assert svc.answerer.name == "generative" and svc.answerer.llm.name == "server"
    ans = svc.ask("How many artillery shells has North Korea sent to Russia?")
    assert not ans.abstained and "six million" in ans.answer, ans.answer
    assert sorted({int(n) for n in MARKER.findall(ans.answer)}) == [c.n for c in ans.citations]
    for c in ans.citations:
        assert (CORPUS / c.source).read_text(encoding="utf-8")[c.start : c.end] == c.quote
    assert any(c.source == SEED_SHELLS and "six million" in c.quote for c in ans.citations)


def test_an_unreachable_server_is_one_clear_error():
    model = ServerModel(f"http://127.0.0.1:{free_port()}", "bundled", timeout=5)
    with pytest.raises(BackendUnavailable, match="RAG_LLM_URL"):
        list(model.stream([{"role": "user", "content": "hi"}]))
