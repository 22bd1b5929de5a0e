"""The report's HTML page: self-contained (plots as base64 PNG, inline CSS, no script)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections import Counter
from pathlib import Path

from evokd import __version__
from evokd.report.data import RunData, same
from evokd.report.plots import Plot


# what the page calls things, by task kind
_LABEL_HEAD = {"classification": "label", "ner": "type"}
_LABELS_HEADING = {"classification": "Label distribution per round", "ner": "Entity types per round"}
_EVAL_HEADS = {"eval_accuracy": "eval accuracy", "eval_macro_f1": "eval macro-F1", "eval_entity_f1": "eval entity F1"}


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
    return _Html('<span class="yes">yes</span>' if same(s[run.pred], s[run.target], run.rules) else '<span class="no">no</span>')


def _label_row(run: RunData, s: dict, status: str) -> list:
    label = s["label"] if s["status"] == "accepted" else s["teacher_label"]
    confidence = s.get("teacher_confidence")
    return [s["intent"], s["text"], label, "–" if confidence is None else f"{confidence:.2f}", s["student_pred"],
            _right(s, run), status]


def _entities_row(run: RunData, s: dict, status: str) -> list:
    notes = ", ".join(f"{n[0]!r} {n[1]}: {n[2]}" for n in (s["label_notes"] or []) if isinstance(n, list) and len(n) >= 3)
    return [s["intent"], _spans_html(s["text"], s["entities"] if s["status"] == "accepted" else None),
            _spans_html(s["text"], s["student_entities"]), _right(s, run),
            status + (f" (unplaced mentions: {notes})" if notes else "")]


# an example's row in a round's table, and the table's headers, by task kind
_EXAMPLE_ROW = {"classification": _label_row, "ner": _entities_row}
_EXAMPLE_HEADERS = {
    "classification": ["intent", "text", "teacher label", "teacher confidence", "student said (before training)",
                       "student right?", "status"],
    "ner": ["intent", "text with the teacher's entities", "student's entities (before training)", "student right?",
            "status"],
}


def _examples_table(run: RunData, rows: list[dict]) -> str:
    kind = run.rules.name
    table_rows = []
    for s in rows:
        status = "accepted" if s["status"] == "accepted" else f"rejected: {s['reject_reason']}"
        table_rows.append(_EXAMPLE_ROW[kind](run, s, status))
    return _table(_EXAMPLE_HEADERS[kind], table_rows, cls="examples")


def _round_section(run: RunData, r: dict, prev: dict | None, hard: dict, examples: int) -> str:
    key, name = run.rules.headline
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
    key, name = run.rules.headline
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
    eval_columns = run.rules.eval_columns
    curve_rows = [[r["round"], r["train_size"], r["n_accepted"], *(r[c] for c in eval_columns), r["feedback_accuracy"],
                   r["batch_student_accuracy"]] for r in rounds]
    metric_heads = [_EVAL_HEADS[c] for c in eval_columns]
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
    out += ['<section id="labels"><h2>' + _LABELS_HEADING[run.rules.name]
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
            now = rep[run.rules.report_headline]
            agree = "the same as" if abs(now - final) < 1e-9 else "differs from"
            out.append(f'<p class="note">Recomputed {name} {_num(now)} {agree} the {_num(final)} stored for round {done}'
                       + ("" if agree == "the same as" else " (a student with random initialisation retrains slightly differently)")
                       + ".</p>")
        if "confusion" in ev and len(run.labels) <= 30:
            out.append(_table(["true \\ predicted", *run.labels],
                              [[lab, *row] for lab, row in zip(run.labels, ev["confusion"])],
                              numeric=set(range(1, len(run.labels) + 1)), cls="confusion"))
        per = rep["per_label"]
        out.append(_table([_LABEL_HEAD[run.rules.name], "precision", "recall", "F1", "support"],
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
    if "teacher_confidence" in plots:
        out += ["<h3>Teacher confidence</h3>", _img(plots["teacher_confidence"]),
                '<p class="note">The teacher\'s probability of each label it gave (the embedded teacher scores every '
                "label name; a hosted one reports its tokens' probabilities where it can). Labels it was less sure of "
                "are more often wrong: <code>evokd export</code> carries <code>teacher_confidence</code> for filtering or "
                "weighting.</p>"]
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
            _table([_LABEL_HEAD[run.rules.name], "description"], [[lab["name"], lab.get("description") or ""]
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
