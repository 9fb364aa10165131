"""results.md and plots: the paper's table layout, and the comparison with published numbers.

Tables follow the MedMO paper's four families: medical VQA (closed / open / all
accuracy, the paper's "closed/all" columns), text QA (accuracy), report generation
(BLEU, ROUGE-L, CIDEr-D, and any model-based metric present) and grounding (mean IoU,
IoU@0.3/0.5/0.7). Numbers print in percent with one decimal like the paper; results.json
keeps fractions. Record sets scored by task get a generic table of their numeric metrics.

The comparison table and the plots put the evaluated model next to the MedMO numbers
stored in paper_results.json (only numbers with a citable source; see that file), on each
benchmark's headline metric, and say for each row whether the protocols match. The
paper's protocol is MedEvalKit's: its scoring rules (mode medevalkit), an LLM judge that
decided at least 95% of the open answers, the paper's item set and layout, complete
coverage of the published set, and answers not cut below MedEvalKit's 8192-token budget.
A row that differs in any of these is labelled with what differs ("not comparable: strict
mode, no judge") and gets no difference column; results.json carries the same verdict per
benchmark ("vs_paper"). results.md also shows the run's protocol, judge coverage per
benchmark and the answers cut at the token budget. Plots (matplotlib, Agg backend, no display needed): one bar
chart per family present (`bars_<family>.png`) and one radar chart across all benchmarks
with a headline number (`radar.png`, drawn when there are at least 3).
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from medmo.eval.benchmarks import HEADLINE  # family -> headline metric, one table for --list and reports
from medmo.eval.units import PAPER_MAX_NEW_TOKENS

logger = logging.getLogger(__name__)

PAPER_MODEL = "MedMO-8B-Next"
FAMILY_TITLES = {"vqa": "Medical VQA", "textqa": "Medical text QA", "report": "Report generation",
                 "grounding": "Grounding", "mixed": "Record sets"}
COLUMNS = {  # family -> [(results key, column title)]
    "vqa": [("closed_accuracy", "closed"), ("open_accuracy", "open"), ("accuracy", "all")],
    "textqa": [("accuracy", "accuracy")],
    "report": [("bleu1", "BLEU-1"), ("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("cider_d", "CIDEr-D"),
               ("ratescore", "RaTEScore"), ("sembscore", "SembScore")],
    "grounding": [("mean_iou", "mean IoU"), ("iou@0.3", "IoU@0.3"), ("iou@0.5", "IoU@0.5"), ("iou@0.7", "IoU@0.7"),
                  ("precision@0.5", "P@0.5"), ("recall@0.5", "R@0.5"), ("f1@0.5", "F1@0.5"),
                  ("macro_f1@0.5", "F1@0.5 per image"), ("count_mae", "count MAE")],
}
_COUNTS = {"count_mae"}  # metrics in boxes, not fractions: printed as they are
_SKIP = {"n", "n_failed", "parse_failures", "n_closed", "n_open", "cut"}


@lru_cache(maxsize=1)
def paper_results(model: str = PAPER_MODEL) -> dict[str, dict[str, float]]:
    """{benchmark: {metric: fraction}} published for `model` (paper_results.json, percent / 100)."""
    data = json.loads((Path(__file__).with_name("paper_results.json")).read_text())
    published = data["models"][model]["results"]
    return {b: {k: v / 100.0 for k, v in m.items()} for b, m in published.items()}


def headline(name: str, res: dict) -> tuple[str, float] | None:
    """(metric, value) a benchmark is compared on; None when it has none."""
    fam = res.get("family", "mixed")
    keys = [HEADLINE[fam]] if fam in HEADLINE else ["accuracy", "mean_iou", "rouge_l"]
    for k in keys:
        if isinstance(res.get(k), (int, float)):
            return k, float(res[k])
    return None


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def _metric(key: str, v: Any) -> str:
    if key in _COUNTS and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:.2f}"
    return _pct(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def family_table(fam: str, benches: dict[str, dict]) -> list[str]:
    cols = COLUMNS.get(fam)
    if cols is None:  # record sets: whichever numeric metrics they have
        keys = sorted({k for r in benches.values() for k, v in r.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in _SKIP})
        cols = [(k, k) for k in keys]
    cols = [(k, t) for k, t in cols if any(k in r for r in benches.values())] or cols[:1]
    header = ["benchmark", "n"] + [t for _, t in cols] + ["parse failures", "failed"]
    rows = [[name, str(r.get("n", 0))] + [_metric(k, r.get(k)) for k, _ in cols]
            + [str(r.get("parse_failures", "–")), str(r.get("n_failed", 0))] for name, r in benches.items()]
    return _table(header, rows)


def comparison_rows(results: dict) -> list[tuple[str, str, float, float | None]]:
    """[(benchmark, metric, ours, published or None)] for every benchmark with a headline number."""
    paper = paper_results()
    rows = []
    for name, res in results["benchmarks"].items():
        h = headline(name, res)
        if h is None or not res.get("n") or (res.get("kind") == "records" and name not in paper):
            continue
        rows.append((name, h[0], h[1], paper.get(name, {}).get(h[0])))
    return rows


def _coverage_gap(name: str, res: dict) -> str | None:
    """Why the evaluated items are not the whole published set, or None when they are."""
    cov = res.get("coverage")
    if isinstance(cov, dict) and "complete" in cov:
        return None if cov["complete"] else str(cov.get("line") or "partial")
    from medmo.eval.benchmarks import BENCHMARKS

    size = getattr(BENCHMARKS.get(name), "size", None) if name in BENCHMARKS.names() else None
    if size is None:
        return "item count unchecked"
    n = res.get("n", 0)
    return None if n == size else f"{'partial' if n < size else 'more items'}: {n} of {size}"


def protocol_differences(name: str, res: dict) -> list[str]:
    """How a benchmark's run differs from the paper's protocol; empty when its numbers compare."""
    p = res.get("protocol")
    if res.get("kind") == "records":
        return ["a record set, not the published benchmark"]
    if not isinstance(p, dict):
        return ["protocol not recorded"]
    diffs = []
    if p.get("mode") != "medevalkit":
        diffs.append(f"{p.get('mode')} mode")
    judge = res.get("judge")
    if (judge or res.get("n_open")) and not p.get("judge_model"):  # n_open: samples written before judge coverage
        diffs.append("no judge")
    elif judge and judge.get("complete") is False:
        diffs.append(f"judge decided {judge['judged']} of {judge['open']} open items")
    if p.get("set", "paper") != "paper":
        diffs.append(str(p["set"]))
    gap = _coverage_gap(name, res)
    if gap:
        diffs.append(gap)
    budget = p.get("max_new_tokens")
    if res.get("cut") and isinstance(budget, int) and budget < PAPER_MAX_NEW_TOKENS:
        diffs.append(f"{res['cut']} answers cut at {budget} tokens (paper: {PAPER_MAX_NEW_TOKENS})")
    return diffs


def mark_comparable(results: dict) -> None:
    """Set each benchmark's "vs_paper" ("comparable" or "not comparable: ...") where a number is published."""
    for name, metric, _, published in comparison_rows(results):
        if published is not None:
            diffs = protocol_differences(name, results["benchmarks"][name])
            results["benchmarks"][name]["vs_paper"] = "not comparable: " + ", ".join(diffs) if diffs else "comparable"


