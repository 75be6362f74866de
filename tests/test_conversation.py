"""Follow-up questions: rewritten to stand alone only when they lean on the conversation."""

from __future__ import annotations

import re

import pytest

from rag.conversation import standalone_question
from rag.llm import FakeChatModel

COMMANDER = [
    {"role": "user", "content": "Who is the commander of U.S. Forces Korea?"},
    {"role": "assistant", "content": "Army Gen. Xavier Brunson, the commander of U.S. Forces Korea [1]."},
]
TROOPS = [{"role": "user", "content": "How many troops has North Korea sent to Russia?"}]


def test_pronoun_is_replaced_by_the_subject_of_the_previous_question():
    got = standalone_question("What did he say Russia is sharing?", COMMANDER)
    assert got == "What did the commander of U.S. Forces Korea say Russia is sharing?"


def test_plural_pronoun_after_an_actor_keeps_the_previous_question_in_front():
    got = standalone_question("How many of them were killed?", TROOPS)
    assert got == "How many troops has North Korea sent to Russia? How many of them were killed?"


def test_elliptical_follow_up_is_joined_to_the_previous_question():
    assert standalone_question("And the wounded?", TROOPS) == (
        "How many troops has North Korea sent to Russia? And the wounded?")


def test_standalone_questions_and_first_questions_are_left_alone():
    assert standalone_question("Where did Kim Jong Un visit a weapons factory?", TROOPS) is None
    assert standalone_question("What did he say Russia is sharing?", []) is None
    assert standalone_question("What did he say Russia is sharing?", None) is None
    assert standalone_question("What did he say?", [{"role": "assistant", "content": "Hello"}]) is None


def test_malformed_history_entries_are_ignored():
    history = ["not a turn", {"role": "user"}, *COMMANDER]
    assert standalone_question("What did he say?", history) == "What did the commander of U.S. Forces Korea say?"


def test_a_language_model_rewrites_what_the_rule_cannot_resolve():
    model = FakeChatModel(["How many of the North Korean troops sent to Russia were killed?"])
    got = standalone_question("How many of them were killed?", TROOPS, llm=model)
    assert got == "How many of the North Korean troops sent to Russia were killed?"
    assert "How many troops has North Korea sent to Russia?" in model.calls[0].prompt


def test_the_model_is_not_called_when_the_rule_is_sure():
    model = FakeChatModel(["What did Xavier Brunson say Russia is sharing?"])
    got = standalone_question("What did he say Russia is sharing?", COMMANDER, llm=model)
    assert got == "What did the commander of U.S. Forces Korea say Russia is sharing?" and model.calls == []


def test_an_implausible_model_reply_falls_back_to_the_rule():
    model = FakeChatModel(["Sure! Here is the rewritten question"])
    got = standalone_question("How many of them were killed?", TROOPS, llm=model)
    assert got == "How many troops has North Korea sent to Russia? How many of them were killed?"
    assert len(model.calls) == 1


def test_follow_up_retrieves_with_the_rewrite(seed_service):
    ans = seed_service.ask("What did he say Russia is sharing?", history=COMMANDER)
    assert ans.question == "What did he say Russia is sharing?"
    assert ans.rewritten_question == "What did the commander of U.S. Forces Korea say Russia is sharing?"
    assert not ans.abstained, ans.answer
    assert any("space, nuclear" in c.quote for c in ans.citations), ans.answer
    assert ans.to_json()["rewritten_question"] == ans.rewritten_question


@pytest.fixture(scope="module")
def bundled_model():
    pytest.importorskip("llama_cpp", reason="the llm extra is not installed")
    from rag.config import Settings
    from rag.llm import load_chat_model

    return load_chat_model(Settings.from_env(env={}))


@pytest.mark.integration
@pytest.mark.slow  # loads the bundled LLM: 32 s, then 38 s for the rewrite under load 8
def test_the_bundled_model_resolves_a_plural_follow_up(bundled_model):
    history = [*TROOPS, {"role": "assistant", "content": "15,000 North Korean soldiers were reportedly sent [1]."}]
    got = standalone_question("How many of them were killed?", history, llm=bundled_model)
    assert got and got.endswith("?") and "killed" in got, got
    assert re.search(r"troops|soldiers", got, re.I) and not re.search(r"\bthem\b", got), got
