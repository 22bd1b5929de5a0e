"""TfidfStudent on real data slices: fitting, validation, and ONNX parity in onnxruntime."""

import json

import numpy as np
import pytest

import evokd
from conftest import data_rows
from evokd.students import STUDENTS, ParityError, Student, TfidfStudent, make_student


# Strings a tokenizer port gets wrong first: punctuation only, blanks, accents, other
# scripts, digits/underscores, emoji, mixed case, control whitespace.
EDGE_TEXTS = [
    "!!!", "", "   ", "?", "...", "Café ÉCOLE naïve", "CAFÉ crème brûlée", "Straße STRASSE",
    "日本語のテキスト", "это ОЧЕНЬ хороший фильм", "emoji 😀 great", "under_score a_b",
    "x²³ ½ 2023", "ǅ Ǆ ǈ", "ﬁne ﬀ", "tab\tnew\nline", "GOOD", "Not Good At All",
    "it's -- great !!", "'' `` \"quoted\"", "e\u0301 comb\u0301ining",
]


def read_rows(dataset: str, split: str, limit: int | None = None) -> list[dict]:
    return data_rows(dataset, split, limit=limit)


@pytest.fixture(scope="module")
def sst2_train():
    rows = read_rows("sst2", "train", 3000)
    # a few non-ASCII texts so accented/other-script tokens are in the vocabulary
    extra = [("Café ÉCOLE naïve brilliant", "positive"), ("CAFÉ crème brûlée awful", "negative"),
             ("это ОЧЕНЬ хороший фильм", "positive"), ("日本語のテキスト boring", "negative"),
             ("Straße wonderful ﬁne", "positive")]
    return [r["text"] for r in rows] + [t for t, _ in extra], [r["label"] for r in rows] + [l for _, l in extra]


@pytest.fixture(scope="module")
def sst2_student(sst2_train):
    texts, labels = sst2_train
    return TfidfStudent().fit(texts, labels)


@pytest.fixture(scope="module")
def sst2_dev():
    rows = read_rows("sst2", "dev")
    return [r["text"] for r in rows], [r["label"] for r in rows]


