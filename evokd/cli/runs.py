"""Reading finished runs: `evokd report`, `export`, `compare`, `runs` and `calls`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evokd.cli.common import friendly_errors


EXPORT_FORMATS = ("jsonl", "csv", "parquet", "conll", "spacy", "hf")  # evokd.export.FORMATS
SAMPLE_SOURCES = ("seed", "generated", "pool")  # evokd.export.SOURCES


def _say(quiet: bool):
    return (lambda msg: None) if quiet else (lambda msg: click.echo(f"· {msg}", err=True))


@click.command()
@click.argument("run_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="HTML file to write [default: DIR/report.html].")
@click.option("--ceiling", type=click.FloatRange(0.0, 1.0), default=None,
              help="Draw a ceiling line at this eval metric, e.g. the student trained on all real labeled data "
                   "(none is drawn otherwise).")
@click.option("--eval", "eval_path", type=click.Path(path_type=Path), default=None,
              help="Labeled data to score the latest student on [default: the task's eval file].")
@click.option("--examples", default=12, show_default=True, type=click.IntRange(0, 10_000),
              help="Samples shown per round beside the weakness analysis (hard ones first).")
@click.option("--retrain/--no-retrain", default=True, show_default=True,
              help="Retrain the latest student on the accepted rows for its confusion matrix on the eval data "
                   "(tfidf: about a second; tagger: longer). Without it the latest batch is scored instead.")
@click.option("--quiet", is_flag=True, help="No progress lines; print only the report's path.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (report, plots, metrics) instead of the path.")
@friendly_errors
def report(run_dir, out, ceiling, eval_path, examples, retrain, quiet, as_json):
    """Write a self-contained HTML report of a run (plots embedded, opens offline).

    Learning curve (with the seed-only line, and --ceiling), accepted and rejected samples per
    round by reason, label distribution, the latest student's confusion matrix (NER: per-type
    F1), each round's weakness analysis beside the examples it produced and whether the student
    got them right before training on them, teacher tokens/calls/latency, and the task. Writes
    DIR/report.html and the plots as PNG in DIR/report_plots/.

    \b
    Example:
      evokd report runs/sst2
      evokd report runs/sst2 --ceiling 0.84 --out sst2-report.html
    """
    from evokd.report import build_report

    summary = build_report(run_dir, out, ceiling=ceiling, eval_path=eval_path, examples=examples, retrain=retrain,
                           progress=_say(quiet or as_json))
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(summary["report"])
    if not quiet:
        click.echo(f"wrote {summary['report']} ({summary['bytes'] / 1e6:.2f} MB) and {len(summary['plots'])} plots in "
                   f"{Path(summary['plots'][0]).parent}/", err=True)


@click.command()
@click.argument("run_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default=None,
              help="Output format [default: from the --out suffix: .jsonl .csv .parquet .conll .spacy].")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="File to write (hf: a folder). Replaced only once the export is complete.")
@click.option("--source", "sources", multiple=True, type=click.Choice(SAMPLE_SOURCES),
              help="Only rows from this source; repeat for several.")
@click.option("--round", "rounds", multiple=True, metavar="N|A-B", help="Only rows of this round or range; repeatable.")
@click.option("--include-rejected", is_flag=True,
              help="Also rejected texts, with status and reject_reason (jsonl, csv, parquet, hf only).")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (format, path, rows).")
@friendly_errors
def export(run_dir, fmt, out, sources, rounds, include_rejected, quiet, as_json):
    """Export a run's rows as JSONL, CSV, Parquet, CoNLL (NER), spaCy DocBin or a Hugging Face folder.

    Rows are the accepted ones, with the columns of DIR/dataset.jsonl. `hf` writes a folder for
    datasets.load_from_disk when `datasets` is installed (pip install "evokd[hf]"), otherwise
    a dataset card plus Parquet that datasets.load_dataset(FOLDER) reads with the same features.

    \b
    Example:
      evokd export runs/sst2 --out sst2.parquet
      evokd export runs/conll --format conll --source generated --out generated.conll
      evokd export runs/sst2 --format hf --round 1-3 --out sst2-hf
    """
    from evokd.export import export_run, parse_rounds

    summary = export_run(run_dir, out, fmt, sources=sources, rounds=parse_rounds(rounds),
                         include_rejected=include_rejected, progress=_say(quiet or as_json))
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        parts = ", ".join(f"{n} {k}" for k, n in summary["by_source"].items())
        click.echo(f"wrote {summary['rows']} rows ({parts}) as {summary['format']} to {summary['out']}", err=True)


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--teacher-n", default=60, show_default=True, type=click.IntRange(0, 100_000),
              help="Eval rows the run's teacher labels (drawn with --seed; 0: students only).")
@click.option("--eval", "eval_path", type=click.Path(path_type=Path), default=None,
              help="Labeled rows to compare on [default: the run's task eval file].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the teacher's sample of eval rows.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def compare(run_dir, teacher_n, eval_path, seed, quiet, as_json):
    """What a run bought: seed-only student, final student and teacher on the same eval rows.

    Trains the run's student on its seeds alone and on everything the run accepted, scores both
    on the eval rows, and has the run's teacher label a sample of those rows with the prompts the
    run labeled with (demonstrations, temperature, format, optimised prompts), so the three
    numbers compare like with like. The teacher's right answers are also counted per label, and a
    label it gets right on fewer than half of its rows is named. Writes RUN/compare.json;
    re-running reuses the teacher's labels while nothing that shaped them changed.

    \b
    Example:
      evokd compare runs/demo-sst2
      evokd compare runs/trec --teacher-n 100 --eval trec-test.jsonl --json
    """
    from evokd.compare import compare as run_compare, render
    from evokd.progress import CompareProgress

    with CompareProgress(quiet=quiet or as_json) as progress:
        result = run_compare(run_dir, teacher_n=teacher_n, eval_path=eval_path, seed=seed, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    for line in render(result):
        click.echo(line)


@click.command("runs")
@click.argument("root", required=False, default=".", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@friendly_errors
def runs_cmd(root, as_json):
    """List the runs under ROOT (default: here): task, teacher, rounds, samples, best eval, status.

    Status is complete, partial (re-run `evokd generate` to resume), running (another process
    is writing it) or unreadable.

    \b
    Example:
      evokd runs runs/
      evokd runs --json
    """
    from evokd.progress import print_runs
    from evokd.runs import RUNS_COLUMNS, list_runs, runs_table_rows

    found = list_runs(root)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    elif not found:
        click.echo(f"no runs under {root} (a run is a directory holding evokd.duckdb)", err=True)
    else:
        print_runs(runs_table_rows(found), RUNS_COLUMNS, root)


@click.command("calls")
@click.argument("run_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--round", "round_", type=click.IntRange(0), default=None, help="Only calls of this round.")
@click.option("--step", default=None, help="Only this step: analyze, generate, generate_labeled or label.")
@click.option("--failed", is_flag=True, help="Only failed calls (with their errors).")
@click.option("--last", type=click.IntRange(1), default=None, help="Only the last N calls after the filters.")
@click.option("--json", "as_json", is_flag=True, help="Print the calls as a JSON list.")
@friendly_errors
def calls(run_dir, round_, step, failed, last, as_json):
    """Show a run's teacher call log: step, attempt, model, tokens (and the prompt tokens the teacher already
    held in its cache), latency, ok or the error.

    \b
    Example:
      evokd calls runs/sst2 --round 2
      evokd calls runs/sst2 --failed --json
    """
    from evokd.progress import print_calls
    from evokd.runs import read_calls

    found = read_calls(run_dir, round=round_, step=step, failed=True if failed else None)
    if last is not None:
        found = found[-last:]
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        print_calls(found, run_dir)
