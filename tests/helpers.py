"""Small helpers shared by tests that start servers on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_app(service) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The Gradio app over `service` on a free loopback port, without login; yields its URL."""
    from ui.app import serve

    port = free_port()
    app = serve(service, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def stop_process(proc, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Terminate a server process, killing it when it does not exit within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ingested_seed_copy(root, embedder):  # type: ignore[no-untyped-def]
    """corpus/ copied under `root` and indexed there with the extractive answerer; returns the Service."""
    from rag.config import Settings
    from rag.service import Service
    from tests.conftest import CORPUS

    shutil.copytree(CORPUS, root / "corpus")
    svc = Service(Settings.from_env(env={}, corpus=root / "corpus", index=root / "index", answerer="extractive"),
                  embedder=embedder)
    svc.ingest()
    return svc
