"""Which chat model the settings name, and the cache of loaded ones that a service owns."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from rag.config import LLMSettings, Settings
from rag.errors import UsageError
from rag.llm.base import ChatModel


def load_chat_model(settings: Settings) -> ChatModel:
    """A new model: the server at RAG_LLM_URL, else the user's GGUF (RAG_LLM_MODEL_PATH), else the bundled
    one. Loading a local model takes seconds and hundreds of MB: a service keeps it in its `ChatModels`."""
    llm = settings.llm
    if llm.url:
        from rag.llm.server import ServerModel

        return ServerModel(llm.url, llm.model, llm.api_key)
    from rag.llm.assemble import assemble_model
    from rag.llm.local import LocalModel

    if llm.model_path:
        path = Path(llm.model_path).expanduser()
        if not path.is_file():
            raise UsageError(f"RAG_LLM_MODEL_PATH={llm.model_path}: no such file; name a .gguf model "
                             "file, or unset it to use the bundled model")
        # room for the longer prompts a larger model is given
        return LocalModel(path.resolve(), n_ctx=8192, threads=llm.threads)
    return LocalModel(assemble_model(settings.model_dir), threads=llm.threads)


class ChatModels:
    """The chat models one owner (a service and the services made from it, an eval run) has loaded, one
    per model the settings name, so that two answerers or an answerer and the eval's judge share one."""

    def __init__(self, *, load: Callable[[Settings], ChatModel] | None = None) -> None:
        self._load = load or load_chat_model  # a test passes a fake, or a loader that fails
        self._loaded: dict[tuple[LLMSettings, Path], ChatModel] = {}
        self._lock = threading.Lock()  # two requests of the app must not load the model twice

    def get(self, settings: Settings) -> ChatModel:
        """The model the settings name, loaded on first use."""
        key = (settings.llm, settings.model_dir)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load(settings)
            return self._loaded[key]
