"""`evokd optimize` and `--prompts`: metrics, what is kept, saved, loaded and recorded.

Every LM here is a TEST DOUBLE (evokd.teacher.scripted, and demo-sensitive subclasses below): the
tests check the optimisation logic, not the quality of a real model. The real embedded teacher
runs `evokd optimize` in tests/test_e2e_local.py and in benchmarks/optimize.py.
"""

from __future__ import annotations

import json
import re

import dspy
import duckdb
import pytest
from click.testing import CliRunner
from conftest import ROOT, data_file, data_rows

from evokd.cli import main
from evokd.errors import EvokdError, InputError
from evokd.optimize import LabelMetric, Optimization, OptimizeConfig, YieldMetric, entity_f1, interleave_by_label
from evokd.prompts import load_prompts, meta_path
from evokd.task import load_task
from evokd.teacher.teacher import Teacher
from evokd.teacher.scripted import ScriptedEngine, _last_text

# a few-shot demo's label: a JSON answer, or the assistant turn after a plain labeling question
_SHOWN = re.compile(r'"label": "([^"]+)"|Answer with one of: [^\n]*\.\n\nText: [^\n]*\n([^\n]+)\n')


def _shown(prompt: str) -> set[str]:
    return {a or b for a, b in _SHOWN.findall(prompt)}


class DemoSensitiveEngine(ScriptedEngine):
    """TEST DOUBLE: labels a text right only when a few-shot demo of its gold label is in the
    prompt, otherwise answers the task's first label; so demos help, deterministically."""

    def answer(self, fields, prompt, rng):
        if fields == {"label"}:
            gold = self.gold.get(_last_text(prompt))
            return {"label": gold if gold in _shown(prompt) else self.labels[0]}
        return super().answer(fields, prompt, rng)


class DemoAverseEngine(ScriptedEngine):
    """TEST DOUBLE: labels right without few-shot demos and wrong with them (an optimisation that hurts)."""

    def answer(self, fields, prompt, rng):
        if fields == {"label"}:
            gold = self.gold.get(_last_text(prompt))
            if _shown(prompt):
                return {"label": next(lab for lab in self.labels if lab != gold)}
            return {"label": gold}
        return super().answer(fields, prompt, rng)


def _lm(engine_cls, pool, labels, **kw):
    return dspy.LM("scripted/test-double", engine=engine_cls(pool, labels, seed=1, **kw), cache=False, temperature=0.8)


@pytest.fixture(scope="module")
def trec():
    task = load_task(ROOT / "datasets" / "trec" / "task.yaml")
    train = data_rows("trec", "train", limit=600)
    seeds = {r["text"] for r in task.seed_rows()}
    dev = interleave_by_label([r for r in train if r["text"] not in seeds], seed=3)[:24]
    heldout = [r for r in train[300:] if r["text"] not in seeds][:18]
    return task, train + task.seed_rows(), dev, heldout


def test_label_optimisation_improves_is_kept_and_round_trips(trec, tmp_path):
    task, pool, dev, heldout = trec
    out = tmp_path / "trec.json"
    opt = Optimization(task, _lm(DemoSensitiveEngine, pool, task.label_names), "scripted", OptimizeConfig(),
                       tmp_path / "work", dev=dev, heldout=heldout, zero_shot=True)
    meta = opt.run(out)
    step = meta["steps"][0]
    assert step["kept"] == "optimised" and step["after"] > step["before"]
    assert step["after"] == 1.0 and step["demos"] == 8  # 2 per label, capped at 8: every label has a demo
    assert step["heldout"]["after"] > step["heldout"]["before"]
    assert meta["zero_shot_heldout"]["n"] == len(heldout)
    assert meta["data"] == {"seeds": 6, "dev": 24, "train": 18, "validation": 12, "validation_is_train": False,
                            "heldout": 18}
    assert json.loads(meta_path(out).read_text())["digest"] == meta["digest"]

    state = load_prompts(out, task)
    assert state.steps == ["label"] and state.digest == meta["digest"]
    demos = state.program["label"]["demos"]
    assert all(set(d) <= {"text", "label", "augmented"} for d in demos)  # compacted: no task/labels copies
    assert {d["label"] for d in demos} == set(task.label_names)

    # The saved state, loaded into a fresh Teacher, labels as the optimised program did.
    teacher = Teacher(task, _lm(DemoSensitiveEngine, pool, task.label_names), demonstrations=task.seed_rows())
    unseen = [r for r in heldout if r["label"] != task.label_names[0]][:4]
    assert [teacher.label_vote(1, r["text"]) for r in unseen] == [task.label_names[0]] * len(unseen)
    state.apply(teacher)
    assert [teacher.label_vote(1, r["text"]) for r in unseen] == [r["label"] for r in unseen]
    assert {c.prompt_state for c in teacher.drain_calls()} == {None, state.digest}


