"""`evokd report`: one self-contained HTML page about a run, plus its plots as PNG files.

The page embeds everything (plots as base64 PNG drawn with matplotlib's Agg renderer, inline CSS,
no script), so it opens offline and can be mailed as one file. It reads the run store read-only.

What the student "got right" is the prediction the store keeps for every new sample: the one the
student made at the start of the round, BEFORE it trained on that sample (the paper's step 1).
That is the measure of whether a "hard" example was hard. The confusion matrix / per-type F1 of
the latest student is recomputed: the student is retrained on the run's accepted rows (what the
loop's last round trained on) and scored on the task's eval data, since the store keeps metrics,
not eval predictions. Without eval data it falls back to the latest batch against teacher labels.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evokd import __version__
from evokd.errors import EvokdError, InputError
from evokd.export import atomic_target
from evokd.runs import metric_of, open_run

REPORT_NAME = "report.html"
MAX_LEGEND = 12  # labels drawn one by one in stacked bars; the rest are summed as "other"
_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
            "#64b5cd", "#1f3b73", "#7a5c00", "#2e7d32"]
_ACCEPTED_COLOR = "#55a868"


@dataclass
class Plot:
    name: str  # file stem of the PNG
    title: str
    alt: str
    png: bytes
    width: int
    height: int


@dataclass
class RunData:
    run_dir: Path
    info: dict
    rounds: list[dict]
    samples: list[dict]  # accepted and rejected
    call_stats: dict[int, dict]
    failed_calls: list[dict]

    @property
    def ner(self) -> bool:
        return self.info["task_kind"] == "ner"

    @property
    def labels(self) -> list[str]:
        return [lab["name"] for lab in self.info["task"]["labels"]]

    @property
    def target(self) -> str:
        return "entities" if self.ner else "label"

    @property
    def pred(self) -> str:
        return "student_entities" if self.ner else "student_pred"


def load_run(run_dir: str | Path) -> RunData:
    with open_run(run_dir) as store:
        info = store.run_info()
        rounds = store.rounds()
        if info is None or not rounds:
            raise EvokdError(f"{store.path}: the run has no committed round yet; run `evokd generate` first")
        return RunData(Path(run_dir), info, rounds, store.samples(status=None), store.call_stats(),
                       store.calls(failed=True))


def same(a, b, ner: bool) -> bool:
    """The loop's notion of a correct prediction: same label; NER: exactly the same set of spans."""
    if ner:
        key = lambda spans: sorted((s["start"], s["end"], s["label"]) for s in spans or [])  # noqa: E731
        return a is not None and b is not None and key(a) == key(b)
    return a is not None and a == b


# ---------------------------------------------------------------------------------------------
# the latest student


def latest_student_eval(run: RunData, eval_path: str | Path | None, retrain: bool,
                        progress: Callable[[str], None]) -> dict:
    """Predictions of the latest student and their scores, with a note saying what they are."""
    from evokd.metrics import classification_report, entity_report

    note = ""
    if retrain:
        rows, note = _eval_rows(run, eval_path)
        if rows:
            from evokd.students import run_student

            accepted = [s for s in run.samples if s["status"] == "accepted"]
            name = run_student(run.info["config"], "ner" if run.ner else "classification")
            progress(f"training the latest student ({name}) on {len(accepted)} accepted rows")
            try:
                from evokd.students import fit_student, make_student
                from evokd.task import TaskSpec

                student = fit_student(make_student(name), [s["text"] for s in accepted],
                                      [s[run.target] for s in accepted], TaskSpec.model_validate(run.info["task"]))
                pred = list(student.predict([r["text"] for r in rows]))
            except (ValueError, RuntimeError, ImportError) as exc:
                note = f"retraining the {name} student failed ({str(exc).splitlines()[0]})"
            else:
                gold = [r[run.target] for r in rows]
                last = run.rounds[-1]
                where = str(eval_path) if eval_path else Path(run.info["task"]["eval"]).name
                text = (f"The latest student ({name}, retrained on the {len(accepted)} accepted rows that round "
                        f"{last['round']} trained on) on {len(rows)} eval rows from {where}.")
                return _scored(run, gold, pred, "eval", text, classification_report, entity_report)
    latest = [s for s in run.samples if s["status"] == "accepted" and s["source"] != "seed" and s[run.pred] is not None]
    if not latest:
        return {"source": None, "note": (note + "; " if note else "") + "no eval data and no generated samples to score"}
    r = max(s["round"] for s in latest)
    batch = [s for s in latest if s["round"] == r]
    text = (f"No eval predictions ({note or 'retraining turned off'}). Shown instead: the student at the start of "
            f"round {r} on that round's {len(batch)} new accepted samples, predicted before training on them, "
            "against the teacher's labels.")
    return _scored(run, [s[run.target] for s in batch], [s[run.pred] for s in batch], "batch", text,
                   classification_report, entity_report)


