"""Small helpers shared by tests that start servers on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_app(service) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The Gradio app over `service` on a free loopback port, without login; yields its URL."""
    from ui.app import serve

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAG_AUTH", raising=False)
        port = free_port()
        app = serve(service, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
