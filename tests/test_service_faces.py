"""What the faces (ui/, eval/, the CLI) ask of a Service instead of reaching into its store, and the
services made from one: one per answerer or per as-of date, sharing what their settings leave valid."""

from __future__ import annotations

from rag.llm import ChatModels, FakeChatModel
from tests.conftest import SEED_SHELLS


def test_services_made_from_one_share_the_index_the_retriever_and_the_models(make_service, hash_embedder):
    loads = []
    models = ChatModels(load=lambda s: loads.append(s) or FakeChatModel(["The corpus does not say."]))
    base = make_service(embedder=hash_embedder, answerer_name="generative", models=models)
    base.ingest()
    extractive = base.for_answerer("extractive")
    assert extractive.answerer.name == "extractive" and base.answerer.name == "generative"
    assert (extractive.store, extractive.retriever, extractive.embedder, extractive.models) == (
        base.store, base.retriever, base.embedder, base.models)
    dated = base.with_settings(as_of="2024-06-01")
    assert dated.settings.as_of == "2024-06-01" and dated.answerer is base.answerer and len(loads) == 1
    assert base.for_answerer("generative") is base
    elsewhere = base.with_settings(index=base.settings.index.parent / "other")
    assert elsewhere.store is not base.store and elsewhere.models is base.models


def test_an_ingest_through_one_service_is_seen_by_the_others(make_service, hash_embedder, corpus_copy):
    base = make_service(corpus=corpus_copy, embedder=hash_embedder)
    other = base.with_settings(as_of="2030-01-01")
    assert other.chunk_count() == 0
    base.ingest()
    assert other.chunk_count() > 0 and other.search("artillery shells North Korea")


def test_the_index_views_the_faces_read(make_service, hash_embedder):
    svc = make_service(embedder=hash_embedder)
    assert svc.build_info() == {} and svc.records() == {} and svc.record(SEED_SHELLS) is None
    svc.ingest()
    rec = svc.record(SEED_SHELLS)
    assert rec is not None and rec["source"] == SEED_SHELLS and set(svc.records()) >= {SEED_SHELLS}
    assert svc.build_info() == svc.settings.build_info() and svc.chunk_count() >= rec["chunks"] > 0
    assert svc.pages(rec["doc_id"]) == () and svc.ocr_lines(rec["doc_id"]) == []
    text = svc.show(SEED_SHELLS)
    assert svc.citation_lookup()(rec["doc_id"], SEED_SHELLS) == (rec["doc_id"], text)
