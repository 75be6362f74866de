"""Receipts on answers, and `rag verify`: proof that a citation still holds in its document.

A receipt records what an answer was made from: the index build, the model, the prompt version, the time,
and for each citation the SHA-256 of the whole stored document text and of the quote. `verify` reads JSON
answers back and checks each citation against the index (or the corpus files) today:
- `ok`: `text[start:end] == quote` in the document the answer cited (its hash matches, or there is none);
- `moved`: the document changed but still holds the quote; `start`/`end` are where (the occurrence nearest
  the old offset), `old_start`/`old_end` where it was;
- `stale`: the document changed (or is gone) and the quote is not in it any more;
- `broken`: the document is unchanged, yet the quote is not its slice, or the quote does not match the
  receipt's quote hash: the answer itself was altered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.errors import UsageError
from rag.types import Answer, make_doc_id

GOOD = ("ok", "moved")


def sha256(text: str) -> str:
    """Full SHA-256 of the text's UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fields(answerer: Any, settings: Any) -> dict[str, Any]:
    """Which model wrote the answer: the bundled GGUF's SHA-256, else null and a name saying what ran."""
    if getattr(answerer, "name", "") != "generative":
        return {"model_sha256": None, "model": "extractive (no generative model)"}
    llm = settings.llm
    if llm.url:
        return {"model_sha256": None, "model": f"server {llm.model} at {llm.url}"}
    if llm.model_path:  # hashing a user's multi-GB file on every answer would cost seconds
        return {"model_sha256": None, "model": f"own GGUF {Path(llm.model_path).name}"}
    from rag.llm import MODEL_SHA256

    return {"model_sha256": MODEL_SHA256, "model": "bundled Qwen2.5-Coder-1.5B-Instruct Q4_K_M"}


def make_receipt(ans: Answer, *, build: dict[str, Any], answerer: Any, settings: Any,
                 doc_text: Callable[[str], str]) -> dict[str, Any]:
    """The receipt for a finished answer (see the module docstring)."""
    return {
        "build": build,
        **model_fields(answerer, settings),
        "prompt_version": getattr(answerer, "prompt_version", None),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "citations": [{"n": c.n, "doc_sha256": sha256(doc_text(c.doc_id)), "quote_sha256": sha256(c.quote)}
                      for c in ans.citations],
    }


# --- verify ---------------------------------------------------------------------------------------
def read_answers(raw: str) -> list[dict[str, Any]]:
    """JSON answers from one pretty-printed object (or a list of them) or one per line; UsageError else."""
    try:
        whole = json.loads(raw)
    except ValueError:
        whole = None
    if whole is not None:
        answers = whole if isinstance(whole, list) else [whole]
    else:
        answers = []
        for lineno, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                answers.append(json.loads(line))
            except ValueError:
                raise UsageError(f"line {lineno} is not JSON; give JSON answers from `rag ask --json`, "
                                 "one per line") from None
    for i, a in enumerate(answers, 1):
        if not isinstance(a, dict) or ("citations" not in a and "error" not in a):
            raise UsageError(f"answer {i} is not a JSON answer (no \"citations\"); give `rag ask --json` output")
        cites = a.get("citations") or []
        if not isinstance(cites, list) or not all(
                isinstance(c, dict) and {"n", "start", "end", "quote"} <= c.keys() for c in cites):
            raise UsageError(f"answer {i}: each citation needs n, start, end and quote")
    return answers


Lookup = Callable[[str, str], tuple[str, str] | None]  # (doc_id, source) -> (current doc_id, text)


def index_lookup(store: Any) -> Lookup:
    """Documents from the index: by doc_id, else the current document of the same source."""
    def find(doc_id: str, source: str) -> tuple[str, str] | None:
        got = store.document(doc_id) if doc_id else None
        if got is not None and got[1].get("state", "done") == "done":
            return doc_id, got[0]
        rec = store.documents().get(source)
        if rec is None:
            return None
        got = store.document(rec["doc_id"])
        return (rec["doc_id"], got[0]) if got else None

    return find


def corpus_lookup(corpus: Path) -> Lookup:
    """Documents from the corpus files, read the way ingest reads them (the file itself for .txt/.md)."""
    from rag.sources import read_file

    def find(doc_id: str, source: str) -> tuple[str, str] | None:
        path = Path(source) if Path(source).is_absolute() else corpus / source
        if not path.is_file():
            return None
        try:
            doc = read_file(path, corpus)
        except UsageError:
            return None
        return doc.doc_id, doc.text

    return find


def _nearest(text: str, quote: str, near: int) -> int | None:
    best: int | None = None
    at = text.find(quote)
    while at >= 0:
        if best is None or abs(at - near) < abs(best - near):
            best = at
        at = text.find(quote, at + 1)
    return best


def check_citation(cite: dict[str, Any], receipt: dict[str, Any] | None, find: Lookup) -> dict[str, Any]:
    """One citation's verdict (see the module docstring), as a JSON-ready dict."""
    quote, start, end = cite["quote"], int(cite["start"]), int(cite["end"])
    doc_id, source = cite.get("doc_id") or "", cite.get("source") or ""
    out: dict[str, Any] = {"n": cite["n"], "source": source, "doc_id": doc_id, "start": start, "end": end}
    receipt = receipt or {}
    if receipt.get("quote_sha256") and receipt["quote_sha256"] != sha256(quote):
        return {**out, "status": "broken", "detail": "the quote does not match the receipt's quote hash"}
    got = find(doc_id, source)
    if got is None:
        return {**out, "status": "stale", "detail": "the document is no longer there"}
    current_id, text = got
    if receipt.get("doc_sha256"):
        unchanged = receipt["doc_sha256"] == sha256(text)
    else:  # a doc_id is made from the source and the content, so it tells versions apart too
        unchanged = current_id == doc_id or make_doc_id(source, text) == doc_id
    out["current_doc_id"] = current_id
    if unchanged:
        if text[start:end] == quote:
            return {**out, "status": "ok"}
        return {**out, "status": "broken", "detail": "the document is unchanged but the quote is not its slice"}
    at = _nearest(text, quote, start)
    if at is None:
        return {**out, "status": "stale", "detail": "the document changed and no longer holds the quote"}
    return {**out, "status": "moved", "start": at, "end": at + len(quote), "old_start": start, "old_end": end}


def verify(answers: list[dict[str, Any]], find: Lookup) -> Iterator[dict[str, Any]]:
    """A verdict for every citation of every answer; `answer` is the answer's 1-based position."""
    for i, ans in enumerate(answers, 1):
        receipts = {r.get("n"): r for r in ((ans.get("receipt") or {}).get("citations") or [])
                    if isinstance(r, dict)}
        for cite in ans.get("citations") or []:
            yield {"answer": i, **check_citation(cite, receipts.get(cite["n"]), find)}


def line(result: dict[str, Any]) -> str:
    """One plain line for a verdict."""
    head = f"answer {result['answer']} [{result['n']}] {result['status']}: {result['source']}"
    if result["status"] == "moved":
        return f"{head} {result['old_start']}-{result['old_end']} -> {result['start']}-{result['end']}"
    detail = f" ({result['detail']})" if result.get("detail") else ""
    return f"{head} {result['start']}-{result['end']}{detail}"
