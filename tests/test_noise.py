"""Training on teacher labels without trusting all of them (`evokd.noise`), and the sample
weights the students take: real MiniLM and TF-IDF students on real sst2 sentences, no doubles."""

import numpy as np
import pytest

from conftest import data_rows
from evokd.students import MiniLMStudent, SpacyTextcatStudent, TfidfStudent
from evokd.noise import (MIN_WEIGHT, confidence_weights, mislabeled, noise_weights,
                                  out_of_fold_probabilities, training_weights, weights_once)

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def sentences():
    """80 real sst2 sentences of 6+ words, 40 of each label."""
    rows = [r for r in data_rows("sst2", "train", 3000) if len(r["text"].split()) >= 6]
    out = []
    for label in LABELS:
        out += [r for r in rows if r["label"] == label][:40]
    return [r["text"] for r in out], [r["label"] for r in out]


def test_confidence_weights_measure_certainty_beyond_chance():
    w = confidence_weights([1.0, 0.75, 0.5, 0.3, None], 2)
    assert list(w) == pytest.approx([1.0, 0.25, MIN_WEIGHT, MIN_WEIGHT, 1.0])  # squared: 0.5 ** 2
    assert confidence_weights([1 / 6, 0.5, 1.0], 6) == pytest.approx([MIN_WEIGHT, 0.16, 1.0])


def test_confident_learning_flags_flipped_labels_far_more_often_and_never_a_trusted_row(sentences, sst2_task):
    """Every 8th label flipped. With 80 sentences the frozen head is itself wrong on ~1 in 4 rows, so
    cleaning flags correct rows too; what it must do is flag a flipped row far more often."""
    texts, gold = sentences
    flipped = list(range(0, 80, 8))
    labels = [("positive" if g == "negative" else "negative") if i in flipped else g for i, g in enumerate(gold)]
    proba = out_of_fold_probabilities(texts, labels, LABELS, label_texts=sst2_task.label_descriptions)
    assert proba.shape == (80, 2) and np.allclose(proba.sum(axis=1), 1.0)
    flags = mislabeled(labels, proba, LABELS)
    caught = np.mean([flags[i] for i in flipped])
    false_alarms = np.mean([flags[i] for i in range(80) if i not in flipped])
    assert caught >= 2 * false_alarms and caught >= 0.5, (caught, false_alarms)  # measured: 0.6 against 0.2

    confidence = [None if i == flipped[0] else 0.9 for i in range(80)]  # row 0 is trusted: a seed, say
    weights, record = noise_weights(texts, labels, confidence, LABELS, "clean",
                                    label_texts=sst2_task.label_descriptions)
    assert weights[flipped[0]] == 1.0 and record["dropped"] == int(flags.sum()) - int(flags[flipped[0]])
    assert all(weights[i] == 0.0 for i in np.flatnonzero(flags) if i != flipped[0])


def test_noise_modes_and_their_edges(sentences):
    texts, labels = sentences
    confidence = [0.75] * len(texts)
    weights, record = noise_weights(texts, labels, confidence, LABELS, "confidence")
    assert weights == pytest.approx([0.25] * 80) and record == {"mode": "confidence", "mean_weight": 0.25}
    both, record = noise_weights(texts, labels, confidence, LABELS, "confidence+clean")
    assert set(np.round(both, 6)) <= {0.0, 0.25} and record["dropped"] == int((both == 0).sum())
    assert noise_weights(texts, labels, confidence, LABELS, "none")[0] == pytest.approx([1.0] * 80)
    # cleaning needs 2 texts of every label for its cross-validation: skipped, and said so
    few, record = noise_weights(texts[:3] + texts[-1:], labels[:3] + labels[-1:], [0.9] * 4, LABELS, "clean")
    assert list(few) == [1.0] * 4 and "2+ texts of every label" in record["clean_skipped"]
    with pytest.raises(ValueError, match="one of none, confidence, clean, confidence\\+clean, agree, confidence\\+agree, fuse, auto, got 'all'"):
        noise_weights(texts, labels, confidence, LABELS, "all")