def test_an_optimisation_that_scores_lower_is_not_kept(trec, tmp_path):
    task, pool, dev, _ = trec
    meta = Optimization(task, _lm(DemoAverseEngine, pool, task.label_names), "scripted", OptimizeConfig(),
                        tmp_path / "work", dev=dev).run(tmp_path / "p.json")
    step = meta["steps"][0]
    assert step["kept"] == "unoptimised" and step["after"] < step["before"] and step["demos"] == 0
    assert load_prompts(tmp_path / "p.json", task).program["label"]["demos"] == []


def test_rerun_replays_the_call_cache(trec, tmp_path):
    task, pool, dev, _ = trec
    lm = _lm(DemoSensitiveEngine, pool, task.label_names)
    first = Optimization(task, lm, "scripted", OptimizeConfig(), tmp_path / "work", dev=dev).run(tmp_path / "a.json")
    calls = lm.engine.n_calls if hasattr(lm, "engine") else None
    second = Optimization(task, lm, "scripted", OptimizeConfig(), tmp_path / "work", dev=dev).run(tmp_path / "b.json")
    assert second["digest"] == first["digest"]
    assert second["calls_total"] == first["calls_total"]  # nothing new was paid for
    if calls is not None:
        assert lm.engine.n_calls == calls


@pytest.mark.parametrize("optimizer,budget", [("bootstrap", 3), ("mipro", 2), ("gepa", 12)])
def test_each_optimiser_compiles_and_saves(trec, tmp_path, optimizer, budget):
    task, pool, dev, _ = trec
    meta = Optimization(task, _lm(DemoSensitiveEngine, pool, task.label_names), "scripted",
                        OptimizeConfig(optimizer=optimizer, budget=budget), tmp_path / "work", dev=dev).run(tmp_path / "o.json")
    step = meta["steps"][0]
    assert meta["optimizer"] == optimizer and step["kept"] in ("optimised", "unoptimised", "unchanged")
    assert 0.0 <= step["before"] <= 1.0 and 0.0 <= step["after"] <= 1.0
    assert (step["kept"] == "optimised") == (step["after"] >= step["before"] and step["kept"] != "unchanged")
    state = load_prompts(tmp_path / "o.json", task)
    if step["instructions_changed"]:  # mipro and gepa may rewrite the instruction (scripted proposals here)
        assert "carefully" in state.program["label"]["signature"]["instructions"]
    if optimizer == "bootstrap":  # random search over demo sets: every label gets a demo (balanced)
        assert {d["label"] for d in state.program["label"]["demos"]} == set(task.label_names)


def test_random_search_scores_each_candidate_as_it_is_saved(trec, tmp_path):
    """Each random-search candidate is scored after evokd's demo post-processing (compaction, every label
    shown), so the kept program's validation score is the best candidate's, not a raw DSPy candidate's."""
    task, pool, dev, _ = trec
    meta = Optimization(task, _lm(DemoSensitiveEngine, pool, task.label_names), "scripted",
                        OptimizeConfig(optimizer="bootstrap", budget=3), tmp_path / "work", dev=dev).run(tmp_path / "o.json")
    cands, step = meta["candidates"], meta["steps"][0]
    assert [c["candidate"] for c in cands] == [-2, -1, 0, 1, 2]
    assert all(c["step"] == "label" and c["demos"] >= len(task.label_names) for c in cands)  # balanced before scoring
    assert step["after"] == pytest.approx(max(c["validation"] for c in cands), abs=1e-4)
    plain = Optimization(task, _lm(DemoSensitiveEngine, pool, task.label_names), "scripted", OptimizeConfig(),
                         tmp_path / "work2", dev=dev).run(tmp_path / "p.json")
    assert plain["candidates"] == []  # plain bootstrap: one program, no search


