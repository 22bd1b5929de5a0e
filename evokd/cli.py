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
    from evokd.errors import scrub_secrets

    message = " ".join(scrub_secrets(str(message)).split())  # one line, never a key
    click.echo(f"evokd: {'stopped' if code == 3 else 'error'}: {message}", err=True)
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
@click.option("--student", default=None, help="Student retrained every round [default: minilm; tagger for NER].")
@click.option("--strategy", default="evokd", show_default=True, metavar="NAME",
              help="How to spend the budget: evokd, evokd-paper, static, augment, seed-only, evokd-no-{easy,correct,"
                   "review,separate,warmup}, pool-{random,uncertainty,errors,evokd}; `evokd strategies` describes each.")
@click.option("--pool", type=click.Path(path_type=Path), default=None,
              help="Unlabeled in-domain corpus (JSONL/CSV/Parquet with 'text', or .txt; or a folder from `evokd pool "
                   "embed`, vectors already computed): the nearest unused pool texts replace the teacher's; with the "
                   "default strategy this means pool-evokd.")
@click.option("--oracle", is_flag=True, help="Pool strategies: use the pool file's own labels instead of the teacher's "
                                             "(simulation and benchmarks): 'label' for classification, 'entities' "
                                             "or 'tokens' + 'tags' for NER.")
@click.option("--near-dup", default=0.9, show_default=True, type=click.FloatRange(0.0, 1.0, min_open=True),
              help="Cosine similarity at or above which a text is a near-duplicate.")
@click.option("--easy/--no-easy", default=None, help="Ask for easy texts besides hard ones [default: the strategy's].")
@click.option("--correct-feedback/--no-correct-feedback", default=None,
              help="Show the analysis what the student got right [default: the strategy's].")
@click.option("--review-every", default=None, type=click.IntRange(0, 1000),
              help="Replay earlier hard mistakes in the feedback every N rounds; 0 turns review off [default: 2].")
@click.option("--separate-labeling/--no-separate-labeling", default=None,
              help="Label texts in a separate teacher call [default: the strategy's].")
@click.option("--label-votes", default=1, show_default=True, type=click.IntRange(1, 5),
              help="Label each text this many times and keep it only if every vote agrees (guards against a weak teacher).")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(0.0, 2.0), help="Teacher sampling temperature.")
@click.option("--label-temperature", default=0.0, show_default=True, type=click.FloatRange(0.0, 2.0),
              help="Temperature of each text's first labeling call (0: greedy, the most accurate labels from a small "
                   "teacher); further --label-votes and retries sample at --temperature.")