def test_fit_predict_on_small_sst2_slice(sst2_student, sst2_dev):
    texts, gold = sst2_dev
    assert sst2_student.labels_ == ["negative", "positive"]
    pred = sst2_student.predict(texts)
    accuracy = np.mean([p == g for p, g in zip(pred, gold)])
    assert accuracy > 0.70, accuracy  # 3k phrases: ~0.75; chance is 0.5
    proba = sst2_student.predict_proba(texts[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert pred[:10] == [sst2_student.labels_[j] for j in proba.argmax(axis=1)]


def test_fits_from_a_handful_of_seeds():
    student = TfidfStudent().fit(["a great film", "wonderful acting", "dull and boring", "a mess"],
                                 ["pos", "pos", "neg", "neg"])
    assert student.predict(["great acting", "boring mess"]) == ["pos", "neg"]
    assert student.predict_proba([]).shape == (0, 2)


def test_onnx_parity_on_sst2_dev_and_edge_strings(sst2_student, sst2_dev, tmp_path):
    check = sst2_dev[0][:300] + EDGE_TEXTS
    report = sst2_student.export_onnx(tmp_path / "model.onnx", check)
    assert report["n_checked"] == len(check)
    assert report["label_agreement"] == 1.0
    assert report["max_abs_diff"] <= 1e-4
    assert (tmp_path / "model.onnx").stat().st_size > 10_000


def test_onnx_parity_multiclass_trec(tmp_path):
    train = read_rows("trec", "train", 1500)
    test = read_rows("trec", "test", 200)
    student = TfidfStudent().fit([r["text"] for r in train], [r["label"] for r in train])
    assert len(student.labels_) == 6
    report = student.export_onnx(tmp_path / "model.onnx", [r["text"] for r in test] + EDGE_TEXTS)
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("params", [{"ngram_range": (1, 1)}, {"ngram_range": (1, 3), "min_df": 2}, {"ngram_range": (2, 2)}])
def test_onnx_parity_other_ngram_settings(params, tmp_path):
    train = read_rows("sst2", "train", 800)
    student = TfidfStudent(**params).fit([r["text"] for r in train], [r["label"] for r in train])
    report = student.export_onnx(tmp_path / "model.onnx", [r["text"] for r in read_rows("sst2", "dev", 150)] + EDGE_TEXTS)
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4


def test_parity_error_when_onnx_and_framework_disagree(sst2_student, sst2_dev, tmp_path, monkeypatch):
    original = type(sst2_student)._predict_proba
    monkeypatch.setattr(sst2_student, "_predict_proba", lambda texts: original(sst2_student, texts)[:, ::-1])
    with pytest.raises(ParityError, match="label agreement") as info:
        sst2_student.export_onnx(tmp_path / "model.onnx", sst2_dev[0][:20])
    assert "\n" not in str(info.value)


def test_save_writes_the_three_files(sst2_student, sst2_dev, tmp_path):
    report = sst2_student.save(tmp_path / "student", sst2_dev[0][:50])
    assert report["label_agreement"] == 1.0
    meta = json.loads((tmp_path / "student" / "student.json").read_text())
    assert meta["student"] == "tfidf" and meta["kind"] == "classification"
    assert meta["runtime"] == "onnxruntime" and meta["input"] == "text"
    assert meta["output_names"] == ["label", "probabilities"]
    assert meta["evokd_version"] == evokd.__version__
    assert isinstance(meta["onnx_opset"], int) and meta["onnx_opset"] >= 9
    assert meta["params"]["C"] == 10.0 and meta["params"]["ngram_range"] == [1, 2]
    assert json.loads((tmp_path / "student" / "labels.json").read_text()) == ["negative", "positive"]


@pytest.mark.parametrize(
    "texts, labels, message",
    [
        ([], [], "got 0"),
        (["a", "b"], ["x"], "2 texts and 1 labels"),
        (["a", 3], ["x", "y"], "got int at index 1"),
        (["a", "b", "c"], ["x", "x", "x"], "at least 2 distinct labels, got 1"),
        ("a text", ["x"], "got a single str"),
        (["a", "b"], ["x", None], "labels to be a list of strings, got NoneType"),
    ],
)
def test_fit_validation_says_what_was_expected(texts, labels, message):
    with pytest.raises(ValueError, match=message):
        TfidfStudent().fit(texts, labels)


def test_predict_before_fit_and_bad_predict_input(sst2_student):
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfStudent().predict(["text"])
    with pytest.raises(ValueError, match="single str"):
        sst2_student.predict("one text")


def test_make_student_registry():
    assert STUDENTS["tfidf"] is TfidfStudent
    student = make_student("tfidf", C=3.0, ngram_range=(1, 1))
    assert isinstance(student, Student) and student.name == "tfidf" and student.kind == "classification"
    assert student.get_params()["C"] == 3.0 and student.get_params()["ngram_range"] == (1, 1)
    with pytest.raises(ValueError, match=r"unknown student 'bert'; expected one of: tfidf"):
        make_student("bert")
    with pytest.raises(TypeError):
        make_student("tfidf", not_a_param=1)


def test_hand_built_graph_matches_skl2onnx_converter():
    """Our graph must compute what skl2onnx's own converter computes for the same pipeline."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType

    from evokd.students import make_student
    from evokd.students.tfidf import ONNX_LOCALE, ONNX_TOKEN_PATTERN, build_onnx_graph

    rows = data_rows("sst2", "dev", limit=300)
    student = make_student("tfidf").fit([r["text"] for r in rows[:200]], [r["label"] for r in rows[:200]])
    tfidf, lr = student.pipeline_.named_steps["tfidf"], student.pipeline_.named_steps["lr"]
    reference = to_onnx(student.pipeline_, initial_types=[("text", StringTensorType([None, 1]))],
                        options={id(tfidf): {"tokenexp": ONNX_TOKEN_PATTERN, "locale": ONNX_LOCALE}, id(lr): {"zipmap": False}},
                        target_opset={"": 17, "ai.onnx.ml": 3})
    ours = build_onnx_graph(tfidf, lr)
    texts = np.array([[r["text"]] for r in rows[200:]], dtype=object)
    ref_sess = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
    our_sess = ort.InferenceSession(ours.SerializeToString(), providers=["CPUExecutionProvider"])
    ref_proba = ref_sess.run(None, {ref_sess.get_inputs()[0].name: texts})[1]
    our_out = our_sess.run(None, {our_sess.get_inputs()[0].name: texts})
    our_proba = next(o for o in our_out if getattr(o, "ndim", 0) == 2 and o.dtype != object)
    np.testing.assert_allclose(our_proba, ref_proba, atol=1e-5)