def test_generate_and_analyze_steps_score_yield(sst2_pool, tmp_path):
    task = load_task(ROOT / "datasets" / "sst2" / "task.yaml")
    dev = sst2_pool[400:440]
    meta = Optimization(task, _lm(ScriptedEngine, sst2_pool, task.label_names), "scripted",
                        OptimizeConfig(steps=["generate", "analyze"], texts_per_call=2), tmp_path / "work",
                        dev=dev).run(tmp_path / "g.json")
    assert [s["step"] for s in meta["steps"]] == ["generate", "analyze"]
    assert all(s["metric"] == "yield" and 0.0 <= s["before"] <= 1.0 for s in meta["steps"])
    state = load_prompts(tmp_path / "g.json", task)
    assert set(state.program) == {"generate_class", "analyze"}


def test_yield_metric_counts_only_usable_texts(sst2_pool):
    task = load_task(ROOT / "datasets" / "sst2" / "task.yaml")
    from evokd.embed import encode

    class Student:  # predicts "positive" for everything
        def predict(self, texts):
            return ["positive"] * len(texts)

    seed = task.seed_rows()[0]["text"]
    teacher = Teacher(task, _lm(ScriptedEngine, sst2_pool, task.label_names))
    metric = YieldMetric(task, teacher, Student(), encode([seed]))
    neg = [r["text"] for r in sst2_pool if r["label"] == "negative"][:2]
    pos = [r["text"] for r in sst2_pool if r["label"] == "positive"][:1]
    ex = dspy.Example(kind="hard", n=5, target="negative", label="negative")
    # two usable (negative, student says positive), one seed copy, one prompt leak, one labeled positive
    pred = dspy.Prediction(texts=[neg[0], seed, "label: negative", pos[0], neg[1]])
    assert metric(ex, pred) == pytest.approx(2 / 5)
    assert metric(ex, pred, trace=[]) is False  # bootstrapping keeps a demo only at yield >= 0.5
    fb = metric(ex, pred, None, "generate_class", None)
    assert fb.score == pytest.approx(2 / 5) and "near duplicate" in fb.feedback and "labeled otherwise" in fb.feedback
    easy = dspy.Example(kind="easy", n=2, target="negative", label="negative")
    assert metric(easy, dspy.Prediction(texts=neg)) == 0.0  # the student gets them wrong: not easy


def test_label_metric_and_entity_f1():
    task = load_task(ROOT / "datasets" / "trec" / "task.yaml")
    metric = LabelMetric(task)
    ex = dspy.Example(text="Who wrote Hamlet ?", label="HUM").with_inputs("text")
    assert metric(ex, dspy.Prediction(label="HUM")) == 1.0
    assert metric(ex, dspy.Prediction(label="LOC")) == 0.0
    assert metric(ex, dspy.Prediction(label="LOC"), trace=[]) is False
    fb = metric(ex, dspy.Prediction(label="LOC"), None, "label", None)
    assert fb.score == 0.0 and "HUM" in fb.feedback

    gold = [{"start": 0, "end": 5, "label": "PER"}, {"start": 10, "end": 16, "label": "LOC"}]
    assert entity_f1(gold, gold) == 1.0 and entity_f1([], []) == 1.0 and entity_f1(gold, []) == 0.0
    assert entity_f1(gold, gold[:1]) == pytest.approx(2 / 3)

    ner = load_task(ROOT / "datasets" / "wnut17" / "task.yaml")
    m = LabelMetric(ner)
    text = "John lives in Paris ."
    ex = dspy.Example(text=text, entities=[{"text": "John", "type": "person"}, {"text": "Paris", "type": "location"}],
                      gold=[{"start": 0, "end": 4, "label": "person"}, {"start": 14, "end": 19, "label": "location"}])
    pred = dspy.Prediction(entities=[{"text": "John", "type": "person"}, {"text": "Rome", "type": "location"}])
    assert m(ex, pred) == pytest.approx(2 / 3)  # one right, one not in the text


