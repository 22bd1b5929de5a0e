"""MiniLMStudent with the real all-MiniLM-L6-v2: fitting, one-graph ONNX export with parity,
dynamic padding, int8, SetFit fine-tuning, and a runtime that needs only onnxruntime + tokenizers."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import data_rows, predict_with_heavy_libraries_blocked
from evokd import runtime
from evokd.runtime import StudentLoadError, TokenIdFeeds, load_student
from evokd.students import STUDENTS, MiniLMStudent, make_student
from evokd.students.base import quantize_int8
from evokd.students.minilm import MAX_LENGTH, frozen_vectors, setfit_pairs

ROOT = Path(__file__).resolve().parents[1]
EDGE_TEXTS = ["", "   ", "!!!", "Café ÉCOLE naïve", "日本語のテキスト", "emoji 😀 great", "tab\tnew\nline",
              "word " * 400]  # the last one is cut at MAX_LENGTH tokens on both sides


def read(dataset: str, split: str, limit: int) -> tuple[list[str], list[str]]:
    rows = data_rows(dataset, split, limit=limit)
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def sst2_dev():
    return read("sst2", "dev", 300)


@pytest.fixture(scope="module")
def sst2_few():
    texts, labels = read("sst2", "train", 3000)
    keep = [i for i, t in enumerate(texts) if len(t.split()) >= 6][:60]  # 60 sentences: a few-shot regime
    return [texts[i] for i in keep], [labels[i] for i in keep]


@pytest.fixture(scope="module")
def sst2_student(sst2_few):
    return MiniLMStudent().fit(*sst2_few)


@pytest.fixture(scope="module")
def sst2_dir(sst2_student, sst2_dev, tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm")
    sst2_student.save(out, sst2_dev[0][:150] + EDGE_TEXTS)
    return out


def test_learns_sentiment_from_sixty_sentences_better_than_tfidf(sst2_student, sst2_few, sst2_dev):
    from evokd.students import TfidfStudent

    texts, gold = sst2_dev
    accuracy = np.mean([p == g for p, g in zip(sst2_student.predict(texts), gold)])
    tfidf = np.mean([p == g for p, g in zip(TfidfStudent().fit(*sst2_few).predict(texts), gold)])
    assert accuracy > 0.64 and accuracy > tfidf + 0.05, (accuracy, tfidf)  # measured: 0.69 vs 0.50; chance 0.5
    proba = sst2_student.predict_proba(texts[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_ships_one_graph_and_a_tokenizer(sst2_dir, sst2_student):
    files = sorted(p.name for p in sst2_dir.iterdir())
    assert files == ["labels.json", "model.onnx", "student.json", "tokenizer.json"]
    meta = json.loads((sst2_dir / "student.json").read_text())
    assert meta["student"] == "minilm" and meta["input"] == "token_ids" and meta["runtime"] == "onnxruntime"
    assert meta["max_length"] == MAX_LENGTH and meta["fine_tuned"] is False
    assert meta["parity"]["label_agreement"] == 1.0 and meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["parity"]["n_checked_one_at_a_time"] == 50
    import onnx

    graph = onnx.load(str(sst2_dir / "model.onnx"))
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.graph.output] == ["label", "probabilities"]
    ops = {n.op_type for n in graph.graph.node}
    assert {"MatMul", "Softmax", "ReduceSum", "Sigmoid", "Gather", "ArgMax"} <= ops  # encoder, pooling, head, label
    labels = runtime.make_session(sst2_dir / "model.onnx").run(["label"], {
        "input_ids": np.array([[101, 2307, 102]]), "attention_mask": np.array([[1, 1, 1]])})[0]
    assert labels.tolist()[0] in ("negative", "positive")


def test_runtime_matches_pytorch_pipeline_batched_and_one_at_a_time(sst2_dir, sst2_student, sst2_dev):
    student = load_student(sst2_dir)
    texts = sst2_dev[0][150:300] + EDGE_TEXTS
    ref = sst2_student.predict_proba(texts)  # sentence-transformers encode + scikit-learn head
    batched = student.predict_proba(texts)
    np.testing.assert_allclose(batched, ref, atol=1e-4)
    assert [r["label"] for r in student.predict(texts)] == sst2_student.predict(texts)
    single = np.concatenate([student.predict_proba([t]) for t in texts[-30:]])
    np.testing.assert_allclose(single, ref[-30:], atol=1e-4)
    assert student.predict([]) == []


def test_pads_to_the_longest_text_of_each_batch_not_to_128(sst2_dir):
    feeds = load_student(sst2_dir).feeds
    assert isinstance(feeds, TokenIdFeeds)
    [(index, one)] = list(feeds.batches(["a gorgeous film"]))
    assert one["input_ids"].shape == (1, 5) and one["attention_mask"].tolist() == [[1, 1, 1, 1, 1]]
    [(index, two)] = list(feeds.batches(["a gorgeous , witty film", "dull"]))
    assert index == [1, 0]  # sorted by length, shortest first
    assert two["input_ids"].shape == (2, 7)
    assert two["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0], [1] * 7]
    [(_, long)] = list(feeds.batches(["word " * 400]))
    assert long["input_ids"].shape == (1, MAX_LENGTH)
    # sorted by tokens, cut at max_batch_tokens padded tokens (rows x longest)
    texts = [f"text number {i}" for i in range(70)] + ["a much longer text " * (k + 1) for k in range(30)]
    many = list(feeds.batches(texts))
    assert sorted(i for index, _ in many for i in index) == list(range(100))
    assert all(b["input_ids"].size <= feeds.max_batch_tokens for _, b in many)
    widths = [b["input_ids"].shape[1] for _, b in many]
    # the 70 five-token texts and the shortest long one (6 tokens) share a batch of 71 x 6 <= 512
    assert widths[0] == 6 and len(many[0][0]) == 71
    assert widths[-1] == 122 and len(many[-1][0]) == 4  # 30 x 4 words + 2 tokens; 5 x 122 would pass 512


def test_multiclass_trec_parity(tmp_path):
    texts, labels = read("trec", "train", 300)
    student = MiniLMStudent().fit(texts, labels)
    assert len(student.labels_) == 6
    test_texts, test_labels = read("trec", "test", 120)
    report = student.export_onnx(tmp_path / "model.onnx", test_texts + EDGE_TEXTS)
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4
    assert (tmp_path / "tokenizer.json").is_file()
    onnx_student = runtime.RuntimeStudent(tmp_path / "model.onnx", student.labels_, input_kind="token_ids")
    accuracy = np.mean([r["label"] == g for r, g in zip(onnx_student.predict(test_texts), test_labels)])
    assert accuracy > 0.6, accuracy  # 300 questions: ~0.75; chance ~0.2


def test_int8_is_smaller_and_agrees_with_fp32(sst2_dir, sst2_dev, tmp_path):
    int8 = tmp_path / "int8"
    int8.mkdir()
    for name in ("student.json", "labels.json", "tokenizer.json"):
        (int8 / name).write_bytes((sst2_dir / name).read_bytes())
    quantize_int8(sst2_dir / "model.onnx", int8 / "model.onnx")
    fp32_size, int8_size = (sst2_dir / "model.onnx").stat().st_size, (int8 / "model.onnx").stat().st_size
    assert int8_size < 0.3 * fp32_size, (fp32_size, int8_size)  # 90 MB -> 23 MB
    texts, gold = sst2_dev
    fp32_pred = [r["label"] for r in load_student(sst2_dir).predict(texts)]
    int8_pred = [r["label"] for r in load_student(int8).predict(texts)]
    assert np.mean([a == b for a, b in zip(fp32_pred, int8_pred)]) > 0.93
    fp32_acc = np.mean([p == g for p, g in zip(fp32_pred, gold)])
    int8_acc = np.mean([p == g for p, g in zip(int8_pred, gold)])
    assert int8_acc > fp32_acc - 0.03, (fp32_acc, int8_acc)


def test_frozen_vectors_are_sentence_transformers_embeddings():
    from evokd.embed import encode

    texts = ["a gorgeous film", "What is the capital of France ?"]
    np.testing.assert_allclose(frozen_vectors(texts), encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(frozen_vectors(texts), axis=1), 1.0, atol=1e-5)


def test_setfit_pairs_and_fine_tuning_changes_the_encoder_and_still_exports(tmp_path):
    import random

    labels = ["neg", "neg", "pos", "pos", "pos"]
    pairs = setfit_pairs(labels, pairs_per_text=3, max_pairs=100, rng=random.Random(0))
    assert len(pairs) == 2 * 3 * len(labels)
    assert all((labels[i] == labels[j]) == (y == 1.0) and i != j for i, j, y in pairs)
    assert len(setfit_pairs(labels, 3, 7, random.Random(0))) == 7

    texts = ["a dull , tedious mess", "boring and far too long", "a gorgeous , witty film",
             "moving and beautifully acted", "one of the year 's best"]
    student = MiniLMStudent(fine_tune="setfit", pairs_per_text=2, max_pairs=20, fine_tune_batch_size=4).fit(texts, labels)
    assert student.encoder_ is not None and student.n_pairs_ == 20
    tuned = student._vectors(texts)
    assert np.max(np.abs(tuned - frozen_vectors(texts))) > 1e-3  # the encoder moved
    report = student.save(tmp_path, texts + ["an unseen sentence", ""])
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "student.json").read_text())["fine_tuned"] is True


@pytest.mark.parametrize(
    "params, texts, labels, message",
    [
        ({"fine_tune": "lora"}, ["a", "b"], ["x", "y"], "fine_tune to be one of none, setfit, full, got 'lora'"),
        ({"fine_tune": "setfit"}, ["a", "b", "c"], ["x", "x", "y"], "at least 2 texts of every label.*got 1 of 'y'"),
        ({}, ["a", "b"], ["x", "x"], "at least 2 distinct labels"),
    ],
)
def test_fit_validation(params, texts, labels, message):
    with pytest.raises(ValueError, match=message):
        MiniLMStudent(**params).fit(texts, labels)


def test_registry():
    assert STUDENTS["minilm"] is MiniLMStudent
    student = make_student("minilm", C=1.0)
    assert student.get_params()["C"] == 1.0 and student.input == "token_ids" and student.kind == "classification"


def copy_dir(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda d: (d / "tokenizer.json").unlink(), r"tokenizer\.json: file not found"),
        (lambda d: (d / "tokenizer.json").write_text("{not json"), r"tokenizer\.json: expected a tokenizer"),
    ],
)
def test_broken_tokenizer_is_a_one_line_load_error(sst2_dir, tmp_path, damage, pattern):
    broken = copy_dir(sst2_dir, tmp_path / "broken")
    damage(broken)
    with pytest.raises(StudentLoadError, match=pattern) as info:
        load_student(broken)
    assert "\n" not in str(info.value)


def test_runtime_needs_only_onnxruntime_tokenizers_and_numpy(sst2_dir, sst2_student, tmp_path):
    """A bare interpreter (-I -S: no site-packages) that sees only onnxruntime, tokenizers, numpy and
    evokd's runtime package (evokd/__init__.py, _env.py and runtime/) loads the student and predicts
    what PyTorch predicts."""
    import numpy
    import onnxruntime
    import tokenizers

    import evokd

    site = tmp_path / "site"
    (site / "evokd" / "runtime").mkdir(parents=True)
    source = Path(evokd.__file__).parent
    for path in [source / "__init__.py", source / "_env.py", *sorted((source / "runtime").glob("*.py"))]:
        (site / path.relative_to(source.parent)).write_bytes(path.read_bytes())
    for module in (numpy, onnxruntime, tokenizers):
        package = Path(module.__file__).parent
        os.symlink(package, site / package.name)
        libs = package.parent / f"{package.name}.libs"  # vendored shared libraries of manylinux wheels
        if libs.is_dir():
            os.symlink(libs, site / libs.name)
    texts = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés .", ""]
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(site)!r})
        from evokd.runtime import load_student
        out = load_student({str(sst2_dir)!r}).predict({texts!r})
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn", "transformers", "scipy", "spacy"))
        print(json.dumps({{"labels": [r["label"] for r in out], "heavy": heavy}}))
        """
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"labels": sst2_student.predict(texts), "heavy": []}


