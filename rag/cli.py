"""The `rag` command (see ../shared/INTERFACE.md): ingest, ask, search, stats, show, serve, eval, verify."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from rag.config import set_offline_env

set_offline_env()

from rag.config import Settings  # noqa: E402
from rag.errors import RagError, UsageError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        print(f"rag: {message}; see `rag --help`", file=sys.stderr)
        sys.exit(2)


def _global_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, default=argparse.SUPPRESS, help="corpus folder (RAG_CORPUS)")
    p.add_argument("--index", type=Path, default=argparse.SUPPRESS, help="index folder (RAG_INDEX)")
    p.add_argument("--answerer", choices=["generative", "extractive"], default=argparse.SUPPRESS,
                   help="how answers are written (RAG_ANSWERER)")
    p.add_argument("--as-of", dest="as_of", default=argparse.SUPPRESS, metavar="DATE",
                   help="only documents published on or before DATE, e.g. 2022-06-16 (RAG_AS_OF)")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # a _Parser like the subcommands that take it as a parent
    _global_options(common)
    parser = _Parser(prog="rag", description="Answers from a corpus, every claim cited.", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("ingest", parents=[common], help="index files and folders (default: the corpus)")
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--jsonl", type=Path, help="index JSONL records instead ({_id, text, ...})")
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it anew")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-wait", dest="no_wait", action="store_true",
                   help="exit 2 at once when another ingest into the index runs, instead of waiting for it")

    p = sub.add_parser("ask", parents=[common], help="answer a question (- reads questions from stdin)")
    p.add_argument("question")
    p.add_argument("--json", action="store_true")
    p.add_argument("--stream", action="store_true", help="print the verified text as it comes, then the sources")
    p.add_argument("--k", type=int, default=None, help="passages to retrieve")

    p = sub.add_parser("search", parents=[common], help="retrieval only")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", parents=[common], help="what the index holds")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", parents=[common], help="print a document's stored text")
    p.add_argument("doc_id")

    p = sub.add_parser("serve", parents=[common], help="the app and the HTTP API (docs/api.md)")
    p.add_argument("--host", default=argparse.SUPPRESS, help="where to listen (RAG_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=argparse.SUPPRESS, help="port (RAG_PORT; default 7860)")
    p.add_argument("--watch", action="store_true", default=argparse.SUPPRESS,
                   help="ingest files added, changed or removed in the corpus folder as it happens (RAG_WATCH=1)")

    p = sub.add_parser("eval", parents=[common], help="run the hand-labeled eval suite")
    p.add_argument("--json", action="store_true")
    p.add_argument("--dataset", default=None, help="a public set in ../shared/datasets, or all")
    p.add_argument("--limit", type=int, default=None, help="questions sampled from the public set")
    p.add_argument("--all-documents", action="store_true",
                   help="with --limit, index the whole public set's documents, not a sample of them")
    p.add_argument("--compare", action="store_true", help="run extractive and generative side by side")
    p.add_argument("--judge", choices=["auto", "llm", "lexical"], default="auto",
                   help="citation support judge (auto: the bundled LLM when it loads)")
    p.add_argument("--reports", type=Path, default=None, help="where reports go (default: reports/)")
    p = sub.add_parser("verify", parents=[common],
                       help="check the citations of JSON answers against the index (or --corpus files)")
    p.add_argument("file", help="JSON answers from `rag ask --json`, one per line or one object; - for stdin")
    p.add_argument("--json", action="store_true", help="one JSON result per citation")
    return parser


def _service(args: argparse.Namespace) -> Any:
    from rag.service import Service

    return Service(settings_from(args))


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags over RAG_* variables over defaults."""
    return Settings.from_env(**{k: getattr(args, k, None) for k in ("corpus", "index", "answerer", "as_of",
                                                                     "host", "port", "watch")})


def _read_questions() -> Iterator[tuple[int, str, Any, str]]:
    """(line number, question, history, error) per non-blank stdin line; a bad line carries its error."""
    for lineno, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            yield lineno, line, None, ""
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            yield lineno, line, None, 'not valid JSON; give a question or {"question": "..."}'
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str):
            yield lineno, line, None, 'a JSON line needs a "question" string'
            continue
        yield lineno, rec["question"], rec.get("history"), ""


def _print_answer(ans: Any) -> None:
    print(ans.answer)
    _print_sources(ans)


def _print_sources(ans: Any) -> None:
    if ans.citations:
        print()
        for c in ans.citations:
            page = f", page {c.page}" if c.page else ""
            print(f"[{c.n}] {c.source}{page} ({c.start}-{c.end}): \"{c.quote}\"")


