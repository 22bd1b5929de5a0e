"""Shared fixtures. Real data slices come from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evokd  # noqa: F401  (offline environment before anything else loads)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sst2_pool() -> list[dict]:
    """600 real SST-2 sentences (train split, full sentences only) for the scripted teacher."""
    rows = [r for r in read_jsonl(DATA / "sst2" / "train.jsonl", limit=20000) if len(r["text"].split()) >= 8]
    return rows[:600]


@pytest.fixture
def sst2_task(tmp_path) -> Path:
    """A small sst2 task: 3 seeds per label and 200 real dev sentences as eval."""
    seeds = read_jsonl(ROOT / "datasets" / "sst2" / "seeds.jsonl")[:3] + read_jsonl(ROOT / "datasets" / "sst2" / "seeds.jsonl")[4:7]
    write_jsonl(tmp_path / "seeds.jsonl", seeds)
    write_jsonl(tmp_path / "eval.jsonl", read_jsonl(DATA / "sst2" / "dev.jsonl", limit=200))
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: sst2-small\nkind: classification\n"
        "description: Sentiment of a sentence from a movie review.\n"
        "labels:\n  negative: negative opinion\n  positive: positive opinion\n"
        "seeds: seeds.jsonl\neval: eval.jsonl\n",
        encoding="utf-8",
    )
    return task


@pytest.fixture
def scripted_teacher(sst2_pool):
    """Register the scripted TEST DOUBLE under `--teacher scripted`, backed by real sst2 sentences."""
    from evokd.teacher import lm as lm_module
    from evokd.teacher.scripted import scripted_lm

    def factory(teacher, **settings):
        return scripted_lm(sst2_pool, ["negative", "positive"], seed=1)

    lm_module.register_teacher("scripted", factory)
    yield "scripted"
    lm_module._registry.pop("scripted", None)


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory) -> Path:
    """A real short sst2 run (scripted TEST DOUBLE teacher), see tests/made_runs.py."""
    from made_runs import made_run

    return made_run(tmp_path_factory, "sst2")


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory) -> Path:
    """A real short conll2003 run (scripted TEST DOUBLE teacher), see tests/made_runs.py."""
    from made_runs import made_run

    return made_run(tmp_path_factory, "ner")
