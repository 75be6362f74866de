"""One tree of exceptions; each message says what to do.

    RagError
     ├── UsageError            bad input from the user (exit code 2)
     │    ├── EmptyQuestion
     │    ├── NotFound             no such document (HTTP 404)
     │    └── TooLarge             an upload or request body over its size limit (HTTP 413)
     ├── IndexMismatch         the index was built with other settings (rebuild it)
     ├── IndexNotFound         nothing has been ingested yet
     ├── BackendUnavailable    a Chroma server or LLM server cannot be reached
     ├── ModelError            a bundled model is missing or fails its checksum
     └── Busy                  the server's queue is full (HTTP 503; try again shortly)
          └── IngestRunning        another ingest holds the index's lock and --no-wait was given (exit 2)
"""


class RagError(Exception):
    """Base of every error the service raises on purpose."""

    exit_code = 1


class UsageError(RagError):
    """The input is wrong; the message says how to fix it."""

    exit_code = 2


class EmptyQuestion(UsageError):
    """A question that is empty or only white space."""


class NotFound(UsageError):
    """The document asked for is not in the index."""


class TooLarge(UsageError):
    """An upload or a request body is over its size limit."""


class IndexMismatch(RagError):
    """The index on disk was built with other embedding or chunking settings."""

    exit_code = 2


class IndexNotFound(RagError):
    """Nothing has been ingested yet."""

    exit_code = 2


class BackendUnavailable(RagError):
    """A server the settings point at (Chroma, LLM) does not answer."""


class ModelError(RagError):
    """A bundled model is missing or corrupt."""


class Busy(RagError):
    """Too many requests are already waiting; the message says when to try again."""


class IngestRunning(Busy):
    """Another process is ingesting into the same index and the caller chose not to wait."""

    exit_code = 2
