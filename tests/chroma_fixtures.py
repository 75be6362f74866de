"""Fixtures for running integration tests on both Chroma backends: embedded and a real `chroma run` server.

`backend` is parametrized over both; pass it to `make_service(**backend)` and a test runs twice:
`{}` keeps the embedded default, the server case gives `chroma_url` and a fresh collection name (the
server lives for the whole session, so each test gets its own collections).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.config import OFFLINE_ENV
from tests.helpers import free_port, stop_process

STARTUP_SECONDS = 60  # about 1.3 s on an idle machine; a busy one in CI can take far longer


def start_chroma(path: Path, port: int) -> subprocess.Popen[bytes]:
    """`chroma run` from the venv, on 127.0.0.1 only; returns once its heartbeat answers."""
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        pytest.fail(f"{exe} is missing; run scripts/setup.sh (chromadb installs it)")
    log = open(path.parent / f"chroma-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV},
    )
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"chroma run exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop_chroma(proc)
    pytest.fail(f"chroma run did not answer within {STARTUP_SECONDS} s; see {log.name}")


def stop_chroma(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, timeout=10)
    proc.log.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server for the whole session; its URL."""
    port = free_port()
    proc = start_chroma(tmp_path_factory.mktemp("chroma-server") / "data", port)
    yield f"http://127.0.0.1:{port}"
    stop_chroma(proc)


@pytest.fixture
def own_chroma_server(tmp_path: Path) -> Iterator[Callable[[], None]]:
    """A server of this test's own (so it may be stopped): yields a function that stops it; URL as `.url`."""
    port = free_port()
    proc = start_chroma(tmp_path / "chroma-own", port)

    def stop() -> None:
        if proc.poll() is None:
            stop_chroma(proc)

    stop.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield stop
    stop()


@pytest.fixture(params=["embedded", "server"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings overrides for one Chroma backend (see the module docstring)."""
    if request.param == "embedded":
        return {}
    url = request.getfixturevalue("chroma_server")
    return {"chroma_url": url, "collection": f"t-{uuid.uuid4().hex[:12]}"}