def test_cli_predict_with_heavy_libraries_blocked(sst2_dir, sst2_student):
    """`evokd predict` itself (click + the runtime) with torch, scikit-learn, transformers,
    sentence-transformers, scipy, spaCy and onnx made unimportable."""
    texts = ["a gorgeous , witty film", "a dull , tedious mess"]
    lines = predict_with_heavy_libraries_blocked(sst2_dir, texts)
    assert [r["label"] for r in lines] == sst2_student.predict(texts)
    assert all(0.5 <= r["score"] <= 1.0 for r in lines)


def test_label_anchors_teach_the_head_what_each_label_means(sst2_dev, tmp_path):
    """One seed per label plus the task's label descriptions: the descriptions' vectors join the
    head's training data (weight anchor_weight) and lift accuracy far above the seeds alone."""
    from evokd.task import load_task

    described = load_task(ROOT / "datasets" / "sst2" / "task.yaml").label_descriptions
    texts = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés from start to finish"]
    labels = ["positive", "negative"]
    dev, gold = sst2_dev
    anchored = MiniLMStudent().fit(texts, labels, label_texts={**described, "neutral": "not a label of these rows"})
    plain = MiniLMStudent(anchor_weight=0).fit(texts, labels, label_texts=described)
    assert anchored.anchors_ == described  # a description of a label the rows lack is not used
    assert plain.anchors_ == {} and MiniLMStudent().fit(texts, labels).anchors_ == {}
    acc = {name: np.mean([p == g for p, g in zip(s.predict(dev), gold)]) for name, s in
           (("anchored", anchored), ("plain", plain))}
    assert acc["anchored"] > 0.7 and acc["anchored"] > acc["plain"] + 0.05, acc  # measured: 0.78 vs 0.60
    anchored.save(tmp_path / "s", dev[:60])
    meta = json.loads((tmp_path / "s" / "student.json").read_text())
    assert meta["params"]["anchor_weight"] == 8.0
    assert meta["label_anchors"] == {"weight": 8.0, "texts": described}
    with pytest.raises(ValueError, match="expected anchor_weight to be a number >= 0"):
        MiniLMStudent(anchor_weight=-1).fit(texts, labels)
    with pytest.raises(ValueError, match=r"expected label_texts\['positive'\] to be a non-empty string"):
        MiniLMStudent().fit(texts, labels, label_texts={"positive": " ", "negative": "bad"})
