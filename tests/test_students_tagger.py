"""TaggerStudent on real WNUT-17 slices: fitting, validation, decoding, ONNX parity, runtime."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import evokd
from evokd import runtime
from conftest import ner_examples
from evokd.ner import tokenize
from evokd.runtime import RuntimeTagger, StudentLoadError, load_student
from evokd.students import STUDENTS, ParityError, make_student
from evokd.students.tagger import TaggerStudent

SENTENCE = "Angela Merkel met Tim Cook in Paris."
# Inputs a tokenizer/encoder port gets wrong first: empty, blanks, unseen scripts and
# characters, a word longer than max_word_length, digits, lone punctuation.
EDGE_TEXTS = [
    "", "   ", "!", "Zürich's Ölkonzern BP-Ölfeld", "日本語 テキスト", "😀 Emoji Inc.",
    "Supercalifragilisticexpialidocious-Corporation-Limited said", "1996-08-22 3-1 12.5",
    "tab\tnew\nline  double  space", "ALL CAPS HEADLINE FROM REUTERS",
]


def examples(split: str, start: int, stop: int) -> list[dict]:
    """WNUT-17 sentences with at least one entity, [start, stop) of them (tests/data)."""
    return ner_examples(split, stop - start, skip=start)


@pytest.fixture(scope="module")
def train():
    # 200 sentences with at least one entity, all 6 WNUT-17 types among them
    return examples("train", 0, 200)


@pytest.fixture(scope="module")
def student(train):
    return TaggerStudent(epochs=12, min_updates=0).fit(
        [r["text"] for r in train], [r["entities"] for r in train]
    )


@pytest.fixture(scope="module")
def test_texts():
    return [r["text"] for r in examples("test", 0, 100)]


def test_registered_and_params():
    assert STUDENTS["tagger"] is TaggerStudent
    student = make_student("tagger", hidden_size=32)
    assert student.get_params()["hidden_size"] == 32
    assert repr(student).startswith("TaggerStudent(word_dim=100")


def test_fit_and_predict_spans_with_char_offsets(student, train):
    assert student.entity_types_ == ["corporation", "creative-work", "group", "location", "person", "product"]
    assert student.labels_ == ["O"] + [f"{bi}-{t}" for t in student.entity_types_ for bi in "BI"]
    assert isinstance(student.predict([SENTENCE])[0], list)
    found = student.predict([r["text"] for r in train[:50]])
    assert sum(map(len, found)) > 0, "expected entities in sentences it was trained on"
    for text, spans in zip([r["text"] for r in train[:50]], found):
        for span in spans:
            assert set(span) == {"start", "end", "label", "text"}
            assert text[span["start"]:span["end"]] == span["text"]
            assert span["label"] in student.entity_types_
    # learns its own training data (200 WNUT-17 posts, 12 epochs: 0.35 of the gold spans found, measured;
    # an untrained tagger finds none)
    pred = student.predict([r["text"] for r in train[:50]])
    gold = [{(e["start"], e["end"], e["label"]) for e in r["entities"]} for r in train[:50]]
    found = [{(s["start"], s["end"], s["label"]) for s in p} for p in pred]
    tp = sum(len(g & f) for g, f in zip(gold, found))
    assert tp / max(1, sum(len(g) for g in gold)) > 0.25
    assert student.predict([]) == [] and student.predict(["", "   "]) == [[], []]


def test_predict_tags_on_pretokenised_sentences(student):
    tags = student.predict_tags([["EU", "rejects", "German", "call", "."], [], ["Paris"]])
    assert [len(t) for t in tags] == [5, 0, 1]
    assert all(t in student.labels_ for sentence in tags for t in sentence)


def test_fits_from_a_handful_of_sentences_quickly():
    rows = examples("train", 0, 20)
    texts, ents = [r["text"] for r in rows], [r["entities"] for r in rows]
    student = TaggerStudent().fit(texts, ents)  # defaults, as the loop uses them
    assert "validation_f1" not in student.history_[0]  # too few sentences to hold any out
    assert student.history_[-1]["seconds"] < 20
    assert len(student.predict(["Peter Blackburn spoke in Brussels ."])) == 1
    # min_updates repeats epochs over tiny data: 20 sentences give < 20 batches per epoch
    short = TaggerStudent(epochs=1, min_updates=100, hidden_size=8).fit(texts, ents)
    assert len(short.history_) >= 100 // 20


def test_deterministic_with_seed():
    rows = examples("train", 0, 30)
    texts, ents = [r["text"] for r in rows], [r["entities"] for r in rows]
    a = TaggerStudent(epochs=3, min_updates=0).fit(texts, ents)
    b = TaggerStudent(epochs=3, min_updates=0).fit(texts, ents)
    np.testing.assert_array_equal(a.scores([["EU", "rejects", "it"]])[0], b.scores([["EU", "rejects", "it"]])[0])


def test_early_stopping_on_validation():
    rows = examples("train", 0, 120)
    student = TaggerStudent(epochs=40, patience=1, min_updates=0, hidden_size=16).fit(
        [r["text"] for r in rows[:100]], [r["entities"] for r in rows[:100]],
        validation=([r["text"] for r in rows[100:]], [r["entities"] for r in rows[100:]]),
    )
    assert all("validation_f1" in h for h in student.history_)
    assert len(student.history_) < 40
    assert 1 <= student.best_epoch_ <= len(student.history_)


def test_early_stopping_waits_for_min_updates():
    """100 sentences hold out 10 for early stopping. Their F1 is 0 for the first epochs, which used to
    stop training at epoch 1 + patience and keep a tagger that tagged nothing (entity F1 0 in a
    100-sentence bench round); training now runs min_updates steps before patience counts."""
    rows = examples("train", 200, 300)
    texts, ents = [r["text"] for r in rows], [r["entities"] for r in rows]
    student = TaggerStudent(min_updates=300, min_validation_sentences=100).fit(texts, ents)
    batches = len(runtime.batches_by_length([len(tokenize(t)) for t in texts[:90]], 16))
    assert all("validation_f1" in h for h in student.history_)
    assert len(student.history_) * batches >= 300
    found = sum(len(spans) for spans in student.predict(texts))
    assert found >= 0.5 * sum(len(e) for e in ents)  # it tags entities on what it was trained on


def test_a_few_hundred_sentences_train_on_all_of_them():
    """Below min_validation_sentences (1000) nothing is held out: every sentence trains, all epochs run."""
    rows = examples("train", 200, 230)
    student = TaggerStudent(epochs=3, min_updates=0, hidden_size=8).fit([r["text"] for r in rows],
                                                                         [r["entities"] for r in rows])
    assert len(student.history_) == 3 and not any("validation_f1" in h for h in student.history_)
    assert student.min_validation_sentences == 1000


def test_misaligned_spans_are_widened_to_tokens():
    texts = ["Visit Paris now.", "Paris is big.", "I like Parisian food."]
    # [7, 12) covers "Paris" inside "Parisian": widened to the whole token
    entities = [[{"start": 6, "end": 11, "label": "LOC"}], [{"start": 0, "end": 5, "label": "LOC"}],
                [{"start": 7, "end": 12, "label": "MISC"}]]
    student = TaggerStudent(epochs=1, min_updates=0, hidden_size=8).fit(texts, entities)
    assert student.entity_types_ == ["LOC", "MISC"]


@pytest.mark.parametrize(
    "texts, entities, message",
    [
        ([], [], "got 0"),
        ("a text", [[]], "got a single str"),
        (["a", 3], [[], []], "got int at index 1"),
        (["a", "b"], [[]], "2 texts and 1 entity lists"),
        (["Paris"], [{"start": 0, "end": 5, "label": "LOC"}], "list of spans for text 0, got dict"),
        (["Paris"], {"start": 0, "end": 5, "label": "LOC"}, "got a single dict"),
        (["Paris"], [[(0, 5, "LOC")]], 'expected a dict with "start", "end" and "label"'),
        (["Paris"], [[{"start": 0, "end": 9, "label": "LOC"}]], r"0 <= start < end <= 5 .*got \[0, 9\)"),
        (["Paris"], [[{"start": 3, "end": 3, "label": "LOC"}]], r"got \[3, 3\)"),
        (["Paris"], [[{"start": "0", "end": 5, "label": "LOC"}]], "integer start and end"),
        (["Paris"], [[{"start": 0, "end": 5, "label": ""}]], "entity type such as 'PER'"),
        (["Paris"], [[{"start": 0, "end": 5, "label": "B-LOC"}]], None),  # accepted: a type may contain '-'
        (["New York"], [[{"start": 0, "end": 8, "label": "LOC"}, {"start": 4, "end": 8, "label": "LOC"}]], "text 0: .*overlap"),
        (["no entities here", "none"], [[], []], "at least 1 entity span"),
    ],
)
def test_fit_validation_says_what_was_expected(texts, entities, message):
    student = TaggerStudent(epochs=1, min_updates=0, hidden_size=8)
    if message is None:
        student.fit(texts, entities)
        return
    with pytest.raises(ValueError, match=message):
        student.fit(texts, entities)


def test_predict_before_fit_and_bad_inputs(student):
    with pytest.raises(RuntimeError, match="not fitted"):
        TaggerStudent().predict(["x"])
    with pytest.raises(ValueError, match="single str"):
        student.predict("a text")
    with pytest.raises(TypeError, match="list of token lists"):
        student.predict_tags(["EU", "rejects"])


def test_decoding_repairs_invalid_bio():
    tags = ["O", "B-PER", "I-PER", "I-LOC", "B-LOC"]
    # argmax sequence: I-PER, I-PER, O, I-LOC, I-PER -> starts a new entity after O / another type
    scores = np.eye(len(tags))[[2, 2, 0, 3, 2]]
    assert runtime.decode_tags(scores, tags, repair=False) == ["I-PER", "I-PER", "O", "I-LOC", "I-PER"]
    assert runtime.decode_tags(scores, tags) == ["B-PER", "I-PER", "O", "B-LOC", "B-PER"]
    text = "Ann Lee and Rome Bob"
    toks = tokenize(text)
    assert runtime.entities_from_tags(text, toks, runtime.decode_tags(scores, tags)) == [
        {"start": 0, "end": 7, "label": "PER", "text": "Ann Lee"},
        {"start": 12, "end": 16, "label": "LOC", "text": "Rome"},
        {"start": 17, "end": 20, "label": "PER", "text": "Bob"},
    ]


def test_onnx_parity_identical_tags(student, test_texts, tmp_path):
    report = student.export_onnx(tmp_path / "model.onnx", test_texts + EDGE_TEXTS)
    assert report["n_checked"] == len(test_texts) + len(EDGE_TEXTS)
    assert report["identical_tags_single"] == 1.0 and report["identical_tags_batched"] == 1.0
    assert report["max_abs_score_diff"] < 1e-3


def test_parity_error_when_onnx_and_torch_disagree(student, test_texts, tmp_path, monkeypatch):
    original = type(student).scores
    monkeypatch.setattr(student, "scores", lambda tokens: [s[:, ::-1] for s in original(student, tokens)])
    with pytest.raises(ParityError, match="identical tags") as info:
        student.export_onnx(tmp_path / "model.onnx", test_texts[:20])
    assert "\n" not in str(info.value)


def test_save_then_runtime_predicts_like_torch(student, test_texts, tmp_path):
    out = tmp_path / "student"
    student.save(out, test_texts)
    meta = json.loads((out / "student.json").read_text())
    assert meta["student"] == "tagger" and meta["kind"] == "ner" and meta["input"] == "tokens"
    assert meta["evokd_version"] == evokd.__version__ and meta["entity_types"] == ["corporation", "creative-work", "group", "location", "person", "product"]
    assert meta["max_word_length"] == 25 and meta["word_vocab_size"] == len(student.words_)
    assert json.loads((out / "labels.json").read_text()) == student.labels_
    assert json.loads((out / "words.json").read_text())[:2] == ["<pad>", "<unk>"]

    loaded = load_student(out)
    assert isinstance(loaded, RuntimeTagger)
    texts = test_texts + EDGE_TEXTS + [SENTENCE]
    expected = student.predict(texts)
    assert [r["entities"] for r in loaded.predict(texts)] == expected
    # one text at a time gives the same spans as the length-bucketed batch
    assert [loaded.predict([t])[0]["entities"] for t in texts[:30]] == expected[:30]
    assert loaded.predict([]) == []
    with pytest.raises(TypeError, match="single str"):
        loaded.predict("a text")


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda d: (d / "words.json").unlink(), r"words\.json: file not found"),
        (lambda d: (d / "chars.json").write_text("{}"), r"chars\.json: expected a JSON list"),
        (lambda d: (d / "labels.json").write_text('["B-PER", "O"]'), r"labels\.json: expected BIO tags starting with 'O'"),
        (lambda d: (d / "student.json").write_text(json.dumps({"student": "tagger", "kind": "ner", "input": "tokens"})),
         r"student\.json: expected a positive integer \"max_word_length\""),
    ],
)
def test_broken_tagger_dir_gives_one_line_load_error(student, test_texts, tmp_path, damage, pattern):
    out = tmp_path / "student"
    student.save(out, test_texts[:5])
    damage(out)
    with pytest.raises(StudentLoadError, match=pattern) as info:
        load_student(out)
    assert "\n" not in str(info.value)


def test_runtime_for_ner_needs_no_torch(student, test_texts, tmp_path):
    out = tmp_path / "student"
    student.save(out, test_texts[:5])
    expected = [{"entities": spans} for spans in student.predict([SENTENCE, test_texts[0]])]
    script = textwrap.dedent(
        f"""
        import json, sys
        BLOCKED = ("sklearn", "skl2onnx", "torch", "onnx", "evokd.students")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
                    raise ImportError("blocked import: " + name)
        sys.meta_path.insert(0, Block())
        from evokd.runtime import load_student
        out = load_student({str(out)!r}).predict({[SENTENCE, test_texts[0]]!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith("evokd.students"))
        assert not loaded, loaded
        print(json.dumps(out))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
