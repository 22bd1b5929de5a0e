"""`evokd bench`: strategies x students on real datasets over several seeds."""

from __future__ import annotations

from pathlib import Path

import click

from evokd.cli.common import _command_line, friendly_errors


@click.command()
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
@click.option("--dataset", "datasets", multiple=True, metavar="NAME",
              help="Run only this dataset's jobs now (repeatable; its task's name); the results list the others "
                   "as unfinished.")
@click.option("--seed", "seeds", multiple=True, type=int, metavar="N",
              help="Run only this random seed's cells and teacher rows now (repeatable; one of the config's seeds); "
                   "the results list the others as unfinished.")
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
def bench(config_file, work_dir, results_dir, jobs, render_only, only, datasets, seeds, executor, address,
          cpus_per_cell, data_dir, quiet):
    """Benchmark strategies x students on real datasets over several random seeds.

    CONFIG.yaml names the datasets (an example task file for the description and labels, the
    folder of train.jsonl / test.jsonl, usually `$EVOKD_DATA/NAME` in the benchmark data folder that
    --data-dir or the EVOKD_DATA variable names; seeds per label), the random seeds, strategies, students,
    teacher, rounds, per-round budget, eval sample and pool size; paths are relative to it (see
    benchmarks/configs/). Each (dataset, seed) gets a self-contained task folder, each cell an
    `evokd generate` run; finished cells are skipped, so killing and re-running continues where
    it stopped. Classification and NER datasets (seeds per label, or sentences per entity type).
    Writes a table per dataset and student (mean ± sd over seeds, the gain over seed-only paired
    per seed, the ceiling of the whole train split, with `teacher_row: true` the teacher's own
    score on the eval rows, teacher tokens, seconds), the targets, and a learning curve per dataset.

    \b
    Example:
      EVOKD_DATA=~/evokd-data evokd bench benchmarks/configs/smoke.yaml
      evokd bench benchmarks/configs/smoke.yaml --data-dir ~/evokd-data
      evokd bench benchmarks/configs/pool-oracle.yaml --jobs 2
      evokd bench benchmarks/configs/pool-oracle-ner.yaml --jobs 2   # NER: CoNLL-2003, entity F1
      evokd bench benchmarks/configs/local-teacher.yaml --render-only   # tables of what has finished so far
      evokd bench benchmarks/configs/local-teacher-30min.yaml --jobs 2 --only static --dataset sst2 --dataset trec
      evokd bench benchmarks/configs/local-teacher-30min-ner.yaml --jobs 2 --seed 1   # one draw now, the others later
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
                        only=tuple(only), datasets=tuple(datasets), seeds=tuple(seeds), executor=executor, address=address,
                        cpus_per_cell=cpus_per_cell)
    click.echo(out["paths"]["md"])
    if not quiet:
        click.echo(f"wrote {', '.join(out['paths'].values())}; ran {out['ran']} of {out['jobs']} jobs (cells, ceilings, "
                   f"teacher rows; the rest had finished before), work dir {work_dir}", err=True)