@click.option("--label-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="How classification texts are put to the teacher for labeling: plain (a short question answered "
                   "with a bare label name; a small local teacher labels far better this way) or json (DSPy's "
                   "JSONAdapter, as the other steps).")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Parallel teacher calls within a step (hosted teachers; the embedded teacher runs one at a time).")
@click.option("--rpm", default=None, type=click.FloatRange(0, min_open=True), help="Rate limit: requests per minute to the provider.")
@click.option("--tpm", default=None, type=click.FloatRange(0, min_open=True), help="Rate limit: tokens per minute to the provider.")
@click.option("--timeout", "timeout_s", default=None, type=click.FloatRange(0, min_open=True),
              help="Per-call timeout in seconds (hosted teachers).")
@click.option("--max-retries", default=5, show_default=True, type=click.IntRange(0, 100),
              help="Retries of a call that failed with 429, 5xx, a timeout or a dropped connection (backoff with jitter).")
@click.option("--max-tokens", default=None, type=click.IntRange(1), help="Budget: stop once the run has spent this many tokens.")
@click.option("--max-cost", default=None, type=click.FloatRange(0, min_open=True),
              help="Budget: stop once the run has spent this many USD (provider price table).")
@click.option("--max-calls", default=None, type=click.IntRange(1), help="Budget: stop once the run has sent this many calls.")
@click.option("--prompts", "prompts_path", type=click.Path(path_type=Path), default=None,
              help="Optimised teacher prompts (`evokd optimize --out`, or one shipped in prompts/); each call records "
                   "the state's digest in the store.")
@click.option("--dry-run", is_flag=True, help="Print the estimated calls and tokens of the run and exit; calls no teacher.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True,
              help="Progress as JSON lines on stderr and the per-round summary as JSON on stdout.")
@friendly_errors
def generate(task_file, teacher, api_base, rounds, per_round, out_dir, seed, student, strategy, pool, oracle, near_dup,
             easy, correct_feedback,
             review_every, separate_labeling, label_votes, temperature, label_temperature, label_format, concurrency, rpm, tpm, timeout_s, max_retries,
             max_tokens, max_cost, max_calls, prompts_path, dry_run, quiet, as_json):
    """Run the EvoKD loop and build an evolving, deduplicated labeled dataset.

    Writes DIR/evokd.duckdb (samples, rounds, teacher calls), DIR/dataset.jsonl (accepted rows)
    and DIR/rounds.jsonl (per-round eval metrics). Re-running on the same DIR resumes after the
    last committed round.

    A run stopped by a budget (exit code 3), Ctrl-C or a kill keeps every committed round, and
    the teacher calls of the interrupted round are cached with the run: re-running the same
    command (with a higher limit) continues without paying for them again.

    \b
    Example:
      evokd generate datasets/sst2/task.yaml --rounds 2 --per-round 8 --out runs/sst2
      evokd generate datasets/trec/task.yaml --teacher openai/gpt-4o-mini --rounds 5 --out runs/trec \\
          --concurrency 8 --rpm 500 --max-cost 0.50
      evokd generate datasets/trec/task.yaml --teacher openai/gpt-4o-mini --rounds 5 --dry-run
      evokd generate datasets/trec/task.yaml --strategy pool-errors --pool trec-train.jsonl --oracle --out runs/sim
      evokd generate datasets/trec/task.yaml --prompts prompts/trec.json --out runs/trec-tuned
    """
    from evokd.loop import EvoKD, LoopConfig, needs_teacher
    from evokd.teacher.gateway import GatewayConfig
    from evokd.students import STUDENTS
    from evokd.task import load_task
    from evokd.teacher.lm import make_lm

    task = load_task(task_file)
    task.seed_rows()
    task.eval_rows()
    if student is not None and student not in STUDENTS:
        raise EvokdError(f"--student {student!r}: expected one of: {', '.join(STUDENTS)}")
    out_dir = out_dir or Path("datasets") / task.name / "generated"
    gateway = GatewayConfig(concurrency=concurrency, rpm=rpm, tpm=tpm, timeout_s=timeout_s, max_retries=max_retries,
                            max_tokens=max_tokens, max_cost=max_cost, max_calls=max_calls)
    if pool is not None and not pool.exists():
        raise EvokdError(f"{pool}: --pool not found; expected a JSONL/CSV/Parquet file with a 'text' column, or a "
                         "folder written by `evokd pool embed`")
    try:
        config = LoopConfig(rounds=rounds, per_round=per_round, seed=seed, student=student, strategy=strategy,
                            pool=str(pool) if pool else None, oracle=oracle, near_dup_threshold=near_dup,
                            use_easy=easy, correct_feedback=correct_feedback, review_every=review_every,
                            separate_labeling=separate_labeling, label_votes=label_votes,
                            label_temperature=label_temperature, label_format=label_format, gateway=gateway,
                            prompts=str(prompts_path) if prompts_path else None)
    except ValueError as exc:
        raise EvokdError(f"--strategy {strategy}: {exc}") from None
    if prompts_path is not None:
        from evokd.prompts import load_prompts

        load_prompts(prompts_path, task)  # a bad or mismatched file fails here, before anything runs
    if dry_run:
        _print_estimate(task, config, teacher)
        return
    # No LLM is loaded (or contacted) for strategies that do not call one: seed-only, pool + --oracle.
    lm = make_lm(teacher, api_base=api_base, temperature=temperature, timeout=timeout_s) if needs_teacher(config) else None
    from evokd.progress import JsonProgress, RoundProgress

    with (JsonProgress() if as_json else RoundProgress(quiet=quiet)) as progress:
        loop = EvoKD(task, out_dir, config, teacher_lm=lm, teacher_name=teacher, api_base=api_base, progress=progress)
        rounds_done = loop.run()
    if as_json:
        click.echo(json.dumps(rounds_done, default=str))
    elif not quiet:
        from evokd.progress import print_summary

        print_summary(rounds_done, out_dir, loop.data)


@main.command()
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
              help="Student whose mistakes make a text hard (generate/analyze) [default: minilm; tagger for NER].")
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


