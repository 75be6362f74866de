"""Calibrate the support judge's threshold on eval/support_pairs.jsonl and print how it separates.

    nice -n 10 .venv/bin/python -m bench.calibrate_judge
"""

from __future__ import annotations

import statistics
import time

from rag.config import Settings, set_offline_env


def main() -> None:
    set_offline_env()
    from rag.answer.verify import DEFAULT_THRESHOLD, SupportJudge, best_threshold, support_pairs
    from rag.llm import load_chat_model

    judge = SupportJudge(load_chat_model(Settings.from_env()))
    pairs = support_pairs()
    judge.supports(pairs[0].sentence, pairs[0].passage)  # warm the fixed prefix
    scored, times = [], []
    for p in pairs:
        t = time.perf_counter()
        s = judge.supports(p.sentence, p.passage)
        times.append(time.perf_counter() - t)
        scored.append((s, p.supported))
        print(f"{s:6.3f} {'Y' if p.supported else 'N'} {p.kind:18} {p.sentence[:70]}")
    t, acc = best_threshold(scored)
    print(f"\n{len(pairs)} pairs ({sum(p.supported for p in pairs)} supported); "
          f"judge {statistics.median(times):.2f} s a pair (p50)")
    for cut in sorted({DEFAULT_THRESHOLD, t, 0.5}):
        tp = sum(s >= cut and y for s, y in scored)
        fp = sum(s >= cut and not y for s, y in scored)
        fn = sum(s < cut and y for s, y in scored)
        a = sum((s >= cut) == y for s, y in scored) / len(scored)
        print(f"threshold {cut:.3f}: accuracy {a:.3f}, unsupported passed {fp}, supported dropped {fn}, "
              f"supported kept {tp}")
    print(f"best threshold {t:.3f} (accuracy {acc:.3f}); in use {DEFAULT_THRESHOLD}")


if __name__ == "__main__":
    main()
