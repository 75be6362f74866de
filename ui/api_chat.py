"""The OpenAI-compatible face: POST /v1/chat/completions and GET /v1/models, for chat front-ends, notebooks
and agents that speak that API (the official `openai` client among them).

The last user message is the question and the earlier user and assistant turns its history; system
messages are not passed on (the answer is written from the documents, under the service's own prompt).
The reply's content is the answer with its [n] markers, and the response carries `citations`, the same
objects as the JSON answer; streaming, the final chunk carries them. Sampling options (temperature,
max_tokens, ...) are accepted and ignored: the text is verified against the passages it cites.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import NotFound, UsageError
from rag.service import Service
from rag.types import Answer
from ui.api_base import EventStream, Limits, error_json, last, open_stream, sse, unless_gone

log = logging.getLogger("rag.api")
MODELS = ("rag",)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # the OpenAI API's other options: accepted, not used

    model: str = Field(description="`rag`")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def _text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text", "")) for p in content or [] if p.get("type") == "text")


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    turns = [{"role": m.role, "content": _text(m.content)} for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1]["role"] != "user":
        raise UsageError('the last message must be the question, with role "user"')
    return turns[-1]["content"], turns[:-1]


def check_model(name: str) -> None:
    if name not in MODELS:
        raise NotFound(f"model {name!r} is not served here; use one of: {', '.join(MODELS)} (GET /v1/models)")


def _completion(ans: Answer, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ans.answer}, "finish_reason": "stop"}],
        "citations": [c.to_json() for c in ans.citations],
    }


def chat_router(service: Service, limits: Limits) -> APIRouter:
    router = APIRouter(tags=["openai"])

    @router.get("/v1/models")
    async def models() -> dict[str, Any]:
        """The models this endpoint answers as (one: `rag`)."""
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "rag"}
                                           for m in MODELS]}

    @router.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        """An OpenAI chat completion whose content is the cited answer, with `citations` beside `choices`."""
        check_model(body.model)
        question, history = question_and_history(body.messages)

        def make() -> Iterator[tuple[str, Any]]:
            return service.ask_stream(question, history)

        if not body.stream:
            _, ans = await unless_gone(request, lambda: last(limits.answers, make))
            return _completion(ans, body.model)
        events = await open_stream(request, limits.answers, make)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.model}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

        async def chunks() -> AsyncIterator[str]:
            shown = ""
            try:
                yield chunk({"role": "assistant", "content": ""})
                async for kind, value in events:
                    if kind == "delta":
                        shown += value
                        yield chunk({"content": value})
                        continue
                    # The answer is the verified pieces joined; an answerer that does not stream (or a
                    # refusal) sends it all here. Text already shown cannot be taken back.
                    if value.answer.startswith(shown):
                        if value.answer[len(shown):]:
                            yield chunk({"content": value.answer[len(shown):]})
                    else:
                        log.warning("streamed text differs from the final answer; the citations follow the answer")
                    yield chunk({}, "stop", citations=[c.to_json() for c in value.citations])
                yield "data: [DONE]\n\n"
            except Exception as e:
                yield sse(error_json(e))
            finally:
                await events.aclose()  # type: ignore[attr-defined]

        return EventStream(chunks())

    return router
