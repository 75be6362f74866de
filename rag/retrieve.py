"""Retrieval: a question in, the best chunks out (dense search over the Chroma index)."""

from __future__ import annotations

from rag.embedding import _NumpyEmbedding
from rag.store import Store
from rag.types import Hit


class Retriever:
    """Dense retrieval: the question's embedding against the chunk vectors."""

    def __init__(self, store: Store, embedder: _NumpyEmbedding) -> None:
        self.store = store
        self.embedder = embedder

    def search(self, query: str, k: int = 5) -> list[Hit]:
        vector = self.embedder.embed_array([query], is_query=True)[0].tolist()
        return self.store.query(vector, k)