def test_agree_down_weighs_the_labels_the_anchored_student_contradicts(sentences, sst2_task):
    """The first 10 sentences of each label are trusted (seeds); of the other 60, every 4th label is
    flipped. The anchored student (frozen MiniLM head on the seeds and the label descriptions) names
    the gold label of most of them, so a flipped label weighs AGREE_FLOOR far more often than a kept one."""
    from evokd.noise import AGREE_FLOOR, anchored_disagreement

    texts, gold = sentences
    trusted = [i % 40 < 10 for i in range(80)]
    flipped = [i for i in range(80) if not trusted[i] and i % 4 == 0]
    labels = [("positive" if g == "negative" else "negative") if i in flipped else g for i, g in enumerate(gold)]
    confidence = [None if t else 0.75 for t in trusted]
    weights, record = noise_weights(texts, labels, confidence, LABELS, "confidence+agree",
                                    label_texts=sst2_task.label_descriptions)
    low = np.isclose(weights, 0.25 * AGREE_FLOOR)
    assert record["disagreed"] == int(low.sum()) and not low[np.array(trusted)].any()
    assert all(weights[i] == 1.0 for i in range(80) if trusted[i])
    kept = [i for i in range(80) if not trusted[i] and i not in flipped]
    assert np.mean([low[i] for i in flipped]) > np.mean([low[i] for i in kept]) + 0.3
    # without trusted rows the descriptions alone make the anchored student; without either it is skipped
    alone = anchored_disagreement(texts, labels, np.zeros(80, dtype=bool), label_texts=sst2_task.label_descriptions)
    assert alone is not None and alone.shape == (80,)
    weights, record = noise_weights(texts, labels, [0.75] * 80, LABELS, "agree")
    assert weights == pytest.approx([1.0] * 80) and "fewer than 2 labels" in record["agree_skipped"]


@pytest.fixture(scope="module")
def sst2_task():
    from pathlib import Path

    from evokd.task import load_task

    return load_task(Path(__file__).resolve().parents[1] / "datasets" / "sst2" / "task.yaml")


def test_training_weights_only_for_students_that_take_them(sentences, sst2_task):
    task = sst2_task
    texts, labels = sentences
    rows = [{"text": t, "label": lab, "teacher_confidence": 0.75} for t, lab in zip(texts, labels)]
    weights, record = training_weights(MiniLMStudent(), rows, task, "confidence")
    assert weights == pytest.approx([0.25] * 80)
    weights, record = training_weights(SpacyTextcatStudent(), rows, task, "confidence")
    assert weights is None and record == {"mode": "none", "why": "spacy-textcat trains without weights"}
    assert training_weights(MiniLMStudent(), rows, task, "none")[0] is None


def test_weights_are_computed_once_for_every_student_that_takes_them(sentences, sst2_task, monkeypatch):
    """distill's candidates share one cleaning pass: the cross-validation behind `clean` runs once."""
    import evokd.noise as noise

    texts, labels = sentences
    rows = [{"text": t, "label": lab, "teacher_confidence": 0.75} for t, lab in zip(texts, labels)]
    calls = []
    real = noise.out_of_fold_probabilities
    monkeypatch.setattr(noise, "out_of_fold_probabilities", lambda *a, **k: calls.append(1) or real(*a, **k))
    weigh = weights_once(rows, sst2_task, "confidence+clean")
    first, second = weigh(TfidfStudent()), weigh(MiniLMStudent())
    assert len(calls) == 1 and second[0] is first[0] and first[1]["dropped"] >= 0
    assert weigh(SpacyTextcatStudent()) == (None, {"mode": "none", "why": "spacy-textcat trains without weights"})


@pytest.mark.parametrize("make", [TfidfStudent, MiniLMStudent])
def test_sample_weights_decide_between_conflicting_labels(make):
    """The same text labeled both ways: the heavier label wins, whichever it is."""
    texts = ["the film was fine", "the film was fine", "a gorgeous , witty film", "a dull , tedious mess"]
    for heavy in LABELS:
        labels = [heavy, next(x for x in LABELS if x != heavy), "positive", "negative"]
        student = make(class_weight=None).fit(texts, labels, sample_weight=[20.0, 1.0, 1.0, 1.0])
        assert student.predict(["the film was fine"]) == [heavy]


