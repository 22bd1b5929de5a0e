"""evokd.metrics.entity_report: hand-computed cases and the seqeval definition."""

from __future__ import annotations

import random

import pytest

from evokd.metrics import entity_report
from evokd.ner import bio_to_token_spans

from conftest import data_rows


def span(start, end, label):
    return {"start": start, "end": end, "label": label}


# --------------------------------------------------------------------------- hand-computed


def test_entity_report_hand_computed():
    gold = [[span(0, 8, "PER"), span(17, 22, "LOC")], [span(0, 2, "ORG")], []]
    pred = [[span(17, 21, "LOC"), span(0, 8, "PER")], [span(0, 2, "PER")], [span(0, 3, "MISC")]]
    r = entity_report(gold, pred)
    # 1 correct (PER 0-8); boundary error, type error and a spurious entity are all wrong
    assert r["n"] == 3 and r["support"] == 3 and r["predicted"] == 4 and r["correct"] == 1
    assert r["precision"] == pytest.approx(1 / 4)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(2 / 7)  # 2PR/(P+R) = 2*(1/12)/(7/12)
    assert list(r["per_label"]) == ["LOC", "MISC", "ORG", "PER"]
    assert r["per_label"]["PER"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["per_label"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_label"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_label"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_entity_report_labels_order_and_tuples():
    gold = [[(0, 3, "PER"), (4, 9, "LOC")]]
    pred = [[span(0, 3, "PER"), span(4, 9, "LOC")]]
    r = entity_report(gold, pred, labels=["PER", "LOC", "ORG"])
    assert (r["precision"], r["recall"], r["f1"]) == (1.0, 1.0, 1.0)
    assert list(r["per_label"]) == ["PER", "LOC", "ORG"]
    assert r["per_label"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_entity_report_same_span_in_different_sentences_is_not_a_match():
    gold = [[span(0, 3, "PER")], []]
    pred = [[], [span(0, 3, "PER")]]
    r = entity_report(gold, pred)
    assert r["correct"] == 0 and r["f1"] == 0.0


def test_entity_report_empty_and_mismatch():
    r = entity_report([[], []], [[], []])
    assert r["n"] == 2 and r["f1"] == 0.0 and r["per_label"] == {}
    with pytest.raises(ValueError, match="2 sentences but pred has 1"):
        entity_report([[], []], [[]])


# --------------------------------------------------------------------------- seqeval definition


def _end_of_chunk(prev_tag, tag, prev_type, type_):
    # seqeval 1.2.2 metrics/sequence_labeling.py, default (non-strict) mode
    return (
        prev_tag in ("E", "S")
        or (prev_tag == "B" and tag in ("B", "S", "O"))
        or (prev_tag == "I" and tag in ("B", "S", "O"))
        or (prev_tag != "O" and prev_tag != "." and prev_type != type_)
    )


def _start_of_chunk(prev_tag, tag, prev_type, type_):
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag != "O" and tag != "." and prev_type != type_)
    )


def seqeval_get_entities(seq: list[list[str]]) -> list[tuple[str, int, int]]:
    """seqeval.metrics.sequence_labeling.get_entities: sentences flattened with 'O' between them,
    (type, first, last inclusive)."""
    flat = [t for sent in seq for t in sent + ["O"]]
    prev_tag, prev_type, begin, chunks = "O", "", 0, []
    for i, chunk in enumerate(flat + ["O"]):
        tag = chunk[0]
        type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def seqeval_scores(y_true, y_pred):
    """Micro and per-type P/R/F1/support as seqeval's default classification_report computes them."""
    true, pred = set(seqeval_get_entities(y_true)), set(seqeval_get_entities(y_pred))
    types = sorted({t for t, _, _ in true | pred})

    def prf(tp, np_, nt):
        p = tp / np_ if np_ else 0.0
        r = tp / nt if nt else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    per = {}
    for t in types:
        tt = {e for e in true if e[0] == t}
        pp = {e for e in pred if e[0] == t}
        p, r, f = prf(len(tt & pp), len(pp), len(tt))
        per[t] = {"precision": p, "recall": r, "f1": f, "support": len(tt)}
    p, r, f = prf(len(true & pred), len(pred), len(true))
    return {"precision": p, "recall": r, "f1": f, "per_label": per}


def _corrupt(tags: list[str], types: list[str], rng: random.Random) -> list[str]:
    """Tagger-like errors, including invalid BIO (I- after O, I- of another type)."""
    out = list(tags)
    for i in range(len(out)):
        x = rng.random()
        if x < 0.06:
            out[i] = "O"
        elif x < 0.10:
            out[i] = "B-" + rng.choice(types)
        elif x < 0.14:
            out[i] = "I-" + rng.choice(types)
        elif x < 0.17 and out[i].startswith("B-"):
            out[i] = "I-" + out[i][2:]
    return out


def _as_spans(tag_seqs):
    return [[span(s, e, t) for s, e, t in bio_to_token_spans(tags)] for tags in tag_seqs]


@pytest.fixture(scope="module", params=["train", "dev"])
def gold_pred(request):
    rows = data_rows("wnut17", request.param, limit=800)  # real BIO tags of six entity types
    gold = [r["tags"] for r in rows]
    types = sorted({t[2:] for tags in gold for t in tags if t != "O"})
    rng = random.Random(13)
    pred = [_corrupt(tags, types, rng) for tags in gold]
    return gold, pred


def _assert_same(ours: dict, ref: dict):
    for key in ("precision", "recall", "f1"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert set(ours["per_label"]) == set(ref["per_label"])
    for t, v in ref["per_label"].items():
        assert ours["per_label"][t] == pytest.approx(v, abs=1e-12), t


def test_entity_report_matches_seqeval_definition(gold_pred):
    gold, pred = gold_pred
    ours = entity_report(_as_spans(gold), _as_spans(pred))
    ref = seqeval_scores(gold, pred)
    assert 0.3 < ref["f1"] < 0.95  # corruption is strong enough to exercise errors, weak enough to keep hits
    _assert_same(ours, ref)
    assert ours["support"] == len(seqeval_get_entities(gold))


def test_seqeval_reimplementation_hand_cases():
    assert seqeval_get_entities([["B-PER", "I-PER", "O", "B-LOC"]]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # invalid BIO: I- after O starts an entity; I- of another type starts a new one
    assert seqeval_get_entities([["I-PER", "I-LOC", "O", "I-ORG"]]) == [("PER", 0, 0), ("LOC", 1, 1), ("ORG", 3, 3)]
    assert seqeval_get_entities([["B-creative-work", "I-creative-work"]]) == [("creative-work", 0, 1)]


def test_entity_report_matches_installed_seqeval(gold_pred):
    import seqeval.metrics as seqeval  # in the [dev] extra; a missing package fails this test
    from seqeval.metrics.sequence_labeling import get_entities

    gold, pred = gold_pred
    assert sorted(get_entities(gold)) == sorted(seqeval_get_entities(gold))
    assert sorted(get_entities(pred)) == sorted(seqeval_get_entities(pred))
    rep = seqeval.classification_report(gold, pred, output_dict=True, zero_division=0)
    ref = {
        "precision": seqeval.precision_score(gold, pred, zero_division=0),
        "recall": seqeval.recall_score(gold, pred, zero_division=0),
        "f1": seqeval.f1_score(gold, pred, zero_division=0),
        "per_label": {
            t: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"], "support": int(v["support"])}
            for t, v in rep.items()
            if not t.endswith(" avg")
        },
    }
    _assert_same(entity_report(_as_spans(gold), _as_spans(pred)), ref)
