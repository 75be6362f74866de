"""The generative answerer's gates in eval/gates.yaml exist and `rag eval` applies them (a fake run, no model)."""

from __future__ import annotations

from typing import Any

import pytest

from eval import runner
from eval.labels import load_gates, load_labels


@pytest.fixture
def gates() -> dict[str, Any]:
    block = runner.gates_for(load_gates(), "labeled", "generative")
    assert block, "eval/gates.yaml has no labeled: generative: block"
    return block


def _run(summary: dict[str, Any], failing: set[str] = frozenset()) -> dict[str, Any]:
    rows = [{"id": lab.id, "type": lab.type, "passed": lab.id not in failing, "error": None,
             "citation_problems": [], "answerable": lab.answerable, "abstained": not lab.answerable,
             "facts": list(lab.facts), "fact_hits": [lab.id not in failing] * len(lab.facts)}
            for lab in load_labels()]
    return {"suite": "labeled", "answerer": "generative", "judge": "lexical", "summary": summary, "rows": rows}


def _at_the_gates(gates: dict[str, Any]) -> dict[str, Any]:
    return {"questions": 50, **(gates.get("min") or {}), **(gates.get("max") or {})}


def _exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path, run: dict[str, Any]) -> int:
    monkeypatch.setattr(runner, "run_labeled", lambda args, judge, models: ("labeled", [run]))
    monkeypatch.setattr(runner, "write_reports", lambda out_dir, stem, payload: [])
    return runner.main(runner.EvalOptions(judge="lexical", reports=tmp_path, json=True, answerer="generative"))


def test_the_gate_block_has_the_extractive_blocks_shape(gates):
    ids = {lab.id for lab in load_labels()}
    assert set(gates) <= {"min", "max", "must_pass"}
    assert {"fact_recall", "citation_recall", "citation_precision", "conflict_coverage"} <= set(gates["min"])
    assert gates["min"]["citation_recall"] == 1.0  # no unsupported sentence shown
    assert gates["must_pass"] and set(gates["must_pass"]) <= ids


def test_a_run_at_the_gates_passes(monkeypatch, tmp_path, gates, capsys):
    assert _exit_code(monkeypatch, tmp_path, _run(_at_the_gates(gates))) == 0
    assert '"passed": true' in capsys.readouterr().out


@pytest.mark.parametrize("bound", ["min", "max"])
def test_a_run_past_any_threshold_exits_1(monkeypatch, tmp_path, gates, capsys, bound):
    for metric, value in (gates.get(bound) or {}).items():
        summary = _at_the_gates(gates)
        summary[metric] = value - 0.01 if bound == "min" else value + 0.01
        assert _exit_code(monkeypatch, tmp_path, _run(summary)) == 1, metric
        assert f"gate failed (labeled, generative): {metric}" in capsys.readouterr().err


def test_a_must_pass_question_that_fails_exits_1(monkeypatch, tmp_path, gates, capsys):
    qid = gates["must_pass"][0]
    assert _exit_code(monkeypatch, tmp_path, _run(_at_the_gates(gates), failing={qid})) == 1
    assert f"must_pass: {qid} failed" in capsys.readouterr().err
