"""Shared fixtures: the real embedding model loaded once per session, services over temporary indexes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.config import Settings, repo_root, set_offline_env

set_offline_env()

from chroma_fixtures import backend, chroma_server, own_chroma_server  # noqa: E402,F401 (both Chroma backends)

from rag.embedding import HashEmbedding, load_embedder  # noqa: E402
from rag.service import Service  # noqa: E402

ROOT = repo_root()
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
SEED_SHELLS = "001_03f627dd5a2244df.txt"  # shells, 10,000-12,000 troops, 600 killed
SEED_TROOPS = "000_24a73b5c3e6d1f5c.txt"  # 15,000 soldiers, nearly 5,000 lost


# Fixtures that bring in a real part (the embedding model, an embedded Chroma, a Chroma server): a test that
# uses one is an integration test, whatever its module says, so `-m "not integration"` leaves unit tests only.
REAL_PARTS = frozenset({"embedder", "seed_service", "make_service", "backend", "chroma_server", "own_chroma_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_PARTS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def embedder():
    """The real embedding model (the default one), loaded once."""
    return load_embedder(Settings().embed_model)


@pytest.fixture
def hash_embedder():
    return HashEmbedding(dim=64)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of corpus/."""
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture
def make_service(tmp_path: Path) -> Callable[..., Service]:
    """Build a Service over a fresh embedded index in tmp_path; keywords go to Settings or Service."""
    counter = iter(range(1000))

    def make(corpus: Path | None = None, embedder=None, **kw) -> Service:
        service_kw = {k: kw.pop(k) for k in ("store", "answerer", "retriever", "models") if k in kw}
        settings = Settings.from_env(
            env={},
            corpus=corpus or CORPUS,
            index=kw.pop("index", tmp_path / f"index{next(counter)}"),
            answerer=kw.pop("answerer_name", "extractive"),
            **kw,
        )
        return Service(settings, embedder=embedder, **service_kw)

    return make


@pytest.fixture(scope="session")
def seed_service(tmp_path_factory, embedder) -> Service:
    """corpus/ ingested once with the real model into an embedded Chroma, extractive answerer."""
    index = tmp_path_factory.mktemp("seed-index")
    svc = Service(Settings.from_env(env={}, corpus=CORPUS, index=index, answerer="extractive"),
                  embedder=embedder)
    svc.ingest()
    return svc
