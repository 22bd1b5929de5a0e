"""`evokd generate` (with its --dry-run estimate) and `evokd strategies`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evokd.cli.common import friendly_errors
from evokd.errors import EvokdError
from evokd.noise import DEFAULT_NOISE, NOISE_MODES


@click.command()
@click.argument("task_file", metavar="TASK.yaml", type=click.Path(path_type=Path))
@click.option("--teacher", default="local", show_default=True,
              help="'local' (embedded offline model, extra [local]) or any DSPy model string, e.g. openai/gpt-4o-mini.")
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(0, 1000), help="Total rounds (resume continues up to this).")
@click.option("--per-round", default=8, show_default=True, type=click.IntRange(1, 10_000), help="Texts generated per round.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory [default: datasets/<task name>/generated].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for sampling and rollout ids.")
@click.option("--student", default=None,
              help="Student retrained every round [default: mpnet; tagger for NER]; minilm is ~4x faster to run "
                   "and less accurate (README, Students).")
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
              help="Label each text this many times and keep it only if every vote agrees (guards against a weak teacher). "
                   "The embedded teacher samples later votes from the label probabilities it scored for the first.")
@click.option("--min-confidence", default=None, type=click.FloatRange(0.0, 1.0),
              help="Reject a teacher label whose probability (teacher_confidence) is below this; labels without a "
                   "probability (a provider that returns none) are kept. [default: off]")
@click.option("--calibrate-labels/--no-calibrate-labels", default=True, show_default=True,
              help="Pool strategies without --oracle: divide the teacher's label probabilities by their mean over 50 "
                   "random pool texts before taking its label, so that a label it favours whatever it reads stops "
                   "taking other labels' texts (50 extra labeling calls in round 1; needs every label's probability, "
                   "which the embedded teacher gives and most hosted ones do not).")
@click.option("--noise", type=click.Choice(NOISE_MODES), default=DEFAULT_NOISE, show_default=True,
              help="How the student trains on the teacher's labels: confidence (each text weighted by the teacher's "
                   "confidence beyond chance), clean (texts that cross-validation flags as mislabeled dropped), agree "
                   "(texts the anchored student, fitted on the seeds and the label descriptions, labels otherwise weigh "
                   "a tenth), confidence+clean, confidence+agree, fuse (each label replaced by the most probable given both "
                   "the teacher's label, its confusions estimated by EM, and the anchored student's probabilities; the "
                   "dataset keeps the teacher's), auto (fuse where EM estimates the teacher names some label's texts "
                   "right less than half the time, confidence otherwise, decided every round), or none (every label "
                   "trusted alike). Seeds are always trusted.")
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
@click.option("--max-minutes", default=None, type=click.FloatRange(0, min_open=True),
              help="Time budget: start no new round once the run's committed rounds (earlier sessions included) "
                   "took this many minutes; the run then ends normally (exit code 0), its summary saying so. "
                   "Compares strategies at equal time with a local teacher.")
@click.option("--eval-guard/--no-eval-guard", default=True, show_default=True,
              help="Roll back a round whose texts take the student's score (macro-F1; entity F1 for NER) on the task's "
                   "eval file below the seed-only student's, or 0.02 below the best so far: its texts stay in the store, "
                   "rejected as eval_drop. Runs "
                   "when the eval file has 200+ rows. Turn it off where the eval rows are also the rows you report on "
                   "(a benchmark's test rows).")
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
             review_every, separate_labeling, label_votes, min_confidence, calibrate_labels, noise, temperature, label_temperature, label_format, concurrency, rpm, tpm, timeout_s, max_retries,
             max_tokens, max_cost, max_calls, max_minutes, eval_guard, prompts_path, dry_run, quiet, as_json):
    """Run the EvoKD loop and build an evolving, deduplicated labeled dataset.

    Writes DIR/evokd.duckdb (samples, rounds, teacher calls), DIR/dataset.jsonl (accepted rows)
    and DIR/rounds.jsonl (per-round eval metrics). Re-running on the same DIR resumes after the
    last committed round.

    A run stopped by a budget (exit code 3, after the summary of its committed rounds), Ctrl-C or
    a kill keeps every committed round, and the teacher calls of the interrupted round are cached
    with the run: re-running the same command (with a higher limit) continues without paying for
    them again.

    \b
    Example:
      evokd generate datasets/sst2/task.yaml --rounds 2 --per-round 8 --out runs/sst2
      evokd generate datasets/trec/task.yaml --teacher openai/gpt-4o-mini --rounds 5 --out runs/trec \\
          --concurrency 8 --rpm 500 --max-cost 0.50
      evokd generate datasets/trec/task.yaml --teacher openai/gpt-4o-mini --rounds 5 --dry-run
      evokd generate datasets/sst2/task.yaml --rounds 20 --max-minutes 30 --out runs/sst2-30min
      evokd generate datasets/sst2/task.yaml --rounds 5 --no-eval-guard --out runs/sst2-unguarded
      evokd generate datasets/trec/task.yaml --strategy pool-errors --pool trec-train.jsonl --oracle --out runs/sim
      evokd generate datasets/trec/task.yaml --prompts prompts/trec.json --out runs/trec-tuned
    """
    from evokd.loop import LoopConfig, RoundRunner, needs_teacher
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
                            separate_labeling=separate_labeling, label_votes=label_votes, min_confidence=min_confidence,
                            calibrate_labels=calibrate_labels, noise=noise,
                            label_temperature=label_temperature, label_format=label_format, gateway=gateway,
                            prompts=str(prompts_path) if prompts_path else None, max_minutes=max_minutes,
                            eval_guard=eval_guard)
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
    from evokd.teacher.gateway import BudgetExceeded

    stopped = None  # a spent --max-tokens / --max-calls / --max-cost: the summary of the committed rounds, then exit 3
    with (JsonProgress() if as_json else RoundProgress(quiet=quiet)) as progress:
        loop = RoundRunner(task, out_dir, config, teacher_lm=lm, teacher_name=teacher, api_base=api_base, progress=progress)
        try:
            loop.run()
        except BudgetExceeded as exc:
            stopped = exc
    if as_json:
        click.echo(json.dumps(loop.rounds, default=str))
    elif not quiet:
        from evokd.progress import print_summary

        print_summary(loop.rounds, out_dir, loop.data, loop.unconfirmed, loop.guard_off, loop.time_budget)
    if stopped is not None:
        raise stopped


@click.command("strategies")
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
    from evokd.loop.sources.pool import calibration_applies
    from evokd.teacher.calibration import CALIBRATION_TEXTS
    from evokd.teacher.local import MODEL_NAME

    est = estimate_run(task, config, MODEL_NAME if teacher == "local" else teacher)
    click.echo(f"dry run: {task.name}, {est['rounds']} rounds x {est['per_round']} texts, teacher {teacher}; nothing was sent")
    for s in est["steps"]:
        click.echo(f"  {s['step']:<17} {s['calls_per_round']:>4.3g} call(s)/round   ~{s['prompt_tokens']:>6,} prompt tokens"
                   f"   <= {s['max_completion_tokens']:>5,} completion tokens per call")
    by_round = [sum(r.values()) for r in est["calls_by_round"]]
    if len(set(by_round)) > 1:
        click.echo(f"  calls by round: {', '.join(map(str, by_round))}")
    if config.pool and calibration_applies(config, task.rules):
        click.echo(f"  round 1 also labels up to {CALIBRATION_TEXTS} random pool texts to calibrate the teacher's "
                   "labels (--no-calibrate-labels turns that off)")
    click.echo(f"  calls: {est['calls']:,} expected, {est['calls_worst_case']:,} at worst (every retry and top-up)")
    click.echo(f"  tokens: ~{est['prompt_tokens']:,} prompt + <= {est['completion_tokens_max']:,} completion"
               f" = <= {est['tokens_max']:,}")
    cost = est["cost_usd_max"]
    click.echo(f"  cost: <= ${cost:.4f}" if cost is not None else "  cost: unknown (no price for this model)")
    click.echo(f"  ({est['note']})")
