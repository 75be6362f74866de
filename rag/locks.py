"""One writer at a time per index: a lock file beside the index that every ingest and removal holds.

Why a kernel lock (`fcntl.flock`) and not "a file that exists": the kernel drops the lock when its holder
dies, SIGKILL included, so a killed ingest never leaves the index locked. The file also records who holds it
(PID, start time, command), which is what a waiting ingest tells the user. A clean release empties the file;
a record still there when the lock is taken means its holder died mid-write, and that is reported as a
stale lock cleared (the next ingest's recovery removes what it left half-written, see rag/store.py).

Readers never take the lock: questions, searches and stats run while an ingest writes.

Where the file lives: `<index>/ingest-<collection>.lock`, also for a Chroma server (then named after the
server too, like the BM25 folder). So with a server, ingests are serialized per machine that shares the
index folder, not across machines (docs/limits.md#several-processes).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.errors import IngestRunning, UsageError

POLL_SECONDS = 0.2
# A waiting ingest repeats its message this often, so a log shows it is still waiting and for whom.
REMIND_SECONDS = 30.0


def _describe(holder: dict[str, Any], label: str, verb: str) -> str:
    """"another ingest into LABEL [VERB] started 12 s ago by PID N" ({} while the holder writes its record)."""
    if not holder:
        return f"another ingest into {label}"
    age = max(0, round(time.time() - float(holder.get("started") or time.time())))
    host = holder.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    joint = f" {verb}" if verb else ","
    return f"another ingest into {label}{joint} started {age} s ago by PID {holder.get('pid')}{where}"


class IngestLock:
    """The per-index writer lock (see the module docstring). Each `hold()` opens the file anew, so two
    threads of one process exclude each other too (flock locks belong to an open file)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label

    def holder(self) -> dict[str, Any]:
        """Who holds (or, after a crash, last held) the lock: pid, started, host, command; {} if nobody."""
        try:
            raw = self.path.read_text(encoding="utf-8").strip()
            return dict(json.loads(raw)) if raw else {}
        except (OSError, ValueError, TypeError):
            return {}

    @contextmanager
    def hold(self, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
             on_cleared: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the lock for the block; with `wait` False raise IngestRunning at once when it is taken.
        `on_wait` gets a line while waiting (repeated every REMIND_SECONDS), `on_cleared` a line when a
        dead holder's lock was found and cleared."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(f"cannot write the lock file {self.path} ({e.strerror}); "
                             "choose another index with --index or RAG_INDEX") from None
        try:
            told = -REMIND_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = self.holder()
                    if not wait:
                        raise IngestRunning(f"{_describe(holder, self.label, 'is running,')}; wait for it to "
                                            "finish, or leave out --no-wait to wait for it") from None
                    if on_wait is not None and time.monotonic() - told >= REMIND_SECONDS:
                        on_wait(f"waiting for {_describe(holder, self.label, '')}")
                        told = time.monotonic()
                    time.sleep(POLL_SECONDS)
            left = self.holder()  # the kernel released a dead holder's lock; its record is still there
            if left and on_cleared is not None:
                on_cleared(f"cleared a lock on {self.label} left by PID {left.get('pid')}, which stopped "
                           "without releasing it (killed or crashed)")
            record = {"pid": os.getpid(), "started": time.time(), "host": socket.gethostname(),
                      "command": " ".join(sys.argv[:3])[:200]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # empty: released cleanly
        finally:
            os.close(fd)  # closing drops the flock
