"""The eval's outputs: a summary table on standard output, and Markdown, JSON and a PNG plot on disk."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The order metrics are shown in; dataset-specific scores follow.
METRICS = [
    "questions", "passed", "fact_recall", "citation_validity", "citation_recall", "citation_precision",
    "gold_hit", "gold_recall", "abstention_precision", "abstention_recall", "false_refusals",
    "conflict_coverage", "first_token_p50_ms", "first_token_p95_ms", "latency_p50_ms", "latency_p95_ms",
]


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def _metric_names(runs: Sequence[dict[str, Any]]) -> list[str]:
    extra = sorted({k for r in runs for k in r["summary"]} - set(METRICS))
    return [m for m in METRICS if any(m in r["summary"] for r in runs)] + extra


def _heading(run: dict[str, Any]) -> str:
    return f"{run['suite']} / {run['answerer']}"


def print_table(runs: Sequence[dict[str, Any]]) -> None:
    """Metrics down, runs across."""
    names = _metric_names(runs)
    heads = [_heading(r) for r in runs]
    width = max(len(n) for n in names + ["gates"])
    cols = [max(len(h), 8) for h in heads]
    print(" ".join([" " * width] + [h.rjust(c) for h, c in zip(heads, cols, strict=True)]))
    for n in names:
        cells = [fmt(r["summary"].get(n)).rjust(c) for r, c in zip(runs, cols, strict=True)]
        print(" ".join([n.ljust(width)] + cells))
    gates = [("fail" if r["gates_failed"] else "pass" if r.get("gated") else "none").rjust(c)
             for r, c in zip(runs, cols, strict=True)]
    print(" ".join(["gates".ljust(width)] + gates))


def markdown_table(runs: Sequence[dict[str, Any]]) -> str:
    names = _metric_names(runs)
    lines = ["| metric | " + " | ".join(_heading(r) for r in runs) + " |",
             "| --- |" + " ---: |" * len(runs)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(fmt(r["summary"].get(n)) for r in runs) + " |")
    return "\n".join(lines)


def _markdown(payload: dict[str, Any], png: str) -> str:
    runs = payload["runs"]
    out = [f"# Eval: {payload['suite']}", "", f"Run {payload['created']}.", ""]
    for r in runs:
        out.append(f"- **{_heading(r)}**: judge `{r['judge']}` ({r['judge_calls']['verbatim']} sentences "
                   f"verbatim, {r['judge_calls']['judged']} judged); {r['note']}; {r['seconds']} s")
    out += ["", "## Summary", "", markdown_table(runs), "", "## Gates", ""]
    for r in runs:
        if not r.get("gated"):
            out.append(f"- {_heading(r)}: no gates set")
        elif r["gates_failed"]:
            out += [f"- {_heading(r)}: **FAILED**"] + [f"  - {f}" for f in r["gates_failed"]]
        else:
            out.append(f"- {_heading(r)}: passed")
    out += ["", f"![metrics by question type and latency]({png})", ""]
    for r in runs:
        out += [f"## By question type: {_heading(r)}", "",
                "| type | n | passed | fact recall | citation recall | citation precision | gold hit | p50 ms |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for t, s in r["by_type"].items():
            out.append(f"| {t} | {s['questions']} | {fmt(s['passed'])} | {fmt(s['fact_recall'])} | "
                       f"{fmt(s['citation_recall'])} | {fmt(s['citation_precision'])} | {fmt(s['gold_hit'])} | "
                       f"{fmt(s['latency_p50_ms'])} |")
        out += ["", f"## Questions: {_heading(r)}", "",
                "| id | type | passed | facts | refused | citations ok | supported | gold | ms | answer |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | ---: | --- |"]
        for q in r["rows"]:
            s = q["support"]
            answer = q["answer"].replace("|", "\\|").replace("\n", " ")
            out.append(
                f"| {q['id']} | {q['type']} | {fmt(q['passed'])} | "
                f"{sum(q['fact_hits'])}/{len(q['fact_hits'])} | {fmt(q['abstained'])} | "
                f"{fmt(not q['citation_problems'])} | {s['supported']}/{s['sentences']} | {fmt(q['gold_hit'])} | "
                f"{q['total_ms']} | {answer[:160]} |")
        out.append("")
    return "\n".join(out)


def plot(payload: dict[str, Any], path: Path) -> None:
    """Left: share passed and fact recall by question type, per answerer. Right: latency distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = payload["runs"]
    types = sorted({t for r in runs for t in r["by_type"]})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(runs))
    for i, r in enumerate(runs):
        xs = [j + i * width for j in range(len(types))]
        passed = [r["by_type"].get(t, {}).get("passed") or 0 for t in types]
        ax1.bar(xs, passed, width, label=f"{_heading(r)}: passed")
        recall = [r["by_type"].get(t, {}).get("fact_recall") for t in types]
        ax1.scatter([x for x, v in zip(xs, recall, strict=True) if v is not None],
                    [v for v in recall if v is not None], marker="_", s=300, color="black", zorder=3,
                    label="fact recall" if i == 0 else None)
        ax2.hist([q["total_ms"] for q in r["rows"]], bins=20, alpha=0.6, label=_heading(r))
    ax1.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(types))])
    ax1.set_xticklabels(types, rotation=30, ha="right")
    ax1.set_ylim(0, 1.05)
    ax1.set_title(f"{payload['suite']}: share passed by question type")
    ax1.legend(fontsize=8, loc="lower left")
    ax2.set_xlabel("latency per question (ms)")
    ax2.set_ylabel("questions")
    ax2.set_title("latency")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(out_dir: Path, stem: str, payload: dict[str, Any]) -> list[Path]:
    """reports/<stem>.md, .json and .png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js, png = (out_dir / f"{stem}{ext}" for ext in (".md", ".json", ".png"))
    plot(payload, png)
    js.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    md.write_text(_markdown(payload, png.name), encoding="utf-8")
    return [md, js, png]
