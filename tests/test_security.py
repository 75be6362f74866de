"""Who may use it and what may reach the disk: loopback by default, RAG_AUTH closes the API, uploads stay
inside the corpus folder within their limits, and document markup never becomes HTML.

(The browser test, tests/test_browser.py, checks a `<script>` document in a real Chromium; the render unit
tests check titles and questions. Here: the same promise through the API and the rendering of a hostile
document end to end, without a browser.)
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest

from rag.config import Settings
from rag.errors import UsageError
from rag.service import Service
from rag.sources import MAX_FILE_BYTES, MAX_PDF_BYTES
from tests.conftest import CORPUS
from tests.helpers import free_port

pytestmark = pytest.mark.integration

USER, PASSWORD = "reader", "s3cret-pass"
HOSTILE = ("<script>window.pwned = 1</script>\nThe Zorblax reactor was commissioned in 1987 by the Vantor "
           "utility.\n<img src=x onerror=\"window.pwned = 2\"> It produced 40 megawatts.\n")


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


@pytest.fixture(scope="module")
def service(tmp_path_factory, embedder) -> Service:
    root = tmp_path_factory.mktemp("security")
    shutil.copytree(CORPUS, root / "corpus")
    (root / "corpus" / "zorblax.txt").write_text(HOSTILE, encoding="utf-8")
    (root / "corpus" / "zorblax.txt.meta.json").write_text(
        '{"title": "<img src=x onerror=\\"window.pwned = 3\\">Reactor notes"}', encoding="utf-8")
    svc = Service(Settings.from_env(env={}, corpus=root / "corpus", index=root / "index", answerer="extractive"),
                  embedder=embedder)
    svc.ingest()
    return svc


def _serve(service, monkeypatch, auth: str | None, **kw):
    from ui.app import serve

    port = free_port()
    return serve(service.with_settings(auth=auth), port=port, prevent_thread_lock=True, quiet=True, **kw), port


def test_serve_listens_on_loopback_only_by_default(service, monkeypatch):
    from rag.cli import build_parser, settings_from

    monkeypatch.delenv("RAG_HOST", raising=False)
    assert settings_from(build_parser().parse_args(["serve"])).host == "127.0.0.1"
    app, port = _serve(service, monkeypatch, None)  # serve()'s own default host
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
        addr = outward_address()
        if addr is not None:  # the same port on the machine's network address is closed
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://{addr}:{port}/", timeout=5)
    finally:
        app.close()


def test_rag_auth_closes_the_api_without_login(service, monkeypatch):
    from gradio_client import Client

    app, port = _serve(service, monkeypatch, f"{USER}:{PASSWORD}")
    base = f"http://127.0.0.1:{port}"
    try:
        # the API itself, called directly, is refused
        call = httpx.post(f"{base}/gradio_api/call/ask", json={"data": ["How many shells?"]}, timeout=30)
        assert call.status_code == 401
        assert httpx.get(f"{base}/gradio_api/info", timeout=30).status_code == 401
        # gradio_client without credentials, or with wrong ones, gets no answer
        with pytest.raises(Exception, match="(?i)login|auth|401|credentials"):
            Client(base, verbose=False)
        with pytest.raises(Exception, match="(?i)login|auth|401|credentials"):
            Client(base, auth=(USER, "wrong"), verbose=False)
        # with them it answers
        got = Client(base, auth=(USER, PASSWORD), verbose=False).predict(
            "How many artillery shells has North Korea sent to Russia?", api_name="/ask")
        assert "six million" in got["answer"] and got["citations"]
    finally:
        app.close()


def test_uploads_are_limited_in_size(service, monkeypatch):
    from ui.app import launch_options

    assert launch_options()["max_file_size"] == MAX_PDF_BYTES  # Gradio refuses bigger uploads outright
    app, port = _serve(service, monkeypatch, None)
    try:
        base = f"http://127.0.0.1:{port}"
        small = httpx.post(f"{base}/gradio_api/upload", files={"files": ("notes.txt", b"ok\n")}, timeout=60)
        assert small.status_code == 200
        big = httpx.post(f"{base}/gradio_api/upload",
                         files={"files": ("big.pdf", b"%PDF" + b"\0" * (MAX_PDF_BYTES + 1024))}, timeout=120)
        assert big.status_code == 413, big.text[:200]
    finally:
        app.close()


def test_upload_names_cannot_leave_gradios_folder(service, monkeypatch):
    """A client may send any file name; the server keeps only its last part, inside its upload folder."""
    app, port = _serve(service, monkeypatch, None)
    try:
        for name in ("../../evil.txt", "/etc/evil.txt", "..\\..\\evil.txt"):
            resp = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", files={"files": (name, b"x\n")},
                              timeout=60)
            assert resp.status_code == 200
            stored = Path(resp.json()[0])
            assert ".." not in stored.parts and stored.name.endswith("evil.txt")
            assert not Path("/etc/evil.txt").exists()
    finally:
        app.close()


def test_uploads_land_only_inside_the_corpus_folder(tmp_path):
    from ui.uploads import check_upload, place

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "upload.txt"
    src.write_text("The bridge opened in 1932.\n", encoding="utf-8")
    for name in ("../escape.txt", "..\\escape.txt", "/tmp/escape.txt", "sub/escape.txt", ".hidden.txt",
                 "escape.txt\x00.exe", "escape.exe", "escape.html.meta.json"):
        with pytest.raises(UsageError):
            place(check_upload(src, name, corpus), corpus)
    # a file already in the corpus that is a link to elsewhere is not written through
    target = outside / "victim.txt"
    target.write_text("untouched\n", encoding="utf-8")
    (corpus / "victim.txt").symlink_to(target)
    with pytest.raises(UsageError, match="outside the corpus"):
        place(check_upload(src, "victim.txt", corpus), corpus)
    assert target.read_text(encoding="utf-8") == "untouched\n"
    # and a good one lands in the corpus folder itself
    dest, _ = place(check_upload(src, "notes.txt", corpus), corpus)
    assert dest.parent == corpus and dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


def test_text_uploads_have_a_smaller_limit(tmp_path):
    from ui.uploads import check_upload

    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(UsageError, match="limit"):
        check_upload(big, "big.txt", tmp_path / "corpus")


def test_document_markup_is_never_rendered_as_html(service):
    """The hostile document is answered from; its text, and its title, reach the page only as text."""
    from ui.render import Turn, chat_html, source_record, sources_html

    ans = service.ask("When was the Zorblax reactor commissioned?")
    assert not ans.abstained and ans.citations
    docs = service.store.documents()
    turn = Turn("When was the Zorblax reactor commissioned?")
    turn.answer = ans
    turn.text = ans.answer
    turn.sources = [source_record(c, docs, service.doc_text) for c in ans.citations]
    page = chat_html([turn], "") + sources_html([turn])
    assert "<script" not in page.lower() and "onerror=" not in page.replace("onerror=&quot;", "").lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;" in page or "&lt;img" in page  # shown, as text