@pytest.mark.parametrize(
    "make, weights, message",
    [
        (SpacyTextcatStudent, [1.0, 1.0], "spacy-textcat student does not train with sample weights"),
        (TfidfStudent, [1.0], "one sample weight per text \\(2\\)"),
        (TfidfStudent, [1.0, -1.0], "finite numbers >= 0 that are not all 0"),
        (MiniLMStudent, [0.0, 0.0], "finite numbers >= 0 that are not all 0"),
        (MiniLMStudent, [1.0, float("nan")], "finite numbers >= 0"),
    ],
)
def test_bad_sample_weights_are_refused(make, weights, message):
    with pytest.raises(ValueError, match=message):
        make().fit(["a good film", "a bad film"], LABELS[::-1], sample_weight=weights)


def test_fused_posterior_learns_which_label_the_teacher_gets_wrong():
    """Logic test on made-up numbers (no student): the teacher names label 0 for every text of label 2
    and is right on the others; a weak prior leans toward the true label. EM must find the teacher's
    confusion (label 2's texts almost never named 2) and give those texts back to label 2, while
    keeping the teacher's label where it is reliable."""
    from evokd.noise import fused_posterior

    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 200)
    given = np.where(truth == 2, 0, truth)
    prior = rng.dirichlet([1, 1, 1], size=len(truth)) * 0.5
    prior[np.arange(len(truth)), truth] += 0.5  # the student: right more often than not, never sure
    posterior, confusion = fused_posterior(prior, given, 3)
    assert np.allclose(posterior.sum(axis=1), 1.0)
    assert confusion[2, 2] < 0.05 and confusion[2, 0] > 0.9 and confusion[1, 1] > 0.95
    fused = posterior.argmax(axis=1)
    assert (fused[truth == 1] == 1).all()  # a reliable label is kept
    assert (fused[truth == 2] == 2).mean() > 0.8  # the teacher's "0" on a label-2 text goes back to 2
    assert (fused[truth == 0] == 0).mean() > 0.8


def test_fuse_takes_the_anchored_students_view_where_the_teacher_is_uninformative(sentences, sst2_task):
    """Real MiniLM on real sst2 sentences. The first 10 of each label are trusted seeds; the teacher
    labels the other 60 "positive", whatever they say. Fusion must learn that a "positive" from it
    says nothing, relabel by the anchored student (right far more often than the teacher's 50%),
    leave the seeds alone and say how many labels it changed."""
    from evokd.noise import fuse_labels

    texts, gold = sentences
    trusted = [i % 40 < 10 for i in range(80)]
    labels = [g if t else "positive" for g, t in zip(gold, trusted)]
    confidence = [None if t else 0.9 for t in trusted]
    fused, fused_confidence, record = fuse_labels(texts, labels, confidence, LABELS,
                                                  label_texts=sst2_task.label_descriptions)
    taught = [i for i in range(80) if not trusted[i]]
    assert all(fused[i] == gold[i] and fused_confidence[i] is None for i in range(80) if trusted[i])
    assert record["relabeled"] == sum(fused[i] != labels[i] for i in taught) > 10 and record["of"] == 60
    teacher_right = np.mean([labels[i] == gold[i] for i in taught])
    assert np.mean([fused[i] == gold[i] for i in taught]) > teacher_right + 0.15
    assert record["teacher_right_estimate"]["negative"] < 0.2  # it found that negatives are named positive
    assert all(0.5 <= fused_confidence[i] <= 1.0 for i in taught)


def test_fuse_keeps_a_reliable_teachers_labels(sentences, sst2_task):
    """The same rows with the teacher right on every text: fusion changes (almost) nothing."""
    from evokd.noise import fuse_labels

    texts, gold = sentences
    confidence = [None if i % 40 < 10 else 0.9 for i in range(80)]
    fused, _, record = fuse_labels(texts, list(gold), confidence, LABELS, label_texts=sst2_task.label_descriptions)
    assert record["relabeled"] <= 3 and sum(f != g for f, g in zip(fused, gold)) == record["relabeled"]
    # a third label with no seed and no description: the anchored student cannot know it, nothing is fused
    kept, _, record = fuse_labels(texts, list(gold), confidence, LABELS + ["neutral"],
                                  label_texts=sst2_task.label_descriptions)
    assert kept == list(gold) and "no seed or description of label 'neutral'" in record["fuse_skipped"]


