"""Settings: one typed object, built from defaults, then RAG_* environment variables, then command-line flags.

Every RAG_* variable is a field here (pydantic-settings, prefix `RAG_`); the nested ones read as their
group's name then the field's: `llm.model_path` is RAG_LLM_MODEL_PATH, `chunking.chunk_size` is
RAG_CHUNKING_CHUNK_SIZE. An empty variable counts as unset. A bad value is a UsageError of one line naming
the variable (`RAG_PORT: expected an integer, got 'abc'`), which the command line turns into exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from rag.errors import UsageError
from rag.text import normalise_date


def repo_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


# Environment every entry point sets before importing gradio, chromadb or huggingface code, so nothing
# phones home (OFFLINE.md: gradio's version check, the model hub, telemetry).
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ORT_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    # llama.cpp's OpenMP threads spin on a 2-core machine and starve each other without this
    "OMP_WAIT_POLICY": "PASSIVE",
}


def set_offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class ChunkingSettings:
    """How documents are split: 128 tokens / 16 overlap (docs/embedding-and-chunking.md#chunking has the table).

    Hybrid retrieval with MiniLM, one run each: SQuAD2-500 hit@1 0.905 (128/16), 0.864 (256/32),
    0.876 (384/48), 0.868 (512/64); RealTimeQA dev over 218 of its articles MRR@10 0.885, 0.844, 0.865,
    0.855. Small chunks cut sentences, but answers quote whole document sentences around a chunk (the
    sentence window), so nothing cited is truncated. MiniLM reads 256 word pieces: on 200 RealTimeQA
    articles a 128-token chunk is a median 113 of them (none cut), a 256-token one 235 (1 in 10 cut).
    """

    chunk_size: Annotated[int, Field(ge=1)] = 128
    chunk_overlap: Annotated[int, Field(ge=0)] = 16


class LLMSettings(BaseModel):
    """The generating model: a server (`url`), a GGUF of the user's own (`model_path`), else the bundled one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = ""  # an OpenAI-compatible server
    model: str = "local"  # the model name sent to that server
    api_key: str = ""  # the key sent to that server
    # A GGUF file of the user's own to run locally instead of the bundled model (it reads and writes more)
    model_path: str = ""
    # the bundled model's generation threads (docs/latency.md: 2 on two cores; 1 leaves a core to other work)
    threads: Annotated[int, Field(ge=1)] = 2


# The fields that shape the stored vectors, under the names the index records them by; with every field of
# `chunking`, they are the build info an index is checked against (rag/store.py).
BUILD_FIELDS = {"embed_model": "embedding_model"}


class Settings(BaseSettings):
    """Everything a run can be told, each field a RAG_* variable (the README's table lists them)."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="_", env_nested_max_split=1, env_ignore_empty=True,
        case_sensitive=False, frozen=True, extra="ignore", validate_default=False)

    corpus: Path = Field(default_factory=lambda: repo_root() / "corpus")
    index: Path = Field(default_factory=lambda: repo_root() / ".rag" / "index")
    chroma_url: str = ""  # a Chroma server instead of the embedded one
    collection: str = "rag"
    embed_model: str = "minilm-int8"
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    answerer: Literal["generative", "extractive"] = "generative"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    model_dir: Path = Field(default_factory=lambda: repo_root() / ".rag" / "models")  # the assembled model
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    # Only documents published on or before this date (YYYY-MM-DD) are retrieved; "" means no limit.
    as_of: str = ""
    host: str = "127.0.0.1"  # where `rag serve` listens
    port: Annotated[int, Field(ge=1, le=65535)] = 7860
    auth: Annotated[tuple[str, str] | None, NoDecode] = None  # RAG_AUTH=user:password: the app's login
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()  # RAG_API_KEYS=k1,k2: bearer keys of the HTTP API
    debug: bool = False  # an expected error raises with its traceback instead of one line
    watch: bool = False  # `rag serve` ingests the corpus folder's changes as they happen (rag/watch.py)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: `from_env` reads the environment it is given (a test's, or os.environ),
        so `Settings()` is the defaults, as a dataclass's would be."""
        return (init_settings,)

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_pair(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise ValueError("must look like user:password (both non-empty)")
        return user, password

    @field_validator("as_of")
    @classmethod
    def _date(cls, value: str) -> str:
        if value and not normalise_date(value):
            raise ValueError("is not a date; give one like 2022-06-16")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        keys = tuple(k.strip() for k in value.split(",") if k.strip())
        if not keys:
            raise ValueError("holds no key; give one or more keys separated by commas, or unset it")
        return keys

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by RAG_* variables of `env` (default: os.environ), overridden by keyword
        arguments that are not None. UsageError, in one line, for a bad value."""
        try:
            values = _Env(cls, os.environ if env is None else env)()
        except SettingsError as e:
            raise UsageError(f"a RAG_* variable is malformed ({e})") from None
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls._checked({**values, **given}, flags=set(given))

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes`, checked like the original (an error names the flag where one sets the field)."""
        return self._checked({**{name: getattr(self, name) for name in type(self).model_fields}, **changes},
                             fields_set=self.model_fields_set | set(changes), flags=set(changes))

    @classmethod
    def _checked(cls, values: dict[str, Any], fields_set: set[str] | None = None,
                 flags: AbstractSet[str] = frozenset()) -> Settings:
        try:
            settings = cls(**values)
        except ValidationError as e:
            raise UsageError(_one_line(e, flags)) from None
        if fields_set is not None:
            object.__setattr__(settings, "__pydantic_fields_set__", set(fields_set))
        return settings

    def build_info(self) -> dict[str, str | int]:
        """What shapes the stored vectors; an index built with other values must be rebuilt."""
        return {**{name: getattr(self, field) for field, name in BUILD_FIELDS.items()},
                **dataclasses.asdict(self.chunking)}


class _Env(EnvSettingsSource):
    """The environment source over a given mapping (a test's, or os.environ)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


# The command-line flags that set a field (rag/cli.py), named in an error about a value given by flag
FLAGS = {"corpus": "--corpus", "index": "--index", "answerer": "--answerer", "as_of": "--as-of", "host": "--host",
         "port": "--port"}


def _one_line(e: ValidationError, flags: AbstractSet[str]) -> str:
    """The first problem as `RAG_NAME: expected ..., got '...'` (`--flag: ...` for a value given by flag)."""
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"] if isinstance(p, str)]
    name = FLAGS[loc[0]] if loc and loc[0] in flags and loc[0] in FLAGS else "RAG_" + "_".join(loc).upper()
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind in ("int_parsing", "int_type", "int_from_float"):
        what = "expected an integer"
    elif kind == "bool_parsing":
        what = "expected true or false (1 or 0)"
    elif kind == "literal_error":
        what = f"expected {ctx.get('expected')}"
    elif kind in ("greater_than_equal", "greater_than"):
        what = f"expected at least {ctx.get('ge', ctx.get('gt'))}"
    elif kind in ("less_than_equal", "less_than"):
        what = f"expected at most {ctx.get('le', ctx.get('lt'))}"
    elif kind == "value_error":
        return f"{name} {ctx.get('error')}"
    else:
        what = err["msg"].lower()
    return f"{name}: {what}, got {err.get('input')!r}"
