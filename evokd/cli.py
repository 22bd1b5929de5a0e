"""Command line: one command per job; each parses options and calls one library function.

Heavy libraries are imported inside the commands, so `evokd predict` and `evokd eval` need
only onnxruntime and numpy.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path

import click

import evokd  # noqa: F401  (applies the offline environment first)
from evokd.errors import EvokdError


def _fail(message: str, code: int = 2):
    click.echo(f"evokd: error: {message}", err=True)
    sys.exit(code)


def friendly_errors(fn):
    """Turn expected errors into one line on stderr and exit code 2; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EvokdError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("evokd: interrupted; committed rounds are kept, re-run the same command to resume", err=True)
            sys.exit(130)

    return wrapper


class _Group(click.Group):
    """Remembers the raw arguments so a model card can quote the exact command."""

    raw_args: list[str] = []

    def main(self, args=None, *a, **kw):
        _Group.raw_args = list(sys.argv[1:] if args is None else args)
        return super().main(args, *a, **kw)


def _command_line() -> str:
    return "evokd " + " ".join(shlex.quote(a) for a in _Group.raw_args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(evokd.__version__, prog_name="evokd")
def main():
    """evokd: an LLM teacher writes data aimed at a small student's mistakes; the student ships as ONNX.

    \b
    Example:
      evokd generate datasets/sst2/task.yaml --rounds 3 --per-round 8 --out runs/sst2
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --student tfidf --out students/sst2
      evokd predict students/sst2 "a gorgeous, witty film"
    """


# generate ------------------------------------------------------------------------------------
@main.command()
@click.argument("task_file", metavar="TASK.yaml", type=click.Path(path_type=Path))
@click.option("--teacher", default="local", show_default=True,
              help="'local' (embedded offline model, extra [local]) or any DSPy model string, e.g. openai/gpt-4o-mini.")
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(0, 1000), help="Total rounds (resume continues up to this).")
@click.option("--per-round", default=8, show_default=True, type=click.IntRange(1, 10_000), help="Texts generated per round.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory [default: datasets/<task name>/generated].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for sampling and rollout ids.")
@click.option("--student", default=None, help="Student retrained every round [default: tfidf; tagger for NER].")
@click.option("--near-dup", default=0.9, show_default=True, type=click.FloatRange(0.0, 1.0, min_open=True),
              help="Cosine similarity at or above which a text is a near-duplicate.")
@click.option("--easy/--no-easy", default=True, show_default=True, help="Ask for easy texts besides hard ones (paper ablation).")
@click.option("--correct-feedback/--no-correct-feedback", default=True, show_default=True,
              help="Show the analysis what the student got right (paper ablation).")
@click.option("--review-every", default=2, show_default=True, type=click.IntRange(0, 1000),
              help="Replay earlier hard mistakes in the feedback every N rounds; 0 turns review off (paper ablation).")
@click.option("--separate-labeling/--no-separate-labeling", default=True, show_default=True,
              help="Label texts in a separate teacher call (paper ablation).")
@click.option("--label-votes", default=1, show_default=True, type=click.IntRange(1, 5),
              help="Label each text this many times and keep it only if every vote agrees (guards against a weak teacher).")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(0.0, 2.0), help="Teacher sampling temperature.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@friendly_errors
def generate(task_file, teacher, api_base, rounds, per_round, out_dir, seed, student, near_dup, easy, correct_feedback,
             review_every, separate_labeling, label_votes, temperature, quiet):
    """Run the EvoKD loop and build an evolving, deduplicated labeled dataset.

    Writes DIR/evokd.duckdb (samples, rounds, teacher calls), DIR/dataset.jsonl (accepted rows)
    and DIR/rounds.jsonl (per-round eval metrics). Re-running on the same DIR resumes after the
    last committed round.

    \b
    Example:
      evokd generate datasets/sst2/task.yaml --rounds 2 --per-round 8 --out runs/sst2
      evokd generate datasets/trec/task.yaml --teacher openai/gpt-4o-mini --rounds 5 --out runs/trec
    """
    from evokd.loop import EvoKD, LoopConfig
    from evokd.students import STUDENTS
    from evokd.task import load_task
    from evokd.teacher.lm import make_lm

    task = load_task(task_file)
    task.seed_rows()
    task.eval_rows()
    if student is not None and student not in STUDENTS:
        raise EvokdError(f"--student {student!r}: expected one of: {', '.join(STUDENTS)}")
    out_dir = out_dir or Path("datasets") / task.name / "generated"
    config = LoopConfig(rounds=rounds, per_round=per_round, seed=seed, student=student, near_dup_threshold=near_dup,
                        use_easy=easy, correct_feedback=correct_feedback, review_every=review_every,
                        separate_labeling=separate_labeling, label_votes=label_votes)
    lm = make_lm(teacher, api_base=api_base, temperature=temperature)
    from evokd.progress import RoundProgress

    with RoundProgress(quiet=quiet) as progress:
        loop = EvoKD(task, out_dir, config, teacher_lm=lm, teacher_name=teacher, api_base=api_base, progress=progress)
        rounds_done = loop.run()
    if not quiet:
        from evokd.progress import print_summary

        print_summary(rounds_done, out_dir)