def _eval_rows(run: RunData, eval_path) -> tuple[list[dict] | None, str]:
    from pydantic import ValidationError

    from evokd.task import TaskSpec

    try:
        task = TaskSpec.model_validate(run.info["task"])
    except ValidationError as exc:
        return None, f"the stored task spec does not validate ({exc.errors()[0]['msg']})"
    if eval_path is not None:  # the user's own file: its errors are the user's to fix
        return task.read_data(Path(eval_path), "eval")[0], ""
    if task.eval is None:
        return None, "the task has no eval file"
    if not Path(task.eval).is_file():
        return None, f"the task's eval file {task.eval} is not there any more (pass --eval FILE)"
    try:
        return task.read_data(task.eval, "eval")[0], ""  # as the run read it: over-long texts cut
    except InputError as exc:
        return None, f"the task's eval file could not be read ({exc})"


def _scored(run: RunData, gold, pred, source: str, note: str, classification_report, entity_report) -> dict:
    if run.ner:
        return {"source": source, "note": note, "report": entity_report(gold, pred, run.labels), "n": len(gold)}
    labels = run.labels
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    return {"source": source, "note": note, "report": classification_report(gold, pred, labels), "confusion": matrix,
            "n": len(gold)}


# ---------------------------------------------------------------------------------------------
# plots


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
    key, name = metric_of(run.info["task_kind"])
    fig = _figure()
    ax = fig.add_subplot()
    rounds = [r["round"] for r in run.rounds]
    points = [(r["round"], r[key]) for r in run.rounds if r[key] is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=_PALETTE[0], label=f"eval {name}")
        if not run.ner:
            f1 = [(r["round"], r["eval_macro_f1"]) for r in run.rounds if r["eval_macro_f1"] is not None]
            ax.plot([p[0] for p in f1], [p[1] for p in f1], marker="s", ls="--", color=_PALETTE[1], label="eval macro-F1")
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


def label_counts(run: RunData) -> dict[int, Counter]:
    """Accepted labels per round; NER: entity mentions per type."""
    out: dict[int, Counter] = {r["round"]: Counter() for r in run.rounds}
    for s in run.samples:
        if s["status"] != "accepted":
            continue
        c = out.setdefault(s["round"], Counter())
        if run.ner:
            c.update(e["label"] for e in s["entities"] or [])
        else:
            c[s["label"]] += 1
    return out


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
    what = "entity mentions per type" if run.ner else "accepted samples per label"
    ax.set_ylabel("entities" if run.ner else "samples")
    ax.set_title(f"{what[0].upper() + what[1:]}, per round", fontsize=11)
    if series:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _round_ticks(ax, rounds)
    return _plot(fig, "label_distribution", "Label distribution per round",
                 f"Stacked bars of {what} in each round")


def plot_student(run: RunData, ev: dict) -> Plot | None:
    if ev.get("source") is None:
        return None
    if run.ner:
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


def hardness(run: RunData) -> dict[int, dict[str, tuple[int, int]]]:
    """Per round and intent: (right before training, scored) over accepted generated samples."""
    out: dict[int, dict[str, list[int]]] = {}
    for s in run.samples:
        if s["status"] != "accepted" or s["source"] == "seed" or s[run.pred] is None:
            continue
        cell = out.setdefault(s["round"], {}).setdefault(s["intent"] or "?", [0, 0])
        cell[0] += same(s[run.pred], s[run.target], run.ner)
        cell[1] += 1
    return {r: {k: (v[0], v[1]) for k, v in d.items()} for r, d in out.items()}


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
    ax.set_ylabel("share right" + (" (exact spans)" if run.ner else ""))
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


# ---------------------------------------------------------------------------------------------
# HTML


