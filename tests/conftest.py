"""Shared fixtures. Real data comes from the slices in tests/data/ (see tests/data/README.md):
gzipped JSONL parts of sst2, trec, banking77 and wnut17, so the tests need nothing outside the repo."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

import evokd  # noqa: F401  (offline environment before anything else loads)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


@pytest.fixture(autouse=True)
def no_benchmark_data_folder():
    """Every test starts without EVOKD_DATA, whatever the shell or an earlier `--data-dir` set: a test
    that needs the benchmark data folder names it (tests/data) itself, so none reads a folder outside
    the repository by accident."""
    saved = os.environ.pop("EVOKD_DATA", None)
    yield
    os.environ.pop("EVOKD_DATA", None)
    if saved is not None:
        os.environ["EVOKD_DATA"] = saved


def read_jsonl(path: Path, limit: int | None = None, skip: int = 0) -> list[dict]:
    """Rows of a JSONL file (gzipped when its name ends in .gz): `limit` rows after the first `skip`."""
    rows = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < skip:
                continue
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def data_file(dataset: str, split: str) -> Path:
    """The test slice of one split of a benchmark dataset: tests/data/DATASET/SPLIT.jsonl.gz."""
    return DATA / dataset / f"{split}.jsonl.gz"


def data_rows(dataset: str, split: str, limit: int | None = None, skip: int = 0) -> list[dict]:
    """Rows of a test slice (data_file), `limit` rows after the first `skip`."""
    return read_jsonl(data_file(dataset, split), limit=limit, skip=skip)


HEAVY_LIBRARIES = ("torch", "sklearn", "transformers", "sentence_transformers", "scipy", "spacy", "onnx", "evokd.students")


def predict_with_heavy_libraries_blocked(student_dir: Path, texts: list[str]) -> list[dict]:
    """`evokd predict STUDENT_DIR TEXT...` in a fresh interpreter where HEAVY_LIBRARIES cannot be
    imported (what a deployed classifier must not need): its JSON lines, or the test fails with stderr."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        BLOCKED = {HEAVY_LIBRARIES!r}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
                    raise ImportError("blocked import: " + name)
        sys.meta_path.insert(0, Block())
        from evokd.cli import main
        main(["predict", {str(student_dir)!r}, *{list(texts)!r}])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# WNUT-17 (social-media NER) stands in for every NER test: it ships with the repo, CoNLL-2003 does not.
NER_TYPES = ["person", "location", "corporation", "product", "creative-work", "group"]


def ner_examples(split: str, n: int | None = None, skip: int = 0, min_tokens: int = 1) -> list[dict]:
    """WNUT-17 sentences as {"text", "entities"} rows: of the sentences with at least one entity and
    `min_tokens` tokens, `n` after the first `skip`."""
    from evokd.ner import tokens_to_example

    rows = [r for r in data_rows("wnut17", split) if len(r["tokens"]) >= min_tokens and set(r["tags"]) != {"O"}]
    rows = rows[skip:] if n is None else rows[skip:skip + n]
    return [tokens_to_example(r["tokens"], r["tags"]) for r in rows]


def write_ner_task(folder: Path, eval_rows: list[dict] | None = None, seeds: str = "seeds.jsonl") -> Path:
    """A WNUT-17 task file in `folder`: the shipped seeds (copied there unless `seeds` names another file
    in the folder) and, when given, `eval_rows` as its eval file."""
    folder.mkdir(parents=True, exist_ok=True)
    if seeds == "seeds.jsonl":
        (folder / "seeds.jsonl").write_text((ROOT / "datasets" / "wnut17" / "seeds.jsonl").read_text(encoding="utf-8"))
    text = ("name: wnut-small\nkind: ner\ndescription: Named entities in social-media posts.\n"
            "labels:\n  person: people\n  location: places\n  corporation: companies\n  product: products\n"
            "  creative-work: titles of songs, films and books\n  group: bands, teams and other groups\n"
            f"seeds: {seeds}\n")
    if eval_rows is not None:
        write_jsonl(folder / "eval.jsonl", eval_rows)
        text += "eval: eval.jsonl\n"
    task = folder / "task.yaml"
    task.write_text(text, encoding="utf-8")
    return task


@pytest.fixture(scope="session")
def sst2_pool() -> list[dict]:
    """600 real SST-2 sentences (train split, full sentences only) for the scripted teacher."""
    rows = [r for r in data_rows("sst2", "train") if len(r["text"].split()) >= 8]
    return rows[:600]


@pytest.fixture
def sst2_task(tmp_path) -> Path:
    """A small sst2 task: 3 seeds per label and 200 real dev sentences as eval."""
    seeds = read_jsonl(ROOT / "datasets" / "sst2" / "seeds.jsonl")[:3] + read_jsonl(ROOT / "datasets" / "sst2" / "seeds.jsonl")[4:7]
    write_jsonl(tmp_path / "seeds.jsonl", seeds)
    write_jsonl(tmp_path / "eval.jsonl", data_rows("sst2", "dev", limit=200))
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
    """A real short wnut17 run (scripted TEST DOUBLE teacher), see tests/made_runs.py."""
    from made_runs import made_run

    return made_run(tmp_path_factory, "ner")
