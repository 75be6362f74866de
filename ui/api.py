"""The HTTP API that `rag serve` runs beside the app (docs/api.md): JSON and server-sent events under /v1,
an OpenAI-compatible chat endpoint (ui/api_chat.py) and an MCP server at /mcp (ui/api_mcp.py).

Thin over one Service, like the app: uploads go through ui/uploads.py's checks, and every call into the
Service holds a slot of ui/api_base.py (the app's queue limits). Errors are JSON `{"error": "..."}`:

    400 bad input (UsageError)          401 no or wrong key          404 no such document or route
    413 over a size limit (TooLarge)    422 a malformed request       503 busy, or the index or a model
                                                                          is not usable (the message says which)
"""

from __future__ import annotations

import hmac
import logging
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import Busy, NotFound, RagError, TooLarge, UsageError
from rag.service import Service
from ui.api_base import (
    MAX_JSON_BYTES,
    MAX_UPLOAD_BYTES,
    QUEUE_SIZE,
    ClientGone,
    EventStream,
    Limits,
    error_json,
    last,
    open_stream,
    run,
    sse,
    status_of,
    unless_gone,
)
from ui.api_chat import chat_router
from ui.api_mcp import build_mcp
from ui.uploads import check_name, check_upload, place

log = logging.getLogger("rag.api")
CATCH_ALL = "/v1/{rest:path}"
GUARDED = ("/v1", "/mcp")  # what RAG_API_KEYS protects; the app has RAG_AUTH, /healthz and /docs are open


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored

    question: str = Field(description="the question, 1-2,000 characters")
    history: list[dict[str, Any]] | None = Field(
        None, description='earlier turns, oldest first: [{"role": "user" or "assistant", "content": "..."}]')
    k: int | None = Field(None, ge=1, le=100, description="passages to retrieve (default: the setting)")
    as_of: str | None = Field(None, description="only documents published on or before this date, YYYY-MM-DD")
    stream: bool = Field(False, description="server-sent events: `delta` (verified text), then `answer`")


