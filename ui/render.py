"""HTML for the app's panels: the conversation, the sources, the document list.

Every piece of text that comes from a document, a question or an answer goes through `esc`, so a document
holding `<script>` or markup shows as text. The only markup here is our own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from rag.answer.base import MARKER
from rag.text import sentence_spans
from rag.types import Answer, Citation

CONTEXT_CHARS = 360  # at most this much text on each side of a quote
CONTEXT_SENTENCES = 1  # whole sentences shown before and after the one holding the quote


@dataclass
class Turn:
    """One question and what the app knows of its answer so far."""

    question: str
    text: str = ""  # streamed answer text, until the Answer arrives
    answer: Answer | None = None
    error: str = ""
    notice: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)  # rendered-ready citation records


def esc(text: str) -> str:
    """Text as inert HTML; braces and dollars too, since gr.HTML fills a template with the value."""
    return (html.escape(text, quote=True).replace("{", "&#123;").replace("}", "&#125;")
            .replace("$", "&#36;").replace("\n", "<br>"))


def _safe_url(url: str) -> str:
    return url if urlparse(url).scheme in ("http", "https") else ""


def context_window(text: str, start: int, end: int) -> tuple[str, str, str, bool, bool]:
    """(before, quote, after, cut_before, cut_after): the quote inside the sentences around it (the one
    sentence splitter, rag/text.py), within CONTEXT_CHARS each side; a cut flag says the window stopped
    inside a sentence."""
    lo, hi = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
    spans = sentence_spans(text, lo, hi)
    # sentence starts at or before the quote; the window's own edge counts only at the text's start
    starts = [s for s, _ in spans if (s > lo or lo == 0) and s <= start]
    cut_from, cut_before = ((starts[-1 - CONTEXT_SENTENCES], False) if len(starts) > CONTEXT_SENTENCES
                            else (lo, lo > 0))
    ends = [e for _, e in spans if e >= end and (e < hi or hi == len(text))]
    cut_to, cut_after = ((ends[CONTEXT_SENTENCES], False) if len(ends) > CONTEXT_SENTENCES
                         else (hi, hi < len(text)))
    before, after = text[cut_from:start], text[end:cut_to]
    return before.lstrip("\n"), text[start:end], after.rstrip(), cut_before, cut_after


def source_record(c: Citation, docs: dict[str, dict[str, Any]], doc_text: Callable[[str], str]) -> dict[str, Any]:
    """What the sources panel shows for one citation."""
    meta = docs.get(c.source, {})
    before, quote, after, cut_before, cut_after = context_window(doc_text(c.doc_id), c.start, c.end)
    return {
        "n": c.n, "doc_id": c.doc_id, "title": meta.get("title") or c.title or c.source, "source": c.source,
        "date": meta.get("publish_date", ""), "url": _safe_url(str(meta.get("url", ""))), "page": c.page,
        "location": c.location,
        "start": c.start, "end": c.end, "before": before, "quote": quote, "after": after,
        "cut_before": cut_before, "cut_after": cut_after, "stale": False,
    }


def mark_stale(turns: Sequence[Turn], docs: dict[str, dict[str, Any]]) -> None:
    """Flag each cited passage whose source is now another document (changed or removed since the answer):
    a document's id is made from its content, so a changed file has a new one."""
    for t in turns:
        for s in t.sources:
            s["stale"] = docs.get(s["source"], {}).get("doc_id") != s["doc_id"]


