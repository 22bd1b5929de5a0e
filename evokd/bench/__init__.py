"""`evokd bench CONFIG.yaml`: strategies x students x datasets x random seeds on real data.

Each random seed draws its own seeds (k per label, texts of 6+ words; NER: k sentences of 8+ words
per entity type, as datasets/make_seeds.py) and its own unlabeled pool from a dataset's train split;
every cell of a dataset is scored on the same sample of its test split (macro-F1 and accuracy, or
entity F1 on NER). A cell is one `evokd generate` run on a self-contained task folder,
so any cell can be reproduced by hand with the command recorded in its cell.json.

Work dir (default runs/bench/NAME), resumable at every level:
  tasks/DATASET-sSEED/                    task.yaml, seeds.jsonl, eval.jsonl, pool.jsonl, prep.json
  cells/DATASET-sSEED/STUDENT/STRATEGY/   the run (evokd.duckdb, ...) and cell.json once finished
  ceiling/DATASET-STUDENT.json            the student trained on the whole train split
  vectors/                                MiniLM vectors of large text sets (.npy, keyed by a hash of the texts)
A finished cell (cell.json) is never run again; an unfinished one resumes after its last committed round.

The package, a module per job (each imports only those before it):
  config     BenchConfig, load_config, the work dir's file names and shared constants
  seeds      the task folders: seeds, eval sample and pool per (dataset, random seed)
  jobs       Cell and Ceiling: planning, finished or not, running one (and the MiniLM vector cache)
  executors  running the jobs: in this process, in worker processes, or on Ray
  aggregate  mean and sd over seeds, learning curves, targets
  render     the Markdown report and the learning-curve PNGs
  runner     run_bench: all of the above, then the result files
  finished   a finished cell read back (its run, draw, task, accepted rows) for the scripts in benchmarks/
"""

from evokd.bench.aggregate import cell_scores, machine, summarize, targets
from evokd.bench.config import (CELL_FILE, EVAL_SAMPLE_SEED, METRIC_NAMES, MIN_SEED_WORDS, NER_MIN_SEED_WORDS, POOL_FILE,
                                PREP_FILE, SCRIPTED, SCRIPTED_NAME, TARGET_POINTS, TASK_FILE, TEST_DOUBLE_NOTE, BenchConfig,
                                DatasetEntry, load_config, metrics_of)
from evokd.bench.executors import Events, first_line_of, run_jobs, run_jobs_ray
from evokd.bench.jobs import Ceiling, Cell, cached_vectors, plan, pool_vectors, run_cell, run_ceiling
from evokd.bench.render import plot_curves, render_markdown
from evokd.bench.runner import run_bench
from evokd.bench.seeds import draw_ner_seeds, draw_seeds, prepare

__all__ = [
    "CELL_FILE", "EVAL_SAMPLE_SEED", "METRIC_NAMES", "MIN_SEED_WORDS", "NER_MIN_SEED_WORDS", "POOL_FILE", "PREP_FILE",
    "SCRIPTED", "SCRIPTED_NAME", "TARGET_POINTS", "TASK_FILE", "TEST_DOUBLE_NOTE", "BenchConfig", "Ceiling", "Cell",
    "DatasetEntry", "Events", "cached_vectors", "cell_scores", "draw_ner_seeds", "draw_seeds", "first_line_of",
    "load_config", "machine", "metrics_of", "plan", "plot_curves", "pool_vectors", "prepare", "render_markdown",
    "run_bench", "run_cell", "run_ceiling", "run_jobs", "run_jobs_ray", "summarize", "targets",
]
