"""The same code on embedded Chroma and on a real `chroma run` server (RAG_CHROMA_URL).

In server mode both collections live on the server: the chunks, and the document table that holds the
texts, the pending/done state and the build info. Nothing of the index stays on the client's disk.
"""

from __future__ import annotations

import re

import pytest
from chroma_fixtures import free_port

from rag.cli import main as rag_main
from rag.config import ChunkingSettings
from rag.errors import BackendUnavailable, IndexMismatch
from tests.conftest import CORPUS, SEED_SHELLS

pytestmark = pytest.mark.integration


def test_ingest_search_and_cite(make_service, corpus_copy, embedder, backend):
    svc = make_service(corpus_copy, embedder=embedder, **backend)
    s = svc.ingest()
    assert (s.added, s.embedded) == (2, svc.store.chunk_count())
    stats = svc.stats()
    assert stats["backend"].startswith("chroma-server" if backend else "chroma-embedded")
    assert stats["documents"] == 2
    ans = svc.ask("How many artillery shells has North Korea sent to Russia?")
    assert re.search(r"six million", ans.answer), ans.answer
    for c in ans.citations:
        assert (corpus_copy / c.source).read_text(encoding="utf-8")[c.start : c.end] == c.quote
    assert any(c.source == SEED_SHELLS and "six million" in c.quote for c in ans.citations)


def test_incremental_ingest_embeds_only_what_changed(make_service, corpus_copy, embedder, backend, tmp_path):
    where = backend or {"index": tmp_path / "shared-index"}  # each client below opens the same index
    svc = make_service(corpus_copy, embedder=embedder, **where)
    svc.ingest()
    total = svc.store.chunk_count()
    old_chunks = int(svc.store.documents()[SEED_SHELLS]["chunks"])
    again = make_service(corpus_copy, embedder=embedder, **where).ingest()
    assert (again.unchanged, again.embedded) == (2, 0)
    path = corpus_copy / SEED_SHELLS
    path.write_text(path.read_text(encoding="utf-8") + "\nA new closing line.\n", encoding="utf-8")
    touched = make_service(corpus_copy, embedder=embedder, **where).ingest()
    doc = svc.store.documents()[SEED_SHELLS]
    assert (touched.updated, touched.unchanged) == (1, 1)
    assert touched.embedded == int(doc["chunks"]) == len(svc.store.chunk_ids(doc["doc_id"]))
    assert svc.store.chunk_count() == total - old_chunks + touched.embedded
    assert svc.store.documents(state="pending") == {}


def test_build_info_is_kept_with_the_index(make_service, corpus_copy, hash_embedder, backend, tmp_path):
    """A second client with other chunking is refused: the settings travel with the index, on a server too."""
    where = backend or {"index": tmp_path / "shared-index"}
    make_service(corpus_copy, embedder=hash_embedder, embed_model="hash", **where).ingest()
    other = make_service(corpus_copy, embedder=hash_embedder, embed_model="hash",
                         chunking=ChunkingSettings(chunk_size=512), **where)
    with pytest.raises(IndexMismatch, match="rebuild"):
        other.search("shells")


def test_a_server_that_is_not_running_is_one_clear_line(capsys, monkeypatch, tmp_path):
    port = free_port()
    monkeypatch.setenv("RAG_CHROMA_URL", f"http://127.0.0.1:{port}")
    assert rag_main(["stats", "--json", "--corpus", str(CORPUS), "--index", str(tmp_path / "unused")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"127.0.0.1:{port}" in err and "chroma run" in err
    assert not (tmp_path / "unused").exists()


def test_a_malformed_url_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("RAG_CHROMA_URL", "localhost:8000")
    assert rag_main(["stats", "--corpus", str(CORPUS)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "http://" in err, err


def test_a_server_that_stops_mid_session_is_one_clear_line(own_chroma_server, make_service, corpus_copy,
                                                             hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder, embed_model="hash",
                       chroma_url=own_chroma_server.url, collection="stops-midway")
    svc.ingest()
    assert svc.search("shells")
    own_chroma_server()  # stop it
    with pytest.raises(BackendUnavailable, match="does not answer") as err:
        svc.search("shells")
    assert "\n" not in str(err.value) and "chroma run" in str(err.value)
