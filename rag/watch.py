"""Watching the corpus folder (`rag serve --watch`, `RAG_WATCH=1`): what is added, changed or removed there
is ingested within a few seconds.

watchfiles (the file watcher uvicorn brings, on inotify) reports changes in batches: a batch ends when the
folder has been quiet for QUIET_MS (or after DEBOUNCE_MS of steady changes), so a copy of 100 files or an
editor's save-and-rename is one batch and one ingest. A file still being written when its batch is ingested
changes again, and the next batch ingests it whole. Each batch runs the ordinary incremental ingest of the
whole folder (unchanged files cost a read and a hash), under the index's writer lock like any other ingest,
so a `rag ingest` from a terminal and the watcher take turns. The outcome of the last sync (when, what
changed, the files skipped and why, or the error) is `Service.last_sync`, which `/v1/stats` and the
Documents tab show.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.service import Service

QUIET_MS = 500  # a batch of changes is ingested once the folder has been quiet this long
DEBOUNCE_MS = 5000  # ... or once changes have kept coming for this long


class Watcher:
    """A background thread that keeps the index in step with the service's corpus folder."""

    def __init__(self, service: Service, *, debounce_ms: int = DEBOUNCE_MS) -> None:
        self.service = service
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0

    def start(self) -> Watcher:
        corpus = self.service.settings.corpus
        corpus.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="rag-watch", daemon=True)
        self._thread.start()
        print(f"rag: watching {corpus} for changes", file=sys.stderr, flush=True)
        return self

    def stop(self, *, wait: bool = True) -> None:
        """Stop watching; with `wait`, until a sync under way has finished (at most 10 s)."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        import watchfiles

        self.sync("start")  # what changed while nothing was watching
        for changes in watchfiles.watch(self.service.settings.corpus, debounce=self.debounce_ms,
                                        step=QUIET_MS, stop_event=self._stop, raise_interrupt=False,
                                        yield_on_timeout=False):
            if self._stop.is_set():
                return
            self.sync(f"{len(changes)} change{'s' * (len(changes) != 1)}")

    def sync(self, trigger: str) -> dict[str, Any]:
        """Ingest the corpus folder now; records and returns the outcome (never raises)."""
        t0 = time.perf_counter()
        self._count += 1
        record: dict[str, Any] = {"n": self._count, "trigger": trigger, "corpus": str(self.service.settings.corpus)}
        try:
            summary = self.service.ingest(
                notify=lambda line: print(f"rag: watch: {line}", file=sys.stderr, flush=True))
            record.update({k: getattr(summary, k) for k in ("added", "updated", "removed", "unchanged")},
                          skipped=[{"path": s.path, "reason": s.reason} for s in summary.skipped], error=None)
            if summary.added or summary.updated or summary.removed or summary.skipped:
                print(f"rag: watch: {summary.line()}", file=sys.stderr, flush=True)
        except RagError as e:
            record.update(error=str(e), skipped=[])
            print(f"rag: watch: {e}", file=sys.stderr, flush=True)
        except Exception as e:  # the watcher outlives one bad sync; the next change tries again
            record.update(error=f"{type(e).__name__}: {e}", skipped=[])
            print(f"rag: watch: the sync failed ({type(e).__name__}: {e})", file=sys.stderr, flush=True)
        record["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        record["seconds"] = round(time.perf_counter() - t0, 3)
        self.service.last_sync = record
        return record
