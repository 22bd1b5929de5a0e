"""`evokd report`: read the run, compute, draw, render, and write the page and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from evokd.errors import EvokdError
from evokd.export import atomic_target
from evokd.report.data import hardness, label_counts, latest_student_eval, load_run
from evokd.report.page import render_html
from evokd.report.plots import (plot_confidence, plot_hardness, plot_labels, plot_learning_curve, plot_samples,
                                plot_student, plot_teacher)
from evokd.runs import metric_of

REPORT_NAME = "report.html"


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
    plots += [p for p in (plot_student(run, ev), plot_confidence(run)) if p is not None]
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
