"""SpacyNerStudent on a real WNUT-17 slice: fitting, token-aligned spans, saving as pipeline +
wheel (installed offline into a throwaway dir), reload parity, the spaCy runtime, bad inputs."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ner_examples
from evokd.ner import tokenize
from evokd.runtime import StudentLoadError
from evokd.students import spacy_ner
from evokd.students.base import ParityError
from evokd.students.spacy_ner import SpacyNerStudent, load_runtime

EDGE_TEXTS = ["", "   ", "!", "Zürich's Ölkonzern BP-Ölfeld", "😀 Emoji Inc.", "tab\tnew\nline  double  space"]
N_TRAIN = 150


def examples(split: str, start: int, stop: int) -> list[dict]:
    """WNUT-17 sentences with at least one entity, [start, stop) of them (tests/data)."""
    return ner_examples(split, stop - start, skip=start)


@pytest.fixture(scope="module")
def train():
    return examples("train", 0, N_TRAIN)


@pytest.fixture(scope="module")
def student(train):
    return SpacyNerStudent(max_epochs=6, min_updates=0).fit(
        [r["text"] for r in train], [r["entities"] for r in train]
    )


@pytest.fixture(scope="module")
def check_texts(train):
    return [r["text"] for r in train[:40]] + [r["text"] for r in examples("test", 0, 40)] + EDGE_TEXTS


@pytest.fixture(scope="module")
def saved(student, check_texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("spacy_ner") / "student"
    report = student.save(out, check_texts)
    return out, report


def test_params_and_labels(student):
    params = student.get_params()
    assert params["max_epochs"] == 6 and params["seed"] == 0 and params["dropout"] == 0.1
    assert SpacyNerStudent.name == "spacy-ner" and SpacyNerStudent.kind == "ner"
    assert student.labels_ == ["corporation", "creative-work", "group", "location", "person", "product"]
    assert "SpacyNerStudent(max_epochs=6" in repr(student)


def test_predict_token_aligned_spans(student, train):
    texts = [r["text"] for r in train] + EDGE_TEXTS
    pred = student.predict(texts)
    assert len(pred) == len(texts)
    n_correct = n_pred = 0
    for text, spans in zip(texts, pred):
        tokens = tokenize(text)
        starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
        for s in spans:
            assert set(s) == {"start", "end", "label", "text"}
            assert s["start"] in starts and s["end"] in ends, (text, s)
            assert text[s["start"]:s["end"]] == s["text"] and s["text"] == s["text"].strip()
            assert s["label"] in student.labels_
        n_pred += len(spans)
    for row, spans in zip(train, pred):
        gold = {(e["start"], e["end"], e["label"]) for e in row["entities"]}
        n_correct += len(gold & {(s["start"], s["end"], s["label"]) for s in spans})
    # it learned its training data (six epochs on 150 sentences)
    assert n_pred > 50 and n_correct / n_pred > 0.5
    assert student.predict([]) == []


def test_small_data_is_fast_and_deterministic(train):
    import time

    texts, ents = [r["text"] for r in train[:20]], [r["entities"] for r in train[:20]]
    t0 = time.perf_counter()
    a = SpacyNerStudent(max_epochs=3, min_updates=0, seed=1).fit(texts, ents)
    assert time.perf_counter() - t0 < 20
    b = SpacyNerStudent(max_epochs=3, min_updates=0, seed=1).fit(texts, ents)
    assert a.predict(texts) == b.predict(texts)
    assert len(a.history_) == 3 and a.best_dev_f1_ is None


def test_validation_early_stopping(train):
    texts, ents = [r["text"] for r in train[:30]], [r["entities"] for r in train[:30]]
    dev = examples("dev", 0, 30)
    s = SpacyNerStudent(max_epochs=4, patience=1, min_updates=0).fit(
        texts, ents, validation=([r["text"] for r in dev], [r["entities"] for r in dev])
    )
    assert 1 <= len(s.history_) <= 4 and all("dev_f1" in h for h in s.history_)
    assert s.best_epoch_ == max(range(len(s.history_)), key=lambda i: (s.history_[i]["dev_f1"], -i)) + 1


def test_save_writes_pipeline_wheel_and_meta(saved, student, check_texts):
    out, report = saved
    assert report == {"n_checked": len(check_texts), "label_agreement": 1.0, "max_abs_diff": 0.0}
    meta = json.loads((out / "student.json").read_text(encoding="utf-8"))
    assert meta["student"] == "spacy-ner" and meta["kind"] == "ner" and meta["runtime"] == "spacy"
    assert meta["input"] == "text" and meta["pipeline"] == "pipeline"
    assert meta["entity_types"] == student.labels_ and meta["params"] == student.get_params()
    assert "evokd_version" in meta and meta["parity"] == report
    assert json.loads((out / "labels.json").read_text(encoding="utf-8")) == student.labels_
    assert (out / "pipeline" / "config.cfg").is_file() and (out / "pipeline" / "ner" / "model").is_file()
    wheel = out / meta["wheel"]
    assert wheel.name == "en_evokd_spacy_ner-0.1.0-py3-none-any.whl" and wheel.is_file()
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        inner_meta = "en_evokd_spacy_ner/en_evokd_spacy_ner-0.1.0/meta.json"
        assert inner_meta in names and "en_evokd_spacy_ner/__init__.py" in names
        pipeline_meta = json.loads(zf.read(inner_meta))
    assert pipeline_meta["name"] == "evokd_spacy_ner" and pipeline_meta["pipeline"] == ["ner"]
    assert sorted(pipeline_meta["labels"]["ner"]) == student.labels_


def test_wheel_installs_offline_and_predicts_the_same(saved, student, check_texts, tmp_path):
    out, _ = saved
    meta = json.loads((out / "student.json").read_text(encoding="utf-8"))
    target = tmp_path / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "--quiet",
         "--target", str(target), str(out / meta["wheel"])],
        check=True, env=env, capture_output=True, timeout=120,
    )
    script = (
        "import json, sys, spacy\n"
        "nlp = spacy.load('en_evokd_spacy_ner')\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps([[[e.start_char, e.end_char, e.label_] for e in d.ents] for d in nlp.pipe(texts)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(check_texts), capture_output=True, text=True,
        env={**env, "PYTHONPATH": str(target)}, cwd=tmp_path, check=True, timeout=120,
    )
    got = json.loads(proc.stdout)
    want = [[[s["start"], s["end"], s["label"]] for s in spans] for spans in student.predict(check_texts)]
    assert got == want


def test_load_runtime_equals_student(saved, student, check_texts):
    out, _ = saved
    meta = json.loads((out / "student.json").read_text(encoding="utf-8"))
    rt = load_runtime(out, meta)
    assert rt.labels == student.labels_ and rt.meta["runtime"] == "spacy"
    assert rt.predict(check_texts) == [{"entities": spans} for spans in student.predict(check_texts)]
    single = [rt.predict([t])[0] for t in check_texts[:10]]
    assert single == rt.predict(check_texts[:10])
    with pytest.raises(TypeError, match="single str"):
        rt.predict("Angela Merkel")


def test_load_student_dispatches_to_spacy(saved, student):
    from evokd import runtime

    out, _ = saved
    rt = runtime.load_student(out)
    text = "Angela Merkel met Tim Cook in Paris."
    assert rt.predict([text]) == [{"entities": student.predict([text])[0]}]


def test_load_runtime_errors(saved, tmp_path):
    out, _ = saved
    meta = json.loads((out / "student.json").read_text(encoding="utf-8"))
    with pytest.raises(StudentLoadError, match="expected a \"pipeline\""):
        load_runtime(out, {**meta, "pipeline": None})
    with pytest.raises(StudentLoadError, match="not a spaCy pipeline directory"):
        load_runtime(out, {**meta, "pipeline": "missing"})
    broken = tmp_path / "broken"
    shutil.copytree(out / "pipeline", broken / "pipeline")
    (broken / "pipeline" / "ner" / "model").write_bytes(b"not a model")
    with pytest.raises(StudentLoadError, match="spacy.load can read") as exc:
        load_runtime(broken, meta)
    assert "\n" not in str(exc.value)
    (broken / "pipeline" / "config.cfg").write_text("[nlp\nbroken", encoding="utf-8")
    with pytest.raises(StudentLoadError, match="spacy.load can read"):
        load_runtime(broken, meta)


def test_parity_failure_raises(student, tmp_path, monkeypatch):
    def fake_parity(reference, loaded, texts):
        return {"n_checked": len(texts), "label_agreement": 0.5, "max_abs_diff": 0.0,
                "first_disagreement": texts[0]}

    monkeypatch.setattr(spacy_ner, "_parity", fake_parity)
    with pytest.raises(ParityError, match="identical entities on 0.5000 of 2 texts.*first disagreement"):
        student.save(tmp_path / "s", ["Paris .", "Bonn ."])
    assert not (tmp_path / "s" / "student.json").exists()


@pytest.mark.parametrize(
    "texts, entities, message",
    [
        ("Paris", [[]], "single str"),
        (["Paris", 3], [[], []], "got int at index 1"),
        (["Paris"], [[], []], "1 texts and 2 entity lists"),
        (["Paris"], [{"start": 0, "end": 5, "label": "LOC"}], "expected a list of spans for text 0"),
        (["Paris"], [[("0", 5, "LOC")]], 'expected a dict with "start", "end" and "label"'),
        (["Paris"], [[{"start": 0, "end": 9, "label": "LOC"}]], "0 <= start < end <= 5"),
        (["Paris"], [[{"start": 0, "end": 5, "label": "O"}]], "expected an entity type"),
        (["Paris Bonn"], [[{"start": 0, "end": 5, "label": "LOC"}, {"start": 3, "end": 10, "label": "LOC"}]],
         "overlap"),
        (["Paris  Bonn"], [[{"start": 5, "end": 7, "label": "LOC"}]], "covers no token"),
        (["Paris", "Bonn"], [[], []], "at least 1 entity span"),
        ([], [], "at least 1 text"),
    ],
)
def test_fit_rejects_bad_input(texts, entities, message):
    with pytest.raises(ValueError, match=message):
        SpacyNerStudent(max_epochs=1).fit(texts, entities)


def test_unfitted_and_bad_calls(student, tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        SpacyNerStudent().predict(["Paris"])
    with pytest.raises(ValueError, match="single str"):
        student.predict("Paris")
    with pytest.raises(ValueError, match="at least 1 text in check_texts"):
        student.save(tmp_path / "s", [])
    with pytest.raises(ValueError, match="max_epochs"):
        SpacyNerStudent(max_epochs=0).fit(["Paris"], [[{"start": 0, "end": 5, "label": "LOC"}]])
    with pytest.raises(ValueError, match="validation"):
        SpacyNerStudent(max_epochs=1).fit(["Paris"], [[{"start": 0, "end": 5, "label": "LOC"}]], validation=["x"])