# distill -------------------------------------------------------------------------------------
@main.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--task", "task_file", required=True, type=click.Path(path_type=Path), help="The task's YAML file.")
@click.option("--student", default=None, help="Student to train [default: tfidf; tagger for NER].")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Student directory to write.")
@click.option("--eval", "eval_path", type=click.Path(path_type=Path), default=None,
              help="Labeled held-out data [default: the task's eval file].")
@click.option("--quiet", is_flag=True, help="Print only the metrics JSON.")
@friendly_errors
def distill(dataset, task_file, student, out_dir, eval_path, quiet):
    """Train a CPU student on a dataset and ship it as ONNX.

    DATASET is a run directory from `evokd generate` or a JSONL file of {"text", "label"} rows.
    Writes model.onnx, student.json, labels.json, metrics.json and MODEL_CARD.md into --out.

    \b
    Example:
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --student tfidf --out students/sst2-tfidf
    """
    from evokd.distill import distill as run_distill
    from evokd.students import STUDENTS
    from evokd.task import load_task

    task = load_task(task_file)
    student = student or ("tagger" if task.is_ner else "tfidf")
    if student not in STUDENTS:
        raise EvokdError(f"--student {student!r}: expected one of: {', '.join(STUDENTS)}")
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(f"· {msg}", err=True))
    metrics = run_distill(dataset, task, student, out_dir, eval_path=eval_path, command=_command_line(), progress=say)
    summary = {k: metrics[k] for k in ("student", "task", "size_bytes")}
    summary["train_n"] = metrics["train"]["n"]
    if "eval" in metrics:
        summary["eval"] = {k: metrics["eval"][k] for k in ("data", "n", "accuracy", "macro_f1", "precision", "recall", "f1")
                           if k in metrics["eval"]}
    summary["latency_ms_p50"] = metrics["latency"]["single_sentence_ms_p50"]
    click.echo(json.dumps(summary))
    if not quiet:
        click.echo(f"wrote {out_dir}/ (model.onnx, student.json, labels.json, metrics.json, MODEL_CARD.md)", err=True)


# predict / eval ------------------------------------------------------------------------------
@main.command()
@click.argument("student_dir", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(path_type=Path), default=None,
              help="JSONL/CSV/Parquet with a 'text' field, or a .txt file with one text per line.")
@friendly_errors
def predict(student_dir, texts, input_file):
    """Predict with a shipped student: one JSON line per input with `label` and `score`.

    \b
    Example:
      evokd predict students/sst2-tfidf "a gorgeous, witty film" "a dull mess"
      evokd predict students/sst2-tfidf --input reviews.jsonl > predictions.jsonl
    """
    from evokd.io import read_texts
    from evokd.runtime import StudentLoadError, load_student

    items = list(texts)
    if input_file is not None:
        items += read_texts(input_file)
    if not items:
        raise EvokdError("no input: give TEXT arguments or --input FILE")
    try:
        runtime = load_student(student_dir)
    except StudentLoadError as exc:
        raise EvokdError(str(exc)) from None
    for start in range(0, len(items), 512):
        chunk = items[start : start + 512]
        for text, out in zip(chunk, runtime.predict(chunk)):
            click.echo(json.dumps({"text": text, **out}, ensure_ascii=False))


@main.command("eval")
@click.argument("student_dir", type=click.Path(path_type=Path))
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="Labeled JSONL/CSV/Parquet.")
@friendly_errors
def eval_cmd(student_dir, data):
    """Evaluate a shipped student on labeled data; prints metrics JSON.

    \b
    Example:
      evokd eval students/sst2-tfidf --data ../shared/data/sst2/test.jsonl
    """
    from evokd.distill import evaluate
    from evokd.runtime import StudentLoadError

    try:
        report = evaluate(student_dir, data)
    except StudentLoadError as exc:
        raise EvokdError(str(exc)) from None
    click.echo(json.dumps(report, indent=2))


# teacher -------------------------------------------------------------------------------------
@main.group()
def teacher():
    """Inspect the available teachers.

    \b
    Example:
      evokd teacher info --json
    """


@teacher.command("info")
@click.option("--no-verify", is_flag=True, help="Skip hashing the local model file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def teacher_info(no_verify, as_json):
    """Show which teachers can run here and the embedded model's path, size and hash.

    \b
    Example:
      evokd teacher info
    """
    from evokd.teacher.local import teacher_info as info

    data = info(verify=not no_verify)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        click.echo(f"{key:>18}: {value}")
    click.echo("            hosted: any DSPy model string, e.g. --teacher openai/gpt-4o-mini "
               "(key from the provider's environment variable)")


if __name__ == "__main__":  # pragma: no cover
    main()