def _vs_paper(name: str, results: dict) -> str:
    res = results["benchmarks"][name]
    if "vs_paper" not in res:
        diffs = protocol_differences(name, res)
        return "not comparable: " + ", ".join(diffs) if diffs else "comparable"
    return res["vs_paper"]


def protocol_lines(results: dict) -> list[str]:
    """Whether the run is complete, item coverage, judge coverage and cut answers."""
    lines = []
    if results.get("incomplete"):
        lines += ["**Incomplete run**: " + "; ".join(f"{b}: {why}" for b, why in results["incomplete"].items()), ""]
    covered = [[b, str(r["coverage"].get("line", "–"))] for b, r in results["benchmarks"].items()
               if isinstance(r.get("coverage"), dict)]
    if covered:
        lines += ["## Items evaluated against the published sets", "", *_table(["benchmark", "coverage"], covered), ""]
    judged = [(b, r["judge"]) for b, r in results["benchmarks"].items() if isinstance(r.get("judge"), dict)]
    if judged:
        rows = [[b, str(j["open"]), str(j["judged"]),
                 ", ".join(f"{k} {v}" for k, v in j.get("fell_back", {}).items()) or "–", _pct(j["coverage"])]
                for b, j in judged]
        lines += ["## Judge coverage (open answers)", "",
                  *_table(["benchmark", "open", "judged", "fell back to rules", "judged %"], rows), ""]
    cut = [(b, r) for b, r in results["benchmarks"].items() if r.get("cut")]
    if cut:
        rows = [[b, str(r["cut"]), str(r.get("n", 0)), str((r.get("protocol") or {}).get("max_new_tokens", "–"))]
                for b, r in cut]
        lines += ["## Answers cut at the token budget", "",
                  *_table(["benchmark", "cut", "of", "max_new_tokens"], rows),
                  "", "A cut answer is scored as written; raise --max-new-tokens to let it finish.", ""]
    return lines


