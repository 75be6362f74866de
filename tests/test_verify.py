"""Receipts and `rag verify` on real extractive answers over a temporary copy of corpus/.

Each test asks a real question, saves the JSON answer, changes the corpus (or the answer) the way a user
would, re-ingests, and runs the real `rag verify` command on the saved answer.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pytest

from rag.config import repo_root
from rag.llm import MODEL_SHA256
from rag.receipts import model_fields
from tests.conftest import SEED_SHELLS
from tests.helpers import ingested_seed_copy

ROOT = repo_root()
QUESTION = "How many shells has North Korea shipped to Russia?"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_verify(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rag.cli", "verify", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def answered(tmp_path, embedder):
    """(service, the JSON answer about the shells saved in answer.json, its path)."""
    svc = ingested_seed_copy(tmp_path, embedder)
    ans = svc.ask(QUESTION).to_json()
    assert not ans["abstained"] and ans["citations"], ans
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(ans) + "\n", encoding="utf-8")
    return svc, ans, path


def shells_citation(ans):
    cite = next(c for c in ans["citations"] if c["source"] == SEED_SHELLS)
    return cite


def results(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_receipt_hashes_the_stored_text_and_quote(answered):
    svc, ans, _ = answered
    receipt = ans["receipt"]
    assert receipt["build"] == svc.store.build_info() and receipt["build"]["embedding_model"]
    assert receipt["model_sha256"] is None and "extractive" in receipt["model"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", receipt["created"])
    assert "prompt_version" in receipt
    assert [r["n"] for r in receipt["citations"]] == [c["n"] for c in ans["citations"]]
    for cite, rec in zip(ans["citations"], receipt["citations"], strict=True):
        assert rec["doc_sha256"] == sha(svc.show(cite["doc_id"]))
        assert rec["quote_sha256"] == sha(cite["quote"])


def test_model_fields_name_the_bundled_model_by_its_hash():
    from rag.config import Settings

    class Gen:
        name = "generative"

    assert model_fields(Gen(), Settings.from_env(env={}))["model_sha256"] == MODEL_SHA256
    server = model_fields(Gen(), Settings.from_env(env={"RAG_LLM_URL": "http://127.0.0.1:9/v1"}))
    assert server["model_sha256"] is None and "127.0.0.1:9" in server["model"]


def test_unchanged_corpus_is_ok_against_index_and_files(answered, tmp_path):
    _, ans, path = answered
    for where in (["--index", str(tmp_path / "index")], ["--corpus", str(tmp_path / "corpus")]):
        proc = run_verify(str(path), "--json", *where)
        assert proc.returncode == 0, proc.stderr
        assert [r["status"] for r in results(proc)] == ["ok"] * len(ans["citations"])
    plain = run_verify(str(path), "--index", str(tmp_path / "index"))
    assert plain.returncode == 0 and plain.stdout.startswith("answer 1 [1] ok: ")


def test_text_inserted_before_the_quote_is_moved_with_new_offsets(answered, tmp_path):
    svc, ans, path = answered
    cite = shells_citation(ans)
    file = tmp_path / "corpus" / SEED_SHELLS
    text = file.read_text(encoding="utf-8")
    inserted = "An editor's note added after the answer was given.\n"
    file.write_text(text[: cite["start"]] + inserted + text[cite["start"]:], encoding="utf-8")
    svc.ingest()
    for where in (["--index", str(tmp_path / "index")], ["--corpus", str(tmp_path / "corpus")]):
        proc = run_verify(str(path), "--json", *where)
        assert proc.returncode == 0, proc.stderr
        got = next(r for r in results(proc) if r["n"] == cite["n"])
        assert got["status"] == "moved"
        assert (got["start"], got["end"]) == (cite["start"] + len(inserted), cite["end"] + len(inserted))
        assert (got["old_start"], got["old_end"]) == (cite["start"], cite["end"])
        assert got["current_doc_id"] != cite["doc_id"]
    plain = run_verify(str(path), "--index", str(tmp_path / "index"))
    assert f"{cite['start']}-{cite['end']} -> {cite['start'] + len(inserted)}-" in plain.stdout


def test_changed_quoted_words_are_stale(answered, tmp_path):
    svc, ans, path = answered
    cite = shells_citation(ans)
    file = tmp_path / "corpus" / SEED_SHELLS
    text = file.read_text(encoding="utf-8")
    words = cite["quote"].split()
    changed = cite["quote"].replace(words[-2], "REVISED", 1)
    assert changed != cite["quote"]
    file.write_text(text[: cite["start"]] + changed + text[cite["end"]:], encoding="utf-8")
    svc.ingest()
    proc = run_verify(str(path), "--json", "--index", str(tmp_path / "index"))
    assert proc.returncode == 1
    assert next(r for r in results(proc) if r["n"] == cite["n"])["status"] == "stale"


def test_a_corrupted_receipt_or_quote_is_broken(answered, tmp_path):
    _, ans, path = answered
    bad = json.loads(json.dumps(ans))
    bad["receipt"]["citations"][0]["quote_sha256"] = "0" * 64
    path.write_text(json.dumps(bad, indent=2), encoding="utf-8")  # one pretty-printed object reads too
    proc = run_verify(str(path), "--json", "--index", str(tmp_path / "index"))
    assert proc.returncode == 1
    assert results(proc)[0]["status"] == "broken"
    # an edited quote whose receipt was updated to match: the unchanged document still gives it away
    edited = json.loads(json.dumps(ans))
    edited["citations"][0]["quote"] = "Up to ten million shells"
    edited["receipt"]["citations"][0]["quote_sha256"] = sha("Up to ten million shells")
    proc = run_verify("-", "--json", "--index", str(tmp_path / "index"), stdin=json.dumps(edited))
    assert proc.returncode == 1 and results(proc)[0]["status"] == "broken"


@pytest.mark.parametrize("content, why", [("not json at all\n", "line 1 is not JSON"),
                                          ('{"question": "q"}', "not a JSON answer")])
def test_bad_input_exits_2_with_one_line(tmp_path, content, why):
    path = tmp_path / "in.json"
    path.write_text(content, encoding="utf-8")
    proc = run_verify(str(path), "--index", str(tmp_path / "index"))
    assert proc.returncode == 2 and why in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    missing = run_verify(str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def readme_snippet() -> str:
    """The Python block of the README's "Checking a citation" section, exactly as a reader copies it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Checking a citation", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_script_checks_a_citation_against_its_file(answered, tmp_path):
    _, ans, path = answered
    script = tmp_path / "check_citation.py"
    script.write_text(readme_snippet(), encoding="utf-8")
    cite = shells_citation(ans)
    file = tmp_path / "corpus" / SEED_SHELLS

    def check():
        return subprocess.run([sys.executable, "-I", str(script), str(path), str(cite["n"]), str(file)],
                              capture_output=True, text=True, timeout=60)

    good = check()
    assert good.returncode == 0 and "ok" in good.stdout and "unchanged" in good.stdout, good.stderr
    file.write_text("New first line.\n" + file.read_text(encoding="utf-8"), encoding="utf-8")
    moved = check()
    assert moved.returncode == 1 and "differs" in moved.stdout and "changed" in moved.stdout


def test_check_citation_rules_on_plain_texts():
    from rag.receipts import check_citation

    quote = "six million shells"
    old = "Up to six million shells went by sea; six million shells is the estimate."
    start = old.index(quote, 10)  # the second occurrence
    cite = {"n": 1, "doc_id": "old", "source": "a.txt", "start": start, "end": start + len(quote), "quote": quote}
    receipt = {"doc_sha256": sha(old), "quote_sha256": sha(quote)}
    assert check_citation(cite, receipt, lambda d, s: ("old", old))["status"] == "ok"
    assert check_citation(cite, receipt, lambda d, s: None)["status"] == "stale"  # the document was removed
    grown = "Note. " + old  # both occurrences move; the nearer one to the old offset is the cited one
    got = check_citation(cite, receipt, lambda d, s: ("new", grown))
    assert got["status"] == "moved" and got["start"] == start + 6 and got["current_doc_id"] == "new"
    # without a receipt the doc_id (made from source and content) tells an unchanged document
    assert check_citation({**cite, "quote": "x"}, None, lambda d, s: ("old", old))["status"] == "broken"
