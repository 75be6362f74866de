"""Any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server) as a `ChatModel`, over HTTP."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from rag.errors import BackendUnavailable, ModelError
from rag.llm.assemble import SETUP_HINT
from rag.llm.base import Message, two_way


class ServerModel:
    """An OpenAI-compatible server through llama-index's `OpenAILike`.

    The judge asks for the first token's top log-probabilities; a server that returns none is judged by the
    word it writes (Yes -> 1, anything else -> 0).
    """

    name = "server"

    def __init__(self, url: str, model: str = "local", api_key: str = "", *, timeout: float = 120.0) -> None:
        try:
            from llama_index.llms.openai_like import OpenAILike
        except ImportError as e:
            raise ModelError(f"llama-index-llms-openai-like is not installed; {SETUP_HINT}") from e
        base = url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self.url = base
        common: dict[str, Any] = {"model": model, "api_base": base, "api_key": api_key or "none", "is_chat_model": True,
                  "context_window": 4096, "temperature": 0.0, "timeout": timeout, "max_retries": 1}
        self.llm = OpenAILike(max_tokens=200, **common)
        self._judge = OpenAILike(max_tokens=1, logprobs=True, top_logprobs=10, **common)
        # llama.cpp's server refuses log-probabilities unless it keeps every position's logits (1.2 GB
        # here); after one refusal the judge asks for the word alone.
        self._judge_words = OpenAILike(max_tokens=2, **common)
        self._logprobs = True

    def _failed(self, e: Exception) -> BackendUnavailable:
        # the openai client raises its own tree; say what to check
        return BackendUnavailable(f"the LLM server at {self.url} failed ({type(e).__name__}: {e}); "
                                  "check RAG_LLM_URL and RAG_LLM_MODEL")

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 200,
               stop: Sequence[str] = (), start_yes: bool = False) -> Iterator[str]:
        # `start_yes` cannot be asked of a chat API: the server's model writes its own verdict word
        from llama_index.core.llms import ChatMessage

        msgs = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            for r in self.llm.stream_chat(msgs, max_tokens=max_tokens, stop=list(stop) or None):
                if r.delta:
                    yield r.delta
        except Exception as e:
            raise self._failed(e) from e

    def yes_probability(self, messages: Sequence[Message], *, then_generate: bool = False) -> float:
        from llama_index.core.llms import ChatMessage

        msgs = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        r = None
        if self._logprobs:
            try:
                r = self._judge.chat(msgs)
            except Exception as e:
                if "logprob" not in str(e).lower():
                    raise self._failed(e) from e
                self._logprobs = False
        if r is None:
            try:
                r = self._judge_words.chat(msgs)
            except Exception as e:
                raise self._failed(e) from e
        yes = no = -math.inf
        for lp in (r.logprobs or [[]])[0]:
            word = lp.token.strip().lower()
            if word == "yes":
                yes = max(yes, lp.logprob)
            elif word == "no":
                no = max(no, lp.logprob)
        if yes == -math.inf and no == -math.inf:
            return 1.0 if (r.message.content or "").strip().lower().startswith("yes") else 0.0
        return two_way(yes, no)