def test_ner_label_step_and_refused_steps(tmp_path):
    task = load_task(ROOT / "datasets" / "wnut17" / "task.yaml")
    seeds = task.seed_rows()
    dev = [r for r in task.read_rows(data_file("wnut17", "dev"), unique=False)[:40] if r["entities"]][:12]
    pool = seeds + dev
    meta = Optimization(task, _lm(ScriptedEngine, pool, task.label_names), "scripted", OptimizeConfig(max_demos=2),
                        tmp_path / "work", dev=dev).run(tmp_path / "ner.json")
    assert meta["steps"][0]["metric"] == "entity F1" and meta["data"]["dev"] == 12
    assert 0.0 < meta["steps"][0]["before"] <= 1.0  # the scripted double answers gold mentions
    demos = load_prompts(tmp_path / "ner.json", task).program["label"]["demos"]
    assert all(set(d) <= {"text", "entities", "augmented"} for d in demos)
    with pytest.raises(EvokdError, match="NER"):
        Optimization(task, _lm(ScriptedEngine, pool, task.label_names), "scripted", OptimizeConfig(steps=["generate"]),
                     tmp_path / "w2")


def test_load_prompts_refuses_bad_files(trec, tmp_path):
    task, pool, dev, _ = trec
    out = tmp_path / "trec.json"
    Optimization(task, _lm(DemoSensitiveEngine, pool, task.label_names), "scripted", OptimizeConfig(),
                 tmp_path / "work", dev=dev).run(out)
    sst2 = load_task(ROOT / "datasets" / "sst2" / "task.yaml")
    with pytest.raises(InputError, match=r"trec\.json: field 'task': optimised for task 'trec'"):
        load_prompts(out, sst2)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        load_prompts(bad, task)
    doc = json.loads(out.read_text())
    doc["steps"] = ["label", "dream"]
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match="field 'steps'"):
        load_prompts(bad, task)
    with pytest.raises(InputError, match="not found"):
        load_prompts(tmp_path / "missing.json", task)
    with pytest.raises(ValueError, match="--steps"):
        OptimizeConfig(steps=["lable"])


def test_generate_with_prompts_records_the_state_in_the_store(sst2_task, sst2_pool, scripted_teacher, tmp_path):
    """`evokd optimize` then `evokd generate --prompts` through the CLI (scripted TEST DOUBLE teacher)."""
    runner = CliRunner()
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in sst2_pool[500:530]), encoding="utf-8")
    state = tmp_path / "sst2.json"
    result = runner.invoke(main, ["optimize", str(sst2_task), "--teacher", "scripted", "--out", str(state), "--dev",
                                  str(dev), "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "kept the" in result.output and "--prompts" in result.output
    digest = json.loads(state.read_text())["digest"]
    out = tmp_path / "run"
    result = runner.invoke(main, ["generate", str(sst2_task), "--teacher", "scripted", "--rounds", "2", "--per-round", "4",
                                  "--prompts", str(state), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out / "evokd.duckdb"), read_only=True)
    used = con.execute("SELECT DISTINCT prompt_state FROM calls").fetchall()
    config = json.loads(con.execute("SELECT config FROM runs").fetchall()[0][0])
    con.close()
    assert used == [(digest,)] and config["prompts"] == str(state)

    other = tmp_path / "trec.json"
    trec_doc = json.loads(state.read_text())
    trec_doc["task"] = {"name": "trec", "kind": "classification", "labels": ["ABBR", "DESC"]}
    other.write_text(json.dumps(trec_doc), encoding="utf-8")
    result = runner.invoke(main, ["generate", str(sst2_task), "--teacher", "scripted", "--prompts", str(other),
                                  "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "field 'task'" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_token_budget_stops_cleanly_and_a_rerun_continues(sst2_task, sst2_pool, scripted_teacher, tmp_path):
    runner = CliRunner()
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in sst2_pool[500:530]), encoding="utf-8")
    args = ["optimize", str(sst2_task), "--teacher", "scripted", "--out", str(tmp_path / "s.json"), "--dev", str(dev),
            "--work-dir", str(tmp_path / "w"), "--quiet"]
    result = runner.invoke(main, [*args, "--max-tokens", "3000"])
    assert result.exit_code == 3 and "token budget reached" in result.output and not (tmp_path / "s.json").exists()
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert load_prompts(tmp_path / "s.json", load_task(sst2_task)).steps == ["label"]
