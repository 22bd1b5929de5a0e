"""`evokd optimize`: tune the teacher's prompts for `evokd generate --prompts`."""

from __future__ import annotations

from pathlib import Path

import click

from evokd.cli.common import friendly_errors
from evokd.errors import EvokdError


@click.command()
@click.argument("task_file", metavar="TASK.yaml", type=click.Path(path_type=Path))
@click.option("--teacher", default="local", show_default=True,
              help="The teacher whose prompts are tuned: 'local' or a provider/model string (as for generate).")
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1.")
@click.option("--optimizer", default="bootstrap", show_default=True, type=click.Choice(["bootstrap", "mipro", "gepa"]),
              help="bootstrap: DSPy BootstrapFewShot (with --budget N > 1: random search over N demo sets); "
                   "mipro: MIPROv2 (instructions + demos); gepa: GEPA (reflective instruction evolution).")
@click.option("--steps", default="label", show_default=True, metavar="STEP[,STEP]",
              help="Teacher steps to optimise, comma-separated: label, generate, analyze.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Prompt state to write (JSON); a sidecar OUT.meta.json records the scores, optimiser and data.")
@click.option("--dev", "dev_path", type=click.Path(path_type=Path), default=None,
              help="Labeled dev slice (JSONL/CSV/Parquet): half is learned from, half scores the candidates. "
                   "Without it the seeds are both, and the scores are optimistic.")
@click.option("--dev-n", default=None, type=click.IntRange(2),
              help="Use this many dev rows: a seeded sample of the file's rows that are not seeds.")
@click.option("--heldout", "heldout_path", type=click.Path(path_type=Path), default=None,
              help="Labeled rows never used in optimisation: the label step is also scored on them before/after, "
                   "and zero-shot.")
@click.option("--heldout-n", default=300, show_default=True, type=click.IntRange(1),
              help="Held-out rows to score: a seeded sample of the file's rows that are not seeds or dev rows.")
@click.option("--zero-shot", is_flag=True,
              help="With --heldout: also score the labeling step with no demonstrations at all.")
@click.option("--budget", default=None, type=click.IntRange(1),
              help="bootstrap: candidate demo sets; mipro: trials [6]; gepa: metric calls [10 x validation items].")
@click.option("--max-demos", default=None, type=click.IntRange(0, 32),
              help="Few-shot demos per step [label: 2 per label, at most 8; generate/analyze: 2].")
@click.option("--student", default=None,
              help="Student whose mistakes make a text hard (generate/analyze) [default: mpnet; tagger for NER].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for data splits and the optimisers.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Parallel calls for hosted teachers (the local teacher runs one call at a time).")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(0.0, 2.0),
              help="Teacher sampling temperature (keep generate's, which the prompts will run with).")
@click.option("--label-temperature", default=0.0, show_default=True, type=click.FloatRange(0.0, 2.0),
              help="Temperature of the label step (keep generate's --label-temperature; 0 is greedy).")
@click.option("--label-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="How the label step is put to the teacher (keep generate's --label-format).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Call cache: re-running after a kill replays the calls already made [default: runs/optimize/OUT-NAME].")
@click.option("--max-tokens", default=None, type=click.IntRange(1),
              help="Budget: stop once the optimisation has spent this many teacher tokens (re-run with more to go on).")
@click.option("--max-calls", default=None, type=click.IntRange(1), help="Budget: stop after this many teacher calls.")
@click.option("--max-cost", default=None, type=click.FloatRange(0, min_open=True),
              help="Budget: stop after this many USD (hosted teachers with a known price).")
@click.option("--quiet", is_flag=True, help="No progress display; print only the path of the state written.")
@friendly_errors
def optimize(task_file, teacher, api_base, optimizer, steps, out, dev_path, dev_n, heldout_path, heldout_n, zero_shot, budget,
             max_demos, student, seed, threads, temperature, label_temperature, label_format, work_dir, max_tokens, max_calls, max_cost, quiet):
    """Tune the teacher's prompts with DSPy's optimisers and save them for `evokd generate --prompts`.

    The label step is scored by the teacher's labeling accuracy (entity F1 for NER) against gold;
    the generate step by the yield of its batches (valid, new, labeled as intended, and hard for the
    student when asked to be); the analyze step by the yield of the hard texts written from its
    analysis. A program that scores below the unoptimised one on the validation items is not kept.
    Re-running the same command after a kill replays the calls already made from the work dir.

    \b
    Example:
      evokd optimize datasets/trec/task.yaml --teacher local --optimizer bootstrap --steps label --out trec.json
      evokd optimize datasets/sst2/task.yaml --optimizer bootstrap --budget 4 --dev dev.jsonl --out prompts/sst2.json
      evokd generate datasets/trec/task.yaml --prompts trec.json --out runs/trec
    """
    import random as _random

    from evokd.optimize import Optimization, OptimizeConfig
    from evokd.progress import OptimizeProgress
    from evokd.teacher.gateway import GatewayConfig
    from evokd.task import load_task
    from evokd.teacher.lm import make_lm

    task = load_task(task_file)
    task.seed_rows()
    try:
        config = OptimizeConfig(steps=[s.strip() for s in steps.split(",") if s.strip()], optimizer=optimizer,
                                budget=budget, max_demos=max_demos, seed=seed, threads=threads, student=student,
                                label_temperature=label_temperature, label_format=label_format)
    except ValueError as exc:
        raise EvokdError(str(exc)) from None
    if out.suffix != ".json":
        raise EvokdError(f"--out {out}: expected a .json file name")

    def rows(path, n, exclude: set[str]):
        """Labeled rows of a file, minus texts already used (seeds, dev), then a seeded sample of n."""
        if path is None:
            return []
        if not Path(path).is_file():
            raise EvokdError(f"{path}: file not found; expected labeled JSONL/CSV/Parquet rows")
        data = [r for r in task.read_rows(path, unique=False) if r["text"] not in exclude]
        if n is not None and n < len(data):
            data = _random.Random(seed).sample(data, n)
        return data

    seen = {r["text"] for r in task.seed_rows()}
    dev = rows(dev_path, dev_n, seen)
    heldout = rows(heldout_path, heldout_n, seen | {r["text"] for r in dev})
    work_dir = work_dir or Path("runs") / "optimize" / out.stem
    lm = make_lm(teacher, api_base=api_base, temperature=temperature)
    with OptimizeProgress(quiet=quiet) as progress:
        meta = Optimization(task, lm, teacher, config, work_dir, dev=dev, heldout=heldout, zero_shot=zero_shot,
                            progress=progress, gateway_config=GatewayConfig(
                                concurrency=threads, max_tokens=max_tokens, max_calls=max_calls, max_cost=max_cost)
                            ).run(out)
    if quiet:
        click.echo(str(out))
        return
    for r in meta["steps"]:
        line = f"{r['step']}: {r['metric']} on {r['n_val']} validation items {r['before']:.3f} -> {r['after']:.3f}, kept the {r['kept']} program ({r['demos']} demos)"
        if r.get("heldout"):
            h = r["heldout"]
            line += f"; held-out ({h['n']}) {h['before']:.3f} -> {h['after']:.3f}"
        click.echo(line)
    if meta.get("zero_shot_heldout"):
        click.echo(f"label: zero-shot on the held-out rows {meta['zero_shot_heldout']['score']:.3f}")
    click.echo(f"{meta['seconds']:.0f} s, {meta['tokens_total']:,} teacher tokens; wrote {out} and "
               f"{out.with_name(out.stem + '.meta.json')}; use it with: evokd generate {task_file} --prompts {out}")