_CSS = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #dde2ea; --bg: #f6f8fb; --ok: #2e7d32; --bad: #c62828; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: #fff; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 17px; margin: 24px 0 6px; } h4 { font-size: 14px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.meta { color: var(--muted); margin: 0 0 12px; }
nav { margin: 12px 0; font-size: 14px; } nav a { margin-right: 14px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 140px; }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 13px; }
figure { margin: 12px 0; } figure img { box-sizing: content-box; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption, .note { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.analysis { white-space: pre-wrap; background: #fffbe8; border: 1px solid #eadf9e; border-radius: 6px; padding: 10px 14px; font-size: 14px; }
.analysis.missing { background: var(--bg); border-color: var(--line); color: var(--muted); }
.round { border-left: 3px solid var(--line); padding-left: 14px; margin: 18px 0; }
.yes { color: var(--ok); font-weight: 600; } .no { color: var(--bad); font-weight: 600; } .rej { color: var(--muted); }
mark { background: #e3ecff; border-radius: 3px; padding: 0 2px; } mark sup { font-size: 10px; color: #334; margin-left: 2px; }
td.text { max-width: 520px; }
code { background: var(--bg); padding: 0 4px; border-radius: 3px; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; padding-bottom: 30px; }
"""


def _e(value) -> str:
    """Escape for HTML text (quotes kept as they are: text in elements only, never in attributes)."""
    return html.escape("" if value is None else str(value), quote=False)


def _setting(key: str, value) -> str:
    """A run setting as the report's table shows it; "data" (what reading the eval and pool data
    changed, evokd.io.ReadReport) as its one-line descriptions."""
    if key == "data" and isinstance(value, dict):
        return "; ".join(f"{use}: {d.get('description', d)}" for use, d in value.items())
    return str(value).lower() if isinstance(value, bool) else _num(value)


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(), cls: str = "") -> str:
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            raw = cell if isinstance(cell, _Html) else _e(_num(cell))
            cells.append(f'<td class="num">{raw}</td>' if i in numeric else f"<td>{raw}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class _Html(str):
    """Markup that `_table` must not escape."""


def _img(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure id="plot-{plot.name}"><img src="data:image/png;base64,{data}" alt="{html.escape(plot.alt)}" '
            f'width="{plot.width}" height="{plot.height}"><figcaption>{_e(plot.title)}</figcaption></figure>')


def _spans_html(text: str, spans) -> _Html:
    if spans is None:
        return _Html('<span class="rej">–</span>')
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        out.append(_e(text[pos:s["start"]]))
        out.append(f"<mark>{_e(text[s['start']:s['end']])}<sup>{_e(s['label'])}</sup></mark>")
        pos = s["end"]
    out.append(_e(text[pos:]))
    return _Html("".join(out))


def _right(s: dict, run: RunData) -> _Html:
    if s["status"] != "accepted" or s[run.pred] is None:
        return _Html('<span class="rej">–</span>')
    return _Html('<span class="yes">yes</span>' if same(s[run.pred], s[run.target], run.ner) else '<span class="no">no</span>')


def _examples_table(run: RunData, rows: list[dict]) -> str:
    table_rows = []
    for s in rows:
        status = "accepted" if s["status"] == "accepted" else f"rejected: {s['reject_reason']}"
        if run.ner:
            notes = ", ".join(f"{n[0]!r} {n[1]}: {n[2]}" for n in (s["label_notes"] or []) if isinstance(n, list) and len(n) >= 3)
            table_rows.append([s["intent"], _spans_html(s["text"], s["entities"] if s["status"] == "accepted" else None),
                               _spans_html(s["text"], s["student_entities"]), _right(s, run),
                               status + (f" (unplaced mentions: {notes})" if notes else "")])
        else:
            label = s["label"] if s["status"] == "accepted" else s["teacher_label"]
            table_rows.append([s["intent"], s["text"], label, s["student_pred"], _right(s, run), status])
    if run.ner:
        headers = ["intent", "text with the teacher's entities", "student's entities (before training)",
                   "student right?", "status"]
    else:
        headers = ["intent", "text", "teacher label", "student said (before training)", "student right?", "status"]
    return _table(headers, table_rows, cls="examples")


def _round_section(run: RunData, r: dict, prev: dict | None, hard: dict, examples: int) -> str:
    key, name = metric_of(run.info["task_kind"])
    value = r[key]
    delta = ""
    if value is not None and prev is not None and prev[key] is not None:
        delta = f" ({value - prev[key]:+.3f} vs round {prev['round']})"
    parts = [f'<section class="round" id="round-{r["round"]}"><h3>Round {r["round"]}</h3>',
             f'<p class="meta">eval {name}: {_num(value)}{_e(delta)} · accepted {r["n_accepted"]}, rejected '
             f'{r["n_rejected"]} · {r["train_size"]} training rows after the round · {_num(r["seconds"], 1)} s</p>']
    fb = ""
    if r["feedback_size"]:
        fb = (f"It saw the student's predictions on {r['feedback_size']} samples of the previous batch "
              f"({_num(r['feedback_accuracy'])} right).")
    parts.append("<h4>Teacher's weakness analysis</h4>")
    if r["analysis"]:
        parts.append(f'<div class="analysis">{_e(r["analysis"])}</div>')
    else:
        parts.append('<div class="analysis missing">The analysis call failed or returned nothing; the round aimed at '
                     "the error statistics computed by code instead.</div>")
    if fb:
        parts.append(f'<p class="note">{_e(fb)}</p>')
    rows = [s for s in run.samples if s["round"] == r["round"] and s["source"] != "seed"]
    summary = []
    for intent in ("hard", "easy"):
        right, n = hard.get(r["round"], {}).get(intent, (0, 0))
        if n:
            summary.append(f"{intent}: student right on {right} of {n} accepted before training on them")
    parts.append("<h4>What the teacher produced</h4>")
    if summary:
        parts.append(f"<p>{_e('; '.join(summary))}.</p>")
    if rows:
        shown = sorted(rows, key=lambda s: ({("accepted", "hard"): 0, ("accepted", "easy"): 1}.get(
            (s["status"], s["intent"]), 2), s["id"]))[:examples]
        parts.append(_examples_table(run, shown))
        if len(rows) > len(shown):
            parts.append(f'<p class="note">Showing {len(shown)} of {len(rows)} samples of this round (hard first). All of '
                         f"them: <code>evokd export {_e(run.run_dir)} --format jsonl --round {r['round']} "
                         f"--include-rejected --out round{r['round']}.jsonl</code></p>")
    else:
        parts.append('<p class="note">No samples in this round.</p>')
    parts.append("</section>")
    return "".join(parts)


def render_html(run: RunData, plots: dict[str, Plot], ev: dict, counts: dict[int, Counter], hard: dict,
                ceiling: float | None, examples: int) -> str:
    info, rounds = run.info, run.rounds
    key, name = metric_of(info["task_kind"])
    task = info["task"]
    scored = [(r[key], r["round"]) for r in rounds if r[key] is not None]
    seed = next((r[key] for r in rounds if r["round"] == 0), None)
    final = rounds[-1][key]
    best = max(scored, key=lambda x: (x[0], -x[1])) if scored else None
    n_acc = sum(1 for s in run.samples if s["status"] == "accepted")
    n_seed = sum(1 for s in run.samples if s["status"] == "accepted" and s["source"] == "seed")
    n_rej = sum(1 for s in run.samples if s["status"] != "accepted")
    n_calls = sum(v["n_calls"] for v in run.call_stats.values())
    n_failed = sum(v["n_failed"] for v in run.call_stats.values())
    tokens = sum(v["prompt_tokens"] + v["completion_tokens"] for v in run.call_stats.values())
    seconds = sum(r["seconds"] or 0 for r in rounds)
    done, planned = rounds[-1]["round"], info["config"].get("rounds")
    status = "complete" if planned is None or done >= planned else f"partial ({done} of {planned} rounds; re-run `evokd generate` to resume)"

    cards = [(_num(seed), f"seed-only {name}"), (_num(final), f"{name} after round {done}"),
             (f"{_num(best[0])}" if best else "–", f"best {name}" + (f" (round {best[1]})" if best else "")),
             (str(n_acc), f"accepted rows ({n_seed} seeds)"), (str(n_rej), "rejected texts"),
             (f"{n_calls}", f"teacher calls ({n_failed} failed)"), (f"{tokens:,}", "teacher tokens"),
             (f"{seconds:.0f} s", "total round time")]
    if ceiling is not None:
        cards.insert(3, (_num(ceiling), "ceiling (given)"))
    card_html = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in cards)

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>evokd report: {_e(info['task_name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>evokd report: {_e(info['task_name'])}</h1>",
        f'<p class="meta">{_e(info["task_kind"])} · teacher <code>{_e(info["teacher"])}</code> · rounds {done}'
        f'{"/" + str(planned) if planned is not None else ""} · {_e(status)} · run {_e(info["run_id"])} · started '
        f'{_e(info["created_at"].isoformat(timespec="seconds") if info["created_at"] else "?")} · evokd {_e(info["evokd_version"])}</p>',
        '<nav><a href="#learning">Learning curve</a><a href="#samples">Accepted / rejected</a>'
        '<a href="#labels">Labels</a><a href="#student">Latest student</a><a href="#rounds">Weaknesses per round</a>'
        '<a href="#teacher">Teacher cost</a><a href="#task">Task</a></nav>',
        f'<div class="cards">{card_html}</div></header><main>',
    ]

    # learning curve
    curve_rows = [[r["round"], r["train_size"], r["n_accepted"], *((r["eval_entity_f1"],) if run.ner else
                   (r["eval_accuracy"], r["eval_macro_f1"])), r["feedback_accuracy"], r["batch_student_accuracy"]]
                  for r in rounds]
    metric_heads = ["eval entity F1"] if run.ner else ["eval accuracy", "eval macro-F1"]
    out += ['<section id="learning"><h2>Learning curve</h2>', _img(plots["learning_curve"]),
            '<p class="note">Round 0 is the student trained on the seeds only. '
            + ("The ceiling line is the value given with <code>--ceiling</code>. " if ceiling is not None else
               "No ceiling is drawn: none was given (<code>--ceiling</code>). ")
            + "“New batch right” is the student's accuracy on the round's new samples before training on them "
            "(round 0: out-of-fold on the seeds).</p>",
            _table(["round", "training rows", "accepted", *metric_heads, "feedback right", "new batch right"], curve_rows,
                   numeric=set(range(7))), "</section>"]

    # samples
    reasons = sorted({k for r in rounds for k in r["rejected_by_reason"]})
    out += ['<section id="samples"><h2>Accepted and rejected per round</h2>', _img(plots["samples_per_round"]),
            _table(["round", "generated", "accepted", "rejected", *reasons],
                   [[r["round"], r["n_generated"], r["n_accepted"], r["n_rejected"],
                     *[r["rejected_by_reason"].get(k, 0) for k in reasons]] for r in rounds],
                   numeric=set(range(4 + len(reasons)))), "</section>"]

    # labels
    label_rows = [[r, *[counts[r][lab] for lab in run.labels], sum(counts[r].values())] for r in sorted(counts)]
    out += ['<section id="labels"><h2>' + ("Entity types per round" if run.ner else "Label distribution per round")
            + "</h2>", _img(plots["label_distribution"]),
            _table(["round", *run.labels, "total"], label_rows, numeric=set(range(len(run.labels) + 2))), "</section>"]

    # latest student
    out.append('<section id="student"><h2>Latest student</h2>')
    if ev.get("source") is None:
        out.append(f'<p class="note">{_e(ev["note"])}</p>')
    else:
        out += [_img(plots["student_eval"]), f'<p class="note">{_e(ev["note"])}</p>']
        rep = ev["report"]
        if ev["source"] == "eval" and final is not None:
            now = rep["f1"] if run.ner else rep["accuracy"]
            agree = "the same as" if abs(now - final) < 1e-9 else "differs from"
            out.append(f'<p class="note">Recomputed {name} {_num(now)} {agree} the {_num(final)} stored for round {done}'
                       + ("" if agree == "the same as" else " (a student with random initialisation retrains slightly differently)")
                       + ".</p>")
        if not run.ner and len(run.labels) <= 30:
            out.append(_table(["true \\ predicted", *run.labels],
                              [[lab, *row] for lab, row in zip(run.labels, ev["confusion"])],
                              numeric=set(range(1, len(run.labels) + 1)), cls="confusion"))
        per = rep["per_label"]
        out.append(_table(["type" if run.ner else "label", "precision", "recall", "F1", "support"],
                          [[lab, per[lab]["precision"], per[lab]["recall"], per[lab]["f1"], per[lab]["support"]]
                           for lab in run.labels if lab in per], numeric={1, 2, 3, 4}))
    out.append("</section>")

    # rounds
    out += ['<section id="rounds"><h2>Weakness analysis per round, and the examples it produced</h2>',
            '<p class="note">Each round the teacher reads what the student got wrong and right on the previous batch, '
            "writes its weakness analysis, then hard and easy texts aimed at it. “Student right?” is the prediction "
            "of the student as it was at the start of the round, made before it trained on the sample: a hard "
            "example it already got right was not hard. Rejected texts were never predicted.</p>",
            _img(plots["hardness"])]
    prev = None
    for r in rounds:
        if r["round"] > 0:
            out.append(_round_section(run, r, prev, hard, examples))
        prev = r
    if len(rounds) == 1:
        out.append('<p class="note">Only round 0 (seeds) is committed: no analysis yet.</p>')
    out.append("</section>")

    # teacher
    cost_rows = []
    for r in rounds:
        c = run.call_stats.get(r["round"], {})
        cost_rows.append([r["round"], c.get("n_calls", 0), c.get("n_failed", 0), c.get("prompt_tokens", 0),
                          c.get("completion_tokens", 0), c.get("latency_sum_s", 0.0), c.get("latency_mean_s", 0.0),
                          c.get("latency_max_s", 0.0), r["seconds"]])
    out += ['<section id="teacher"><h2>Teacher tokens, calls and latency</h2>', _img(plots["teacher_cost"]),
            _table(["round", "calls", "failed", "prompt tokens", "completion tokens", "latency total (s)",
                    "latency mean (s)", "latency max (s)", "round time (s)"], cost_rows, numeric=set(range(9)))]
    if run.failed_calls:
        shown = run.failed_calls[:20]
        out += [f"<h3>Failed calls ({len(run.failed_calls)})</h3>",
                _table(["round", "step", "attempt", "error"],
                       [[c["round"], c["step"], c["attempt"], (c["error"] or "")[:300]] for c in shown], numeric={0, 2})]
        if len(run.failed_calls) > len(shown):
            out.append(f'<p class="note">All of them: <code>evokd calls {_e(run.run_dir)} --failed</code></p>')
    out.append("</section>")

    # task
    cfg = info["config"]
    out += ['<section id="task"><h2>Task</h2>',
            f"<p><b>{_e(task['name'])}</b> ({_e(task['kind'])}, language {_e(task.get('language') or 'en')}): "
            f"{_e(task['description'])}</p>",
            _table(["type" if run.ner else "label", "description"], [[lab["name"], lab.get("description") or ""]
                                                                     for lab in task["labels"]]),
            f'<p class="note">Seeds: {_e(Path(str(task.get("seeds"))).name)} · eval: '
            f'{_e(Path(str(task["eval"])).name if task.get("eval") else "none")}</p>',
            "<h3>Run settings</h3>",
            _table(["setting", "value"], [[k, _setting(k, v)] for k, v in cfg.items()]),
            "</section></main>",
            f"<footer>Written by evokd {_e(__version__)} on {_e(_dt.datetime.now().isoformat(timespec='seconds'))} from "
            f"<code>{_e(run.run_dir)}</code>. Self-contained: the plots are embedded, nothing is loaded from the "
            "network.</footer></body></html>"]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# the command


def build_report(run_dir: str | Path, out: str | Path | None = None, *, ceiling: float | None = None,
                 eval_path: str | Path | None = None, examples: int = 12, retrain: bool = True,
                 progress: Callable[[str], None] = lambda msg: None) -> dict:
    """Write the HTML report (default DIR/report.html) and its plots (beside it, in <name>_plots/)."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    if out.is_dir():
        raise EvokdError(f"--out {out}: is a directory; expected an .html file name")
    run = load_run(run_dir)
    ev = latest_student_eval(run, eval_path, retrain, progress)
    progress("drawing the plots")
    counts = label_counts(run)
    hard = hardness(run)
    plots = [plot_learning_curve(run, ceiling), plot_samples(run), plot_labels(run, counts), plot_hardness(run, hard),
             plot_teacher(run)]
    student_plot = plot_student(run, ev)
    if student_plot is not None:
        plots.append(student_plot)
    by_name = {p.name: p for p in plots}
    page = render_html(run, by_name, ev, counts, hard, ceiling, examples)
    plots_dir = out.with_name(f"{out.stem}_plots")
    with atomic_target(plots_dir, directory=True) as tmp:
        for p in plots:
            (tmp / f"{p.name}.png").write_bytes(p.png)
    with atomic_target(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    key, name = metric_of(run.info["task_kind"])
    values = [r[key] for r in run.rounds]
    return {"report": str(out), "bytes": out.stat().st_size, "plots": [str(plots_dir / f"{p.name}.png") for p in plots],
            "rounds": run.rounds[-1]["round"], "metric": name, "seed_metric": values[0], "final_metric": values[-1],
            "student_eval": ev.get("source")}
