"""A real browser (Debian's Chromium driven by Playwright) against the app over a writable copy of corpus/.

Screenshots land in reports/screenshots/ (git-ignored): the answer with its open source, a refusal, the
documents tab after an upload.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from rag.config import Settings, repo_root
from rag.service import Service
from tests.conftest import CORPUS
from tests.helpers import CHROMIUM, chromium, running_app

# slow: a served app driven by Chromium
pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOTS = repo_root() / "reports" / "screenshots"
ANSWER_TIMEOUT_MS = 90_000

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("app") / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture(scope="module")
def service(corpus_dir, tmp_path_factory, embedder) -> Service:
    """An empty index: starting the app must ingest the corpus first."""
    index = tmp_path_factory.mktemp("app-index")
    return Service(Settings.from_env(env={}, corpus=corpus_dir, index=index, answerer="extractive"),
                   embedder=embedder)


@pytest.fixture(scope="module")
def app_url(service):
    with running_app(service) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.goto(app_url)
    pg.wait_for_selector("#question textarea")
    yield pg
    context.close()


def _ask(page, question: str, answers_before: int = 0) -> None:
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_function(
        f"document.querySelectorAll('.msg.bot:not(.pending)').length > {answers_before}", timeout=ANSWER_TIMEOUT_MS
    )


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_startup_ingested_the_empty_index(service, app_url):
    assert {d["source"] for d in service.documents()} == {p.name for p in CORPUS.glob("*.txt")}


def test_answer_badges_open_the_quoted_passage(page, service):
    question = "How many troops has North Korea sent to Russia?"
    _ask(page, question)
    expected = service.ask(question)  # the same question through the service: what the page must show
    badges = page.locator(".msg.bot.answer button.cite")
    assert badges.count() == len(expected.citations) >= 2
    assert page.locator(".src-group:not([hidden]) .src").count() == len(expected.citations)
    last = expected.citations[-1]
    badges.nth(badges.count() - 1).click()
    card = page.locator(f"#src-0-{last.n}")
    page.wait_for_function(f"document.querySelector('#src-0-{last.n}').classList.contains('active')")
    assert card.is_visible()
    assert _squash(card.locator("mark").inner_text()) == _squash(last.quote)
    # the sources panel scrolls (smoothly) until the card starts at its top (or is wholly in view)
    page.wait_for_function(
        f"""() => {{
            const card = document.querySelector('#src-0-{last.n}').getBoundingClientRect();
            const panel = document.querySelector('.sources').getBoundingClientRect();
            return card.top >= panel.top - 1 && (card.top - panel.top < 12 || card.bottom <= panel.bottom);
        }}""", timeout=5000)
    assert last.source in card.inner_text()
    page.screenshot(path=str(SHOTS / "chat-answer-source.png"))


def test_follow_up_shows_the_rewritten_question_and_older_sources_stay_reachable(page):
    _ask(page, "Who is the commander of U.S. Forces Korea?")
    _ask(page, "What did he say Russia is sharing?", answers_before=1)
    rewritten = page.locator("#turn-1 .rewritten").inner_text()
    assert "commander of U.S. Forces Korea" in rewritten
    assert "space, nuclear" in page.locator(".src-group[data-turn='1']").inner_text()
    page.locator("#turn-0 button.cite").first.click()  # a badge of the first answer shows its own sources
    page.wait_for_selector(".src-group[data-turn='0']:not([hidden])")
    assert page.locator(".src-group[data-turn='1']").is_hidden()
    page.screenshot(path=str(SHOTS / "chat-follow-up.png"))


def test_refusal_looks_different_and_has_no_sources(page):
    _ask(page, "What is the boiling point of ethanol?")
    refusal = page.locator(".msg.bot.refusal")
    assert refusal.is_visible() and "not in the documents" in refusal.inner_text().lower()
    assert page.locator(".msg.bot button.cite").count() == 0
    assert "No sources" in page.locator(".sources").inner_text()
    page.screenshot(path=str(SHOTS / "chat-refusal.png"))


def test_upload_shows_markup_as_text_and_delete_removes_it(page, corpus_dir, tmp_path):
    hostile = tmp_path / "lab-notes.txt"
    hostile.write_text("<script>window.pwned = 1</script>\nThe Zorblax reactor was commissioned in 1987 by the "
                       "<b>Vantor</b> utility. It produced 40 megawatts.\n", encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("table.docs")
    assert page.locator("table.docs tbody tr").count() == 2
    page.set_input_files("#uploads input[type=file]", [str(hostile), str(latin)])
    page.wait_for_function("document.querySelector('#uploads').innerText.includes('latin')")
    page.click("#add")
    page.wait_for_selector("#doc-status .status", timeout=ANSWER_TIMEOUT_MS)
    status = page.locator("#doc-status").inner_text()
    assert "Indexed 1 file" in status and "Refused 'latin.txt'" in status and "UTF-8" in status
    assert page.locator("table.docs tbody tr").count() == 3
    assert (corpus_dir / "lab-notes.txt").exists() and not (corpus_dir / "latin.txt").exists()
    page.screenshot(path=str(SHOTS / "documents.png"))

    page.get_by_role("tab", name="Chat").click()
    _ask(page, "When was the Zorblax reactor commissioned?")
    source = page.locator(".src-group:not([hidden]) .src").first
    assert "<script>window.pwned = 1</script>" in source.inner_text()
    assert "<b>Vantor</b>" in source.locator("mark").inner_text()
    assert page.evaluate("window.pwned") is None

    page.get_by_role("tab", name="Documents").click()
    page.click("#to-delete input")
    page.get_by_role("option", name="lab-notes.txt").click()
    page.click("#delete")
    page.wait_for_function("document.querySelector('#doc-status').innerText.includes('Deleted lab-notes.txt')")
    assert page.locator("table.docs tbody tr").count() == 2
    assert not (corpus_dir / "lab-notes.txt").exists()

    page.get_by_role("tab", name="Chat").click()  # a deleted document is never cited again
    _ask(page, "When was the Zorblax reactor commissioned?", answers_before=1)
    assert page.locator(".msg.bot.error").count() == 0
    assert "lab-notes.txt" not in page.locator(".src-group:not([hidden])").inner_text()
