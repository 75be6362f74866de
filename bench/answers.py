"""Latency of the two answerers on the seed questions: first text shown and whole answer, p50 and p95.

    nice -n 10 .venv/bin/python -m bench.answers [--n 15]

Both answerers run in the same process over the same index, one after the other, so the extractive
figures are the baseline measured under the same machine load (printed with the figures: on a shared
2-core machine the load average moves every number; the CPU seconds each answer used move less). The
model is loaded and warmed before timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rag.config import Settings, set_offline_env


def pick_questions(n: int) -> list[tuple[str, str]]:
    """(type, question): round-robin over the hand-labeled types (follow-ups need history: left out)."""
    from eval.labels import load_labels

    by_type: dict[str, list[str]] = {}
    for label in load_labels():
        if label.type != "followup":
            by_type.setdefault(label.type, []).append(label.question)
    out: list[tuple[str, str]] = []
    while len(out) < n and any(by_type.values()):
        for kind, qs in by_type.items():
            if qs and len(out) < n:
                out.append((kind, qs.pop(0)))
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=15)
    args = parser.parse_args()
    set_offline_env()
    from rag.answer.extractive import ExtractiveAnswerer
    from rag.answer.generative import build_generative
    from rag.service import Service

    questions = pick_questions(args.n)
    index = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    base = Service(Settings.from_env(env={}, index=index, answerer="extractive"))
    base.ingest()
    t = time.perf_counter()
    gen = build_generative(base.settings, embedder=base.embedder, fallback=ExtractiveAnswerer(base.embedder))
    load_s = time.perf_counter() - t
    services = {
        "extractive": base,
        "generative": Service(base.settings, embedder=base.embedder, store=base.store, answerer=gen),
    }
    services["generative"].ask("How many artillery shells has North Korea sent to Russia?")  # warm-up
    load0 = os.getloadavg()[0]
    rows: dict[str, list[dict]] = {name: [] for name in services}
    for kind, q in questions:
        for name, svc in services.items():
            cpu = time.process_time()
            ans = svc.ask(q)
            rows[name].append({"type": kind, "q": q, "abstained": ans.abstained, "answer": ans.answer,
                               "cpu_s": time.process_time() - cpu, **ans.timings})
            print(f"{name:10} {ans.timings['first_token_ms']:6d} {ans.timings['total_ms']:6d} ms  "
                  f"[{kind}] {q[:50]!r} -> {ans.answer[:110]!r}", flush=True)
    load1 = os.getloadavg()[0]
    print(f"\n{len(questions)} seed questions; model load {load_s:.1f} s; "
          f"load average {load0:.1f} at start, {load1:.1f} at end (2 cores)\n")
    print("| answerer | first text p50 | p95 | whole answer p50 | p95 | CPU s / answer p50 | refused | "
          "judge calls / answer |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rs in rows.items():
        first = [r["first_token_ms"] / 1000 for r in rs]
        total = [r["total_ms"] / 1000 for r in rs]
        calls = statistics.mean(r.get("judge_calls", 0) for r in rs)
        print(f"| {name} | {pct(first, .5):.2f} s | {pct(first, .95):.2f} s | {pct(total, .5):.2f} s | "
              f"{pct(total, .95):.2f} s | {pct([r['cpu_s'] for r in rs], .5):.2f} | "
              f"{sum(r['abstained'] for r in rs)}/{len(rs)} | {calls:.1f} |")


if __name__ == "__main__":
    main()
