"""Settings: every RAG_* variable is a typed field; flags win over the environment, which wins over defaults;
a bad value is one line naming the variable, and exit code 2 on the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.config import ChunkingSettings, Settings, repo_root
from rag.errors import UsageError

README = repo_root() / "README.md"


def test_defaults_then_environment_then_flags():
    assert Settings.from_env(env={}).port == 7860
    env = {"RAG_PORT": "8000", "RAG_INDEX": "/tmp/env-index", "RAG_ANSWERER": "extractive"}
    s = Settings.from_env(env=env, index=Path("/tmp/flag-index"), answerer=None)
    assert (s.port, s.index, s.answerer) == (8000, Path("/tmp/flag-index"), "extractive")
    assert {"port", "index", "answerer"} <= s.model_fields_set and "corpus" not in s.model_fields_set


def test_an_empty_variable_counts_as_unset():
    assert Settings.from_env(env={"RAG_PORT": "", "RAG_API_KEYS": ""}) == Settings.from_env(env={})


def test_nested_groups_read_their_prefixed_variables():
    s = Settings.from_env(env={"RAG_LLM_URL": "http://127.0.0.1:8080", "RAG_LLM_MODEL_PATH": "/m.gguf",
                               "RAG_LLM_THREADS": "1", "RAG_CHUNKING_CHUNK_SIZE": "256", "RAG_MODEL_DIR": "/mm"})
    assert (s.llm.url, s.llm.model_path, s.llm.threads, s.llm.model) == ("http://127.0.0.1:8080", "/m.gguf", 1,
                                                                        "local")
    assert s.chunking == ChunkingSettings(256, 16) and s.model_dir == Path("/mm")


def test_auth_and_api_keys_are_parsed():
    s = Settings.from_env(env={"RAG_AUTH": "ann:pa:ss", "RAG_API_KEYS": " one, two ,,"})
    assert s.auth == ("ann", "pa:ss") and s.api_keys == ("one", "two")
    assert Settings.from_env(env={}).auth is None and Settings.from_env(env={}).api_keys == ()


@pytest.mark.parametrize("var,value,message", [
    ("RAG_PORT", "abc", "RAG_PORT: expected an integer, got 'abc'"),
    ("RAG_PORT", "70000", "RAG_PORT: expected at most 65535, got '70000'"),
    ("RAG_LLM_THREADS", "two", "RAG_LLM_THREADS: expected an integer, got 'two'"),
    ("RAG_LLM_THREADS", "0", "RAG_LLM_THREADS: expected at least 1, got '0'"),
    ("RAG_ANSWERER", "oracle", "RAG_ANSWERER: expected 'generative' or 'extractive', got 'oracle'"),
    ("RAG_DEBUG", "maybe", "RAG_DEBUG: expected true or false (1 or 0), got 'maybe'"),
    ("RAG_AUTH", "ann", "RAG_AUTH must look like user:password (both non-empty)"),
    ("RAG_AUTH", ":pw", "RAG_AUTH must look like user:password (both non-empty)"),
    ("RAG_API_KEYS", " , ", "RAG_API_KEYS holds no key; give one or more keys separated by commas, or unset it"),
    ("RAG_CHUNKING_CHUNK_SIZE", "big", "RAG_CHUNKING_CHUNK_SIZE: expected an integer, got 'big'"),
])
def test_a_bad_value_is_one_line_naming_the_variable(var, value, message):
    with pytest.raises(UsageError) as info:
        Settings.from_env(env={var: value})
    assert str(info.value) == message and info.value.exit_code == 2


def test_a_bad_value_given_by_flag_names_the_flag():
    with pytest.raises(UsageError, match=r"^--as-of is not a date; give one like 2022-06-16$"):
        Settings.from_env(env={}, as_of="yesterday")
    with pytest.raises(UsageError, match=r"^RAG_AS_OF is not a date"):
        Settings.from_env(env={"RAG_AS_OF": "yesterday"})
    assert Settings.from_env(env={"RAG_AS_OF": "2022-06-16"}).as_of == "2022-06-16"


def test_replace_checks_the_new_values_and_keeps_the_rest():
    s = Settings.from_env(env={"RAG_LLM_URL": "http://x"})
    t = s.replace(answerer="extractive", as_of="2024-01-01")
    assert (t.answerer, t.as_of, t.llm.url) == ("extractive", "2024-01-01", "http://x") and s.answerer == "generative"
    with pytest.raises(UsageError, match="^--port: expected an integer, got 'abc'$"):
        s.replace(port="abc")
    with pytest.raises(UsageError, match="^RAG_LLM_THREADS: expected at least 1"):
        s.replace(llm={"threads": 0})


def test_build_info_comes_from_the_fields_that_shape_the_index():
    s = Settings.from_env(env={}, chunking=ChunkingSettings(256, 32), embed_model="e5-small-q4")
    assert s.build_info() == {"embedding_model": "e5-small-q4", "chunk_size": 256, "chunk_overlap": 32}
    assert s.replace(port=9000, answerer="extractive").build_info() == s.build_info()


def test_the_command_line_exits_2_with_one_line_for_a_bad_variable(monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.setenv("RAG_PORT", "abc")
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == "rag: RAG_PORT: expected an integer, got 'abc'\n"


def test_serve_flags_win_over_the_environment(monkeypatch):
    from rag.cli import build_parser, settings_from

    monkeypatch.setenv("RAG_PORT", "8001")
    monkeypatch.setenv("RAG_HOST", "0.0.0.0")
    assert settings_from(build_parser().parse_args(["serve", "--port", "9001"])).port == 9001
    s = settings_from(build_parser().parse_args(["serve"]))
    assert (s.host, s.port) == ("0.0.0.0", 8001)


def test_every_setting_is_in_the_readme_table():
    table = README.read_text(encoding="utf-8")
    names = {f"RAG_{name.upper()}" for name in Settings.model_fields if name not in ("llm", "chunking")}
    names |= {f"RAG_LLM_{name.upper()}" for name in Settings.model_fields["llm"].annotation.model_fields}
    names |= {"RAG_CHUNKING_CHUNK_SIZE", "RAG_CHUNKING_CHUNK_OVERLAP"}
    listed = set(re.findall(r"`(RAG_[A-Z_]+)`", table))
    assert names <= listed, sorted(names - listed)
