"""evokd.ner: tokenizer offsets, tag schemes, span <-> BIO, mention location, readers/writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evokd import ner
from evokd.errors import InputError
from evokd.ner import (
    REASON_BAD_TYPE,
    REASON_EMPTY,
    REASON_NOT_ALIGNED,
    REASON_NOT_IN_TEXT,
    REASON_OVERLAP,
    SpanAlignmentError,
    Token,
    bio_to_spans,
    bio_to_token_spans,
    locate_mentions,
    read_conll,
    read_ner_rows,
    spans_to_bio,
    to_bio,
    tokenize,
    tokens_to_example,
    validate_spans,
    write_conll,
)

from conftest import NER_TYPES, data_file, data_rows, write_jsonl

TYPES = ["PER", "LOC", "ORG", "MISC"]


def span(start, end, label):
    return {"start": start, "end": end, "label": label}


def surfaces(text, spans):
    return [(text[s["start"]:s["end"]], s["label"]) for s in spans]


@pytest.fixture(scope="module")
def conll_slice() -> list[dict]:
    """1,500 real sentences in CoNLL form (tokens + BIO tags): WNUT-17 train, tests/data."""
    return data_rows("wnut17", "train", limit=1500)


# --------------------------------------------------------------------------- tokenizer


def test_tokenize_offsets_exact_and_whitespace_excluded():
    text = "  Angela Merkel\tmet  Tim Cook\nin Zürich, São Paulo.  "
    toks = tokenize(text)
    assert all(isinstance(t, Token) for t in toks)
    assert all(text[t.start:t.end] == t.text for t in toks)
    assert all(t.text.strip() == t.text and t.text for t in toks)
    assert [t.text for t in toks] == ["Angela", "Merkel", "met", "Tim", "Cook", "in", "Zürich", ",", "São", "Paulo", "."]
    assert tokenize("") == [] and tokenize("   \n ") == []


def test_tokenizer_is_cached_single_instance():
    tokenize("warm up")
    assert ner._tokenizer() is ner._tokenizer()
    assert ner._tokenizer.cache_info().currsize == 1


# --------------------------------------------------------------------------- schemes


def test_to_bio_iob1():
    tags = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "B-ORG"]
    assert to_bio(tags, "IOB1") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "B-ORG"]


def test_to_bio_bioes_and_bilou():
    bioes = ["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "B-ORG", "E-ORG", "S-ORG"]
    want = ["B-PER", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG", "I-ORG", "B-ORG"]
    assert to_bio(bioes, "BIOES") == want
    bilou = ["U-PER", "B-LOC", "I-LOC", "L-LOC", "O", "B-ORG", "L-ORG", "U-ORG"]
    assert to_bio(bilou, "BIOES") == want
    assert to_bio(bilou, "BILOU") == want


def test_to_bio_bio_passthrough_keeps_hyphenated_types():
    tags = ["B-creative-work", "I-creative-work", "O", "I-person"]
    assert to_bio(tags, "BIO") == tags


@pytest.mark.parametrize(
    "tags,scheme",
    [(["B-PER", "E-PER"], "BIO"), (["X-PER"], "BIOES"), (["PER"], "BIO"), (["B-"], "BIO"), (["S-LOC"], "IOB1"), ([None], "BIO")],
)
def test_to_bio_rejects_unknown_prefix(tags, scheme):
    with pytest.raises(ValueError, match="^tag 1 ") as exc:
        to_bio(["O"] + tags if len(tags) == 1 else tags, scheme)
    assert f"for scheme {scheme}" in str(exc.value) or "expected a string" in str(exc.value)


def test_to_bio_unknown_scheme():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        to_bio(["O"], "IOX")


def test_bio_repair_conll_convention():
    tags = ["I-PER", "I-PER", "I-LOC", "B-LOC", "I-LOC", "O", "I-ORG", "B-ORG", "B-ORG", "I-MISC"]
    assert bio_to_token_spans(tags) == [(0, 2, "PER"), (2, 3, "LOC"), (3, 5, "LOC"), (6, 7, "ORG"), (7, 8, "ORG"), (8, 9, "ORG"), (9, 10, "MISC")]
    assert bio_to_token_spans([]) == []
    assert bio_to_token_spans(["O", "O"]) == []


def _bio_to_iob1(tags):
    out = []
    for i, t in enumerate(tags):
        if t.startswith("B-") and i > 0 and tags[i - 1] != "O" and tags[i - 1][2:] == t[2:]:
            out.append(t)  # IOB1 keeps B only between two same-type entities
        elif t == "O":
            out.append(t)
        else:
            out.append("I-" + t[2:])
    return out


def _bio_to_bioes(tags):
    out = []
    for i, t in enumerate(tags):
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        cont = nxt == "I-" + t[2:]
        if t == "O":
            out.append(t)
        elif t.startswith("B-"):
            out.append(("B-" if cont else "S-") + t[2:])
        else:
            out.append(("I-" if cont else "E-") + t[2:])
    return out


def test_scheme_round_trips_on_real_conll(conll_slice):
    n_b_kept = 0
    for row in conll_slice:
        tags = row["tags"]
        iob1 = _bio_to_iob1(tags)
        n_b_kept += sum(t.startswith("B-") for t in iob1)
        assert to_bio(iob1, "IOB1") == tags
        assert to_bio(_bio_to_bioes(tags), "BIOES") == tags
        bilou = [t.replace("E-", "L-", 1).replace("S-", "U-", 1) for t in _bio_to_bioes(tags)]
        assert to_bio(bilou, "BILOU") == tags
        ex_bio = tokens_to_example(row["tokens"], tags)
        assert tokens_to_example(row["tokens"], iob1, "IOB1") == ex_bio
    assert n_b_kept > 0  # the slice exercises IOB1's B- between adjacent same-type entities


# --------------------------------------------------------------------------- tokens <-> spans


def test_tokens_to_example_offsets():
    ex = tokens_to_example(["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"])
    assert ex["text"] == "EU rejects German call ."
    assert ex["entities"] == [span(0, 2, "ORG"), span(11, 17, "MISC")]
    ex = tokens_to_example(["Peter", "Blackburn"], ["I-PER", "I-PER"], scheme="IOB1")
    assert ex["entities"] == [span(0, 15, "PER")]
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        tokens_to_example(["a", "b"], ["O"])
    with pytest.raises(ValueError, match="whitespace"):
        tokens_to_example(["a b"], ["O"])


def test_real_conll_spans_survive_spacy_retokenisation(conll_slice):
    same_tok = 0
    for row in conll_slice:
        ex = tokens_to_example(row["tokens"], row["tags"])
        assert all(ex["text"][e["start"]:e["end"]] == " ".join(
            row["tokens"][s:t]) for e, (s, t, _) in zip(ex["entities"], bio_to_token_spans(row["tags"])))
        toks = tokenize(ex["text"])
        tags = spans_to_bio(ex["text"], ex["entities"], toks)  # strict: every span must align
        if [t.text for t in toks] == row["tokens"]:
            same_tok += 1
            assert tags == row["tags"]
        assert bio_to_spans(ex["text"], toks, tags) == ex["entities"]
        assert validate_spans(ex["text"], ex["entities"], NER_TYPES) is None
    # WNUT-17 posts hold URLs, @handles and emoticons that spaCy splits differently: 679 of these 1,500
    # keep their tokens exactly, and on those the tags must match
    assert same_tok > len(conll_slice) // 3


def test_spans_to_bio_strict_and_expand():
    text = "I love New York-based bands."
    toks = tokenize(text)
    assert [t.text for t in toks] == ["I", "love", "New", "York", "-", "based", "bands", "."]
    assert spans_to_bio(text, [span(7, 15, "LOC")]) == ["O", "O", "B-LOC", "I-LOC", "O", "O", "O", "O"]
    with pytest.raises(SpanAlignmentError, match="not on token boundaries"):
        spans_to_bio(text, [span(7, 13, "LOC")])  # "New Yo"
    assert spans_to_bio(text, [span(8, 13, "LOC")], strict=False) == ["O", "O", "B-LOC", "I-LOC", "O", "O", "O", "O"]
    with pytest.raises(ValueError, match="overlap"):
        spans_to_bio(text, [span(7, 15, "LOC"), span(11, 15, "LOC")])
    with pytest.raises(ValueError, match="overlaps another span once expanded"):
        spans_to_bio(text, [span(7, 8, "LOC"), span(9, 10, "LOC")], strict=False)
    with pytest.raises(ValueError, match="outside the text"):
        spans_to_bio(text, [span(20, 99, "LOC")])
    assert isinstance(SpanAlignmentError("x"), ValueError)


def test_bio_to_spans_repairs():
    text = "Tim Cook visited Paris ."
    toks = tokenize(text)
    assert bio_to_spans(text, toks, ["I-PER", "I-PER", "O", "I-LOC", "O"]) == [span(0, 8, "PER"), span(17, 22, "LOC")]
    assert bio_to_spans(text, toks, ["B-PER", "I-LOC", "O", "O", "O"]) == [span(0, 3, "PER"), span(4, 8, "LOC")]
    with pytest.raises(ValueError):
        bio_to_spans(text, toks, ["O"])


# --------------------------------------------------------------------------- locate_mentions


def test_locate_repeated_and_punctuation_adjacent():
    text = "Paris is big. I love Paris. Paris, again: (Paris)"
    spans, rej = locate_mentions(text, [("Paris", "LOC")], TYPES)
    assert rej == []
    assert [s["start"] for s in spans] == [0, 21, 28, 43]
    assert surfaces(text, spans) == [("Paris", "LOC")] * 4


def test_locate_unicode():
    text = "Flights from Zürich to São Paulo via Zürich."
    spans, rej = locate_mentions(text, [("São Paulo", "LOC"), ("Zürich", "LOC")], TYPES)
    assert rej == []
    assert surfaces(text, spans) == [("Zürich", "LOC"), ("São Paulo", "LOC"), ("Zürich", "LOC")]
    assert spans[1] == span(23, 32, "LOC")


def test_locate_overlap_longer_wins_regardless_of_order():
    text = "She reads the New York Times in New York."
    for mentions in ([("New York", "LOC"), ("New York Times", "ORG")], [("New York Times", "ORG"), ("New York", "LOC")]):
        spans, rej = locate_mentions(text, mentions, TYPES)
        assert surfaces(text, spans) == [("New York Times", "ORG"), ("New York", "LOC")]
        assert spans == [span(14, 28, "ORG"), span(32, 40, "LOC")]
        assert rej == []


def test_locate_overlap_fully_shadowed_is_rejected():
    text = "The New York Times reported."
    spans, rej = locate_mentions(text, [("New York", "LOC"), ("New York Times", "ORG"), ("York Times", "ORG")], TYPES)
    assert spans == [span(4, 18, "ORG")]
    assert rej == [("New York", "LOC", REASON_OVERLAP), ("York Times", "ORG", REASON_OVERLAP)]


def test_locate_same_length_overlap_earlier_start_wins():
    text = "Bank of America Merrill"
    spans, rej = locate_mentions(text, [("America Merrill", "ORG"), ("Bank of America", "ORG")], TYPES)
    assert spans == [span(0, 15, "ORG")]
    assert rej == [("America Merrill", "ORG", REASON_OVERLAP)]


def test_locate_conflicting_types_first_listed_wins():
    text = "Jordan played in Jordan."
    spans, rej = locate_mentions(text, [("Jordan", "PER"), ("Jordan", "LOC")], TYPES)
    assert spans == [span(0, 6, "PER"), span(17, 23, "PER")]
    assert rej == [("Jordan", "LOC", REASON_OVERLAP)]
    spans, _ = locate_mentions(text, [("Jordan", "LOC"), ("Jordan", "PER")], TYPES)
    assert [s["label"] for s in spans] == ["LOC", "LOC"]


def test_locate_case_fallback_only_without_exact_match():
    text = "APPLE shares rose; apple pie is not Apple the company."
    spans, rej = locate_mentions(text, [("Apple", "ORG")], TYPES)
    assert surfaces(text, spans) == [("Apple", "ORG")]  # exact match exists: no case-insensitive hits
    text2 = "APPLE SHARES ROSE IN NEW YORK"
    spans, rej = locate_mentions(text2, [("Apple", "ORG"), ("New York", "LOC")], TYPES)
    assert surfaces(text2, spans) == [("APPLE", "ORG"), ("NEW YORK", "LOC")]
    assert rej == []


def test_locate_not_in_text_and_substring_inside_word():
    text = "Her Cookbook sold well in Brooklyn."
    spans, rej = locate_mentions(text, [("Cook", "PER"), ("Berlin", "LOC"), ("Brook", "LOC")], TYPES)
    assert spans == []
    assert rej == [("Cook", "PER", REASON_NOT_ALIGNED), ("Berlin", "LOC", REASON_NOT_IN_TEXT), ("Brook", "LOC", REASON_NOT_ALIGNED)]


def test_locate_word_boundary_inside_word_does_not_block_real_match():
    text = "The Cookbook author Cook smiled."
    spans, rej = locate_mentions(text, [("Cook", "PER")], TYPES)
    assert spans == [span(20, 24, "PER")]
    assert rej == []


def test_locate_empty_bad_type_quotes_and_whitespace():
    text = 'He said "Tim Cook" met  Angela\nMerkel.'
    mentions = [("  ", "PER"), ("Tim Cook", "FRUIT"), ('"Tim Cook"', "PER"), (" Angela Merkel ", "per"), ("", "PER"), ('""', "LOC")]
    spans, rej = locate_mentions(text, mentions, TYPES)
    assert surfaces(text, spans) == [("Tim Cook", "PER"), ("Angela\nMerkel", "PER")]  # type case mapped, whitespace runs match
    assert rej == [("  ", "PER", REASON_EMPTY), ("Tim Cook", "FRUIT", REASON_BAD_TYPE), ("", "PER", REASON_EMPTY), ('""', "LOC", REASON_EMPTY)]


def test_locate_duplicate_mentions_not_double_counted():
    text = "Paris and Paris."
    spans, rej = locate_mentions(text, [("Paris", "LOC"), ("Paris", "LOC"), ("paris", "LOC")], TYPES)
    assert spans == [span(0, 5, "LOC"), span(10, 15, "LOC")]
    assert rej == [("paris", "LOC", REASON_OVERLAP)]  # same spans already taken by the first mention


def test_locate_spans_are_valid_and_sorted():
    text = "U.S. President Bill Clinton met Boris Yeltsin in Moscow on Tuesday, said the U.S."
    spans, rej = locate_mentions(text, [("Moscow", "LOC"), ("Bill Clinton", "PER"), ("U.S.", "LOC"), ("Boris Yeltsin", "PER")], TYPES)
    assert rej == []
    assert [s["start"] for s in spans] == sorted(s["start"] for s in spans)
    assert len(spans) == 5
    assert validate_spans(text, spans, TYPES) is None


# --------------------------------------------------------------------------- validate_spans


@pytest.mark.parametrize(
    "spans,needle",
    [
        ([span(0, 99, "PER")], "outside the text"),
        ([span(-1, 3, "PER")], "outside the text"),
        ([span(3, 3, "PER")], "empty"),
        ([span(0, 2, "PER")], "not on token boundaries"),
        ([span(0, 8, "PER"), span(4, 8, "PER")], "overlaps"),
        ([span(0, 8, "FRUIT")], "not a task entity type"),
        ([{"start": 0, "end": 8}], "label"),
        ([{"start": "0", "end": 8, "label": "PER"}], "integer"),
    ],
)
def test_validate_spans_reasons(spans, needle):
    reason = validate_spans("Tim Cook visited Paris.", spans, TYPES)
    assert reason is not None and needle in reason


def test_validate_spans_ok():
    assert validate_spans("Tim Cook visited Paris.", [span(17, 22, "LOC"), span(0, 8, "PER")], TYPES) is None
    assert validate_spans("Tim Cook visited Paris.", [span(17, 22, "ANY")], None) is None


# --------------------------------------------------------------------------- read_ner_rows


def test_read_ner_rows_both_forms(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "  Tim Cook visited Paris.", "entities": [span(19, 24, "LOC"), span(2, 10, "PER")], "id": 7},
        {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
        {"text": "Nothing here.", "entities": []},
    ])
    rows = read_ner_rows(path, TYPES)
    assert rows[0] == {"id": 7, "text": "Tim Cook visited Paris.", "entities": [span(0, 8, "PER"), span(17, 22, "LOC")]}
    assert rows[1] == {"text": "EU rejects German call", "entities": [span(0, 2, "ORG"), span(11, 17, "MISC")]}
    assert rows[2]["entities"] == []
    # BIO label lists (as in meta.json) are accepted as the entity types
    assert read_ner_rows(path, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]) == rows


def test_read_ner_rows_schemes(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"tokens": ["Peter", "Blackburn", "of", "EU"], "tags": ["I-PER", "I-PER", "O", "I-ORG"]}])
    assert read_ner_rows(path, TYPES, scheme="IOB1")[0]["entities"] == [span(0, 15, "PER"), span(19, 21, "ORG")]
    path = write_jsonl(tmp_path / "e.jsonl", [{"tokens": ["Peter", "Blackburn", "of", "EU"], "tags": ["B-PER", "E-PER", "O", "S-ORG"]}])
    assert read_ner_rows(path, TYPES, scheme="BIOES")[0]["entities"] == [span(0, 15, "PER"), span(19, 21, "ORG")]
    with pytest.raises(InputError, match=r"line 1: field 'tags': .*'E-PER'"):
        read_ner_rows(path, TYPES)  # E- is not BIO


def test_read_ner_rows_csv_and_parquet(tmp_path):
    import csv

    import duckdb

    csv_path = tmp_path / "d.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "entities"])
        w.writerow(["Tim Cook visited Paris.", json.dumps([span(0, 8, "PER")])])
        w.writerow(["Paris", "[{\"start\": 0, \"end\": 9, \"label\": \"LOC\"}]"])
    with pytest.raises(InputError, match=r"d.csv: line 3: field 'entities\[0\]': span \[0, 9\) is outside"):
        read_ner_rows(csv_path, TYPES)
    pq = tmp_path / "d.parquet"
    duckdb.sql(
        "COPY (SELECT * FROM (VALUES (['Tim', 'Cook', 'visited', 'Paris'], ['B-PER', 'I-PER', 'O', 'B-LOC'])) t(tokens, tags)) "
        f"TO '{pq}' (FORMAT PARQUET)"
    )
    assert read_ner_rows(pq, TYPES) == [{"text": "Tim Cook visited Paris", "entities": [span(0, 8, "PER"), span(17, 22, "LOC")]}]


GOOD_TEXT = "Tim Cook visited Paris."


@pytest.mark.parametrize(
    "row,field,needle",
    [
        ({"entities": []}, "text", "expected either"),
        ({"foo": 1}, "text", "expected either"),
        ({"text": GOOD_TEXT}, "entities", "missing"),
        ({"text": 5, "entities": []}, "text", "expected a string"),
        ({"text": "   ", "entities": []}, "text", "empty text"),
        ({"text": None, "entities": []}, "text", "expected a string"),
        ({"text": GOOD_TEXT, "entities": {"start": 0}}, "entities", "expected a list"),
        ({"text": GOOD_TEXT, "entities": ["PER"]}, "entities[0]", "expected an object"),
        ({"text": GOOD_TEXT, "entities": [{"end": 8, "label": "PER"}]}, "entities[0].start", "missing"),
        ({"text": GOOD_TEXT, "entities": [{"start": 0, "end": 8.0, "label": "PER"}]}, "entities[0].end", "integer"),
        ({"text": GOOD_TEXT, "entities": [{"start": True, "end": 8, "label": "PER"}]}, "entities[0].start", "integer"),
        ({"text": GOOD_TEXT, "entities": [{"start": 0, "end": 8}]}, "entities[0].label", "missing"),
        ({"text": GOOD_TEXT, "entities": [span(0, 8, "PER"), span(17, 40, "LOC")]}, "entities[1]", "outside the text (length 23)"),
        ({"text": GOOD_TEXT, "entities": [span(8, 4, "PER")]}, "entities[0]", "empty"),
        ({"text": GOOD_TEXT, "entities": [span(0, 6, "PER")]}, "entities[0]", "[0, 6) 'Tim Co' is not on token boundaries; tokens there: 'Tim' [0, 3), 'Cook' [4, 8)"),
        ({"text": GOOD_TEXT, "entities": [span(18, 22, "LOC")]}, "entities[0]", "'aris' is not on token boundaries"),
        ({"text": GOOD_TEXT, "entities": [span(0, 8, "PER"), span(4, 8, "PER")]}, "entities[1]", "overlaps span 0"),
        ({"text": GOOD_TEXT, "entities": [span(0, 8, "CEO")]}, "entities[0].label", "'CEO' is not a task entity type"),
        ({"tokens": ["Tim"]}, "tags", "missing"),
        ({"tags": ["O"]}, "tokens", "missing"),
        ({"tokens": "Tim Cook", "tags": ["B-PER", "I-PER"]}, "tokens", "expected a JSON list"),
        ({"tokens": ["Tim", "Cook"], "tags": "B-PER"}, "tags", "expected a JSON list"),
        ({"tokens": ["Tim", "Cook"], "tags": ["B-PER"]}, "tags", "1 tags for 2 tokens"),
        ({"tokens": [], "tags": []}, "tokens", "empty text"),
        ({"tokens": ["Tim", ""], "tags": ["B-PER", "O"]}, "tokens", "token 1"),
        ({"tokens": ["Tim", 3], "tags": ["B-PER", "O"]}, "tokens", "token 1"),
        ({"tokens": ["Tim Cook"], "tags": ["B-PER"]}, "tokens", "without whitespace"),
        ({"tokens": ["Tim", "Cook"], "tags": ["B-PER", "X-PER"]}, "tags", "tag 1 'X-PER' has an unknown prefix"),
        ({"tokens": ["Tim", "Cook"], "tags": ["B-PER", "PER"]}, "tags", "unknown prefix"),
        ({"tokens": ["Tim", "Cook"], "tags": ["B-CEO", "I-CEO"]}, "tags", "'CEO' is not a task entity type"),
        ({"tokens": ["Tim", "Cook"], "tags": ["B-PER", 1]}, "tags", "expected a string"),
    ],
)
def test_read_ner_rows_defects(tmp_path, row, field, needle):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": GOOD_TEXT, "entities": [span(0, 8, "PER")]}, row])
    with pytest.raises(InputError) as exc:
        read_ner_rows(path, TYPES)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: line 2: field '{field}': "), msg
    assert needle in msg, msg
    assert exc.value.line == 2 and exc.value.field == field


def test_read_ner_rows_labels_none_accepts_any_type(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": GOOD_TEXT, "entities": [span(0, 8, "CEO")]}])
    assert read_ner_rows(path, None)[0]["entities"] == [span(0, 8, "CEO")]


def test_read_ner_rows_real_wnut17_slice():
    rows = read_ner_rows(data_file("wnut17", "dev"), NER_TYPES)  # gzipped JSONL, read as it is
    raw = data_rows("wnut17", "dev")
    assert len(rows) == len(raw)  # nothing dropped
    n_ents = sum(len(bio_to_token_spans(r["tags"])) for r in raw)
    assert sum(len(r["entities"]) for r in rows) == n_ents
    assert {e["label"] for r in rows for e in r["entities"]} <= {"corporation", "creative-work", "group", "location", "person", "product"}


# --------------------------------------------------------------------------- CoNLL files


def test_conll_write_read_round_trip(tmp_path, conll_slice):
    rows = [{"tokens": r["tokens"], "tags": r["tags"]} for r in conll_slice[:300]]
    path = tmp_path / "out" / "x.conll"
    assert write_conll(path, rows) == 300
    assert read_conll(path) == rows
    assert not [p for p in path.parent.iterdir() if p.name != "x.conll"]  # no temp file left behind
    first = path.read_text(encoding="utf-8").split("\n\n")[0]
    assert first.splitlines()[0] == f"{rows[0]['tokens'][0]} {rows[0]['tags'][0]}"


def test_write_conll_from_spans(tmp_path):
    path = tmp_path / "x.conll"
    write_conll(path, [{"text": "Tim Cook visited Paris.", "entities": [span(0, 8, "PER"), span(17, 22, "LOC")]}])
    assert read_conll(path) == [{"tokens": ["Tim", "Cook", "visited", "Paris", "."], "tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]}]
    with pytest.raises(ValueError, match="whitespace"):
        write_conll(tmp_path / "y.conll", [{"tokens": ["a b"], "tags": ["O"]}])
    assert not (tmp_path / "y.conll").exists()


def test_read_conll_original_format(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(
        "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n",
        encoding="utf-8",
    )
    rows = read_conll(path)
    assert rows == [{"tokens": ["EU", "rejects"], "tags": ["I-ORG", "O"]}, {"tokens": ["Peter", "Blackburn"], "tags": ["I-PER", "I-PER"]}]
    assert [tokens_to_example(r["tokens"], r["tags"], "IOB1")["entities"] for r in rows] == [[span(0, 2, "ORG")], [span(0, 15, "PER")]]


@pytest.mark.parametrize(
    "content,line,needle",
    [
        ("EU B-ORG\nrejects\n", 2, "one column"),
        ("EU B-ORG\n\nrejects Q-ORG\n", 3, "'Q-ORG'"),
        ("EU ORG\n", 1, "'ORG'"),
    ],
)
def test_read_conll_malformed(tmp_path, content, line, needle):
    path = tmp_path / "bad.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        read_conll(path)
    assert exc.value.line == line and needle in str(exc.value)


def test_read_conll_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_conll(tmp_path / "nope.conll")


def test_conll_file_is_read_as_task_rows(tmp_path):
    from evokd.ner import read_ner_rows, write_conll

    rows = [{"tokens": ["Angela", "Merkel", "visited", "Paris", "."], "tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]},
            {"tokens": ["No", "entities", "here"], "tags": ["O", "O", "O"]}]
    path = tmp_path / "data.conll"
    write_conll(path, rows)
    got = read_ner_rows(path, ["PER", "LOC"])
    assert got[0]["text"] == "Angela Merkel visited Paris ."
    assert got[0]["entities"] == [{"start": 0, "end": 13, "label": "PER"}, {"start": 22, "end": 27, "label": "LOC"}]
    assert got[1]["entities"] == []