def markdown(results: dict) -> str:
    lines = [f"# Evaluation of `{results.get('model')}`", ""]
    meta = [f"{k}: `{results[k]}`" for k in ("backend", "suite", "protocol", "mode", "box_format", "grounding_protocol",
                                              "judge_model", "prompt_version", "max_new_tokens", "shard")
            if results.get(k) is not None]
    if "judge_model" in results and results["judge_model"] is None:
        meta.append("judge_model: none")
    lines += [" · ".join(meta), "", "Numbers are percentages (results.json holds fractions).", ""]
    by_family: dict[str, dict[str, dict]] = {}
    for name, res in results["benchmarks"].items():
        by_family.setdefault(res.get("family", "mixed"), {})[name] = res
    for fam in [*COLUMNS, "mixed"]:
        if fam in by_family:
            lines += [f"## {FAMILY_TITLES[fam]}", "", *family_table(fam, by_family[fam]), ""]
    comp = comparison_rows(results)
    if comp:
        lines += [f"## Compared with published {PAPER_MODEL} numbers", ""]
        rows = []
        for b, m, ours, pub in comp:
            verdict = _vs_paper(b, results) if pub is not None else "–"
            delta = f"{100 * (ours - pub):+.1f}" if pub is not None and verdict == "comparable" else "–"
            rows.append([b, m, _pct(ours), _pct(pub), delta, verdict])
        lines += _table(["benchmark", "metric", "this model", PAPER_MODEL, "Δ", "protocol"], rows)
        lines += ["", "Published numbers: see medmo/eval/paper_results.json for sources; – = not published. "
                  "Δ is shown only where the protocol matches the paper's (MedEvalKit rules, an LLM judge on open "
                  "answers, the paper's item sets, complete coverage; `--protocol paper`).", ""]
    lines += protocol_lines(results)
    lines += breakdowns(results)
    if results.get("skipped"):
        lines += ["## Skipped (data not found)", ""]
        lines += [f"- {name}: {msg}" for name, msg in results["skipped"].items()] + [""]
    fails = [[b, reason, str(c)] for b, r in results["benchmarks"].items() for reason, c in r.get("failures", {}).items()]
    if fails:
        lines += ["## Failures and issues by reason", "", *_table(["benchmark", "reason", "count"], fails), ""]
    return "\n".join(lines)


def breakdowns(results: dict) -> list[str]:
    """Per-subgroup tables (a benchmark's "by_<key>" results), folded so the main tables stay short."""
    lines = []
    for name, res in results["benchmarks"].items():
        for key, groups in res.items():
            if not (key.startswith("by_") and isinstance(groups, dict) and groups
                    and all(isinstance(g, dict) for g in groups.values())):
                continue
            metrics = [m for m in ("accuracy", "mean_iou", "iou@0.5", "f1@0.5", "count_mae", "rouge_l")
                       if any(m in g for g in groups.values())]
            rows = [[str(group), str(g.get("n", "–"))] + [_metric(m, g.get(m)) for m in metrics]
                    for group, g in groups.items()]
            lines += [f"<details><summary>{name} {key.replace('_', ' ', 1)}</summary>", ""]
            lines += _table([key[3:], "n", *metrics], rows) + ["", "</details>", ""]
    return (["## Breakdowns", ""] + lines) if lines else []


