"""The document viewer in real Chromium (Playwright): a source card opens its document with the quote
highlighted on screen and focused, Escape closes it; a PDF citation shows the page with its highlight; a
document changed after an answer flags that answer's citation. Screenshots: reports/screenshots/, and the
PDF viewer as docs/viewer-pdf.png (the README shows it)."""

from __future__ import annotations

import re
import shutil

import pytest

from rag.config import Settings, repo_root
from rag.service import Service
from tests.conftest import CORPUS, SEED_SHELLS
from tests.helpers import CHROMIUM, chromium, running_app
from tests.test_formats import HARBOUR_PAGES, make_pdf

pytestmark = pytest.mark.integration

SHOTS = repo_root() / "reports" / "screenshots"
DOCS = repo_root() / "docs"
ANSWER_TIMEOUT_MS = 90_000

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def service(tmp_path_factory, embedder) -> Service:
    root = tmp_path_factory.mktemp("viewer")
    shutil.copytree(CORPUS, root / "corpus")
    make_pdf(root / "corpus" / "harbour.pdf", HARBOUR_PAGES)
    svc = Service(Settings.from_env(env={}, corpus=root / "corpus", index=root / "index", answerer="extractive"),
                  embedder=embedder)
    svc.ingest()
    return svc


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, service):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(service) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pg = context.new_page()
        pg.goto(url)
        pg.wait_for_selector("#question textarea")
        yield pg
        context.close()


def _ask(page, question: str, answers_before: int = 0) -> None:
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_function(
        f"document.querySelectorAll('.msg.bot:not(.pending)').length > {answers_before}", timeout=ANSWER_TIMEOUT_MS)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _in_view(page, selector: str) -> bool:
    """Whether the element's box lies inside both the window and the viewer's scrolled body."""
    return page.evaluate(f"""() => {{
        const r = document.querySelector('{selector}').getBoundingClientRect();
        const b = document.querySelector('.viewer-body').getBoundingClientRect();
        return r.height > 0 && r.top >= b.top && r.bottom <= b.bottom && r.bottom <= window.innerHeight;
    }}""")


def test_open_in_document_highlights_the_quote_on_screen(page, service):
    from playwright.sync_api import expect

    question = "How many shells has North Korea shipped to Russia?"
    _ask(page, question)
    expected = service.ask(question)
    last = expected.citations[-1]
    button = page.locator(f"#src-0-{last.n} button.open-doc")
    button.focus()
    page.keyboard.press("Enter")  # a keyboard user opens it the same way
    page.wait_for_selector(".viewer-dialog:not([hidden]) #viewer-hl")
    hl = page.locator("#viewer-hl")
    assert _squash(hl.inner_text()) == _squash(last.quote)
    expect(hl).to_be_focused()
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'viewer-hl'")
    assert _in_view(page, "#viewer-hl")
    # the whole stored text is there, and the answer's other citations of that document are marked too
    body = page.locator(".viewer-body .doc-text").inner_text()
    assert _squash(service.show(last.doc_id)) == _squash(body)
    same_doc = [c for c in expected.citations if c.doc_id == last.doc_id and c.n != last.n]
    assert page.locator(".viewer-body mark.other").count() == len(same_doc)
    page.screenshot(path=str(SHOTS / "viewer-text.png"))
    page.keyboard.press("Escape")
    expect(page.locator(".viewer-dialog")).to_be_hidden()
    expect(button).to_be_focused()


def test_a_pdf_citation_shows_its_page_with_the_quote_highlighted(page, service):
    _ask(page, "How tall is the Lindholm lighthouse?")
    expected = service.ask("How tall is the Lindholm lighthouse?")
    cited = next(c for c in expected.citations if "42 metres" in c.quote)
    page.locator(f"#src-0-{cited.n}").click()  # the card itself opens too
    page.wait_for_selector(".viewer-dialog:not([hidden]) .pdf-page[data-page='2'] #viewer-hl")
    page.wait_for_function("() => [...document.querySelectorAll('.pdf-page img')].every(i => i.complete && "
                           "i.naturalWidth > 0)")
    assert _in_view(page, "#viewer-hl")
    # the box lies over the quote's line: its top is in the upper tenth of the page, like the text on it
    where = page.evaluate("""() => {
        const box = document.querySelector('#viewer-hl').getBoundingClientRect();
        const img = document.querySelector('.pdf-page[data-page="2"] img').getBoundingClientRect();
        return {top: (box.top - img.top) / img.height, left: (box.left - img.left) / img.width,
                width: box.width / img.width};
    }""")
    assert 0.03 < where["top"] < 0.1 and 0.1 < where["left"] < 0.6 and where["width"] > 0.05
    page.wait_for_timeout(300)  # let the smooth scrolling of the sources panel settle before the picture
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "viewer-pdf.png"))
    shutil.copy(DOCS / "viewer-pdf.png", SHOTS / "viewer-pdf.png")


def test_a_changed_document_flags_the_citations_of_earlier_answers(page, service):
    _ask(page, "How many shells has North Korea shipped to Russia?")
    assert page.locator(".stale").count() == 0
    path = service.settings.corpus / SEED_SHELLS
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text("A correction was added on top.\n" + original, encoding="utf-8")
        service.ingest()
        _ask(page, "How tall is the Lindholm lighthouse?", answers_before=1)  # the conversation re-renders
        page.locator("#turn-0 button.cite").first.click()
        group = page.locator(".src-group[data-turn='0']:not([hidden])")
        stale = group.locator(".src", has_text=SEED_SHELLS).locator(".stale")
        assert stale.count() >= 1 and stale.first.inner_text() == "source changed since this answer"
        assert page.locator(".src-group[data-turn='1'] .stale").count() == 0  # cited after the change
        page.screenshot(path=str(SHOTS / "viewer-stale.png"))
    finally:
        path.write_text(original, encoding="utf-8")
        service.ingest()
