"""A finished bench cell read back from its work dir, as the analysis scripts in benchmarks/ use it
(distill_students.py, guard_replay.py, guard_rules.py, head_c.py): its cell.json, its run, its
draw's task folder and task, the rows it accepted and how it weighed the teacher's labels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from evokd.bench.config import CELL_FILE, POOL_FILE, TASK_FILE


@dataclass
class FinishedCell:
    """One finished cell (WORK/cells/DRAW/STUDENT/ROW/) and its draw (WORK/tasks/DRAW/)."""

    record: dict  # its cell.json: dataset, seed, student, strategy, row, rounds, scores
    run: object  # evokd.report.RunData: the run's info, rounds and every sample it stored
    draw_dir: Path  # WORK/tasks/DATASET-sSEED: the draw's task.yaml, seeds, eval rows and pool
    task: object  # evokd.task.TaskSpec of the draw
    accepted: list[dict]  # the samples the run accepted, seeds (round 0) included
    noise: str  # the run's `--noise` (how its student weighed the teacher's labels)
    seed: int  # the run's random seed (its `--seed`), which its students were fitted with

    @property
    def draw(self) -> str:
        """The draw's name, DATASET-sSEED."""
        return self.draw_dir.name

    @property
    def row(self) -> str:
        """Its row in the bench's tables (the strategy's name for cells from before rows had names)."""
        return self.record.get("row") or self.record["strategy"]

    def unseen_pool(self) -> list[dict]:
        """The draw's pool rows (with their gold answers) whose text the run never stored."""
        seen = {s["text"] for s in self.run.samples}
        return [r for r in self.task.read_rows(self.draw_dir / POOL_FILE, unique=False) if r["text"] not in seen]

    def gold_pool(self) -> dict:
        """Each pool text's gold answer (the label, or NER spans)."""
        key = self.task.target_key
        return {r["text"]: r[key] for r in self.task.read_rows(self.draw_dir / POOL_FILE, unique=False)}


def read_cell(cell_dir: Path) -> FinishedCell:
    """The finished cell in `cell_dir` (a folder holding cell.json and the run's store)."""
    from evokd.noise import run_noise
    from evokd.report import load_run
    from evokd.task import load_task

    cell_dir = Path(cell_dir)
    record = json.loads((cell_dir / CELL_FILE).read_text(encoding="utf-8"))
    run = load_run(cell_dir)
    draw_dir = cell_dir.parents[3] / "tasks" / f"{record['dataset']}-s{record['seed']}"  # WORK/cells/DRAW/STUDENT/ROW
    config = run.info["config"]
    return FinishedCell(record, run, draw_dir, load_task(draw_dir / TASK_FILE),
                        [s for s in run.samples if s["status"] == "accepted"], run_noise(config), config.get("seed", 0))
