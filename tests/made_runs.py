"""Real short runs for the report, export, runs and calls tests.

Everything is real (the EvoKD loop, MiniLM embeddings, DuckDB, the tfidf and tagger students)
except the teacher: `DistinctAnalysisEngine` is the scripted TEST DOUBLE of
`evokd.teacher.scripted`, answering from real SST-2 / WNUT-17 sentences (tests/data), with one change: its
weakness analysis names the call it answers, so every round's analysis is a different text (with
characters HTML must escape) that a report has to show.
"""

from __future__ import annotations

from pathlib import Path

import dspy

from evokd.teacher.scripted import ScriptedEngine

from conftest import NER_TYPES, ROOT, data_rows, ner_examples, read_jsonl, write_jsonl, write_ner_task  # noqa: F401


class DistinctAnalysisEngine(ScriptedEngine):
    """TEST DOUBLE: ScriptedEngine whose weakness analyses differ from call to call."""

    n_analyses = 0

    def answer(self, fields, prompt, rng):
        answer = super().answer(fields, prompt, rng)
        if isinstance(answer, dict) and "weaknesses" in answer:
            self.n_analyses += 1
            answer = {"weaknesses": f"Analysis #{self.n_analyses}: the student mixes up <negation> & \"irony\" "
                                    f"in 'not bad' texts\n- {answer['weaknesses'].splitlines()[0].lstrip('- ')}"}
        return answer


def teacher_lm(pool: list[dict], labels: list[str], **kwargs) -> dspy.LM:
    """A `dspy.LM` backed by the TEST DOUBLE engine."""
    return dspy.LM("scripted/test-double", engine=DistinctAnalysisEngine(pool, labels, **kwargs), cache=False,
                   temperature=0.8)


def sst2_pool() -> list[dict]:
    rows = [r for r in data_rows("sst2", "train") if len(r["text"].split()) >= 8]
    return rows[:600]


def sst2_task(folder: Path) -> Path:
    """3 real seeds per label and 200 real dev sentences as eval (as tests/conftest.py's sst2_task)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = read_jsonl(ROOT / "datasets" / "sst2" / "seeds.jsonl")
    write_jsonl(folder / "seeds.jsonl", seeds[:3] + seeds[4:7])
    write_jsonl(folder / "eval.jsonl", data_rows("sst2", "dev", limit=200))
    task = folder / "task.yaml"
    task.write_text("name: sst2-small\nkind: classification\ndescription: Sentiment of a sentence from a movie review.\n"
                    "labels:\n  negative: negative opinion\n  positive: positive opinion\n"
                    "seeds: seeds.jsonl\neval: eval.jsonl\n", encoding="utf-8")
    return task


def ner_pool() -> list[dict]:
    from evokd.filters import clean_generated

    return [r for r in ner_examples("train", 300, skip=100, min_tokens=6) if clean_generated(r["text"]) == r["text"]]


_made: dict[str, Path] = {}


def made_run(tmp_path_factory, name: str) -> Path:
    """A finished run directory, made once per test session: 'sst2' (3 rounds x 8, 20% label noise, every
    7th teacher call fails and is retried, two label votes) or 'ner' (1 round x 6, one hallucinated mention per label call)."""
    if name in _made:
        return _made[name]
    from evokd.loop import LoopConfig, RoundRunner
    from evokd.task import load_task

    folder = tmp_path_factory.mktemp(f"run-{name}")
    if name == "sst2":
        task = load_task(sst2_task(folder / "task"))
        lm = teacher_lm(sst2_pool(), ["negative", "positive"], seed=1, label_noise=0.2, fail_every=7)
        # noisy votes disagree: rejected rows. The eval guard is off so that every round adds rows, which the
        # report, export and runs tests count (a rolled-back run: tests/test_eval_guard.py).
        config = LoopConfig(rounds=3, per_round=8, label_votes=2, student="tfidf", eval_guard=False)
    elif name == "ner":
        task = load_task(write_ner_task(folder / "task", ner_examples("dev", 80, min_tokens=6)))
        lm = teacher_lm(ner_pool(), NER_TYPES, seed=2, extra_mention="Atlantis")
        config = LoopConfig(rounds=1, per_round=6)
    else:
        raise ValueError(name)
    out = folder / "run"
    RoundRunner(task, out, config, teacher_lm=lm, teacher_name="scripted-test-double").run()
    _made[name] = out
    return out