def write_report(results: dict, out: str | Path, plots: bool = True) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.md"
    path.write_text(markdown(results))
    if plots:
        write_plots(results, out)
    return path


def write_plots(results: dict, out: Path) -> list[Path]:
    """Bar chart per family and a radar chart across benchmarks; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    comp = comparison_rows(results)
    fams = {name: res.get("family", "mixed") for name, res in results["benchmarks"].items()}
    written = []
    label = str(results.get("model"))[-40:]
    for fam in sorted({fams[b] for b, *_ in comp}):
        rows = [r for r in comp if fams[r[0]] == fam]
        x = np.arange(len(rows))
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.6))
        ax.bar(x - 0.2, [100 * r[2] for r in rows], 0.4, label=label)
        ax.bar(x + 0.2, [100 * r[3] if r[3] is not None else np.nan for r in rows], 0.4,
               label=f"{PAPER_MODEL} (paper)")
        for xi, r in zip(x, rows):
            if r[3] is None:
                ax.text(xi + 0.2, 2, "not\npublished", ha="center", fontsize=6)
        ax.set_xticks(x, [f"{r[0]}\n{r[1]}" + ("" if r[3] is None or _vs_paper(r[0], results) == "comparable"
                                               else "\n(not comparable)") for r in rows], fontsize=8)
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.set_title(FAMILY_TITLES.get(fam, fam))
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out / f"bars_{fam}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if len(comp) >= 3:
        angles = np.linspace(0, 2 * np.pi, len(comp), endpoint=False)
        closed = np.concatenate([angles, angles[:1]])
        fig, ax = plt.subplots(figsize=(5.5, 5.5), subplot_kw={"projection": "polar"})
        ours = [100 * r[2] for r in comp]
        ax.plot(closed, ours + ours[:1], label=label)
        ax.fill(closed, ours + ours[:1], alpha=0.15)
        pub = [(a, 100 * r[3]) for a, r in zip(angles, comp) if r[3] is not None]
        if pub:
            ax.plot([a for a, _ in pub], [v for _, v in pub], "o", label=f"{PAPER_MODEL} (paper)")
        ax.set_xticks(angles, [r[0] + ("" if r[3] is None or _vs_paper(r[0], results) == "comparable" else "*")
                               for r in comp], fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_title("Headline metric per benchmark (%)\n* protocol differs from the paper's: see results.md",
                     fontsize=9)
        ax.legend(loc="lower right", fontsize=7, bbox_to_anchor=(1.15, -0.1))
        fig.tight_layout()
        written.append(out / "radar.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    written += _detection_plot(results, out, plt, np)
    return written


def _detection_plot(results: dict, out: Path, plt, np) -> list[Path]:
    """Grounding benchmarks: set IoU beside precision / recall / F1 at IoU 0.5 (medmo.eval.grounding)."""
    keys = [("mean_iou", "set IoU"), ("precision@0.5", "P@0.5"), ("recall@0.5", "R@0.5"), ("f1@0.5", "F1@0.5")]
    benches = {n: r for n, r in results["benchmarks"].items() if r.get("n") and "f1@0.5" in r}
    if not benches:
        return []
    x = np.arange(len(benches))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(benches) + 2), 3.6))
    for i, (k, title) in enumerate(keys):
        ax.bar(x + (i - 1.5) * 0.2, [100 * r.get(k, 0.0) for r in benches.values()], 0.2, label=title)
    ax.set_xticks(x, [f"{n}\ncount MAE {r.get('count_mae', 0.0):.2f}" for n, r in benches.items()], fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title("Grounding: set IoU and detection at IoU >= 0.5")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "detection_grounding.png", dpi=110)
    plt.close(fig)
    return [out / "detection_grounding.png"]
