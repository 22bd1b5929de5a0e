"""`evokd distill` scores its eval rows with the shipped graph once: the parity check already runs
the exported ONNX graph on them (they come first in its check texts), so distill takes those
outputs instead of loading the folder and predicting the same rows again. The scores must be
what `evokd eval` gets from the written folder, and with more eval rows than the check holds,
distill runs the folder over them as before. Real students, real onnxruntime sessions, real data."""

import json
from pathlib import Path

import pytest

import evokd.distill as distill_module
import evokd.runtime
from conftest import data_rows, write_jsonl
from evokd.distill import distill, evaluate
from evokd.task import load_task

TREC_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


@pytest.fixture
def trec(tmp_path) -> tuple[Path, Path]:
    """A trec task with 150 real test questions as eval data, and 5 training questions per label."""
    train, seen = [], {}
    for r in data_rows("trec", "train", 3000):
        if seen.get(r["label"], 0) < 5:
            train.append(r)
            seen[r["label"]] = seen.get(r["label"], 0) + 1
    write_jsonl(tmp_path / "seeds.jsonl", train[:12])
    write_jsonl(tmp_path / "eval.jsonl", data_rows("trec", "test", 150))
    task = tmp_path / "task.yaml"
    task.write_text("name: trec-small\nkind: classification\ndescription: Question type.\nlabels:\n"
                    + "".join(f"  {lab}: {lab} questions\n" for lab in TREC_LABELS)
                    + "seeds: seeds.jsonl\neval: eval.jsonl\n", encoding="utf-8")
    return task, write_jsonl(tmp_path / "data.jsonl", train)


@pytest.fixture
def folder_loads(monkeypatch) -> list[Path]:
    """Every student folder distill loads back into its runtime (the real loader still runs)."""
    loads, real = [], evokd.runtime.load_student

    def counting(student_dir, *args, **kwargs):
        loads.append(Path(student_dir))
        return real(student_dir, *args, **kwargs)

    monkeypatch.setattr(evokd.runtime, "load_student", counting)
    return loads


def test_eval_rows_are_scored_from_the_parity_check_and_match_evokd_eval(trec, folder_loads, tmp_path):
    task_file, data = trec
    out = tmp_path / "student"
    metrics = distill(data, load_task(task_file), "minilm", out)
    assert metrics["parity"]["n_checked"] == 150 + 30 and metrics["parity"]["label_agreement"] == 1.0
    assert len(folder_loads) == 1  # for the latency measure only: the eval rows were not predicted again
    again = evaluate(out, task_file.parent / "eval.jsonl")
    assert again["n"] == metrics["eval"]["n"] == 150
    assert again["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])
    assert again["macro_f1"] == pytest.approx(metrics["eval"]["macro_f1"])
    assert json.loads((out / "metrics.json").read_text())["eval"]["accuracy"] == metrics["eval"]["accuracy"]


def test_more_eval_rows_than_the_check_holds_are_run_through_the_folder(trec, folder_loads, tmp_path, monkeypatch):
    task_file, data = trec
    monkeypatch.setattr(distill_module, "PARITY_LIMIT", 100)
    out = tmp_path / "student"
    metrics = distill(data, load_task(task_file), "tfidf", out)
    assert metrics["parity"]["n_checked"] == 100
    assert len(folder_loads) == 2  # the 150 eval rows, then the latency measure
    again = evaluate(out, task_file.parent / "eval.jsonl")
    assert again["n"] == metrics["eval"]["n"] == 150 and again["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])


def test_latency_stops_timing_once_its_seconds_are_spent(trec, tmp_path):
    from evokd.distill import LATENCY_MIN_CALLS, measure_latency

    task_file, data = trec
    out = tmp_path / "student"
    metrics = distill(data, load_task(task_file), "tfidf", out)
    assert metrics["latency"]["n_calls"] == 300  # tfidf answers in well under 5 s / 300
    texts = ["what is the capital of peru ?", "who wrote hamlet ?"]
    cut = measure_latency(out, texts, n=300, max_seconds=0.0)  # no time at all: the minimum is still timed
    assert cut["n_calls"] == LATENCY_MIN_CALLS and 0 < cut["single_sentence_ms_p50"] <= cut["single_sentence_ms_p95"]
