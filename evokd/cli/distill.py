"""`evokd distill`, `evokd predict` and `evokd eval`: train, use and score a shipped student."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evokd.cli.common import _command_line, friendly_errors
from evokd.errors import EvokdError
from evokd.noise import DEFAULT_NOISE, NOISE_MODES


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--task", "task_file", default=None, type=click.Path(path_type=Path),
              help="The task's YAML file [default: the task the run recorded, when DATASET is a run directory].")
@click.option("--student", default=None,
              help="tfidf, minilm, minilm-tuned, mpnet, mpnet-tuned, spacy-textcat (classification), tagger, "
                   "spacy-ner (NER), or auto: train the candidates for the task kind and keep the best [default: "
                   "the run's own --student when DATASET is a run directory, so the shipped student is the one the "
                   "run measured; else mpnet, tagger for NER]; minilm is ~4x faster to run and less accurate.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Student directory to write.")
@click.option("--eval", "eval_path", type=click.Path(path_type=Path), default=None,
              help="Labeled held-out data [default: the task's eval file]. With --student auto, the candidates are "
                   "compared on it instead of by cross-validation.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Ship a dynamically quantised int8 graph (per-channel), if it keeps accuracy on the eval data.")
@click.option("--int8-max-loss", default=1.0, show_default=True, type=click.FloatRange(0.0),
              help="Accuracy points the int8 graph may lose against the float one before distill refuses it.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A student hyper-parameter (repeatable), e.g. --param C=1.0 or --param fine_tune=setfit (minilm).")
@click.option("--noise", type=click.Choice(NOISE_MODES), default=None,
              help="How the student trains on the teacher's labels (rows with a teacher_confidence): confidence "
                   "(weighted by the teacher's confidence beyond chance), clean (rows cross-validation flags as "
                   "mislabeled dropped), agree (rows the anchored student, fitted on the trusted rows and the label "
                   "descriptions, labels otherwise weigh a tenth), confidence+clean, confidence+agree, fuse (each label "
                   "replaced by the most probable given both the teacher's label, with its confusions estimated by EM, "
                   "and the anchored student's probabilities; weighted by that probability), auto (fuse where EM "
                   "estimates the teacher names some label's texts right less than half the time, confidence "
                   "otherwise), or none. Rows "
                   "without a confidence are always trusted. [default: the run's own --noise when DATASET is a run "
                   f"directory, so the shipped student learns as the run's students did; else {DEFAULT_NOISE}]")
@click.option("--auto-minutes", default=20.0, show_default=True, type=click.FloatRange(0.0, min_open=True),
              help="With --student auto: stop scoring candidates (cheapest first) after this many minutes and "
                   "choose among those scored.")
@click.option("--quiet", is_flag=True, help="Print only the metrics JSON.")
@friendly_errors
def distill(dataset, task_file, student, out_dir, eval_path, quantize, int8_max_loss, params, noise, auto_minutes,
            quiet):
    """Train a CPU student on a dataset and ship it as a self-contained folder.

    DATASET is a run directory from `evokd generate` or a JSONL file of {"text", "label"} rows.
    Writes model.onnx (encoder students: + tokenizer.json; spaCy students: pipeline/ and a wheel instead),
    student.json, labels.json, metrics.json and MODEL_CARD.md into --out.

    The data is taken as users have it: a repeated text is trained on once (where its labels
    disagree, the majority label wins; on a tie, the label seen first), and a text over 20,000
    characters is cut at a word boundary (NER: entities past the cut dropped); eval data keeps its
    repeats. What was merged, resolved or cut is printed ("data" in the JSON summary) and recorded
    in metrics.json and MODEL_CARD.md.

    \b
    Example:
      evokd distill runs/sst2 --out students/sst2
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --out students/sst2
      evokd distill labeled.jsonl.gz --task datasets/sst2/task.yaml --student tfidf --out runs/sst2-tfidf
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --student minilm --quantize int8 --out students/sst2-minilm
      evokd distill runs/trec --task datasets/trec/task.yaml --student auto --out students/trec
      evokd distill runs/sst2 --student minilm-tuned --noise confidence+clean --out students/sst2-tuned
    """
    import yaml

    from evokd.distill import distill as run_distill
    from evokd.noise import run_noise
    from evokd.run_dir import is_run_dir, run_config, run_task
    from evokd.task import load_task

    if task_file is None and not is_run_dir(dataset):
        raise EvokdError(f"{dataset}: --task TASK.yaml is required when DATASET is a file (a run directory records its task)")
    task = load_task(task_file) if task_file is not None else run_task(dataset)
    config = run_config(dataset) if is_run_dir(dataset) and (noise is None or student is None) else None
    if noise is None:  # the run's students weighed its teacher's labels this way (runs from before --noise: plainly)
        noise = run_noise(config) if config is not None else DEFAULT_NOISE
    if student is None and config is not None:  # the student the run retrained every round and measured
        student = config.get("student")
    student = student or task.rules.default_student
    overrides = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise EvokdError(f"--param {item!r}: expected NAME=VALUE, e.g. --param C=1.0")
        try:
            overrides[name.strip()] = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            overrides[name.strip()] = value
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(f"· {msg}", err=True))
    metrics = run_distill(dataset, task, student, out_dir, eval_path=eval_path, command=_command_line(), progress=say,
                          params=overrides, quantize=quantize, int8_max_loss=int8_max_loss, noise=noise,
                          auto_minutes=auto_minutes)
    summary = {k: metrics[k] for k in ("student", "task", "size_bytes")}
    summary["train_n"] = metrics["train"]["n"]
    summary["data"] = {use: d["description"] for use, d in metrics["data"].items()}  # what reading the data changed
    if "selection" in metrics:
        summary["candidates"] = {c["student"]: round(c["score"], 4) if "score" in c else "not scored"
                                 for c in metrics["selection"]["candidates"]}
    if "eval" in metrics:
        summary["eval"] = {k: metrics["eval"][k] for k in ("data", "n", "accuracy", "macro_f1", "precision", "recall", "f1")
                           if k in metrics["eval"]}
    if "quantization" in metrics:
        summary["int8_accuracy_loss_points"] = metrics["quantization"]["accuracy_loss_points"]
    summary["latency_ms_p50"] = metrics["latency"]["single_sentence_ms_p50"]
    click.echo(json.dumps(summary))
    if not quiet:
        files = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in Path(out_dir).iterdir()))
        click.echo(f"wrote {out_dir}/ ({files})", err=True)


# predict / eval ------------------------------------------------------------------------------
@click.command()
@click.argument("student_dir", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(path_type=Path), default=None,
              help="JSONL/CSV/Parquet with a 'text' field, or a .txt file with one text per line.")
@friendly_errors
def predict(student_dir, texts, input_file):
    """Predict with a shipped student: one JSON line per input with `label` and `score`.

    Needs onnxruntime and numpy; a minilm student also needs `tokenizers`, spaCy students spaCy.

    \b
    Example:
      evokd predict runs/demo-sst2-student "a gorgeous, witty film" "a dull mess"
      evokd predict runs/demo-sst2-student --input reviews.jsonl > predictions.jsonl
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


@click.command("eval")
@click.argument("student_dir", type=click.Path(path_type=Path))
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="Labeled JSONL/CSV/Parquet.")
@friendly_errors
def eval_cmd(student_dir, data):
    """Evaluate a shipped student on labeled data; prints metrics JSON.

    \b
    Example:
      evokd eval runs/demo-sst2-student --data datasets/sst2/eval.jsonl
      evokd eval students/mine --data "$EVOKD_DATA/sst2/test.jsonl"
    """
    from evokd.distill import evaluate
    from evokd.runtime import StudentLoadError

    try:
        report = evaluate(student_dir, data)
    except StudentLoadError as exc:
        raise EvokdError(str(exc)) from None
    click.echo(json.dumps(report, indent=2))
