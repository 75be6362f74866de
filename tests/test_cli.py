"""The `rag` command as INTERFACE.md describes it, run as a user would (subprocess, real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import CORPUS, ROOT, SEED_SHELLS

# slow: every test runs `rag` processes that load the models (94 s for 9 tests under load 8)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAG = [sys.executable, "-m", "rag.cli"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    env = dict(os.environ, RAG_INDEX=str(tmp_path_factory.mktemp("cli-index")), RAG_CORPUS=str(CORPUS),
               RAG_ANSWERER="extractive")
    env.pop("RAG_CHROMA_URL", None)
    out = run(["ingest", "--json"], env)
    summary = json.loads(out.stdout)
    assert summary["added"] == 2 and summary["chunks"] > 0
    return env


def run(args, env, stdin=None, check=True):
    proc = subprocess.run(RAG + args, env=env, input=stdin, capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ask_json_answers_with_the_exact_span(cli_env):
    out = run(["ask", "How many artillery shells has North Korea sent to Russia?", "--json"], cli_env)
    ans = json.loads(out.stdout)
    assert set(ans) >= {"question", "answer", "abstained", "citations", "timings"}
    assert "six million" in ans["answer"] and not ans["abstained"]
    text = (CORPUS / SEED_SHELLS).read_text(encoding="utf-8")
    cited = [c for c in ans["citations"] if c["source"] == SEED_SHELLS and "six million" in c["quote"]]
    assert cited and all(text[c["start"] : c["end"]] == c["quote"] for c in ans["citations"])
    assert set(cited[0]) >= {"n", "doc_id", "chunk_id", "source", "title", "start", "end", "quote", "page"}


def test_ask_text_prints_numbered_sources(cli_env):
    out = run(["ask", "Who is the commander of U.S. Forces Korea?"], cli_env)
    assert "Xavier Brunson" in out.stdout and "\n[1] " in out.stdout


def test_ask_stream_prints_the_text_then_the_numbered_sources(cli_env):
    out = run(["ask", "How many artillery shells has North Korea sent to Russia?", "--stream"], cli_env)
    text, _, sources = out.stdout.partition("\n\n")
    assert "six million" in text and "[1]" in text
    assert sources.startswith(f"[1] {SEED_SHELLS} (") and "six million" in sources


def test_batch_from_stdin_answers_each_line_in_order(cli_env):
    lines = "\n".join([
        "How many artillery shells has North Korea sent to Russia?",
        json.dumps({"question": "What is the boiling point of ethanol?", "history": []}),
        "How many North Korean soldiers were sent to Russia?",
    ])
    out = run(["ask", "-", "--json"], cli_env, stdin=lines)
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(answers) == 3
    assert "six million" in answers[0]["answer"]
    assert answers[1]["abstained"] and answers[1]["citations"] == []
    assert "15,000" in answers[2]["answer"]


def test_search_stats_and_show(cli_env):
    out = run(["search", "troops wounded and killed", "--k", "3", "--json"], cli_env)
    res = json.loads(out.stdout)
    assert res["query"] == "troops wounded and killed" and 1 <= len(res["hits"]) <= 3
    assert set(res["hits"][0]) == {"doc_id", "chunk_id", "score", "start", "end", "source", "page", "text"}
    stats = json.loads(run(["stats", "--json"], cli_env).stdout)
    assert stats["documents"] == 2 and stats["chunks"] > 0
    assert set(stats) >= {"documents", "chunks", "embedding_model", "chunking", "backend"}
    hit = res["hits"][0]
    shown = run(["show", hit["doc_id"]], cli_env).stdout
    assert shown[hit["start"] : hit["end"]] == hit["text"]
    assert shown == (CORPUS / hit["source"]).read_text(encoding="utf-8")


def test_second_ingest_skips_unchanged(cli_env):
    summary = json.loads(run(["ingest", "--json"], cli_env).stdout)
    assert summary["unchanged"] == 2 and summary["embedded"] == 0 and summary["added"] == 0


@pytest.mark.parametrize("args,needle", [
    (["ask", "   "], "question is empty"),
    (["search", "shells", "--k", "0"], "out of range"),
    (["show", "no-such-doc"], "no document"),
    (["ask"], "required"),
])
def test_bad_input_exits_2_with_one_line(cli_env, args, needle):
    proc = run(args, cli_env, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0].lower(), proc.stderr
