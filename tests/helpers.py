"""Small helpers shared by tests that start servers on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# OFFLINE.md: nothing in the browser may reach out
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


@contextmanager
def chromium() -> Iterator:  # type: ignore[type-arg]
    """Debian's Chromium through Playwright, with nothing that reaches out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def start_serve(env: dict[str, str], log: Path, *args: str):  # type: ignore[no-untyped-def]
    """`rag serve` in its own process on a free loopback port; returns it and its base URL once /healthz
    answers (an empty index is filled from the corpus before the server listens)."""
    import httpx
    import pytest

    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), *args], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"rag serve exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.5)
    stop_process(proc, 10)
    pytest.fail(f"rag serve did not answer /healthz: {log.read_text(errors='replace')[-2000:]}")
