"""What a question names that documents carry: publishers (in titles) and publish dates.

A news headline carries where it ran after a dash or a bar ("Apple defends Google deal - The Verge",
"Contraception demand up | CNN"), and a question often says where a story ran ("Did The Verge report ...",
"according to TechCrunch") and sometimes when ("the report of October 7, 2023"). Retrieval
(rag/retrieve.py) gives each publisher a question names, as written, and each date it names one more keyword
ranking over those documents only. Why: a question about several reports ("The Verge says X, while
TechCrunch says Y") is one long query, and the whole-corpus rankings favour whichever part has the rarer
words; MultiHop-RAG recall@10 0.804 -> 0.922 (docs/retrieval.md#named-rankings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.text import named_dates as named_dates  # rag/retrieve.py imports it from here

# A dash or bar between spaces: what separates a headline from its publisher ("Headline - The Age",
# "Headline - The Independent - Life and Style", "Headline | CNN Business").
_SEPARATOR = re.compile(r"\s+[-|\u2013\u2014]\s+")
# A publisher's name is short; a longer part after a dash is the rest of the headline.
MAX_WORDS = 6
# A name that more than this share of the documents carries narrows nothing (a corpus from one site).
MAX_SHARE = 0.5


def title_publishers(title: str) -> list[str]:
    """The parts of a title after its headline that read as names: capitalised, at most MAX_WORDS words."""
    parts = [p.strip() for p in _SEPARATOR.split(title.strip())[1:]]
    return [p for p in parts if p and (p[0].isupper() or p[0].isdigit()) and len(p.split()) <= MAX_WORDS
            and any(c.isalnum() for c in p)]


class Publishers:
    """Publisher names and the documents that carry each, from (doc_id, title) pairs."""

    def __init__(self, titles: Iterable[tuple[str, str]]) -> None:
        docs: dict[str, set[str]] = {}
        total = 0
        for doc_id, title in titles:
            total += 1
            for name in title_publishers(title or ""):
                docs.setdefault(name, set()).add(doc_id)
        self.docs = {name: frozenset(ids) for name, ids in docs.items() if len(ids) <= MAX_SHARE * total}
        self._patterns = {name: re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)") for name in self.docs}

    def named(self, question: str) -> list[frozenset[str]]:
        """The document sets of the publishers the question names, as written (case and all), one set per
        publisher; a name inside a longer one it matched ("CNN" in "CNN Business") or running on into a
        longer capitalised name ("Health" in "Health Organization") does not count."""
        spans = []
        for name, pattern in self._patterns.items():
            for m in pattern.finditer(question):
                if not re.match(r"\s+[A-Z]", question[m.end():]):
                    spans.append((m.start(), m.end(), name))
        found: list[frozenset[str]] = []
        for start, end, name in spans:
            inside = any(s <= start and end <= e and (s, e) != (start, end) for s, e, _ in spans)
            if not inside and self.docs[name] not in found:
                found.append(self.docs[name])
        return found
