"""The hand-labeled set is well formed: enough questions of each kind, gold quotes exact, gates consistent."""

from __future__ import annotations

from collections import Counter

import pytest

from eval.labels import TYPES, load_gates, load_labels
from rag.errors import UsageError
from tests.conftest import CORPUS, SEED_SHELLS, SEED_TROOPS

LABELS = load_labels()


def test_at_least_40_questions_covering_every_type():
    counts = Counter(label.type for label in LABELS)
    assert len(LABELS) >= 40
    assert set(counts) == set(TYPES)
    assert counts["unanswerable"] >= 8


@pytest.mark.parametrize("label", [lb for lb in LABELS if lb.gold], ids=lambda lb: lb.id)
def test_every_gold_quote_is_an_exact_substring_of_its_document(label):
    for g in label.gold:
        text = (CORPUS / g.doc).read_text(encoding="utf-8")
        for quote in g.quotes:
            assert quote in text, f"{label.id}: {quote!r} is not in {g.doc}"


def test_conflict_and_both_document_questions_have_gold_in_both_documents():
    for label in LABELS:
        if label.type in ("conflict", "both_docs"):
            assert {g.doc for g in label.gold} == {SEED_SHELLS, SEED_TROOPS}, label.id


def test_followups_carry_history_and_nothing_else_does():
    for label in LABELS:
        assert bool(label.history) == (label.type == "followup"), label.id
        for turn in label.history:
            assert turn["role"] in ("user", "assistant") and turn["content"]


def test_gates_name_only_labeled_questions():
    ids = {label.id for label in LABELS}
    for answerer, gates in load_gates()["labeled"].items():
        unknown = set(gates.get("must_pass") or ()) - ids
        assert not unknown, f"{answerer}: {unknown}"


def test_a_malformed_label_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "labels.yaml"
    bad.write_text("- {id: q1, type: single, question: 'How many?', facts: ['(unclosed']}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"entry 1 \(q1\).*not a valid pattern"):
        load_labels(bad)
    bad.write_text("- {id: q2, type: unanswerable, question: 'Who?', facts: [x]}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="q2.*no facts"):
        load_labels(bad)
    bad.write_text("- {id: q3, question: Who?}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"labels.yaml line 1: the labels are not valid YAML"):
        load_labels(bad)
