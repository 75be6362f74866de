"""A scripted chat model for unit tests: fixed replies and verdicts, every prompt recorded. No llama.cpp."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from rag.llm.base import Message

Verdict = Callable[[Sequence[Message], bool], float]  # (messages, then_generate) -> P(Yes)


@dataclass
class Call:
    """One request the model received: `kind` is "stream" or "yes"."""

    kind: str
    messages: list[Message]
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    then_generate: bool = False

    @property
    def prompt(self) -> str:
        """The last message's text: the part a test usually asserts on."""
        return self.messages[-1]["content"] if self.messages else ""


@dataclass
class FakeChatModel:
    """Replies with `replies` in turn (the last one repeats), streamed in pieces of `piece` characters; judges
    with `yes`, a fixed probability or a function of the messages. `calls` records every request."""

    replies: Sequence[str] = ("",)
    yes: float | Verdict = 1.0
    piece: int = 7
    name: str = "fake"
    calls: list[Call] = field(default_factory=list)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 200,
               stop: Sequence[str] = (), start_yes: bool = False) -> Iterator[str]:
        turn = sum(c.kind == "stream" for c in self.calls)
        self.calls.append(Call("stream", list(messages), max_tokens=max_tokens, stop=tuple(stop)))
        reply = self.replies[min(turn, len(self.replies) - 1)] if self.replies else ""
        for i in range(0, len(reply), self.piece):
            yield reply[i : i + self.piece]

    def yes_probability(self, messages: Sequence[Message], *, then_generate: bool = False) -> float:
        self.calls.append(Call("yes", list(messages), then_generate=then_generate))
        return self.yes(messages, then_generate) if callable(self.yes) else float(self.yes)

    @property
    def prompts(self) -> list[str]:
        """The last message of every `stream` request, in order."""
        return [c.prompt for c in self.calls if c.kind == "stream"]
