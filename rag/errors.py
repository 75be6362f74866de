"""One tree of exceptions; each message says what to do.

    RagError
     ├── UsageError            bad input from the user (exit code 2)
     │    └── EmptyQuestion
     ├── IndexMismatch         the index was built with other settings (rebuild it)
     ├── IndexNotFound         nothing has been ingested yet
     ├── BackendUnavailable    a Chroma server or LLM server cannot be reached
     └── ModelError            a bundled model is missing or fails its checksum
"""


class RagError(Exception):
    """Base of every error the service raises on purpose."""

    exit_code = 1


class UsageError(RagError):
    """The input is wrong; the message says how to fix it."""

    exit_code = 2


class EmptyQuestion(UsageError):
    """A question that is empty or only white space."""


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
