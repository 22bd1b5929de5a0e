"""The report's plots: PNG bytes drawn with matplotlib's Agg renderer (no pyplot, no GUI backend)."""

from __future__ import annotations

import io as _io
from collections import Counter
from dataclasses import dataclass

from evokd.report.data import RunData

MAX_LEGEND = 12  # labels drawn one by one in stacked bars; the rest are summed as "other"
_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
            "#64b5cd", "#1f3b73", "#7a5c00", "#2e7d32"]
_ACCEPTED_COLOR = "#55a868"
_EXTRA_CURVES = {"eval_macro_f1": "eval macro-F1"}  # eval columns drawn beside the headline one
# what the label plot counts, by task kind: (what, y axis)
_COUNTED = {"classification": ("accepted samples per label", "samples"), "ner": ("entity mentions per type", "entities")}
_RIGHT_MEANS = {"classification": "", "ner": " (exact spans)"}  # what "right" is on the hardness plot


@dataclass
class Plot:
    name: str  # file stem of the PNG
    title: str
    alt: str
    png: bytes
    width: int
    height: int


def _figure(width: float = 7.5, height: float = 3.6):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, Agg canvas

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _plot(fig, name: str, title: str, alt: str) -> Plot:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    w, h = (int(round(v)) for v in fig.get_size_inches() * fig.dpi)
    return Plot(name, title, alt, buf.getvalue(), w, h)


