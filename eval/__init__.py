"""The eval suite: hand-labeled questions about corpus/ that gate CI, and the same metrics on public sets."""
