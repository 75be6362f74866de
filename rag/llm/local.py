"""The bundled GGUF (or a user's own) on llama-cpp-python, with the workarounds that make it fast here.

Four of them reach into llama-cpp-python's and llama-index's private parts, so they hold only for the
versions they were written against (`SUPPORTED`, pinned in pyproject.toml); `check_versions` refuses any
other with one line naming both, before a model is loaded:

    the class swap      LlamaCPP builds its `Llama` itself; the loaded instance gets a subclass
    `_logits_all`       read per batch: prompts compute their last row of logits only
    default params      `llama_model_default_params` replaced to turn off extra buffer types (AMX)
    `_model`            LlamaCPP's private `Llama` instance, used for the judge's cached prompt
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import set_offline_env
from rag.errors import ModelError
from rag.llm.assemble import SETUP_HINT, assemble_model
from rag.llm.base import Message, chatml, two_way

# The versions whose internals the workarounds below were written against (pyproject.toml's llm extra).
SUPPORTED = {"llama-cpp-python": "0.3.36", "llama-index-llms-llama-cpp": "0.7.0"}
# Judge contexts (LocalModel): each holds a KV cache of 1,024 tokens (28 MB) and its compute buffers; the
# weights are the same memory-mapped file for all.
JUDGE_CONTEXTS = 3
# Writing contexts: the answers, and the rewrites of follow-up questions (in the answers' context, a rewrite
# evicted the answer prompt's few-shot prefix: the next answer re-evaluated about 300 tokens, 2 s).
WRITER_CONTEXTS = 2
# Prompt lookup decoding: how many tokens of the prompt it proposes at a time (see LocalModel).
GUESSES = 10


def check_versions(version: Callable[[str], str] = metadata.version, dists: Sequence[str] = tuple(SUPPORTED)) -> None:
    """ModelError, in one line, when an installed package is not the version the workarounds expect."""
    for dist in dists:
        supported = SUPPORTED[dist]
        try:
            installed = version(dist)
        except metadata.PackageNotFoundError as e:
            raise ModelError(f"{dist} is not installed; {SETUP_HINT}") from e
        if installed != supported:
            raise ModelError(f"{dist} {installed} is installed, but rag/llm/local.py patches its internals as "
                             f"of {supported} only; install {dist}=={supported} or set RAG_LLM_URL")


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

    def __init__(self, model_path: Path | None = None, *, n_ctx: int = 2048, threads: int = 2) -> None:
        set_offline_env()  # OMP_WAIT_POLICY=PASSIVE must be set before llama.cpp starts its threads
        try:
            from llama_cpp import Llama
            from llama_index.llms.llama_cpp import LlamaCPP
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed; {SETUP_HINT}") from e
        check_versions()
        path = model_path or assemble_model()
        avoid_amx()
        # Two threads for prompts and generation. With the guesses looked up in the question's own turn,
        # more steps hold a single token, and a second thread speeds those up: labeled first text p50
        # 3.04 -> 2.79 s. Threads wait passively (OMP_WAIT_POLICY=PASSIVE), so a busy machine slows them
        # but does not collapse them: with both cores taken by other processes, 136-161 ms a token with
        # one thread, 146-186 ms with two (spinning threads took 300-450 ms). RAG_LLM_THREADS=1 keeps one.
        # Flash attention: llama.cpp's fused attention kernel (exact, not an approximation): in a
        # microbenchmark 78 -> 69 ms a generated token and 0.81 -> 0.77 s for a 135-token prompt.
        kw: dict[str, Any] = {"n_threads": threads, "n_threads_batch": 2,
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
            captured.append(two_way(max(float(scores[i]) for i in self._yes),
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

    def __init__(self, make: Callable[[], Any], limit: int) -> None:
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


@functools.cache  # one subclass for all writing contexts (a class, not a model: nothing loaded is kept)
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


def avoid_amx() -> None:
    """Load weights without llama.cpp's extra buffer types (AMX tiles, repacked layouts).

    The wheel is built with -march=native; on this kind of VM the CPU advertises AMX but the hypervisor
    does not let a process use the tile registers, so the first prompt longer than one token dies with a
    general protection fault in `ggml_backend_amx_mul_mat`. Plain CPU buffers avoid that code path.
    """
    if not _cpu_has_amx():
        return  # without AMX the extra buffer types are the repacked layouts, which are safe and faster
    check_versions(dists=["llama-cpp-python"])  # llama.cpp's own server (llama_server.py) has no llama-index
    import llama_cpp.llama_cpp as low_level  # the module llama_cpp.Llama reads its defaults from

    default = low_level.llama_model_default_params
    if default in _PATCHED:
        return

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    _PATCHED.append(params)
    low_level.llama_model_default_params = params


_PATCHED: list[Callable[[], Any]] = []  # the replacement defaults installed by avoid_amx, so it patches once


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return " amx_int8" in f.read()
    except OSError:
        return False


def _messages_to_prompt(messages: Sequence[Any]) -> str:
    return chatml([{"role": str(getattr(m.role, "value", m.role)), "content": m.content or ""}
                   for m in messages])