@main.group("pool")
def pool_group():
    """Unlabeled pools: embed once, use in many runs (`evokd generate --pool DIR`).

    \b
    Example:
      evokd pool embed "$EVOKD_DATA/banking77/train.jsonl" --out pools/banking77
    """


@pool_group.command("embed")
@click.argument("pool_file", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the Parquet shards and pool.json.")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="local: this process, every core; ray: Ray Data actors (one ONNX encoder each) on a cluster.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray instance).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 100_000), help="Texts per encoder call (each call runs in batches of at most 512 padded tokens).")
@click.option("--shard-rows", default=50_000, show_default=True, type=click.IntRange(100),
              help="Rows per Parquet shard (local) or per input block (ray).")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="onnxruntime threads [local: every core; ray: 1 per actor].")
@click.option("--actors", default=None, type=click.IntRange(1, 10_000), help="Ray: encoder actors [one per cluster CPU].")
@click.option("--quiet", is_flag=True, help="Print only the manifest JSON.")
@friendly_errors
def pool_embed(pool_file, out, executor, address, batch_size, shard_rows, threads, actors, quiet):
    """Embed an unlabeled corpus with the ONNX MiniLM encoder into Parquet shards.

    Each shard row is (pool_id, text, label, text_hash, vector); DuckDB reads them directly, and
    `evokd generate --pool DIR` loads them without embedding again. Every input row is checked
    (one-line error naming file, line and field) and kept; a text over 20,000 characters is cut at
    a word boundary, and pool.json's "data" counts the cuts and the repeated texts. pool.json is
    written last: a folder without it is an interrupted embedding, which re-running the command replaces.

    \b
    Example:
      evokd pool embed my_unlabeled_reviews.jsonl.gz --out pools/reviews
      evokd pool embed "$EVOKD_DATA/sst2/train.jsonl" --out pools/sst2 --executor ray --address auto
      evokd generate datasets/sst2/task.yaml --pool pools/sst2 --oracle --rounds 1 --per-round 8
    """
    from evokd.pool import embed_pool
    from evokd.progress import RowProgress

    with RowProgress(quiet=quiet) as progress:
        manifest = embed_pool(pool_file, out, executor=executor, address=address, batch_size=batch_size,
                              shard_rows=shard_rows, threads=threads, actors=actors, progress=progress)
    if quiet:
        click.echo(json.dumps(manifest))
    else:
        click.echo(f"read {manifest['data']['description']}")
        click.echo(f"{manifest['rows']:,} rows embedded in {manifest['seconds']:.1f} s "
                   f"({manifest['rows'] / max(manifest['seconds'], 1e-9):,.0f} texts/s, {executor}); wrote {out}")


@main.command("strategies")
def strategies_cmd():
    """List the strategies `generate --strategy` and `bench` accept, with what each does.

    \b
    Example:
      evokd strategies
    """
    from evokd.strategies import STRATEGIES

    width = max(len(name) for name in STRATEGIES)
    for s in STRATEGIES.values():
        tags = [t for t, on in (("LLM", s.needs_teacher), ("pool", s.needs_pool)) if on]
        click.echo(f"{s.name:<{width}}  {s.summary}" + (f"  [{', '.join(tags)}]" if tags else ""))


