"""Settings: one object, built from defaults, then environment variables, then command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


def repo_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


# Environment every entry point sets before importing gradio, chromadb or huggingface code, so nothing
# phones home (OFFLINE.md: gradio's version check, the model hub, telemetry).
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ORT_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    # llama.cpp's OpenMP threads spin on a 2-core machine and starve each other without this
    "OMP_WAIT_POLICY": "PASSIVE",
}


def set_offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class ChunkingSettings:
    """How documents are split: 128 tokens / 16 overlap (docs/embedding-and-chunking.md#chunking has the table).

    Hybrid retrieval with MiniLM, one run each: SQuAD2-500 hit@1 0.905 (128/16), 0.864 (256/32),
    0.876 (384/48), 0.868 (512/64); RealTimeQA dev over 218 of its articles MRR@10 0.885, 0.844, 0.865,
    0.855. Small chunks cut sentences, but answers quote whole document sentences around a chunk (the
    sentence window), so nothing cited is truncated. MiniLM reads 256 word pieces: on 200 RealTimeQA
    articles a 128-token chunk is a median 113 of them (none cut), a 256-token one 235 (1 in 10 cut).
    """

    chunk_size: int = 128
    chunk_overlap: int = 16


@dataclass(frozen=True)
class Settings:
    corpus: Path = field(default_factory=lambda: repo_root() / "corpus")
    index: Path = field(default_factory=lambda: repo_root() / ".rag" / "index")
    chroma_url: str = ""
    collection: str = "rag"
    embed_model: str = "minilm-int8"
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    answerer: str = "generative"
    llm_url: str = ""
    llm_model: str = "local"
    llm_api_key: str = ""
    # A GGUF file of the user's own to run locally instead of the bundled model (it reads and writes more)
    llm_model_path: str = ""
    top_k: int = 5
    # Only documents published on or before this date (YYYY-MM-DD) are retrieved; "" means no limit.
    as_of: str = ""
    # `rag serve` ingests the corpus folder's changes as they happen (rag/watch.py); RAG_WATCH=1
    watch: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by RAG_* environment variables, overridden by keyword arguments."""
        env = dict(os.environ if env is None else env)
        s = cls()
        mapping = {
            "RAG_CORPUS": ("corpus", Path),
            "RAG_INDEX": ("index", Path),
            "RAG_CHROMA_URL": ("chroma_url", str),
            "RAG_COLLECTION": ("collection", str),
            "RAG_EMBED_MODEL": ("embed_model", str),
            "RAG_ANSWERER": ("answerer", str),
            "RAG_LLM_URL": ("llm_url", str),
            "RAG_LLM_MODEL": ("llm_model", str),
            "RAG_LLM_API_KEY": ("llm_api_key", str),
            "RAG_LLM_MODEL_PATH": ("llm_model_path", str),
            "RAG_AS_OF": ("as_of", str),
        }
        values: dict[str, Any] = {}
        for var, (name, conv) in mapping.items():
            if env.get(var):
                values[name] = conv(env[var])
        if env.get("RAG_WATCH"):  # a switch: 1, true, yes, on
            values["watch"] = env["RAG_WATCH"].strip().lower() not in ("0", "false", "no", "off")
        for name, value in overrides.items():
            if value is not None:
                values[name] = Path(value) if name in ("corpus", "index") else value
        return replace(s, **values)

    def build_info(self) -> dict[str, str | int]:
        """What shapes the stored vectors; an index built with other values must be rebuilt."""
        return {
            "embedding_model": self.embed_model,
            "chunk_size": self.chunking.chunk_size,
            "chunk_overlap": self.chunking.chunk_overlap,
        }
