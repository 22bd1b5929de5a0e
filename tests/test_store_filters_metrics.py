"""Store (real DuckDB file), filters (real MiniLM embeddings) and metrics."""

import datetime as dt

import numpy as np
import pytest

from evokd.embed import encode
from evokd.filters import NearDuplicateFilter, ValidityFilter, clean_generated, normalise, text_hash
from evokd.metrics import classification_report, confusion_pairs
from evokd.store import SCHEMA_VERSION, CallRow, RoundRecord, SampleRow, Store


def record(round_: int) -> RoundRecord:
    now = dt.datetime.now()
    return RoundRecord(round=round_, started_at=now, finished_at=now, analysis="a", n_generated=2, n_accepted=1,
                       n_rejected=1, rejected_by_reason={"near_duplicate": 1}, feedback_size=0, feedback_accuracy=None,
                       batch_student_accuracy=0.5, train_size=3, eval_n=10, eval_accuracy=0.7, eval_macro_f1=0.6,
                       prompt_tokens=10, completion_tokens=5, n_calls=2, n_failed_calls=1)


def sample(round_: int, text: str, status="accepted", vec=None) -> SampleRow:
    return SampleRow(round=round_, source="generated", text=text, text_hash=text_hash(text), status=status,
                     label="positive" if status == "accepted" else None, intent="hard", embedding=vec)


def test_store_round_trip_and_reopen(tmp_path):
    path = tmp_path / "evokd.duckdb"
    vecs = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
    with Store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        store.create_run("r1", {"name": "t", "kind": "classification"}, "local", None, {"rounds": 2}, "0.1.0")
        store.commit_round(record(0), [sample(0, "good film", vec=vecs[0]), sample(0, "bad film", "rejected", vecs[1])],
                           [CallRow(0, "label", 1, "m", 10, 5, 0.1, True)])
    with Store(path) as store:  # reopening applies no migration twice and keeps everything
        assert store.schema_version() == SCHEMA_VERSION
        assert store.last_round() == 0
        assert store.run_info()["config"] == {"rounds": 2}
        assert [s["text"] for s in store.samples()] == ["good film"]
        assert len(store.samples(status=None)) == 2
        np.testing.assert_allclose(store.accepted_vectors(), vecs[:1])
        assert store.token_totals() == (10, 5)
        assert store.rounds()[0]["rejected_by_reason"] == {"near_duplicate": 1}


def test_failed_round_commit_rolls_back(tmp_path):
    with Store(tmp_path / "evokd.duckdb") as store:
        store.commit_round(record(0), [sample(0, "first")], [])
        bad = sample(1, "second")
        bad.embedding = np.zeros(5, dtype=np.float32)  # wrong dimension: the insert fails mid-round
        with pytest.raises(Exception):
            store.commit_round(record(1), [sample(1, "ok text"), bad], [CallRow(1, "label", 1, "m", 1, 1, 0.1, True)])
        assert store.last_round() == 0
        assert [s["text"] for s in store.samples(status=None)] == ["first"]
        assert store.token_totals() == (0, 0)


def test_empty_store_vectors(tmp_path):
    with Store(tmp_path / "evokd.duckdb") as store:
        assert store.accepted_vectors().shape == (0, 384)
        assert store.last_round() is None and store.run_info() is None


def test_normalise_and_hash():
    assert normalise("  “Great   FILM!!”  ") == normalise("great film")
    assert text_hash("Great film.") == text_hash("great   film")
    assert text_hash("great film") != text_hash("grate film")


def test_clean_generated():
    assert clean_generated('1. "A fine film."') == "A fine film."
    assert clean_generated("- dull and  long") == "dull and long"
    assert clean_generated("# rugby is a sport") == "rugby is a sport" and clean_generated("#rugby rules") == "#rugby rules"
    assert clean_generated(None) == ""


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("ok", "too_short"),
        ("!!!!", "too_short"),
        ("x" * 1200, "too_long"),
        ("Where is Paris? (correct: LOC, student said: NUM)", "prompt_leak"),
        ("Label: positive. A warm film.", "prompt_leak"),
        ("A warm and funny film (positive)", "prompt_leak"),
        ("Business news headline: 'Apple CEO announces new product launch'] }` ``` ``` ```", "prompt_leak"),
        ("A warm and funny film about a positive person.", None),
    ],
)
def test_validity_filter(text, reason):
    assert ValidityFilter(["negative", "positive", "LOC", "NUM"]).reason(text) == reason


def test_near_duplicate_filter_with_real_embeddings():
    store_texts = ["The movie was a delight from start to finish."]
    new = [
        "The movie was a delight from start to finish!",  # near-copy of the store
        "A tedious, overlong mess with no laughs.",
        "A tedious, overlong mess with no laughs at all.",  # near-copy of the previous new text
        "Where is the tallest mountain in Africa?",
    ]
    keep = NearDuplicateFilter(0.9).select(encode(new), encode(store_texts))
    assert keep == [False, True, False, True]


def test_near_duplicate_blocks_match_unblocked():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(1000, 384)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    q = pool[:5] + 0.01
    full = NearDuplicateFilter(0.9).max_similarity(q, pool)
    blocked = NearDuplicateFilter(0.9, block=77).max_similarity(q, pool)
    np.testing.assert_allclose(full, blocked, rtol=1e-6)


def test_embeddings_are_normalised_and_deterministic():
    a = encode(["a gorgeous film", "a dull film"])
    assert a.shape == (2, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, encode(["a gorgeous film", "a dull film"]), atol=1e-6)


def test_classification_report_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    r = classification_report(gold, pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(3 / 5)
    # a: P=1/2 R=1/2 F=0.5; b: P=2/3 R=1 F=0.8; c: 0
    assert r["per_label"]["b"]["f1"] == pytest.approx(0.8)
    assert r["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert confusion_pairs(gold, pred) == [("a", "b", 1), ("c", "a", 1)]
    with pytest.raises(ValueError):
        classification_report(["a"], [])