def _print_estimate(task, config, teacher: str) -> None:
    from evokd.estimate import estimate_run
    from evokd.teacher.local import MODEL_NAME

    est = estimate_run(task, config, MODEL_NAME if teacher == "local" else teacher)
    click.echo(f"dry run: {task.name}, {est['rounds']} rounds x {est['per_round']} texts, teacher {teacher}; nothing was sent")
    for s in est["steps"]:
        click.echo(f"  {s['step']:<17} {s['calls_per_round']:>4.3g} call(s)/round   ~{s['prompt_tokens']:>6,} prompt tokens"
                   f"   <= {s['max_completion_tokens']:>5,} completion tokens per call")
    click.echo(f"  calls: {est['calls']:,} expected, {est['calls_worst_case']:,} at worst (every retry and top-up)")
    click.echo(f"  tokens: ~{est['prompt_tokens']:,} prompt + <= {est['completion_tokens_max']:,} completion"
               f" = <= {est['tokens_max']:,}")
    cost = est["cost_usd_max"]
    click.echo(f"  cost: <= ${cost:.4f}" if cost is not None else "  cost: unknown (no price for this model)")
    click.echo(f"  ({est['note']})")


# distill -------------------------------------------------------------------------------------
@main.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--task", "task_file", required=True, type=click.Path(path_type=Path), help="The task's YAML file.")
@click.option("--student", default=None,
              help="tfidf, minilm, spacy-textcat (classification), tagger, spacy-ner (NER), or auto: train the "
                   "candidates for the task kind and keep the best [default: minilm; tagger for NER].")
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
@click.option("--quiet", is_flag=True, help="Print only the metrics JSON.")
@friendly_errors
def distill(dataset, task_file, student, out_dir, eval_path, quantize, int8_max_loss, params, quiet):
    """Train a CPU student on a dataset and ship it as a self-contained folder.

    DATASET is a run directory from `evokd generate` or a JSONL file of {"text", "label"} rows.
    Writes model.onnx (minilm: + tokenizer.json; spaCy students: pipeline/ and a wheel instead),
    student.json, labels.json, metrics.json and MODEL_CARD.md into --out.

    The data is taken as users have it: a repeated text is trained on once (where its labels
    disagree, the majority label wins; on a tie, the label seen first), and a text over 20,000
    characters is cut at a word boundary (NER: entities past the cut dropped); eval data keeps its
    repeats. What was merged, resolved or cut is printed ("data" in the JSON summary) and recorded
    in metrics.json and MODEL_CARD.md.

    \b
    Example:
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --out students/sst2
      evokd distill labeled.jsonl.gz --task datasets/sst2/task.yaml --student tfidf --out runs/sst2-tfidf
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --student minilm --quantize int8 --out students/sst2-minilm
      evokd distill runs/trec --task datasets/trec/task.yaml --student auto --out students/trec
    """
    import yaml

    from evokd.distill import distill as run_distill
    from evokd.students import default_student
    from evokd.task import load_task

    task = load_task(task_file)
    student = student or default_student(task.kind)
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
                          params=overrides, quantize=quantize, int8_max_loss=int8_max_loss)
    summary = {k: metrics[k] for k in ("student", "task", "size_bytes")}
    summary["train_n"] = metrics["train"]["n"]
    summary["data"] = {use: d["description"] for use, d in metrics["data"].items()}  # what reading the data changed
    if "selection" in metrics:
        summary["candidates"] = {c["student"]: round(c["score"], 4) for c in metrics["selection"]["candidates"]}
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
@main.command()
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


@main.command("eval")
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


# report / export / runs / calls ---------------------------------------------------------------
EXPORT_FORMATS = ("jsonl", "csv", "parquet", "conll", "spacy", "hf")  # evokd.export.FORMATS
SAMPLE_SOURCES = ("seed", "generated", "pool")  # evokd.export.SOURCES


def _say(quiet: bool):
    return (lambda msg: None) if quiet else (lambda msg: click.echo(f"· {msg}", err=True))


@main.command()
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


@main.command()
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


@main.command()
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
    numbers compare like with like. Writes RUN/compare.json; re-running reuses the teacher's
    labels while nothing that shaped them changed.

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


@main.command("runs")
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


