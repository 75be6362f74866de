"""Question answering over a document corpus, every claim cited to an exact character span.

The flow, one module a step: sources (read files) -> chunking (split with offsets) -> embedding ->
store (Chroma) -> ingest (incremental) -> retrieve -> answer -> service (the one entry point).
"""

__version__ = "0.1.0"