class BearerAuth:
    """ASGI middleware: /v1 and /mcp need `Authorization: Bearer KEY` with one of `keys`.

    Without keys the API is open, unless the app is behind RAG_AUTH: then it stays closed, so that
    turning on the login never leaves a way around it. Keys are compared in constant time and never
    logged or echoed."""

    def __init__(self, app: ASGIApp, keys: list[str], app_auth: bool) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.closed = app_auth and not keys

    def allows(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return False
        token = given.strip().encode()
        ok = False
        for key in self.keys:  # every key is compared, so the time does not tell which one nearly matched
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        guarded = scope["type"] == "http" and any(path == p or path.startswith(p + "/") for p in GUARDED)
        if guarded and (self.keys or self.closed):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), "")
            if self.closed or not self.allows(header):
                why = ("the app is behind RAG_AUTH; set RAG_API_KEYS to open the API to programs" if self.closed
                       else "this API needs a key: send the header `Authorization: Bearer KEY` with a key "
                            "from RAG_API_KEYS")
                resp = JSONResponse({"error": why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: request bodies under /v1 stay within MAX_JSON_BYTES (uploads: MAX_UPLOAD_BYTES).

    A declared length over the limit is refused before anything is read; a body that grows past it
    while being read stops there (TooLarge)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        limit = MAX_UPLOAD_BYTES if path == "/v1/documents" else MAX_JSON_BYTES
        why = f"the request body is over the {limit / 1e6:.0f} MB limit of {path}"
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            await JSONResponse({"error": why}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(why)
            return message

        await self.app(scope, counted, send)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return "the request body is not valid JSON; send an object like {\"question\": \"...\"}"
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "the request is malformed; see /docs"


def scoped(service: Service, as_of: str | None) -> Service:
    """The service limited to documents published by `as_of`, sharing the index, models and answerer."""
    if not as_of or as_of == service.settings.as_of:
        return service
    return service.with_settings(as_of=as_of)


def document_record(rec: dict[str, Any]) -> dict[str, Any]:
    keep = ("doc_id", "source", "title", "url", "publish_date", "chunks", "ingested_at")
    return {k: rec.get(k) for k in keep}


def build_api(service: Service, *, host: str = "127.0.0.1", queue_size: int = QUEUE_SIZE,
              app_auth: bool = False, keys: Sequence[str] = ()) -> FastAPI:
    """The API over `service` as a FastAPI app; `rag serve` mounts the Gradio app at / on it. `keys`: the
    bearer keys /v1 and /mcp require (RAG_API_KEYS); none: open, or closed when `app_auth` (RAG_AUTH)."""
    limits = Limits(queue_size)
    mcp = build_mcp(service, limits)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, host=host)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():  # the MCP transport's task group lives as long as the server
            yield

    api = FastAPIOffline(title="rag", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan,
                         description="Answers from the indexed documents, every claim cited to the exact "
                                     "passage. Errors are JSON {\"error\": \"...\"}.")
    api.add_middleware(BodyLimit)
    api.add_middleware(BearerAuth, keys=list(keys), app_auth=app_auth)  # outermost: no key, no reading

    @api.exception_handler(RagError)
    async def _rag_error(_req: Request, e: RagError) -> JSONResponse:
        headers = {"Retry-After": "30"} if isinstance(e, Busy) else None
        return JSONResponse({"error": str(e)}, status_code=status_of(e), headers=headers)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(e)}, status_code=422)

    @api.exception_handler(HTTPException)
    async def _http_error(_req: Request, e: HTTPException) -> JSONResponse:
        if isinstance(e.__cause__, RagError):  # raised while FastAPI read the body (BodyLimit's TooLarge)
            return await _rag_error(_req, e.__cause__)
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    @api.exception_handler(ClientGone)
    async def _gone(_req: Request, _e: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it

    @api.exception_handler(Exception)
    async def _unexpected(_req: Request, e: Exception) -> JSONResponse:
        return JSONResponse(error_json(e), status_code=500)

    @api.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness, and how many requests run and wait per kind."""
        return {"status": "ok", "queues": limits.state()}

    @api.post("/v1/ask", tags=["answers"], response_model=None)
    async def ask(body: AskRequest, request: Request) -> Any:
        """The JSON answer (INTERFACE.md); with `"stream": true`, server-sent events `delta` ({"text"}: verified
        answer text as it is written) then one `answer` (the JSON answer)."""
        def make() -> Iterator[tuple[str, Any]]:
            return scoped(service, body.as_of).ask_stream(body.question, body.history, body.k)

        if not body.stream:
            _, ans = await unless_gone(request, lambda: last(limits.answers, make))
            return ans.to_json()
        events = await open_stream(request, limits.answers, make)

        async def body_events() -> AsyncIterator[str]:
            try:
                async for kind, value in events:
                    yield sse({"text": value}, "delta") if kind == "delta" else sse(value.to_json(), "answer")
            except Exception as e:
                yield sse(error_json(e), "error")
            finally:
                await events.aclose()  # type: ignore[attr-defined]

        return EventStream(body_events())

    @api.get("/v1/search", tags=["answers"])
    async def search(request: Request, q: Annotated[str, Query(description="what to look for")],
                     k: Annotated[int | None, Query(ge=1, le=100, description="how many chunks")] = None,
                     as_of: Annotated[str | None, Query(description="YYYY-MM-DD")] = None) -> dict[str, Any]:
        """Retrieval only: the `rag search --json` object."""
        hits = await unless_gone(request, lambda: run(limits.searches, lambda: service.search(q, k, as_of=as_of)))
        return {"query": q, "hits": [h.to_json() for h in hits]}

    @api.get("/v1/documents", tags=["documents"])
    async def documents() -> dict[str, Any]:
        """Every indexed document, sorted by source."""
        docs = await run(limits.searches, service.documents)
        return {"documents": [document_record(d) for d in docs]}

    @api.post("/v1/documents", tags=["documents"], status_code=201)
    async def add_documents(files: Annotated[list[UploadFile], File(description="one or more documents")],
                            ) -> dict[str, Any]:
        """Add files to the corpus folder and index them, with the app's checks (name, type, size, readable
        text). One refused file refuses the whole request, and nothing is changed."""
        uploads = [(f.filename or "", f.file) for f in files]
        return await run(limits.documents, lambda: _add_uploads(service, uploads))

    @api.delete("/v1/documents/{source:path}", tags=["documents"])
    async def delete_document(source: str) -> dict[str, Any]:
        """Forget a document: its index records and its file in the corpus folder."""
        def remove() -> None:
            if service.record(source) is None:
                raise NotFound(f"no document {source!r} in the index; GET /v1/documents lists what is there")
            service.remove(source)

        await run(limits.documents, remove)
        return {"deleted": source}

    @api.get("/v1/stats", tags=["service"])
    async def stats() -> dict[str, Any]:
        """What the index holds: the `rag stats --json` object."""
        return await run(limits.searches, service.stats)

    api.include_router(chat_router(service, limits))
    api.router.routes.extend(mcp_app.routes)  # POST/GET/DELETE /mcp: the streamable HTTP transport

    @api.api_route(CATCH_ALL, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def no_route(request: Request, rest: str) -> JSONResponse:
        # Without this, the app mounted at / would answer with its own HTML 404.
        others = [r for r in api.routes if getattr(r, "methods", None) and getattr(r, "path", "") != CATCH_ALL]
        allowed = sorted({m for r in others if r.matches(request.scope)[0] == Match.PARTIAL
                          for m in r.methods})  # type: ignore[attr-defined]
        if allowed:
            return JSONResponse({"error": f"{request.method} is not allowed here; use {', '.join(allowed)}"},
                                status_code=405, headers={"Allow": ", ".join(allowed)})
        return JSONResponse({"error": f"no route {request.method} /v1/{rest}; /docs lists the routes"},
                            status_code=404)

    return api


def _add_uploads(service: Service, uploads: list[tuple[str, Any]]) -> dict[str, Any]:
    corpus = service.settings.corpus
    if not uploads:
        raise UsageError("no file was uploaded; send one or more files as multipart field `files`")
    names = [name for name, _ in uploads]
    if len(set(names)) != len(names):
        raise UsageError("the same file name was uploaded twice; send each file once")
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
        checked = []
        for name, data in uploads:
            check_name(name)  # before the name becomes a path, even a temporary one
            path = Path(tmp) / name
            with path.open("wb") as out:
                shutil.copyfileobj(data, out)
            checked.append(check_upload(path, name, corpus))
        placed = [(up.name, *place(up, corpus)) for up in checked]
        summary = service.ingest([dest for _, dest, _ in placed])
    return {"documents": [{"source": name, "replaced": existed} for name, _, existed in placed],
            "summary": summary.to_json()}


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    async def shutdown(self, sockets: Any = None) -> None:
        if self.before_shutdown is not None:  # ends long-lived streams (the app's heartbeats) before the wait
            self.before_shutdown()
        await super().shutdown(sockets)


class Server:
    """uvicorn serving `app` on host:port, in this thread or in the background (`close()` stops it).

    `before_shutdown` runs in the server's loop when it starts to stop, to end streams that would
    otherwise hold the shutdown for its whole grace period."""

    def __init__(self, app: FastAPI, host: str, port: int, *, quiet: bool = False,
                 before_shutdown: Callable[[], None] | None = None) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="error" if quiet else "warning",
                                timeout_graceful_shutdown=3)
        self.server = _Uvicorn(config, before_shutdown)
        self.url = f"http://{host}:{port}/"
        self.thread: threading.Thread | None = None
        if not quiet:
            print(f"rag: the app at {self.url}, the API at {self.url}v1 (reference: {self.url}docs), MCP at "
                  f"{self.url}mcp", file=sys.stderr, flush=True)

    def run(self) -> None:
        self.server.run()

    def start(self) -> Server:
        self.thread = threading.Thread(target=self.server.run, name="rag-serve", daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise UsageError(f"could not listen on {self.url}; is the port in use? Choose another with --port")
            self.thread.join(0.01)
        return self

    def close(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