def _stream_answer(svc: Any, question: str, k: int | None) -> None:
    shown, ans = "", None
    for kind, value in svc.ask_stream(question, k=k):
        if kind == "delta":
            sys.stdout.write(value)
            sys.stdout.flush()
            shown += value
        else:
            ans = value
    assert ans is not None
    # an answerer that does not stream (and a refusal) gives the whole text at the end
    print(ans.answer[len(shown):] if ans.answer.startswith(shown) else "")
    _print_sources(ans)


def _cmd_ask(args: argparse.Namespace) -> int:
    if args.stream and (args.json or args.question == "-"):
        raise UsageError("--stream prints one answer as text; drop --json and give the question itself, not -")
    svc = _service(args)
    if args.stream:
        _stream_answer(svc, args.question, args.k)
        return 0
    if args.question != "-":
        ans = svc.ask(args.question, k=args.k)
        print(json.dumps(ans.to_json(), ensure_ascii=False)) if args.json else _print_answer(ans)
        return 0
    status = 0
    for lineno, question, history, error in _read_questions():
        try:
            if error:
                raise UsageError(error)
            out = svc.ask(question, history=history, k=args.k).to_json()
        except UsageError as e:  # one bad line gets an error record (and a line on stderr); the batch goes on
            out = {"question": question, "error": str(e), "line": lineno}
            print(f"rag: line {lineno}: {e}", file=sys.stderr, flush=True)
            status = 2
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return status


def _cmd_search(args: argparse.Namespace) -> int:
    svc = _service(args)
    queries = [args.query]
    if args.query == "-":
        lines = list(_read_questions())
        for lineno, _, _, error in lines:
            if error:
                raise UsageError(f"line {lineno}: {error}")
        queries = [q for _, q, _, _ in lines]
    for q in queries:
        hits = svc.search(q, args.k)
        if args.json:
            print(json.dumps({"query": q, "hits": [h.to_json() for h in hits]}, ensure_ascii=False), flush=True)
        else:
            for i, h in enumerate(hits, 1):
                print(f"{i}. {h.score:.3f} {h.source} ({h.start}-{h.end}) {h.text[:100]!r}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    svc = _service(args)
    if args.jsonl and args.paths:
        raise UsageError("give either paths or --jsonl, not both")
    summary = svc.ingest(args.paths or None, jsonl=args.jsonl, rebuild=args.rebuild, wait=not args.no_wait,
                         notify=lambda line: print(f"rag: {line}", file=sys.stderr, flush=True))
    for s in summary.skipped:
        print(f"rag: skipped {s.reason}", file=sys.stderr)
    print(json.dumps(summary.to_json()) if args.json else summary.line())
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    stats = _service(args).stats()
    if args.json:
        print(json.dumps(stats))
    else:
        for k, v in stats.items():
            print(f"{k}: {v}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    sys.stdout.write(_service(args).show(args.doc_id))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    svc = _service(args)  # first: a bad RAG_PORT or RAG_AUTH stops it before the app is imported
    from ui.app import serve

    serve(svc, host=svc.settings.host, port=svc.settings.port)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from eval.runner import EvalOptions
    from eval.runner import main as eval_main

    return int(eval_main(EvalOptions.from_args(args)))


def _cmd_verify(args: argparse.Namespace) -> int:
    from rag import receipts

    try:
        raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {args.file} ({getattr(e, 'strerror', None) or e}); "
                         "give a file of JSON answers or - for stdin") from None
    answers = receipts.read_answers(raw)
    if "corpus" in vars(args):  # given on the command line: check against the files themselves
        find = receipts.corpus_lookup(args.corpus)
    else:
        find = _service(args).citation_lookup()
    status = 0
    for result in receipts.verify(answers, find):
        print(json.dumps(result, ensure_ascii=False) if args.json else receipts.line(result), flush=True)
        status = status if result["status"] in receipts.GOOD else 1
    return status


def _debug() -> bool:
    """RAG_DEBUG: expected errors raise with their traceback (a malformed RAG_* variable is not one)."""
    try:
        return Settings.from_env().debug
    except RagError:
        return False


COMMANDS = {"ingest": _cmd_ingest, "ask": _cmd_ask, "search": _cmd_search, "stats": _cmd_stats,
            "show": _cmd_show, "serve": _cmd_serve, "eval": _cmd_eval,
            "verify": _cmd_verify}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RagError as e:
        if _debug():
            raise
        print(f"rag: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