def _answer_html(text: str, turn_no: int, cited: set[int]) -> str:
    """Answer text with each `[n]` as a badge; a badge with a citation behind it is a button."""

    def badge(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n in cited:
            return (f'<button type="button" class="cite" data-turn="{turn_no}" data-n="{n}" '
                    f'title="Show source {n}" aria-label="Show source {n}">{n}</button>')
        return f'<span class="cite pending">{n}</span>'

    return MARKER.sub(badge, esc(text))


def _turn_html(t: Turn, turn_no: int) -> str:
    parts = [f'<div class="turn" id="turn-{turn_no}">', '<div class="msg user">',
             f'<div class="bubble">{esc(t.question)}</div>']
    if t.answer is not None and t.answer.rewritten_question:
        parts.append(f'<div class="rewritten">searched as: {esc(t.answer.rewritten_question)}</div>')
    parts.append("</div>")
    if t.error:
        parts.append(f'<div class="msg bot error"><div class="bubble"><strong>Could not answer.</strong> '
                     f'{esc(t.error)}</div></div>')
    elif t.answer is None:
        body = _answer_html(t.text, turn_no, set()) if t.text else ""
        parts.append(f'<div class="msg bot pending"><div class="bubble">{body}'
                     f'<span class="typing" aria-label="answering"><i></i><i></i><i></i></span></div></div>')
    elif t.answer.abstained:
        parts.append('<div class="msg bot refusal"><div class="bubble"><div class="label">Not in the documents'
                     f'</div>{esc(t.answer.answer)}</div></div>')
    else:
        a = t.answer
        cited = {c.n for c in a.citations}
        banner = ('<div class="conflict">The sources disagree: each figure is shown with its source.</div>'
                  if a.conflict else "")
        n_docs = len({c.doc_id for c in a.citations})
        meta = (f'{len(a.citations)} passage{"s" * (len(a.citations) != 1)} from {n_docs} '
                f'document{"s" * (n_docs != 1)} · {a.timings.get("total_ms", 0) / 1000:.1f} s')
        parts.append(f'<div class="msg bot answer"><div class="bubble">{banner}'
                     f'{_answer_html(a.answer, turn_no, cited)}</div><div class="meta">{meta}</div></div>')
    if t.answer is not None and t.answer.trace:
        parts.append(trace_html(t.answer.trace))
    if t.notice:
        parts.append(f'<div class="notice">{esc(t.notice)}</div>')
    parts.append("</div>")
    return "".join(parts)


def trace_lines(trace: dict[str, Any]) -> list[str]:
    """The answer's trace as plain sentences, one per stage that ran."""
    out = []
    r = trace.get("retrieve") or {}
    if r:
        out.append(f"Retrieved {r.get('k', 0)} passages" + (f" published by {r['as_of']}" if r.get("as_of") else "")
                   + ".")
    e = trace.get("evidence") or {}
    if "best_score" in e:
        out.append(f"Evidence: best sentence scores {e['best_score']:.2f} (needs {e['threshold']}); "
                   f"{len(e.get('passages', []))} passages shown to the model." if "passages" in e else
                   f"Evidence: best sentence scores {e['best_score']:.2f} (needs {e['threshold']}).")
    j = trace.get("judge") or {}
    if j.get("judged") and "yes_at" in j:
        out.append(f"Judge: sentence {j['yes_at'] + 1} of the best says it answers the question "
                   f"(P(Yes) {j['best']:.2f}, needs {j['threshold']}).")
    elif j.get("judged"):
        out.append(f"Judge: none of the {len(j['judged'])} best sentences answers the question "
                   f"(best P(Yes) {j['best']:.2f}, needs {j['threshold']}).")
    a = trace.get("answerable") or {}
    if "verdict" in a:
        line = f"Answerable: the model's verdict {a['verdict']:.2f} (refuse below {a['refuse_below']}"
        line += f", answer from {a['answer_from']})"
        if "second_opinion" in a:
            line += f"; second judge {a['second_opinion']:.2f} (needs {a['second_threshold']})"
        out.append(line + ".")
    if trace.get("conflict"):
        out.append(f"Conflict: {len(trace['conflict']['sides'])} documents give different figures.")
    v = trace.get("verify") or {}
    if v.get("sentences"):
        kept = sum("cited" in c for c in v["sentences"])
        out.append(f"Verified: {kept} of {len(v['sentences'])} written sentences supported by their quotes "
                   f"(judge threshold {v['threshold']})" + (", the best evidence quoted instead"
                                                            if v.get("quoted_instead") else "") + ".")
    if trace.get("refusal_reason"):
        out.append(f"Refused: {trace['refusal_reason']}.")
    return out


def trace_html(trace: dict[str, Any]) -> str:
    """A collapsed "How this was checked" block under an answer."""
    items = "".join(f"<li>{esc(line)}</li>" for line in trace_lines(trace))
    return f'<details class="trace"><summary>How this was checked</summary><ul>{items}</ul></details>'


def chat_html(turns: Sequence[Turn], intro: str) -> str:
    """The conversation, newest last; `intro` (plain text) fills an empty one."""
    if not turns:
        return f'<div class="chat-scroll"><div class="chat-empty">{esc(intro)}</div></div>'
    body = "".join(_turn_html(t, i) for i, t in enumerate(turns))
    version = f"{len(turns)}-{len(turns[-1].text)}-{turns[-1].answer is not None}"
    return f'<div class="chat-scroll" data-v="{version}"><div class="chat-log">{body}</div></div>'


def location_label(page: int | None, location: dict[str, Any] | None) -> str:
    """Where the quote is, for the source card: "page 3", "page 3 (scanned)", "slide 4", "Sheet1, row 12"."""
    loc = location or {}
    if "sheet" in loc:
        return f'{loc["sheet"]}, row {loc["row"]}' if loc.get("row") else str(loc["sheet"])
    for unit in ("slide", "chapter", "paragraph"):
        if unit in loc:
            return f"{unit} {loc[unit]}"
    page = page or loc.get("page")
    scanned = " (scanned)" if loc.get("scanned") else ""
    return f"page {page}{scanned}" if page else ("scanned image" if scanned else "")


def _source_html(s: dict[str, Any], turn_no: int) -> str:
    meta = [f'<span class="file">{esc(s["source"])}</span>']
    if s["date"]:
        meta.append(f'<span class="date">{esc(s["date"])}</span>')
    label = location_label(s["page"], s.get("location"))
    if label:
        meta.append(f'<span class="page">{esc(label)}</span>')
    if _safe_url(s["url"]):
        meta.append(f'<a href="{esc(s["url"])}" target="_blank" rel="noopener noreferrer">original</a>')
    context = (("… " if s["cut_before"] else "") + esc(s["before"]) + f'<mark>{esc(s["quote"])}</mark>'
               + esc(s["after"]) + (" …" if s["cut_after"] else ""))
    return (f'<article class="src" id="src-{turn_no}-{s["n"]}" data-n="{s["n"]}">'
            f'<header><span class="num">{s["n"]}</span><span class="title">{esc(s["title"])}</span></header>'
            f'<div class="src-meta">{" · ".join(meta)}</div>'
            f'<blockquote class="context">{context}</blockquote>'
            + ('<div class="stale" role="note">source changed since this answer</div>' if s.get("stale") else "")
            + f'<div class="span"><button type="button" class="open-doc" data-turn="{turn_no}" data-n="{s["n"]}">'
            f'Open in document</button> characters {s["start"]:,}–{s["end"]:,}</div></article>')


def sources_html(turns: Sequence[Turn]) -> str:
    """Every turn's cited passages, the newest turn's shown; a badge click shows its own turn's."""
    if not turns:
        return ('<div class="sources"><div class="sources-empty">Sources appear here: the exact passage '
                'behind each numbered claim, highlighted in its context.</div></div>')
    groups = []
    last = len(turns) - 1
    for i, t in enumerate(turns):
        hidden = "" if i == last else " hidden"
        head = f'<div class="group-head">Sources for <q>{esc(t.question)}</q></div>'
        if t.answer is None:
            body = ('<div class="sources-empty">The passages behind the answer appear here once it is '
                    'complete.</div>' if not t.error
                    else '<div class="sources-empty">No answer, so no sources.</div>')
        elif t.answer.abstained or not t.sources:
            body = ('<div class="sources-empty refusal">No sources: the documents do not support an '
                    'answer to this question.</div>')
        else:
            body = "".join(_source_html(s, i) for s in t.sources)
        groups.append(f'<section class="src-group" data-turn="{i}"{hidden}>{head}{body}</section>')
    return f'<div class="sources">{"".join(groups)}</div>'


def sync_html(last: dict[str, Any] | None) -> str:
    """The folder watcher's last sync (rag/watch.py): when, what changed, skipped files and why; "" unwatched."""
    if last is None:
        return ""
    if last.get("error"):
        what = f"failed: {last['error']}"
    else:
        what = ", ".join(f"{last.get(k, 0)} {k}" for k in ("added", "updated", "removed", "unchanged"))
    skipped = "".join(f"<li>{esc(s['path'])}: {esc(s['reason'])}</li>" for s in last.get("skipped") or [])
    return (f'<div class="docs-sync">Watching {esc(str(last.get("corpus", "")))}; last sync {esc(str(last.get("at")))} '
            f'({esc(str(last.get("trigger")))}): {esc(what)}.'
            + (f'<div>Skipped:</div><ul class="docs-skipped">{skipped}</ul>' if skipped else "") + "</div>")


def documents_html(docs: Sequence[dict[str, Any]]) -> str:
    """The indexed documents as a table: title, file, date, chunks."""
    if not docs:
        return '<div class="docs-empty">No documents are indexed yet. Upload some below.</div>'
    total = sum(int(d.get("chunks", 0) or 0) for d in docs)
    rows = "".join(
        f'<tr><td class="title">{esc(str(d.get("title") or d["source"]))}</td>'
        f'<td class="file">{esc(d["source"])}</td><td>{esc(str(d.get("publish_date") or ""))}</td>'
        f'<td class="num">{int(d.get("chunks", 0) or 0):,}</td></tr>'
        for d in docs
    )
    return (f'<div class="docs-summary">{len(docs):,} document{"s" * (len(docs) != 1)}, {total:,} chunks</div>'
            '<div class="docs-scroll"><table class="docs"><thead><tr><th>Title</th><th>File</th><th>Date</th>'
            f'<th class="num">Chunks</th></tr></thead><tbody>{rows}</tbody></table></div>')
