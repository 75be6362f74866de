"""Text the pipeline reads, in one place: sentences with offsets, words, numbers and dates.

Every module that splits sentences, tokenizes words for matching, or reads a date uses this one, so two
parts of the pipeline never disagree about where a sentence ends or what day a document was published.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache

__all__ = ["MONTHS", "NUMBER_WORDS", "WORD", "counts", "named_dates", "normalise_date", "sentence_spans", "spoken_date",
           "terms"]

# --- sentences -------------------------------------------------------------------------------------------

# A sentence ends at . ! ? (optionally followed by closing quotes or brackets) before white space, or at
# a line break. The seeds also glue sentences together ("in Ukraine.Kim Jong Un"), so a lower-case letter,
# a period and an upper-case letter followed by a lower-case one also ends a sentence.
_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])"  # end punctuation, space, capital
    r"|\n+"  # line breaks
    r"|(?<=[a-z]{2}\.)(?=[A-Z][a-z])"  # glued sentences
)
_ABBREVIATIONS = {
    "gen", "col", "lt", "sgt", "mr", "mrs", "ms", "dr", "st", "jr", "sr", "u.s", "u.k", "u.n", "no",
    "vs", "inc", "corp", "co", "ltd", "jan", "feb", "mar", "apr", "aug", "sept", "sep", "oct", "nov",
    "dec", "rep", "sen", "gov", "prof", "e.g", "i.e", "a.m", "p.m", "mt", "ft", "vol", "fig",
}


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text[start:end]`, trimmed of surrounding white space."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    seg_start = start
    for m in _BOUNDARY.finditer(text, start, end):
        cut = m.start()
        before = text[seg_start:cut].rstrip()
        last_word = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.split() else ""
        if "\n" not in m.group(0) and last_word in _ABBREVIATIONS:
            continue
        if len(before.split()) < 2 and "\n" not in m.group(0) and not before.endswith((".", "!", "?")):
            continue
        spans.append((seg_start, cut))
        seg_start = m.end()
    spans.append((seg_start, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        bullet = re.match(r"(?:[-–—•*]|\d+[.)])\s+", text[s:e])  # a list item's marker is not the claim
        if bullet:
            s += bullet.end()
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


# --- words -----------------------------------------------------------------------------------------------

# Words of two or more letters or digits, lower-cased; English stop words carry no evidence.
WORD = re.compile(r"(?u)\b\w\w+\b")
# Web addresses are not words: a reference list's links ("stripes.com/.../north-korea-artillery-shells-
# russia") matched a question's words better than the sentences the links cite (docs/retrieval.md#web-addresses).
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b(?:pic\.twitter\.com|t\.co)/\S+", re.I)


@cache  # bm25s's English list, loaded on first use so that sentence splitting does not import bm25s
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def terms(text: str) -> list[str]:
    """The words BM25 matches on: lower case, stop words removed, a plural "s" folded away."""
    stop = _stopwords()
    out = []
    for w in WORD.findall(_URL.sub(" ", text).lower()):
        if w in stop:
            continue
        # "missiles" matches "missile", "Russia's" matches "Russia"; words ending in "ss" or short words
        # keep theirs ("gas", "press").
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


# --- numbers ---------------------------------------------------------------------------------------------

# Small numbers as words, by value ("six million" holds a 6): rag/answer/verify.py's list.
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()

# --- dates -----------------------------------------------------------------------------------------------


def normalise_date(value: str) -> str:
    """YYYY-MM-DD from the date forms the corpora use (2022/06/12, 2022-06-12T10:00:00, ...), else "" (also
    for a day the calendar lacks, such as 2023-02-30: a document dated so counts as undated)."""
    m = re.match(r"\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", value)
    if not m:
        return ""
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return ""


MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_MONTH = "(" + "|".join([*MONTHS, "sept", *(m[:3] for m in MONTHS)]) + r")\b\.?"  # "March", "Mar."
_DATES = (
    (re.compile(r"\b" + _MONTH + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.I), (3, 1, 2)),  # May 3, 2023
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r",?\s+(\d{4})\b", re.I), (3, 2, 1)),
    (re.compile(r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b"), (1, 2, 3)),  # 2023-05-03, 2023/05/03
)


def named_dates(question: str) -> list[str]:
    """The calendar days a question names, as YYYY-MM-DD, in order of first mention; a partial date ("May
    2023") or an impossible one names no day."""
    found: list[tuple[int, str]] = []
    for pattern, (y, m, d) in _DATES:
        for match in pattern.finditer(question):
            month = match.group(m)
            month_no = int(month) if month.isdigit() else 1 + [n[:3] for n in MONTHS].index(month[:3].lower())
            try:
                day = date(int(match.group(y)), month_no, int(match.group(d)))
            except ValueError:
                continue
            found.append((match.start(), day.isoformat()))
    return list(dict.fromkeys(d for _, d in sorted(found)))


# A date or a year is a number that counts nothing: "on May 7, 2025" does not say how many.
_NOT_COUNTS = re.compile(r"\b" + _MONTH + r"\s+\d{1,2}(?:st|nd|rd|th)?\b(?:,?\s+\d{4}\b)?|\b\d{1,2}(?:st|nd|rd|th)?\s+"
                         r"(?:of\s+)?" + _MONTH + r"|\b(?:1[89]|20)\d{2}\b|\[\d+\]", re.I)
_COUNTS = re.compile(r"\d+(?:[.,]\d+)*|\b(?:" + "|".join(NUMBER_WORDS) + r"|\w+teen|twenty|thirty|forty|fifty|"
                     r"sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?|dozens?|none|both)\b",
                     re.I)


def counts(text: str) -> set[str]:
    """The numbers a text gives that could answer "how many" (digits or words, lower case), leaving out
    dates, years and citation markers."""
    return {m.group(0).lower() for m in _COUNTS.finditer(_NOT_COUNTS.sub(" ", text))}


def spoken_date(value: str) -> str:
    """"2023-10-05" as "October 5 2023", so that a question naming the month finds the document's date."""
    m = re.match(r"(\d{4})[-/](\d{2})[-/](\d{2})", value or "")
    if not m or not 1 <= int(m[2]) <= 12:
        return ""
    return f"{MONTHS[int(m[2]) - 1].capitalize()} {int(m[3])} {m[1]}"


# "this week", "recently": when a question is asked, not what it is about. Every news page says "this week"
# somewhere (menus, "most read this week"), so as search words they find navigation text.
_WHEN_ASKED = re.compile(
    r"\b(?:(?:this|last|past|next|coming)\s+(?:week(?:end)?|month|year|days?)(?:'s)?|so far this year|"
    r"recently|lately|currently|today|yesterday|this (?:morning|afternoon|evening))\b",
    re.I,
)


def without_when_asked(question: str) -> str:
    """The question without the words that date its asking ("this week", "recently"); unchanged when that
    would leave nothing."""
    cleaned = re.sub(r"\s+(?=[?.!,;:])|(?<=\s)\s+", "", _WHEN_ASKED.sub(" ", question)).strip()
    return cleaned if WORD.search(cleaned) else question
