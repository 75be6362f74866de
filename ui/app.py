"""The Gradio app: chat with cited answers, a sources panel, the document list, settings, and `/ask`.

Thin over `rag.service.Service`: every answer, search and ingest is the service's; this module only turns
its results into HTML (ui/render.py) and checks uploads (ui/uploads.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rag.config import set_offline_env

set_offline_env()  # before gradio is imported: no version check, no telemetry, no hub lookups

import gradio as gr  # noqa: E402

from rag.errors import RagError  # noqa: E402
from rag.service import ANSWERERS, Service  # noqa: E402
from rag.sources import MAX_PDF_BYTES, SUPPORTED_SUFFIXES  # noqa: E402
from ui.api import Server, build_api  # noqa: E402
from ui.api_base import QUEUE_SIZE  # noqa: E402
from ui.render import (  # noqa: E402
    Turn,
    chat_html,
    documents_html,
    esc,
    mark_stale,
    source_record,
    sources_html,
    sync_html,
)
from ui.uploads import check_upload, place  # noqa: E402
from ui.viewer import dialog_html, pdf_pages_html, text_html, window  # noqa: E402

HERE = Path(__file__).parent
TITLE = "Ask the documents"
INTRO = ("Ask a question about the indexed documents. Every claim in an answer carries a numbered badge: "
         "click it to read the exact passage it comes from, highlighted in its context.")
MAX_K = 20


class Services:
    """One Service per answerer, sharing the embedder, the index and the retriever of the first."""

    def __init__(self, base: Service) -> None:
        self.base = base
        self._by_name = {base.settings.answerer: base}

    def get(self, answerer: str) -> Service:
        if answerer not in self._by_name:
            self._by_name[answerer] = self.base.for_answerer(answerer)
        return self._by_name[answerer]


def available_answerers() -> list[str]:
    """Answerers this installation can run: generative only once its module exists."""
    return [a for a in ANSWERERS if a != "generative" or find_spec("rag.answer.generative") is not None]


def _history(turns: list[Turn]) -> list[dict[str, str]]:
    out = []
    for t in turns:
        if t.answer is not None:
            out += [{"role": "user", "content": t.question}, {"role": "assistant", "content": t.answer.answer}]
    return out


def _header(svc: Service) -> str:
    try:
        docs = svc.documents()
        chunks = sum(int(d.get("chunks", 0) or 0) for d in docs)
        line = f"{len(docs):,} documents · {chunks:,} passages indexed"
    except RagError as e:
        line = str(e)
    return (f'<div class="app-header"><h1>{esc(TITLE)}</h1><div class="stats">{esc(line)} · answers cite '
            'the exact passage</div></div>')


def build_app(service: Service) -> gr.Blocks:
    """The Blocks app over `service` (not launched)."""
    services = Services(service)
    choices = available_answerers()
    default_answerer = service.settings.answerer if service.settings.answerer in choices else "extractive"

    def respond(question: str, turns: list[Turn] | None, answerer: str, k: float) -> Iterator[Any]:
        question = (question or "").strip()
        turns = list(turns or [])
        if not question:
            yield chat_html(turns, INTRO), sources_html(turns), turns, ""
            return
        turn = Turn(question)
        history = _history(turns)
        turns.append(turn)
        yield chat_html(turns, INTRO), sources_html(turns), turns, ""
        try:
            svc = services.get(answerer)
            for kind, value in svc.ask_stream(question, history, int(k)):
                if kind == "delta":
                    turn.text += str(value)
                    yield chat_html(turns, INTRO), gr.skip(), turns, gr.skip()
                elif kind == "answer":
                    docs = svc.records()
                    turn.sources = [source_record(c, docs, svc.doc_text) for c in value.citations]
                    turn.answer = value
                    mark_stale(turns, docs)
            turn.notice = svc.notice
        except RagError as e:
            turn.error = str(e)
        yield chat_html(turns, INTRO), sources_html(turns), turns, ""

    def ask(question: str, history: list[dict[str, str]] | None = None, k: int | None = None) -> dict[str, Any]:
        """The JSON answer (INTERFACE.md) to `question`, given earlier turns `history` (oldest first)."""
        try:
            return services.get(default_answerer).ask(question, history, k).to_json()
        except RagError as e:
            raise gr.Error(str(e)) from None

    def list_documents() -> tuple[str, Any]:
        docs = service.documents()
        sources = [d["source"] for d in docs]
        return sync_html(service.last_sync) + documents_html(docs), gr.update(choices=sources, value=None)

    def restaled(turns: list[Turn] | None) -> str:
        """The sources panel again, each passage whose document changed since its answer flagged."""
        turns = turns or []
        mark_stale(turns, service.records())
        return sources_html(turns)

    def add_files(
        files: list[str] | None, turns: list[Turn] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio injects it)
    ) -> tuple[str, str, Any, str, str]:
        corpus = service.settings.corpus
        if not files:
            return (_status("Choose one or more files first.", bad=True), *list_documents(), _header(service),
                    restaled(turns))
        refused, accepted = [], []
        for f in files:
            path = Path(f)
            try:
                accepted.append(check_upload(path, path.name, corpus))
            except RagError as e:
                refused.append(str(e))
        placed = []
        for up in accepted:
            dest, existed = place(up, corpus)
            placed.append(dest)
        lines = [f"Refused {r}" for r in refused]
        if placed:
            progress(0, desc="Indexing")

            def tick(done: int, total: int, name: str) -> None:
                progress((done, total), desc=f"Indexing {name}", unit="files")

            def waiting(line: str) -> None:  # another ingest (a terminal, the watcher) holds the index
                progress(0, desc=line[:1].upper() + line[1:])

            summary = service.ingest(placed, progress=tick, notify=waiting)
            lines.insert(0, f"Indexed {len(placed)} file{'s' * (len(placed) != 1)}: added {summary.added}, "
                            f"updated {summary.updated}, unchanged {summary.unchanged}; {summary.chunks} "
                            f"new passage{'s' * (summary.chunks != 1)} in {summary.seconds:.1f} s.")
            lines += [f"Skipped {s.reason}" for s in summary.skipped]
        return (_status(*lines, bad=bool(refused) and not placed), *list_documents(), _header(service),
                restaled(turns))

    def delete(source: str | None, turns: list[Turn] | None) -> tuple[str, str, Any, str, str]:
        if not source:
            return (_status("Choose a document to delete.", bad=True), *list_documents(), _header(service),
                    restaled(turns))
        try:
            service.remove(source)
            msg = _status(f"Deleted {source}.")
        except RagError as e:
            msg = _status(str(e), bad=True)
        return msg, *list_documents(), _header(service), restaled(turns)

    def open_document(request: str, turns: list[Turn] | None) -> Iterator[Any]:
        """The viewer for "TURN:N:nonce" (sent by ui/app.js): the neighbourhood of the quote first, then all."""
        try:
            turn_no, n = (int(x) for x in (request or "").split(":")[:2])
            rec = next(s for s in (turns or [])[turn_no].sources if s["n"] == n)
        except (ValueError, IndexError, StopIteration):
            yield gr.skip()
            return
        spans = [(s["n"], s["start"], s["end"]) for s in turns[turn_no].sources if s["doc_id"] == rec["doc_id"]]
        stale = "source changed since this answer" if rec.get("stale") else ""
        try:
            text = service.doc_text(rec["doc_id"])
        except RagError:
            yield dialog_html(rec["title"], rec["source"], "", request,
                              note="source changed since this answer: the cited version is no longer indexed")
            return
        path = service.settings.corpus / rec["source"]
        pages = service.pages(rec["doc_id"])
        if pages and path.suffix.lower() == ".pdf" and path.is_file() and not stale:
            body = pdf_pages_html(path, text, pages, spans, n, service.ocr_lines(rec["doc_id"]))
            yield dialog_html(rec["title"], rec["source"], body, request)
            return
        lo, hi = window(len(text), rec["start"], rec["end"])
        yield dialog_html(rec["title"], rec["source"], text_html(text, spans, n, lo, hi), request, stale)
        if (lo, hi) != (0, len(text)):
            yield dialog_html(rec["title"], rec["source"], text_html(text, spans, n), request + ":all", stale)

    def settings_note(answerer: str) -> str:
        svc = services.get(answerer)
        lines = [f"Answers are written by the <b>{esc(answerer)}</b> answerer."]
        if answerer == "extractive":
            lines.append("It answers with exact sentences from the passages, so it is fast and never paraphrases.")
        else:
            lines.append("It writes an answer with the bundled language model; every sentence is checked "
                         "against the passage it cites.")
        if "generative" not in choices:
            lines.append("Generative answers need the bundled language model, which is not installed here.")
        if svc.notice:
            lines.append(esc(svc.notice))
        return "<p>" + "</p><p>".join(lines) + "</p>"

    with gr.Blocks(title=TITLE, fill_width=False) as app:
        header = gr.HTML(_header(service), elem_id="app-header")
        turns_state = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=420):
                        chat = gr.HTML(chat_html([], INTRO), elem_id="chat", js_on_load=None)
                        with gr.Row(elem_id="ask-row"):
                            question = gr.Textbox(show_label=False, placeholder="Ask a question about the documents",
                                                  lines=1, max_lines=4, scale=5, elem_id="question", autofocus=True,
                                                  submit_btn=False)
                            send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="send")
                        clear = gr.Button("New conversation", size="sm", variant="secondary", elem_id="clear")
                    with gr.Column(scale=2, min_width=320):
                        sources = gr.HTML(sources_html([]), elem_id="sources", js_on_load=None)
                viewer = gr.HTML("", elem_id="viewer", js_on_load=None)
                # ui/app.js writes "TURN:N:nonce" here when a source card is opened
                viewer_request = gr.Textbox(show_label=False, container=False, elem_id="viewer-req")
            with gr.Tab("Documents", id="documents") as docs_tab:
                docs_view = gr.HTML(documents_html([]), elem_id="documents", js_on_load=None)
                with gr.Row():
                    with gr.Column(scale=3):
                        uploads = gr.File(label=f"Add documents ({', '.join(sorted(SUPPORTED_SUFFIXES))})",
                                          file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES),
                                          type="filepath", elem_id="uploads")
                        add = gr.Button("Add to the index", variant="primary", elem_id="add")
                    with gr.Column(scale=2):
                        to_delete = gr.Dropdown(label="Delete a document", choices=[], value=None,
                                                elem_id="to-delete")
                        remove = gr.Button("Delete document", variant="stop", elem_id="delete")
                status = gr.HTML("", elem_id="doc-status", js_on_load=None)
            with gr.Tab("Settings", id="settings"):
                answerer = gr.Radio(choices, value=default_answerer, label="Answerer", elem_id="answerer")
                k = gr.Slider(1, MAX_K, value=service.settings.top_k, step=1, label="Passages retrieved per question",
                              elem_id="k")
                note = gr.HTML(settings_note(default_answerer), elem_id="settings-note", js_on_load=None)

        chat_io = dict(fn=respond, inputs=[question, turns_state, answerer, k],
                       outputs=[chat, sources, turns_state, question], show_progress="hidden",
                       api_visibility="private")
        question.submit(**chat_io)
        send.click(**chat_io)
        clear.click(lambda: (chat_html([], INTRO), sources_html([]), []), outputs=[chat, sources, turns_state],
                    api_visibility="private")
        doc_outputs = [status, docs_view, to_delete, header, sources]
        add.click(add_files, inputs=[uploads, turns_state], outputs=doc_outputs, api_visibility="private").then(
            lambda: None, outputs=[uploads], api_visibility="private")
        remove.click(delete, inputs=[to_delete, turns_state], outputs=doc_outputs, api_visibility="private")
        viewer_request.change(open_document, inputs=[viewer_request, turns_state], outputs=[viewer],
                              show_progress="hidden", api_visibility="private")
        docs_tab.select(list_documents, outputs=[docs_view, to_delete], api_visibility="private")
        app.load(list_documents, outputs=[docs_view, to_delete], api_visibility="private")
        answerer.change(settings_note, inputs=[answerer], outputs=[note], api_visibility="private")
        gr.api(ask, api_name="ask")
    return app


def _status(*lines: str, bad: bool = False) -> str:
    cls = "status bad" if bad else "status"
    return f'<div class="{cls}">' + "".join(f"<div>{esc(line)}</div>" for line in lines) + "</div>"


def _ingest_if_empty(service: Service) -> None:
    """An empty index is filled from the corpus folder before the app starts, with progress shown."""
    if service.chunk_count() > 0:
        return
    corpus = service.settings.corpus
    print(f"rag: the index is empty; indexing {corpus} first", file=sys.stderr, flush=True)
    if not corpus.is_dir():
        print(f"rag: no corpus folder {corpus}; add documents in the app's Documents tab", file=sys.stderr)
        return
    progress = None
    if not sys.stderr.isatty():  # tqdm draws a bar on a terminal; elsewhere print a line every 10%
        last = [-1]

        def progress(done: int, total: int, name: str) -> None:
            step = done * 10 // max(total, 1)
            if step != last[0]:
                last[0] = step
                print(f"rag: indexing {done}/{total} {name}", file=sys.stderr, flush=True)

    summary = service.ingest(progress=progress)
    print(f"rag: {summary.line()}", file=sys.stderr, flush=True)


def launch_options() -> dict[str, Any]:
    """Look and offline settings shared by `serve` and the tests."""
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                           font=["ui-sans-serif", "system-ui", "sans-serif"],  # local fonts: nothing fetched
                           font_mono=["ui-monospace", "monospace"])
    return {
        "theme": theme,
        "css": (HERE / "style.css").read_text(encoding="utf-8"),
        "head": f"<script>{(HERE / 'app.js').read_text(encoding='utf-8')}</script>",
        "ssr_mode": False,
        "max_file_size": MAX_PDF_BYTES,
        "footer_links": ["api"],
        "show_error": True,
    }


def serve(service: Service, host: str = "127.0.0.1", port: int = 7860, *, prevent_thread_lock: bool = False,
          quiet: bool = False) -> Server:
    """Ingest the corpus if the index is empty, then run the app at / and the HTTP API (ui/api.py) beside it
    on host:port (127.0.0.1 by default). With `prevent_thread_lock` it runs in the background until `close()`."""
    auth = service.settings.auth  # RAG_AUTH and RAG_API_KEYS, checked when the settings were read
    api = build_api(service, host=host, app_auth=auth is not None, keys=service.settings.api_keys)
    _ingest_if_empty(service)
    watcher = None
    if service.settings.watch:
        from rag.watch import Watcher

        watcher = Watcher(service).start()
    app = build_app(service)
    # One answer at a time per event: the model has two cores. At most QUEUE_SIZE requests wait; more are
    # refused at once ("queue is full") instead of piling up (docs/limits.md#concurrency). The API keeps
    # the same limits with its own slots (ui/api_base.py).
    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    gr.mount_gradio_app(api, app, "/", server_name=host, server_port=port, auth=auth, **launch_options())
    mounted = api.routes[-1].app  # type: ignore[attr-defined]  # the Gradio app that mount_gradio_app added

    def before_shutdown() -> None:
        mounted.stop_event.set()
        if watcher is not None:
            watcher.stop(wait=False)  # in the server's loop: a sync under way ends with the process

    server = Server(api, host, port, quiet=quiet, before_shutdown=before_shutdown)
    if prevent_thread_lock:
        return server.start()
    server.run()
    return server