def _round_ticks(ax, rounds: list[int]) -> None:
    step = max(1, len(rounds) // 20)
    ax.set_xticks(rounds[::step])
    ax.set_xlabel("round (0 = seeds only)")


def plot_learning_curve(run: RunData, ceiling: float | None) -> Plot:
    key, name = run.rules.headline
    fig = _figure()
    ax = fig.add_subplot()
    rounds = [r["round"] for r in run.rounds]
    points = [(r["round"], r[key]) for r in run.rounds if r[key] is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=_PALETTE[0], label=f"eval {name}")
        for i, col in enumerate(c for c in run.rules.eval_columns if c != key):
            extra = [(r["round"], r[col]) for r in run.rounds if r[col] is not None]
            ax.plot([p[0] for p in extra], [p[1] for p in extra], marker="s", ls="--", color=_PALETTE[1 + i],
                    label=_EXTRA_CURVES[col])
        seed = next((v for r_, v in points if r_ == 0), None)
        if seed is not None:
            ax.axhline(seed, color="#666666", ls=":", label=f"seed-only student (round 0): {seed:.3f}")
        if ceiling is not None:
            ax.axhline(ceiling, color=_PALETTE[3], ls="--", label=f"ceiling (given): {ceiling:.3f}")
        ax.set_ylabel(name)
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
        n_eval = max((r["eval_n"] or 0) for r in run.rounds)
        ax.set_title(f"Learning curve: eval {name} per round ({n_eval} eval rows)", fontsize=11)
    else:
        ax.text(0.5, 0.5, "no eval data: the task had no eval file,\nso no per-round metric was recorded",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_title("Learning curve", fontsize=11)
    _round_ticks(ax, rounds)
    return _plot(fig, "learning_curve", "Learning curve",
                 f"Eval {name} of the student after each round" + (", with seed-only and ceiling lines" if ceiling else ""))


def plot_samples(run: RunData) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    rounds = [r["round"] for r in run.rounds]
    accepted = [r["n_accepted"] or 0 for r in run.rounds]
    ax.bar(rounds, accepted, color=_ACCEPTED_COLOR, label="accepted")
    bottom = list(accepted)
    reasons = sorted({k for r in run.rounds for k in r["rejected_by_reason"]})
    for i, reason in enumerate(reasons):
        counts = [r["rejected_by_reason"].get(reason, 0) for r in run.rounds]
        ax.bar(rounds, counts, bottom=bottom, color=_PALETTE[(i + 3) % len(_PALETTE)], label=f"rejected: {reason}")
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_ylabel("samples")
    ax.set_title("Samples per round: accepted, and rejected by reason (round 0: seeds)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _round_ticks(ax, rounds)
    return _plot(fig, "samples_per_round", "Accepted and rejected per round", "Stacked bars of accepted and rejected samples per round")


def plot_labels(run: RunData, counts: dict[int, Counter]) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    rounds = sorted(counts)
    total = Counter()
    for c in counts.values():
        total.update(c)
    shown = [lab for lab in run.labels if total[lab]]
    shown = sorted(shown, key=lambda lab: -total[lab])[:MAX_LEGEND] if len(shown) > MAX_LEGEND else shown
    series = [(lab, [counts[r][lab] for r in rounds]) for lab in shown]
    rest = [sum(v for k, v in counts[r].items() if k not in shown) for r in rounds]
    if any(rest):
        series.append(("other", rest))
    bottom = [0] * len(rounds)
    for i, (lab, values) in enumerate(series):
        ax.bar(rounds, values, bottom=bottom, color=_PALETTE[i % len(_PALETTE)], label=lab)
        bottom = [b + v for b, v in zip(bottom, values)]
    what, counted = _COUNTED[run.rules.name]
    ax.set_ylabel(counted)
    ax.set_title(f"{what[0].upper() + what[1:]}, per round", fontsize=11)
    if series:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _round_ticks(ax, rounds)
    return _plot(fig, "label_distribution", "Label distribution per round",
                 f"Stacked bars of {what} in each round")


def plot_student(run: RunData, ev: dict) -> Plot | None:
    if ev.get("source") is None:
        return None
    if "confusion" not in ev:  # NER: P/R/F1 per entity type
        per = ev["report"]["per_label"]
        types = [t for t in run.labels if t in per]
        fig = _figure(7.5, max(2.4, 0.5 * len(types) + 1.2))
        ax = fig.add_subplot()
        y = list(range(len(types)))
        for j, (key, color) in enumerate((("precision", _PALETTE[0]), ("recall", _PALETTE[1]), ("f1", _PALETTE[2]))):
            ax.barh([v + (j - 1) * 0.27 for v in y], [per[t][key] for t in types], height=0.27, color=color, label=key)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{t} ({per[t]['support']})" for t in types])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"Latest student: entity P/R/F1 per type (micro F1 {ev['report']['f1']:.3f})", fontsize=11)
        return _plot(fig, "student_eval", "Latest student: per-type F1", "Bars of precision, recall and F1 per entity type")
    labels, matrix = run.labels, ev["confusion"]
    n = len(labels)
    size = min(12.0, max(4.5, 0.45 * n + 2.5))
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = list(range(n))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    fontsize = 9 if n <= 12 else 6
    ax.set_xticklabels(labels, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        top = max((max(row) for row in matrix), default=0)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=fontsize,
                        color="white" if top and matrix[i][j] > top / 2 else "black")
    acc = ev["report"]["accuracy"]
    ax.set_title(f"Latest student: confusion matrix (accuracy {acc:.3f}, n={ev['n']})", fontsize=11)
    return _plot(fig, "student_eval", "Latest student: confusion matrix", "Confusion matrix of the latest student")


def plot_hardness(run: RunData, hard: dict) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    rounds = [r["round"] for r in run.rounds if r["round"] > 0]
    for j, (intent, color) in enumerate((("hard", _PALETTE[3]), ("easy", _PALETTE[0]))):
        xs, ys = [], []
        for r in rounds:
            right, n = hard.get(r, {}).get(intent, (0, 0))
            if n:
                xs.append(r + (j - 0.5) * 0.38)
                ys.append(right / n)
                if len(rounds) <= 30:  # "0/4" is not the same as no samples
                    ax.text(xs[-1], ys[-1] + 0.02, f"{right}/{n}", ha="center", va="bottom", fontsize=7)
        ax.bar(xs, ys, width=0.38, color=color, label=f"{intent} samples")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share right" + _RIGHT_MEANS[run.rules.name])
    ax.set_title("Student right on the new samples before training on them (vs teacher labels)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if rounds:
        _round_ticks(ax, rounds)
    ax.set_xlabel("round")
    return _plot(fig, "hardness", "Were the hard examples hard?",
                 "Share of each round's hard and easy samples the student already predicted right")


def plot_teacher(run: RunData) -> Plot:
    fig = _figure(9.0, 3.4)
    left, right = fig.subplots(1, 2)
    rounds = [r["round"] for r in run.rounds]
    prompt = [run.call_stats.get(r, {}).get("prompt_tokens", 0) for r in rounds]
    completion = [run.call_stats.get(r, {}).get("completion_tokens", 0) for r in rounds]
    left.bar(rounds, prompt, color=_PALETTE[0], label="prompt")
    left.bar(rounds, completion, bottom=prompt, color=_PALETTE[1], label="completion")
    left.set_ylabel("tokens")
    left.set_ylim(0, max([p + c for p, c in zip(prompt, completion)] + [1]) * 1.3)  # room for the legend
    left.set_title("Teacher tokens per round", fontsize=10)
    left.legend(fontsize=8)
    _round_ticks(left, rounds)
    failed = [run.call_stats.get(r, {}).get("n_failed", 0) for r in rounds]
    ok = [run.call_stats.get(r, {}).get("n_calls", 0) - f for r, f in zip(rounds, failed)]
    right.bar(rounds, ok, color=_ACCEPTED_COLOR, label="ok calls")
    right.bar(rounds, failed, bottom=ok, color=_PALETTE[3], label="failed calls")
    right.set_ylabel("calls")
    right.set_ylim(0, max([o + f for o, f in zip(ok, failed)] + [1]) * 1.35)
    twin = right.twinx()
    timed = [r for r in rounds if run.call_stats.get(r, {}).get("n_calls")]
    twin.plot(timed, [run.call_stats[r]["latency_mean_s"] for r in timed], color="black", marker="o",
              label="mean latency (s)")
    twin.set_ylabel("mean latency (s)")
    twin.set_ylim(bottom=0)
    handles = right.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    right.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="best")
    right.set_title("Teacher calls and latency per round", fontsize=10)
    _round_ticks(right, rounds)
    return _plot(fig, "teacher_cost", "Teacher tokens, calls and latency", "Tokens, calls and latency of the teacher per round")


def plot_confidence(run: RunData) -> Plot | None:
    """How sure the teacher was of the labels it gave: accepted vs rejected samples, and the student's
    agreement (before training) by confidence. None when no sample carries a teacher confidence."""
    scored = [s for s in run.samples if s.get("teacher_confidence") is not None]
    if not scored:
        return None
    fig = _figure(9.0, 3.4)
    left, right = fig.subplots(1, 2)
    bins = [i / 20 for i in range(21)]
    accepted = [s["teacher_confidence"] for s in scored if s["status"] == "accepted"]
    rejected = [s["teacher_confidence"] for s in scored if s["status"] != "accepted"]
    left.hist([accepted, rejected], bins=bins, stacked=True, color=[_ACCEPTED_COLOR, _PALETTE[3]],
              label=[f"accepted ({len(accepted)})", f"rejected ({len(rejected)})"])
    left.set_xlabel("teacher's probability of its label")
    left.set_ylabel("samples")
    left.set_title("Teacher confidence of the labels it gave", fontsize=10)
    left.legend(fontsize=8, loc="upper left")
    predicted = [s for s in scored if s["status"] == "accepted" and s[run.pred] is not None]
    edges = [0.0, 0.6, 0.8, 0.9, 0.95, 0.99, 1.0001]
    shares, names = [], []
    for lo, hi in zip(edges, edges[1:]):
        group = [s for s in predicted if lo <= s["teacher_confidence"] < hi]
        shares.append(sum(s[run.pred] == s[run.target] for s in group) / len(group) if group else 0.0)
        names.append(f"{lo:.2f}-{min(hi, 1.0):.2f}\n(n={len(group)})")
    right.bar(range(len(shares)), shares, color=_PALETTE[0])
    right.set_xticks(range(len(shares)), names, fontsize=7)
    right.set_ylim(0, 1.05)
    right.set_ylabel("student agreed (before training)")
    right.set_title("Student agreement by teacher confidence", fontsize=10)
    return _plot(fig, "teacher_confidence", "Teacher confidence",
                 "Histogram of the teacher's probability of each label it gave, and how often the student agreed")
