"""One writer at a time per index: a lock file beside the index that every ingest and removal holds.

Why a kernel lock (`fcntl.flock`) and not "a file that exists": the kernel drops the lock when its holder
dies, SIGKILL included, so a killed ingest never leaves the index locked. The file also records who holds it
(PID, start time, command), which is what a waiting ingest tells the user. A clean release empties the file;
a record still there when the lock is taken means its holder died mid-write, and that is reported as a
stale lock cleared (the next ingest's recovery removes what it left half-written, see rag/store.py).

Readers never take the lock: questions, searches and stats run while an ingest writes.

Where the file lives: `<index>/ingest-<collection>.lock`, also for a Chroma server (then named after the
server too, like the BM25 folder). With a server, machines that share it do not share that folder, so the
lock is also a record on the server (`SharedRecord`, see rag/store.py): Chroma has no compare-and-swap, so
a claim is written, then read back after SETTLE_SECONDS; the holder rewrites it every BEAT_SECONDS, and a
record silent for STALE_SECONDS is a dead holder's and is taken over (docs/limits.md#several-processes).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from rag.errors import IngestRunning, UsageError

POLL_SECONDS = 0.2
# The record on a server: a claim is read back after SETTLE_SECONDS (two claims made at once: the later
# write wins and the other backs off); the holder rewrites it every BEAT_SECONDS; STALE_SECONDS of silence
# mean its holder died (on another machine its PID cannot be asked).
SETTLE_SECONDS = 0.5
BEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
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


class SharedRecord(Protocol):
    """One lock record that every machine using the index sees (on a Chroma server)."""

    def read(self) -> dict[str, Any]: ...

    def write(self, record: dict[str, Any]) -> None: ...

    def clear(self, token: str) -> None: ...


class _Beat(threading.Thread):
    """Rewrites the holder's record every BEAT_SECONDS while it still names the holder."""

    def __init__(self, shared: SharedRecord, record: dict[str, Any]) -> None:
        super().__init__(name="rag-lock-beat", daemon=True)
        self.shared, self.record, self.done = shared, record, threading.Event()

    def run(self) -> None:
        while not self.done.wait(BEAT_SECONDS):
            try:
                if self.shared.read().get("token") == self.record["token"]:
                    self.shared.write({**self.record, "beat": time.time()})
            except Exception:  # a server that blinks: the next beat tries again
                pass


class IngestLock:
    """The per-index writer lock (see the module docstring). Each `hold()` opens the file anew, so two
    threads of one process exclude each other too (flock locks belong to an open file)."""

    def __init__(self, path: Path, label: str, shared: SharedRecord | None = None) -> None:
        self.path = path
        self.label = label
        self.shared = shared

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
            record: dict[str, Any] = {"pid": os.getpid(), "started": time.time(), "host": socket.gethostname(),
                      "command": " ".join(sys.argv[:3])[:200], "token": uuid.uuid4().hex}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            try:
                beat = self._claim_shared(record, wait, on_wait, on_cleared) if self.shared else None
                try:
                    yield
                finally:
                    if beat is not None and self.shared is not None:
                        beat.done.set()
                        self.shared.clear(record["token"])
            finally:
                os.ftruncate(fd, 0)  # empty: released cleanly
        finally:
            os.close(fd)  # closing drops the flock

    def _claim_shared(self, record: dict[str, Any], wait: bool, on_wait: Callable[[str], None] | None,
                      on_cleared: Callable[[str], None] | None) -> _Beat:
        """Take the server's lock record (see the module docstring); returns the thread that keeps it fresh."""
        assert self.shared is not None
        told = -REMIND_SECONDS
        while True:
            held = self.shared.read()
            if held and held.get("token") != record["token"]:
                silent = time.time() - float(held.get("beat") or 0)
                if silent < STALE_SECONDS:
                    if not wait:
                        raise IngestRunning(f"{_describe(held, self.label, 'is running,')}; wait for it to "
                                            "finish, or leave out --no-wait to wait for it")
                    if on_wait is not None and time.monotonic() - told >= REMIND_SECONDS:
                        on_wait(f"waiting for {_describe(held, self.label, '')}")
                        told = time.monotonic()
                    time.sleep(POLL_SECONDS * 5)
                    continue
                if on_cleared is not None:
                    on_cleared(f"cleared a lock on {self.label} left by PID {held.get('pid')} on "
                               f"{held.get('host')}, silent for {silent:.0f} s (killed or crashed)")
            self.shared.write({**record, "beat": time.time()})
            time.sleep(SETTLE_SECONDS)
            if self.shared.read().get("token") == record["token"]:
                beat = _Beat(self.shared, record)
                beat.start()
                return beat