@main.command("calls")
@click.argument("run_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--round", "round_", type=click.IntRange(0), default=None, help="Only calls of this round.")
@click.option("--step", default=None, help="Only this step: analyze, generate, generate_labeled or label.")
@click.option("--failed", is_flag=True, help="Only failed calls (with their errors).")
@click.option("--last", type=click.IntRange(1), default=None, help="Only the last N calls after the filters.")
@click.option("--json", "as_json", is_flag=True, help="Print the calls as a JSON list.")
@friendly_errors
def calls(run_dir, round_, step, failed, last, as_json):
    """Show a run's teacher call log: step, attempt, model, tokens, latency, ok or the error.

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


# bench ---------------------------------------------------------------------------------------
@main.command()
@click.argument("config_file", metavar="CONFIG.yaml", type=click.Path(path_type=Path))
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Where the cells' tasks and runs go [default: runs/bench/NAME]; re-running resumes from it.")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True,
              help="Where NAME.md, NAME.json and NAME-DATASET.png are written.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Cells run at once, each in its own process (a local teacher then uses 1 thread per cell).")
@click.option("--render-only", is_flag=True,
              help="Run nothing: write the results of the cells finished so far and list the others.")
@click.option("--only", multiple=True, metavar="STRATEGY",
              help="Run only this strategy's cells now (repeatable); the results list the others as unfinished.")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="local: --jobs processes on this machine; ray: every cell a Ray task on a cluster (extra [ray]).")
@click.option("--address", default=None,
              help="Ray cluster address, e.g. auto or ray://head:10001 [default: RAY_ADDRESS, else a local Ray].")
@click.option("--cpus-per-cell", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Ray: CPUs each cell declares (and the threads its teacher and student use).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The benchmark data folder that configs call $EVOKD_DATA [default: the EVOKD_DATA variable].")
@click.option("--quiet", is_flag=True, help="No progress display; print only the results' path.")
@friendly_errors
def bench(config_file, work_dir, results_dir, jobs, render_only, only, executor, address, cpus_per_cell, data_dir,
          quiet):
    """Benchmark strategies x students on real datasets over several random seeds.

    CONFIG.yaml names the datasets (an example task file for the description and labels, the
    folder of train.jsonl / test.jsonl, usually `$EVOKD_DATA/NAME` in the benchmark data folder that
    --data-dir or the EVOKD_DATA variable names; seeds per label), the random seeds, strategies, students,
    teacher, rounds, per-round budget, eval sample and pool size; paths are relative to it (see
    benchmarks/configs/). Each (dataset, seed) gets a self-contained task folder, each cell an
    `evokd generate` run; finished cells are skipped, so killing and re-running continues where
    it stopped. Classification and NER datasets (seeds per label, or sentences per entity type).
    Writes a table per dataset and student (mean ± sd over seeds, gain over seed-only,
    the ceiling of the whole train split, teacher tokens, seconds), the targets, and a learning
    curve per dataset.

    \b
    Example:
      EVOKD_DATA=~/evokd-data evokd bench benchmarks/configs/smoke.yaml
      evokd bench benchmarks/configs/smoke.yaml --data-dir ~/evokd-data
      evokd bench benchmarks/configs/pool-oracle.yaml --jobs 2
      evokd bench benchmarks/configs/pool-oracle-ner.yaml --jobs 2   # NER: CoNLL-2003, entity F1
      evokd bench benchmarks/configs/local-teacher.yaml --render-only   # tables of what has finished so far
      evokd bench benchmarks/configs/pool-oracle.yaml --executor ray --address auto   # cells on a Ray cluster
    """
    from evokd import datadir
    from evokd.bench import load_config, run_bench
    from evokd.progress import BenchProgress

    datadir.set_from_option(data_dir)  # cells and Ray workers inherit it through the environment
    config, tasks = load_config(config_file)
    work_dir = work_dir or Path("runs") / "bench" / config.name
    with BenchProgress(quiet=quiet) as progress:
        out = run_bench(config, tasks, work_dir=work_dir, results_dir=results_dir, n_workers=jobs,
                        command=_command_line(), events=progress, run=not render_only,
                        only=tuple(only), executor=executor, address=address, cpus_per_cell=cpus_per_cell)
    click.echo(out["paths"]["md"])
    if not quiet:
        click.echo(f"wrote {', '.join(out['paths'].values())}; ran {out['ran']} of {out['jobs']} cells and ceilings "
                   f"(the rest had finished before), work dir {work_dir}", err=True)


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