def test_training_rows_relabel_only_for_fuse_and_only_classification(sentences, sst2_task):
    """`training_rows` is the identity for every other mode, copies (never edits) the rows it fuses,
    and leaves NER rows as they are."""
    from evokd.noise import NOISE_MODES, fit_recorded, training_rows

    texts, gold = sentences
    rows = [{"text": t, "label": g if i % 40 < 10 else "positive", **({} if i % 40 < 10 else {"teacher_confidence": 0.9})}
            for i, (t, g) in enumerate(zip(texts, gold))]
    before = [dict(r) for r in rows]
    for mode in NOISE_MODES:
        if mode not in ("fuse", "auto"):
            assert training_rows(rows, sst2_task, mode) == (rows, {})
    fused, record = training_rows(rows, sst2_task, "fuse")
    assert rows == before and record["relabeled"] == sum(a["label"] != b["label"] for a, b in zip(rows, fused)) > 10
    assert all(a is b for a, b in zip(rows, fused) if "teacher_confidence" not in a)
    student, trained = fit_recorded("tfidf", rows, sst2_task, "fuse")
    assert trained["relabeled"] == record["relabeled"] and trained["mode"] == "fuse" and trained["teacher_rows"] == 60
    ner = sst2_task.model_copy(update={"kind": "ner"})
    same, why = training_rows(rows, ner, "fuse")
    assert same is rows and "classification" in why["fuse_skipped"]


def test_auto_fuses_only_where_the_teacher_is_estimated_wrong_on_some_label(sentences, sst2_task):
    """Real MiniLM on real sst2 sentences, 10 seeds of each label trusted. A teacher right on every text:
    "auto" keeps its labels and weighs them exactly as "confidence" does. A teacher that calls every
    text "positive": EM estimates it names negatives right far below half the time, so "auto" trains on
    the fused labels, as "fuse" does, and its record says which it chose and why."""
    from evokd.noise import AUTO_FUSE_BELOW, fit_recorded, training_rows

    texts, gold = sentences
    confidence = [None if i % 40 < 10 else 0.7 + 0.003 * i for i in range(80)]
    reliable = [{"text": t, "label": g, **({} if c is None else {"teacher_confidence": c})}
                for t, g, c in zip(texts, gold, confidence)]
    kept, record = training_rows(reliable, sst2_task, "auto")
    assert kept is reliable and record["auto_chose"] == "confidence" and "relabeled" not in record
    assert min(record["teacher_right_estimate"].values()) >= AUTO_FUSE_BELOW and "at least" in record["auto_why"]
    auto_weights = fit_recorded("minilm", reliable, sst2_task, "auto")[1]
    plain_weights = fit_recorded("minilm", reliable, sst2_task, "confidence")[1]
    assert auto_weights["mean_weight"] == plain_weights["mean_weight"] and auto_weights["mode"] == "auto"

    biased = [r if "teacher_confidence" not in r else {**r, "label": "positive"} for r in reliable]
    auto_rows, auto_record = training_rows(biased, sst2_task, "auto")
    fuse_rows, fuse_record = training_rows(biased, sst2_task, "fuse")
    assert auto_rows == fuse_rows and auto_record["relabeled"] == fuse_record["relabeled"] > 10
    assert auto_record["auto_chose"] == "fuse" and "'negative' texts right" in auto_record["auto_why"]
    # NER: nothing to fuse, the teacher's spans weighed by its confidence, and the record says why
    ner = sst2_task.model_copy(update={"kind": "ner"})
    same, why = training_rows(biased, ner, "auto")
    assert same is biased and why["auto_chose"] == "confidence" and "classification" in why["auto_why"]


def test_auto_choice_from_the_fusion_record():
    """Logic test on made-up records (no student): the lowest per-label estimate decides."""
    from evokd.noise import AUTO_FUSE_BELOW, auto_fuses

    assert auto_fuses({"teacher_right_estimate": {"a": 0.9, "b": AUTO_FUSE_BELOW - 0.01}})[0]
    assert not auto_fuses({"teacher_right_estimate": {"a": 0.9, "b": AUTO_FUSE_BELOW}})[0]
    assert auto_fuses({"fuse_skipped": "no seed or description of label 'c'"}) == (
        False, "no label fusion: no seed or description of label 'c'")
    assert auto_fuses({}) == (False, "no teacher-labeled rows")
