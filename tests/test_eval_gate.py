"""The gate can fail: `rag eval` fails, on that question, when a labeled fact in corpus/ is changed.

Integration: the real embedding model and an embedded Chroma, through the `rag` command, with the
extractive answerer (CI's default while generation is optional) and the lexical judge (no LLM load).
"""

from __future__ import annotations

import json

import pytest

from eval.labels import load_gates, load_labels
from rag.cli import main as cli_main
from tests.conftest import SEED_SHELLS

# slow: a whole labeled eval run over a changed corpus
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _eval(corpus, tmp_path) -> tuple[int, dict]:
    code = cli_main(["--answerer", "extractive", "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                     "eval", "--judge", "lexical", "--reports", str(tmp_path / "reports"), "--json"])
    report = json.loads((tmp_path / "reports" / "eval-labeled.json").read_text(encoding="utf-8"))
    return code, report["runs"][0]


def test_the_gate_fails_on_the_question_whose_fact_is_altered(corpus_copy, tmp_path, capsys):
    path = corpus_copy / SEED_SHELLS
    text = path.read_text(encoding="utf-8")
    assert text.count("six million") == 2
    path.write_text(text.replace("six million", "seven million"), encoding="utf-8")

    code, run = _eval(corpus_copy, tmp_path)
    rows = {r["id"]: r for r in run["rows"]}
    assert code == 1
    assert "seven million" in rows["shells-shipped"]["answer"] and not rows["shells-shipped"]["passed"]
    assert any(f.startswith("must_pass: shells-shipped failed: the answer lacks") for f in run["gates_failed"])
    # Only questions whose answer is the altered figure fail; every other gated question still passes,
    # as it does on the real corpus (where CI's `rag eval` runs the same gates).
    six = {lb.id for lb in load_labels() if any("six" in f for f in lb.facts)}
    failed = {f.split()[1] for f in run["gates_failed"] if f.startswith("must_pass:")}
    assert failed and failed <= six
    must_pass = set(load_gates()["labeled"]["extractive"]["must_pass"])
    assert all(rows[q]["passed"] for q in must_pass - six)
    err = capsys.readouterr().err
    assert "rag eval: gate failed (labeled, extractive): must_pass: shells-shipped failed" in err
