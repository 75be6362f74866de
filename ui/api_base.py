"""What the HTTP API's faces share (ui/api.py, ui/api_chat.py, ui/api_mcp.py): queue limits, running the
blocking Service from async code, server-sent events and error bodies.

The app answers one request at a time per event through Gradio's queue (ui/app.py). The API keeps the
same limits with a `Slots` per kind of work: one request runs, at most QUEUE_SIZE wait, more are refused
at once (`Busy`, HTTP 503) instead of piling up. Service calls block, so they run in a worker thread, and a
stream (`Service.ask_stream`) runs one step at a time: between steps a request whose client went away is
dropped, which closes the stream (releasing the model's lock) and frees the slot for the next request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rag.errors import Busy, NotFound, RagError, TooLarge, UsageError
from rag.sources import MAX_PDF_BYTES

T = TypeVar("T")
log = logging.getLogger("rag.api")
QUEUE_SIZE = 64  # ~5 minutes of generative answers at ~5 s each; 20 concurrent chats fit three times over
MAX_JSON_BYTES = 1 << 20  # a question is at most 2,000 characters; 1 MiB leaves room for a long history
MAX_UPLOAD_BYTES = MAX_PDF_BYTES + (1 << 20)  # the app's upload limit, plus the multipart framing
_END = object()


class ClientGone(Exception):
    """The client disconnected before its answer was ready; nothing is sent back."""


class Slots:
    """At most `concurrency` requests of one kind run at once and `queue_size` wait; more get `Busy`."""

    def __init__(self, name: str, concurrency: int = 1, queue_size: int = QUEUE_SIZE) -> None:
        self.name = name
        self.queue_size = queue_size
        self._free = anyio.Semaphore(concurrency)
        self.running = 0
        self.waiting = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self.waiting >= self.queue_size:
            raise Busy(f"{self.waiting} {self.name} requests are already waiting; try again in a minute")
        self.waiting += 1
        try:
            await self._free.acquire()  # a cancelled wait (client gone) leaves the queue and takes no slot
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()

    def state(self) -> dict[str, int]:
        return {"running": self.running, "waiting": self.waiting}


class Limits:
    """One Slots per kind of work, as the app has one queue per event."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.answers = Slots("answer", queue_size=queue_size)
        self.searches = Slots("search", queue_size=queue_size)  # also document lists and stats
        self.documents = Slots("document", queue_size=queue_size)  # one ingest at a time per index

    def state(self) -> dict[str, dict[str, int]]:
        return {s.name: s.state() for s in (self.answers, self.searches, self.documents)}


async def run(slots: Slots, fn: Callable[[], T]) -> T:
    """fn() in a worker thread, holding a slot."""
    async with slots.hold():
        return await anyio.to_thread.run_sync(fn)


async def steps(slots: Slots, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """The items of the blocking iterator make(), each computed in a worker thread, holding a slot.

    A cancellation waits for the step in progress (anyio defers it until the thread returns), so the
    iterator is never closed while it runs; closing it ends the stream's own `with` blocks."""
    async with slots.hold():
        it = await anyio.to_thread.run_sync(make)
        try:
            while (item := await anyio.to_thread.run_sync(next, it, _END)) is not _END:
                yield item  # type: ignore[misc]
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()


async def last(slots: Slots, make: Callable[[], Iterator[T]]) -> T:
    """The final item of a stream (the whole answer of `ask_stream`)."""
    out: Any = _END
    agen = steps(slots, make)
    try:
        async for item in agen:
            out = item
    finally:
        await agen.aclose()
    if out is _END:
        raise RuntimeError("the stream ended without an item")
    return out  # type: ignore[no-any-return]


async def unless_gone(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """await work(), cancelled as soon as the client disconnects (then ClientGone).

    Starlette does not cancel a plain (non-streaming) endpoint when its client leaves, so a request
    waiting in the queue or computing would otherwise keep its place for nobody."""
    result: list[T] = []
    error: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def main() -> None:
            try:
                result.append(await work())
            except Exception as e:  # re-raised below, outside the task group (no ExceptionGroup)
                error.append(e)
            tg.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(main)
        tg.start_soon(watch)
    if error:
        raise error[0]
    if not result:
        raise ClientGone
    return result[0]


async def open_stream(request: Request, slots: Slots, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """A stream whose first item is already computed, so that errors before any output (bad input, an
    empty index, a full queue) become an HTTP status instead of an event after a 200."""
    agen = steps(slots, make)
    first = await unless_gone(request, agen.__anext__)

    async def chained() -> AsyncIterator[T]:
        try:
            yield first
            async for item in agen:
                yield item
        finally:
            await agen.aclose()

    return chained()


class EventStream(StreamingResponse):
    """Server-sent events whose generator is always closed when the response ends, client gone or not
    (Starlette leaves that to the garbage collector, and the stream may hold the model's lock)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._events = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()  # type: ignore[attr-defined]


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event; JSON keeps the data on one line."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def status_of(e: RagError) -> int:
    """The HTTP status of an error from the service."""
    if isinstance(e, NotFound):
        return 404
    if isinstance(e, TooLarge):
        return 413
    if isinstance(e, UsageError):
        return 400
    return 503  # Busy, IndexNotFound, IndexMismatch, BackendUnavailable, ModelError: it cannot answer now


def error_json(e: Exception) -> dict[str, str]:
    """The error body; an unexpected error is logged with its traceback and named only by its type."""
    if isinstance(e, RagError):
        return {"error": str(e)}
    log.error("unexpected error", exc_info=e)
    return {"error": f"internal error ({type(e).__name__}); the server log has the details"}
