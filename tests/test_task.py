"""Task spec validation: every defect is one clear error naming the file and the field."""

from pathlib import Path

import pytest

from evokd.errors import InputError
from evokd.task import load_task

ROOT = Path(__file__).resolve().parents[1]

GOOD = (
    "name: demo\nkind: classification\ndescription: Sentiment.\n"
    "labels:\n  negative: bad\n  positive: good\nseeds: seeds.jsonl\n"
)
SEEDS = '{"text": "awful film", "label": "negative"}\n{"text": "great film", "label": "positive"}\n'


def make(tmp_path, yaml_text=GOOD, seeds=SEEDS):
    (tmp_path / "seeds.jsonl").write_text(seeds, encoding="utf-8")
    path = tmp_path / "task.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["sst2", "trec"])
def test_example_tasks_load_with_seeds_and_eval(name):
    task = load_task(ROOT / "datasets" / name / "task.yaml")
    seeds = task.seed_rows()
    assert {r["label"] for r in seeds} == set(task.label_names)
    assert len(task.eval_rows()) >= 500


def test_the_ner_example_task_ships_its_seeds_and_eval():
    task = load_task(ROOT / "datasets" / "wnut17" / "task.yaml")
    assert {e["label"] for r in task.seed_rows() for e in r["entities"]} == set(task.label_names)
    assert len(task.eval_rows()) == 1009 and sum(len(r["entities"]) for r in task.eval_rows()) > 500


@pytest.mark.parametrize("name, split", [("ag_news", "test"), ("conll2003", "dev")])
def test_unshipped_example_tasks_read_the_benchmark_data_folder(name, split, tmp_path, monkeypatch):
    """ag_news and conll2003 are not shipped (licences): their eval file is `$EVOKD_DATA/NAME/...`, and
    without that folder the task is refused in one line naming the variable."""
    folder = tmp_path / name
    folder.mkdir()
    task_file = folder / "task.yaml"
    task_file.write_text((ROOT / "datasets" / name / "task.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    seed = ('{"text": "Team wins the cup.", "label": "Sports"}' if name == "ag_news" else
            '{"text": "Tim Cook spoke .", "entities": [{"start": 0, "end": 8, "label": "PER"}]}')
    (folder / "seeds.jsonl").write_text(seed + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_task(task_file)
    message = str(err.value)
    assert str(task_file) in message and "field 'eval'" in message and "EVOKD_DATA is not set" in message
    assert "\n" not in message

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("EVOKD_DATA", str(data))
    with pytest.raises(InputError, match=f"\\$EVOKD_DATA/{name}/{split}.jsonl is not in the benchmark data folder"):
        load_task(task_file)
    (data / name).mkdir()
    (data / name / f"{split}.jsonl").write_text(seed + "\n", encoding="utf-8")
    task = load_task(task_file)
    assert Path(task.eval) == (data / name / f"{split}.jsonl").resolve() and len(task.eval_rows()) == 1
    assert load_task(task_file, check_files=False).label_names == task.label_names


def test_labels_accept_mapping_and_list(tmp_path):
    task = load_task(make(tmp_path))
    assert task.label_names == ["negative", "positive"]
    assert task.labels[0].description == "bad"
    assert task.label_descriptions == {"negative": "bad", "positive": "good"}
    task = load_task(make(tmp_path, GOOD.replace("  negative: bad\n  positive: good\n", "  - negative\n  - positive\n")))
    assert task.label_names == ["negative", "positive"]
    assert task.label_descriptions == {"negative": "negative", "positive": "positive"}  # no description: the name


@pytest.mark.parametrize(
    "yaml_text, field, expected",
    [
        (GOOD.replace("kind: classification", "kind: regression"), "kind", "expected 'classification'"),
        (GOOD.replace("name: demo\n", ""), "name", "missing"),
        (GOOD + "colour: red\n", "colour", "unknown field"),
        (GOOD.replace("seeds: seeds.jsonl", "seeds: nope.jsonl"), "seeds", "not found"),
        (GOOD.replace("  positive: good\n", ""), "labels", "at least 2"),
    ],
)
def test_bad_task_fields(tmp_path, yaml_text, field, expected):
    with pytest.raises(InputError) as err:
        load_task(make(tmp_path, yaml_text))
    message = str(err.value)
    assert "task.yaml" in message and f"field '{field}'" in message and expected in message
    assert "\n" not in message


def test_duplicate_labels(tmp_path):
    as_list = GOOD.replace("  negative: bad\n  positive: good\n", "  - negative\n  - positive\n  - negative\n")
    with pytest.raises(InputError, match="field 'labels': duplicate label 'negative'"):
        load_task(make(tmp_path, as_list))
    as_map = GOOD.replace("  positive: good\n", "  negative: again\n")
    with pytest.raises(InputError, match=r"task.yaml: line 6: invalid YAML \(duplicate key 'negative'\)"):
        load_task(make(tmp_path, as_map))


def test_malformed_yaml_names_line(tmp_path):
    with pytest.raises(InputError, match=r"task.yaml: line \d+: invalid YAML"):
        load_task(make(tmp_path, GOOD + "labels: [unclosed\n"))


def test_non_utf8_task(tmp_path):
    path = make(tmp_path)
    path.write_bytes(GOOD.replace("Sentiment.", "Sentiment caf\xe9.").encode("latin-1"))
    with pytest.raises(InputError, match="not valid UTF-8"):
        load_task(path)


def test_missing_task_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_task(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "seeds, expected",
    [
        ("", "no rows"),
        ('{"text": "fine", "label": "neutral"}\n', "'neutral' is not a task label"),
        ('{"text": "a", "label": "negative"}\n{"text": "b", "label": "negative"}\n', "at least two labels"),
        ('{"text": "a", "label": "negative"}\n{"text": "a", "label": "positive"}\n', "duplicates line 1"),
        ('{"text": "", "label": "negative"}\n', "empty text"),
        ('{"label": "negative"}\n', "field 'text': missing"),
        ('{"text": "a", "label": "negative"}\n{"text": "b", "lab', "line 2: invalid JSON"),
        ('{"text": 5, "label": "negative"}\n', "expected a string"),
        ('["a", "negative"]\n', "expected a JSON object"),
    ],
)
def test_bad_seeds(tmp_path, seeds, expected):
    task = load_task(make(tmp_path, seeds=seeds))
    with pytest.raises(InputError) as err:
        task.seed_rows()
    assert "seeds.jsonl" in str(err.value) and expected in str(err.value)


def test_non_utf8_seeds_name_the_line(tmp_path):
    path = make(tmp_path)
    (tmp_path / "seeds.jsonl").write_bytes(SEEDS.encode() + '{"text": "caf\xe9", "label": "positive"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"seeds.jsonl: line 3: not valid UTF-8"):
        load_task(path).seed_rows()


def test_bom_and_crlf_are_accepted(tmp_path):
    path = make(tmp_path)
    (tmp_path / "seeds.jsonl").write_bytes(b"\xef\xbb\xbf" + SEEDS.replace("\n", "\r\n").encode())
    assert [r["text"] for r in load_task(path).seed_rows()] == ["awful film", "great film"]
