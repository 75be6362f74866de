"""Incremental ingestion with stable ids, on a real embedded Chroma and a deterministic embedder."""

from __future__ import annotations

import json

import pytest

from rag.errors import IndexMismatch
from rag.types import make_doc_id


def _snapshot(svc):
    docs = svc.store.documents()
    chunks = svc.store.chunks.get(include=[])["ids"]
    return {s: r["doc_id"] for s, r in docs.items()}, sorted(chunks)


def test_first_ingest_adds_everything_and_second_embeds_nothing(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    first = svc.ingest()
    assert (first.added, first.updated, first.removed, first.unchanged) == (2, 0, 0, 0)
    assert first.chunks == svc.store.chunk_count() > 0
    before = _snapshot(svc)
    second = svc.ingest()
    assert (second.added, second.updated, second.removed, second.unchanged, second.embedded) == (0, 0, 0, 2, 0)
    assert _snapshot(svc) == before


def test_ids_are_stable_across_fresh_indexes(make_service, corpus_copy, hash_embedder):
    a = make_service(corpus_copy, embedder=hash_embedder)
    b = make_service(corpus_copy, embedder=hash_embedder)
    a.ingest()
    b.ingest()
    assert _snapshot(a) == _snapshot(b)
    text = (corpus_copy / "000_24a73b5c3e6d1f5c.txt").read_text(encoding="utf-8")
    assert _snapshot(a)[0]["000_24a73b5c3e6d1f5c.txt"] == make_doc_id("000_24a73b5c3e6d1f5c.txt", text)


def test_add_change_and_delete_files(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    svc.ingest()
    docs0, chunks0 = _snapshot(svc)

    (corpus_copy / "notes").mkdir()
    (corpus_copy / "notes" / "new.md").write_text("# Budget\n\nThe budget rose by 4% in 2025.\n", encoding="utf-8")
    s = svc.ingest()
    assert (s.added, s.updated, s.removed, s.unchanged) == (1, 0, 0, 2)
    docs1, chunks1 = _snapshot(svc)
    assert set(docs1) == set(docs0) | {"notes/new.md"}
    new_chunks = set(chunks1) - set(chunks0)
    assert new_chunks and all(c.startswith(docs1["notes/new.md"]) for c in new_chunks)

    changed = corpus_copy / "001_03f627dd5a2244df.txt"
    changed.write_text(changed.read_text(encoding="utf-8").replace("six million", "seven million"),
                       encoding="utf-8")
    s = svc.ingest()
    assert (s.added, s.updated, s.removed, s.unchanged) == (0, 1, 0, 2)
    docs2, chunks2 = _snapshot(svc)
    old_id, new_id = docs1["001_03f627dd5a2244df.txt"], docs2["001_03f627dd5a2244df.txt"]
    assert old_id != new_id
    assert not [c for c in chunks2 if c.startswith(old_id)]
    assert [c for c in chunks2 if c.startswith(new_id)]
    assert "seven million" in svc.show(new_id)

    (corpus_copy / "notes" / "new.md").unlink()
    s = svc.ingest()
    assert (s.added, s.updated, s.removed, s.unchanged) == (0, 0, 1, 2)
    docs3, chunks3 = _snapshot(svc)
    assert set(docs3) == set(docs0)
    assert not [c for c in chunks3 if c.startswith(docs1["notes/new.md"])]


def test_ingesting_one_subfolder_removes_nothing_outside_it(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    (corpus_copy / "sub").mkdir()
    (corpus_copy / "sub" / "a.txt").write_text("Alpha beta gamma delta.", encoding="utf-8")
    svc.ingest()
    (corpus_copy / "sub" / "a.txt").unlink()
    s = svc.ingest([corpus_copy / "sub"])
    assert (s.removed, s.unchanged) == (1, 0)
    assert set(svc.store.documents()) == {"000_24a73b5c3e6d1f5c.txt", "001_03f627dd5a2244df.txt"}


def test_jsonl_records_are_documents(make_service, tmp_path, hash_embedder):
    path = tmp_path / "recs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"_id": "r1", "text": "The bridge opened in 1932.", "title": "Bridge", "publish_date": "2020-01-01"},
        {"_id": "r2", "text": "The tunnel opened in 1988.", "url": "http://example.org/t"},
    ]), encoding="utf-8")
    svc = make_service(tmp_path / "empty", embedder=hash_embedder)
    s = svc.ingest(jsonl=path)
    assert s.added == 2
    docs = svc.store.documents()
    assert docs["r1"]["title"] == "Bridge" and docs["r1"]["publish_date"] == "2020-01-01"
    assert svc.show(docs["r2"]["doc_id"]) == "The tunnel opened in 1988."
    assert svc.ingest(jsonl=path).unchanged == 2


def test_index_built_with_other_settings_is_refused(make_service, corpus_copy, hash_embedder, tmp_path):
    index = tmp_path / "shared-index"
    svc = make_service(corpus_copy, embedder=hash_embedder, index=index)
    svc.ingest()
    from rag.config import ChunkingSettings

    other = make_service(corpus_copy, embedder=hash_embedder, index=index,
                         chunking=ChunkingSettings(chunk_size=256, chunk_overlap=32))
    with pytest.raises(IndexMismatch, match=r"rag ingest --rebuild"):
        other.search("artillery")
    with pytest.raises(IndexMismatch):
        other.ingest()
    s = other.ingest(rebuild=True)
    assert s.added == 2
    assert other.store.build_info()["chunk_size"] == 256


def test_interrupted_document_is_cleaned_up(make_service, corpus_copy, hash_embedder):
    svc = make_service(corpus_copy, embedder=hash_embedder)
    svc.ingest()
    clean = _snapshot(svc)
    # Simulate a crash after the chunks of a changed document were written but before it was marked done.
    rec = svc.store.documents()["000_24a73b5c3e6d1f5c.txt"]
    svc.store.docs.update(ids=[rec["doc_id"]], metadatas=[{**{k: v for k, v in rec.items() if k != "doc_id"},
                                                            "state": "pending"}])
    assert "000_24a73b5c3e6d1f5c.txt" not in svc.store.documents()
    s = svc.ingest()
    assert s.recovered == 1 and s.added == 1
    assert _snapshot(svc) == clean


