"""The one small interface the answerer needs of a language model, and the chat template they share."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


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


def chatml(messages: Sequence[Message], *, open_assistant: bool = True) -> str:
    """Qwen2.5's chat template (ChatML), ending with an open assistant turn."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if open_assistant else "")


def two_way(yes_logit: float, no_logit: float) -> float:
    """Softmax over just the two answers."""
    d = max(-50.0, min(50.0, no_logit - yes_logit))
    return 1.0 / (1.0 + math.exp(d))
