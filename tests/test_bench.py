"""`evokd bench` through the real CLI on benchmarks/configs/smoke.yaml: real trec data (the slices in
tests/data, named with --data-dir as a user names the benchmark data folder), the real
loop, students and DuckDB; the teacher is the scripted TEST DOUBLE (`teacher: scripted`), which
answers from real trec sentences with their gold labels. Plus resume after a Ctrl-C, bad configs,
and the target arithmetic on made-up cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import DATA, ROOT, data_rows, write_jsonl
from evokd import bench
from evokd.cli import main
from evokd.loop import RoundRunner
from evokd.task import load_task

SMOKE = ROOT / "benchmarks" / "configs" / "smoke.yaml"


def invoke(*args):
    return CliRunner().invoke(main, ["bench", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, Path]:
    """(results dir, work dir) of one uninterrupted smoke run."""
    results, work = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("work")
    result = invoke(SMOKE, "--data-dir", DATA, "--results-dir", results, "--work-dir", work, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(results / "smoke.md")
    return results, work


def test_smoke_writes_tables_json_and_curves(smoke):
    results, work = smoke
    assert (results / "smoke-trec.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    data = json.loads((results / "smoke.json").read_text())
    assert data["test_double"] is True and data["config"]["datasets"][0]["data"] == "$EVOKD_DATA/trec"
    cells = {(c["dataset"], c["seed"], c["student"], c["strategy"]): c for c in data["cells"]}
    assert set(cells) == {("trec", 1, "tfidf", "static"), ("trec", 1, "tfidf", "pool-random")}
    for c in cells.values():
        assert [r["round"] for r in c["rounds"]] == [0, 1, 2] and c["n_seeds"] == 12  # 2 seeds x 6 labels
        assert all(r["eval_n"] == 100 for r in c["rounds"]) and 0 < c["rounds"][-1]["added"] <= 8
        assert c["macro_f1"] == c["rounds"][-1]["eval_macro_f1"]
        assert c["command"].startswith("evokd generate ") and f"--strategy {c['strategy']}" in c["command"]
    assert cells[("trec", 1, "tfidf", "static")]["tokens"] > 0  # the TEST DOUBLE teacher was called
    assert cells[("trec", 1, "tfidf", "pool-random")]["tokens"] == 0  # oracle: no LLM
    assert "--pool" in cells[("trec", 1, "tfidf", "pool-random")]["command"]
    ceiling = data["summary"]["trec"]["tfidf"]["ceiling"]
    assert ceiling["n_train"] == 3000 and ceiling["eval_n"] == 100
    assert ceiling["macro_f1"] > max(c["macro_f1"] for c in cells.values())

    md = (results / "smoke.md").read_text()
    assert "TEST DOUBLE" in md and "evokd bench " in md and "cores" in md and "![trec learning curves](smoke-trec.png)" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    for name in ("static", "pool-random", "ceiling: whole train split"):
        assert any(line.startswith(f"| {name} |") for line in rows), name

    # the cell's task folder is a self-contained task; every cell shares the eval rows
    task = load_task(work / "tasks" / "trec-s1" / "task.yaml")
    assert len(task.seed_rows()) == 12 and len(task.eval_rows()) == 100
    pool = [json.loads(x) for x in (work / "tasks" / "trec-s1" / "pool.jsonl").read_text().splitlines()]
    assert len(pool) == 200 and not {r["text"] for r in pool} & {r["text"] for r in task.seed_rows() + task.eval_rows()}


def test_a_finished_cell_reads_back_with_its_draw_its_accepted_rows_and_the_pools_gold(smoke):
    """evokd.bench.finished: what the analysis scripts in benchmarks/ read of a finished cell."""
    from evokd.bench.finished import read_cell

    _, work = smoke
    cell = read_cell(work / "cells" / "trec-s1" / "tfidf" / "pool-random")
    assert (cell.draw, cell.row, cell.record["student"]) == ("trec-s1", "pool-random", "tfidf")
    assert cell.task.label_names == load_task(work / "tasks" / "trec-s1" / "task.yaml").label_names
    assert len(cell.accepted) == cell.record["rounds"][-1]["train_size"]
    added = [s for s in cell.accepted if s["source"] != "seed"]
    assert len(cell.accepted) - len(added) == 12 and 0 < len(added) <= 8
    gold = cell.gold_pool()
    assert len(gold) == 200 and all(gold[s["text"]] == s["label"] for s in added)  # --oracle: the pool's own labels
    stored = {s["text"] for s in cell.run.samples} & set(gold)
    unseen = cell.unseen_pool()
    assert len(unseen) == 200 - len(stored) and not {r["text"] for r in unseen} & stored
    assert cell.noise == cell.run.info["config"]["noise"] and cell.seed == 1


def test_distill_students_scores_cells_in_worker_processes_and_a_rerun_resumes(smoke, tmp_path):
    """benchmarks/distill_students.py --jobs 2 on the smoke run's finished cells, in real spawned workers:
    tfidf retrained on a cell's accepted rows scores what the cell's own final student scored, and a
    re-run with the results written fits nothing again."""
    import subprocess
    import sys

    _, work = smoke
    command = [sys.executable, str(ROOT / "benchmarks" / "distill_students.py"), "--work-dir", str(work),
               "--students", "tfidf", "--jobs", "2", "--results-dir", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    result = json.loads((tmp_path / f"{work.name}-students.json").read_text())
    cells = {key: json.loads((work / key / "cell.json").read_text()) for key in result["cells"]}
    assert sorted(cells) == ["cells/trec-s1/tfidf/pool-random", "cells/trec-s1/tfidf/static"]
    for key, cell in cells.items():
        assert result["cells"][key]["students"]["tfidf"] == pytest.approx(cell["macro_f1"])
    assert result["draws"] == {"trec-s1": {"tfidf": pytest.approx(
        json.loads((work / "cells" / "trec-s1" / "tfidf" / "static" / "cell.json").read_text())["rounds"][0]["eval_macro_f1"])}}
    assert first.stderr.count(" final: ") == 2 and "| pool-random | 1 |" in (tmp_path / f"{work.name}-students.md").read_text()
    assert first.stderr.count(" seed_only: ") == 1  # the draw's second cell waits for the first one's seed-only fit

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and " final: " not in again.stderr and "seed_only" not in again.stderr
    assert json.loads((tmp_path / f"{work.name}-students.json").read_text())["cells"] == result["cells"]


def test_rerun_after_ctrl_c_resumes_and_skips_finished_cells(smoke, tmp_path, monkeypatch):
    results, work = tmp_path / "results", tmp_path / "work"
    real_round = RoundRunner._round

    def killed_in_round_2(self, *args):
        if self.config.strategy == "pool-random" and args[-1] == 2:  # the last argument is the round
            raise KeyboardInterrupt
        return real_round(self, *args)

    monkeypatch.setattr(RoundRunner, "_round", killed_in_round_2)
    result = invoke(SMOKE, "--data-dir", DATA, "--results-dir", results, "--work-dir", work, "--quiet")
    assert result.exit_code == 130 and "re-run the same command to resume" in result.stderr
    cells = work / "cells" / "trec-s1" / "tfidf"
    static, ceiling = cells / "static" / "cell.json", work / "ceiling" / "trec-tfidf.json"
    assert static.is_file() and ceiling.is_file() and not (cells / "pool-random" / "cell.json").exists()
    before = {p: p.stat().st_mtime_ns for p in (static, ceiling)}
    committed = (cells / "pool-random" / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(r)["round"] for r in committed] == [0, 1]
    monkeypatch.undo()

    # --render-only runs nothing: it tabulates the finished cells and lists the unfinished one
    result = invoke(SMOKE, "--data-dir", DATA, "--results-dir", results, "--work-dir", work, "--quiet", "--render-only")
    assert result.exit_code == 0, result.output
    partial = json.loads((results / "smoke.json").read_text())
    assert partial["unfinished"] == ["trec-s1 tfidf pool-random"] and len(partial["cells"]) == 1
    assert "Partial results" in (results / "smoke.md").read_text()
    assert (cells / "pool-random" / "rounds.jsonl").read_text().splitlines() == committed

    ran = []
    from evokd.bench import executors  # where _guarded looks _run_job up

    real_run = executors._run_job
    monkeypatch.setattr(executors, "_run_job", lambda job: ran.append(job.key) or real_run(job))
    result = invoke(SMOKE, "--data-dir", DATA, "--results-dir", results, "--work-dir", work, "--quiet")
    assert result.exit_code == 0, result.output
    assert ran == ["trec-s1 tfidf pool-random"]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (cells / "pool-random" / "rounds.jsonl").read_text().splitlines()[:2] == committed  # rounds 0-1 kept
    resumed = json.loads((results / "smoke.json").read_text())["cells"]
    clean = json.loads((smoke[0] / "smoke.json").read_text())["cells"]
    def metrics(found):
        return {c["strategy"]: [(r["train_size"], r["eval_macro_f1"]) for r in c["rounds"]] for c in found}

    assert metrics(resumed) == metrics(clean)  # the resumed cell ends where an uninterrupted one does

    # the work dir logs which bench command finished which jobs (the interrupted run too; --render-only
    # ran none), and the results say so, whichever command rendered them last
    runs = [json.loads(line) for line in (work / "bench-runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 and all(r["command"].startswith("evokd bench ") and "--render-only" not in r["command"]
                                  for r in runs)
    assert "trec-s1 tfidf static" in runs[0]["jobs"] and "trec-s1 tfidf pool-random" not in runs[0]["jobs"]
    assert runs[1]["jobs"] == ["trec-s1 tfidf pool-random"]
    final = json.loads((results / "smoke.json").read_text())
    assert final["runs"] == runs and final["unlogged"] == []
    md = (results / "smoke.md").read_text()
    assert "The finished jobs were run by:" in md and md.count(f"`{runs[0]['command']}`") >= 1
    assert "`trec-s1 tfidf pool-random`)" in md and "before the bench logged its runs" not in md


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = (f"name: t\ndatasets:\n  - task: {ROOT / 'datasets' / 'trec' / 'task.yaml'}\n    data: {DATA / 'trec'}\n"
        "seeds: [1]\nstrategies: [pool-random]\nteacher: scripted\n")


@pytest.mark.parametrize("text, field, expected", [
    (GOOD.replace("[pool-random]", "[pool-magic]"), "strategies", "unknown strategy 'pool-magic'"),
    (GOOD + "students: [bert]\n", "students", "unknown student 'bert'"),
    (GOOD + "round: 3\n", "round", "unknown field; expected name, datasets, seeds"),
    (GOOD.replace("    data:", "    shot: 2\n    data:"), "datasets.0.shot", "unknown field; expected task, data, shots"),
    (GOOD + "per_round: 0\n", "per_round", "greater than or equal to 1"),
    (GOOD + "noise: [confidence, loud]\n", "noise", "unknown noise handling 'loud'"),
    (GOOD + "max_minutes: 0\n", "max_minutes", "greater than 0"),
    (GOOD + "targets: {magic: 1}\n", "targets", "unknown target 'magic'; expected some of: pool_selection_over_random"),
    (GOOD + "targets: {evokd_over_seed_only: {sst3: 8}}\n", "targets.evokd_over_seed_only",
     "dataset 'sst3' is not in the config; expected some of: trec"),
    (GOOD + "targets: {pool_selection_over_random: {trec: 1}}\n", "targets", "expected one number, not one per dataset"),
    (GOOD.replace("seeds: [1]\n", ""), "seeds", "missing; required"),
    (GOOD.replace("trec\n", "nowhere\n"), "datasets.0.data", "nowhere not found; expected a path relative to the config file"),
    (GOOD.replace("/trec\n", "\n"), "datasets.0.data", "has no train.jsonl"),  # tests/data: a folder, no splits
])
def test_bad_config_is_one_line_naming_file_and_field(tmp_path, text, field, expected):
    path = _config(tmp_path, text)
    result = invoke(path, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("evokd: error: ") and "\n" not in err and "Traceback" not in result.output, err
    assert str(path) in err and f"field '{field}'" in err and expected in err, err
    assert not (tmp_path / "r").exists()


def test_too_many_shots_names_the_field(tmp_path):
    path = _config(tmp_path, GOOD.replace("    data:", "    shots: 200\n    data:"))
    result = invoke(path, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    assert result.exit_code == 2 and "field 'datasets.0.shots'" in result.stderr and "'ABBR'" in result.stderr, result.output


def test_targets_on_made_up_cells():
    def cell(dataset, strategy, seed, f1):
        return {"dataset": dataset, "seed": seed, "student": "tfidf", "strategy": strategy, "accuracy": f1,
                "macro_f1": f1, "tokens": 10, "seconds": 1.0, "wall_s": 2.0,
                "rounds": [{"added": 0, "eval_macro_f1": 0.5, "eval_accuracy": 0.5},
                           {"added": 8, "eval_macro_f1": f1, "eval_accuracy": f1}]}

    f1 = {"a": {"seed-only": 0.50, "pool-random": 0.60, "pool-errors": 0.64, "pool-evokd": 0.61, "static": 0.60,
                "evokd": 0.63, "evokd-paper": 0.59},
          "b": {"seed-only": 0.40, "pool-random": 0.50, "pool-errors": 0.52, "pool-evokd": 0.53, "static": 0.50,
                "evokd": 0.51, "evokd-paper": 0.52}}
    cells = [cell(d, s, seed, v + (0.01 if seed == 2 else -0.01)) for d, by in f1.items() for s, v in by.items()
             for seed in (1, 2)]
    config = bench.BenchConfig(name="t", datasets=[{"task": "a", "data": "a"}], seeds=[1, 2],
                               strategies=list(f1["a"]), teacher="scripted")
    summary = bench.summarize(config, {"a": "classification", "b": "classification"}, cells, [])
    row = summary["a"]["tfidf"]["strategies"]["pool-errors"]
    assert row["macro_f1"] == pytest.approx(0.64) and row["macro_f1_sd"] == pytest.approx(0.01)
    assert row["gain_macro_f1_points"] == pytest.approx(14.0) and row["seeds"] == [1, 2]
    assert [p["added"] for p in row["curve"]] == [0, 8]
    found = {(t["id"], t.get("dataset")): t for t in bench.targets(summary, ["tfidf"])}
    pool = found[("pool_selection_over_random", None)]
    assert pool["best"] == "pool-errors" and pool["value"] == pytest.approx(3.0) and pool["met"]
    assert pool["by_strategy"]["pool-evokd"] == pytest.approx(2.0)
    a, b = found[("evokd_over_static", "a")], found[("evokd_over_static", "b")]
    assert a["value"] == pytest.approx(3.0) and a["met"] and a["evokd_paper_value"] == pytest.approx(-1.0)
    assert b["value"] == pytest.approx(1.0) and not b["met"] and b["seeds"] == [1, 2]

    # a partial bench: evokd finished only seed 2 on "a"; the target compares it with static's seed 2 only
    partial = [c for c in cells if not (c["dataset"] == "a" and c["strategy"] == "evokd" and c["seed"] == 1)]
    found = {(t["id"], t.get("dataset")): t for t in bench.targets(bench.summarize(config, {"a": "classification", "b": "classification"}, partial, []),
                                                                    ["tfidf"])}
    assert found[("evokd_over_static", "a")]["seeds"] == [2]
    assert found[("evokd_over_static", "a")]["value"] == pytest.approx(3.0)  # 0.64 - 0.61, not 0.64 - 0.60

    # pool-evokd finished only seed 1 on "b": both datasets compare it with pool-random on seed 1 alone
    partial = [c for c in cells if not (c["dataset"] == "b" and c["strategy"] == "pool-evokd" and c["seed"] == 2)]
    pool = bench.targets(bench.summarize(config, {"a": "classification", "b": "classification"}, partial, []),
                         ["tfidf"])[0]
    assert pool["seeds_by_strategy"] == {"pool-evokd": [1], "pool-errors": [1, 2]}
    assert pool["by_strategy"]["pool-evokd"] == pytest.approx(2.0) and pool["best"] == "pool-errors"


def test_a_configs_targets_set_the_points_per_dataset_and_turn_targets_on():
    """`targets` in a config: a number applies to every dataset, {dataset: number} to those listed only; the
    targets the defaults leave off (evokd over evokd-paper, the worst strategy over seed-only, the best pool row
    near the teacher) are measured only where the config sets them."""
    def cell(dataset, strategy, seed, f1):
        return {"dataset": dataset, "seed": seed, "student": "tfidf", "strategy": strategy, "accuracy": f1,
                "macro_f1": f1, "tokens": 1, "seconds": 1.0, "wall_s": 1.0,
                "rounds": [{"added": 0, "eval_macro_f1": f1, "eval_accuracy": f1}]}

    f1 = {"a": {"seed-only": 0.50, "static": 0.45, "evokd": 0.60, "evokd-paper": 0.58, "pool-errors": 0.70},
          "b": {"seed-only": 0.50, "static": 0.55, "evokd": 0.56, "evokd-paper": 0.57, "pool-errors": 0.52}}
    cells = [cell(d, s, seed, v) for d, by in f1.items() for s, v in by.items() for seed in (1, 2)]
    teacher = [{"dataset": d, "seed": seed, "accuracy": 0.72, "macro_f1": 0.72, "unanswered": 0,
                "seconds_per_text": 1.0} for d in f1 for seed in (1, 2)]
    kinds = {"a": "classification", "b": "classification"}

    def found(targets):
        config = bench.BenchConfig(name="t", datasets=[{"task": "a", "data": "a"}], seeds=[1, 2], teacher="local",
                                   strategies=list(f1["a"]), ceiling=False, targets=targets)
        return {(t["id"], t.get("dataset")): t for t in bench.targets(bench.summarize(config, kinds, cells, [], teacher),
                                                                      ["tfidf"], config)}

    default = found({})
    assert default[("evokd_over_seed_only", "a")]["target_points"] == bench.TARGET_POINTS
    assert not any(key[0] in ("evokd_over_paper", "strategies_over_seed_only", "pool_near_teacher") for key in default)

    set_ = found({"evokd_over_seed_only": {"a": 8, "b": 7}, "evokd_over_paper": {"a": 0},
                  "strategies_over_seed_only": 0, "pool_near_teacher": -3, "student_near_teacher": {"b": -3}})
    a, b = set_[("evokd_over_seed_only", "a")], set_[("evokd_over_seed_only", "b")]
    assert (a["target_points"], a["met"]) == (8, True) and a["value"] == pytest.approx(10.0)
    assert (b["target_points"], b["met"]) == (7, False) and b["value"] == pytest.approx(6.0)
    paper = set_[("evokd_over_paper", "a")]
    assert paper["value"] == pytest.approx(2.0) and paper["met"] and ("evokd_over_paper", "b") not in set_
    worst_a, worst_b = set_[("strategies_over_seed_only", "a")], set_[("strategies_over_seed_only", "b")]
    assert worst_a["worst"] == "static" and worst_a["value"] == pytest.approx(-5.0) and not worst_a["met"]
    assert worst_b["worst"] == "pool-errors" and worst_b["value"] == pytest.approx(2.0) and worst_b["met"]
    pool = set_[("pool_near_teacher", "a")]
    assert pool["best"] == "pool-errors" and pool["value"] == pytest.approx(-2.0) and pool["met"]
    assert set_[("pool_near_teacher", "b")]["value"] == pytest.approx(-20.0)
    assert ("student_near_teacher", "a") not in set_ and set_[("student_near_teacher", "b")]["best"] == "evokd-paper"


def test_teacher_line_says_none_when_no_strategy_calls_one():
    from evokd.bench.render import _teacher_line

    result = {"test_double": False, "config": {"teacher": "local", "oracle": True,
                                               "strategies": ["pool-random", "pool-errors"]}}
    assert _teacher_line(result) == "Teacher: none (no strategy in this config calls one)."
    result["config"]["strategies"].append("pool-evokd")
    assert _teacher_line(result) == "Teacher: `local`."
    result["config"].update(strategies=["pool-random"], oracle=False)  # the teacher labels the pool
    assert _teacher_line(result) == "Teacher: `local`."


def test_help_has_an_example():
    result = invoke("--help")
    assert result.exit_code == 0 and "Example:" in result.output and "evokd bench benchmarks/configs/smoke.yaml" in result.output


def test_label_temperature_is_a_cell_setting_and_old_cells_count_as_sampled(tmp_path):
    from evokd.bench.jobs import _finished
    from evokd.errors import EvokdError

    def cell(strategy, temp, fmt="json", noise="none"):  # an old cell: it trained on teacher labels plainly
        return bench.Cell("trec", 1, "tfidf", strategy, tmp_path / "task", tmp_path / strategy, 2, 4, "local", True,
                          tmp_path / "vectors", temp, fmt, noise)

    teacher, oracle = cell("static", 0.8), cell("pool-random", 0.8)
    assert teacher.settings()["label_temperature"] == 0.8 and "--label-temperature 0.8" in teacher.command()
    assert teacher.loop_config().label_temperature == 0.8
    assert "label_temperature" not in oracle.settings() and "--label-temperature" not in oracle.command()
    # a cell finished before the option existed has no label_temperature: it labeled at the teacher's 0.8
    old = {"rounds": 2, "per_round": 4, "teacher": "local", "oracle": True}
    teacher.out_dir.mkdir(parents=True)
    teacher.result_path.write_text(json.dumps({"settings": old}), encoding="utf-8")
    assert _finished(teacher)
    greedy = cell("static", 0.0)
    with pytest.raises(EvokdError, match="finished with label_temperature=0.8, but the config now gives 0.0"):
        _finished(greedy)
    assert bench.BenchConfig.model_fields["label_temperature"].default == 0.0
    # likewise label_format: a cell from before the option asked in JSON; the default is now the plain question
    assert teacher.settings()["label_format"] == "json" and "--label-format json" in teacher.command()
    assert teacher.loop_config().label_format == "json"
    with pytest.raises(EvokdError, match="finished with label_format='json', but the config now gives 'plain'"):
        _finished(cell("static", 0.8, "plain"))
    assert bench.BenchConfig.model_fields["label_format"].default == "plain"
    pool_evokd = cell("pool-evokd", 0.8, "plain")  # oracle labels: the labeling format is no setting of its
    assert "label_temperature" in pool_evokd.settings() and "label_format" not in pool_evokd.settings()
    assert "noise" not in pool_evokd.settings()  # nor the noise handling: no teacher label to weigh
    # and --noise: a cell from before it trained on the teacher's labels plainly
    weighed = cell("static", 0.8, noise="confidence")
    assert weighed.settings()["noise"] == "confidence" and "--noise confidence" in weighed.command()
    assert teacher.settings()["noise"] == "none" and "--noise none" in teacher.command()
    with pytest.raises(EvokdError, match="finished with noise='none', but the config now gives 'confidence'"):
        _finished(weighed)  # (its result file above has no noise)


def test_a_cell_that_runs_out_of_time_ends_with_its_committed_rounds(tmp_path):
    """max_minutes: the cell stops starting rounds once its committed ones took that long, and is finished
    (cell.json written, rendered), not failed. TEST DOUBLE teacher, real loop, tfidf and DuckDB."""
    config = _config(tmp_path, GOOD.replace("[pool-random]", "[static]")
                     + "students: [tfidf]\nrounds: 3\nper_round: 4\neval_n: 100\npool_size: 200\nceiling: false\n"
                       "max_minutes: 0.0001\n")
    result = invoke(config, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    assert result.exit_code == 0, result.output
    cell = json.loads((tmp_path / "r" / "t.json").read_text())["cells"][0]
    assert [r["round"] for r in cell["rounds"]] == [0]  # round 0 alone took longer than 0.006 s
    assert cell["settings"]["max_minutes"] == 0.0001 and "--max-minutes 0.0001" in cell["command"]
    assert "as many as finish in 0.0001 minutes" in (tmp_path / "r" / "t.md").read_text()


def test_noise_modes_and_a_time_budget_make_their_own_cells_and_rows(tmp_path):
    """Every noise mode listed gets cells of its own for strategies that train on teacher labels, in a
    folder and a table row of their own; --max-minutes reaches the loop and the command."""
    from evokd.bench.jobs import plan

    config = bench.BenchConfig(name="t", datasets=[{"task": "a", "data": "a"}], seeds=[1], teacher="local",
                               strategies=["seed-only", "evokd", "pool-random"], noise=["confidence", "agree"],
                               max_minutes=30, ceiling=False)
    assert config.row_names() == ["seed-only", "evokd", "evokd --noise agree", "pool-random"]  # oracle pool: no teacher label
    cells = plan(config, {"a": None}, {("a", 1): tmp_path / "task"}, tmp_path / "work")
    by_row = {c.row: c for c in cells}
    assert set(by_row) == set(config.row_names())
    agree, default = by_row["evokd --noise agree"], by_row["evokd"]
    assert agree.out_dir.name == "evokd+noise-agree" and default.out_dir.name == "evokd"  # the first mode keeps the folder
    assert agree.loop_config().noise == "agree" and agree.loop_config().max_minutes == 30
    assert "--noise agree --max-minutes 30" in agree.command() and agree.settings()["max_minutes"] == 30
    assert agree.key == "a-s1 tfidf evokd --noise agree"
    assert "max_minutes" not in by_row["seed-only"].settings() and by_row["seed-only"].loop_config().noise == "confidence"
    # the cells' eval rows are the test rows: no cell may pick its rounds on them (the eval guard is off)
    assert not default.loop_config().eval_guard and "--no-eval-guard" in default.command()
    assert "--no-eval-guard" not in by_row["seed-only"].command()

    def made_up(row, strategy, f1):
        return {"dataset": "a", "seed": 1, "student": "tfidf", "strategy": strategy, "row": row, "accuracy": f1,
                "macro_f1": f1, "tokens": 1, "seconds": 1.0, "wall_s": 1.0,
                "rounds": [{"added": 0, "eval_macro_f1": 0.5, "eval_accuracy": 0.5},
                           {"added": 8, "eval_macro_f1": f1, "eval_accuracy": f1}]}

    summary = bench.summarize(config, {"a": "classification"},
                              [made_up("seed-only", "seed-only", 0.5), made_up("evokd", "evokd", 0.6),
                               made_up("evokd --noise agree", "evokd", 0.7)], [])
    rows = summary["a"]["tfidf"]["strategies"]
    assert rows["evokd"]["gain_macro_f1_points"] == pytest.approx(10.0)
    assert rows["evokd --noise agree"]["gain_macro_f1_points"] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="unknown noise handling 'loud'"):
        bench.BenchConfig(name="t", datasets=[{"task": "a", "data": "a"}], seeds=[1], strategies=["evokd"], noise=["loud"])


def test_smoke_without_the_data_folder_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("EVOKD_DATA", raising=False)
    result = invoke(SMOKE, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    err = result.stderr.strip()
    assert result.exit_code == 2 and "\n" not in err and "Traceback" not in result.output, result.output
    assert str(SMOKE) in err and "field 'datasets.0.data'" in err and "EVOKD_DATA is not set" in err, err
    monkeypatch.setenv("EVOKD_DATA", str(tmp_path))  # set, but without a trec folder
    err = invoke(SMOKE, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet").stderr.strip()
    assert "\n" not in err and "EVOKD_DATA" in err and "trec" in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def ner_bench(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(results dir, work dir, data dir) of a small NER bench: real WNUT-17 sentences (300 of train, 80
    test sentences with entities), the real BiLSTM tagger, oracle spans from the pool; no LLM."""
    root = tmp_path_factory.mktemp("ner")
    data = root / "wnut17"
    data.mkdir()
    write_jsonl(data / "train.jsonl", data_rows("wnut17", "train", limit=300))
    write_jsonl(data / "test.jsonl", [r for r in data_rows("wnut17", "test") if set(r["tags"]) != {"O"}][:80])
    config = root / "ner.yaml"
    config.write_text(f"name: ner-small\ndatasets:\n  - task: {ROOT / 'datasets' / 'wnut17' / 'task.yaml'}\n"
                      f"    data: {data}\n    shots: 1\nseeds: [1]\n"
                      "strategies: [seed-only, pool-random, pool-uncertainty]\nstudents: [tagger]\n"
                      "rounds: 1\nper_round: 6\neval_n: 60\npool_size: 100\n")
    results, work = root / "results", root / "work"
    result = invoke(config, "--results-dir", results, "--work-dir", work, "--quiet")
    assert result.exit_code == 0, result.output
    return results, work, data


def test_ner_bench_scores_entity_f1_with_oracle_spans(ner_bench):
    results, work, data = ner_bench
    out = json.loads((results / "ner-small.json").read_text())
    assert out["datasets"]["wnut17"]["kind"] == "ner" and out["test_double"] is False
    cells = {c["strategy"]: c for c in out["cells"]}
    assert set(cells) == {"seed-only", "pool-random", "pool-uncertainty"}
    for c in cells.values():
        assert c["n_seeds"] == 6 and c["tokens"] == 0 and "macro_f1" not in c  # one sentence per type, no LLM
        assert c["entity_f1"] == c["rounds"][-1]["eval_entity_f1"] and 0 <= c["entity_f1"] <= 1
        assert all(r["eval_n"] == 60 for r in c["rounds"])
    assert [r["added"] for r in cells["pool-random"]["rounds"]] == [0, 6]
    assert [r["added"] for r in cells["pool-uncertainty"]["rounds"]] == [0, 6]
    block = out["summary"]["wnut17"]["tagger"]
    assert block["metric"] == "entity_f1" and block["ceiling"]["n_train"] == 300
    assert block["ceiling"]["entity_f1"] > block["strategies"]["seed-only"]["entity_f1"]

    # the task folder: seeds hold each type, the pool keeps gold spans, nothing overlaps the eval rows
    task = load_task(work / "tasks" / "wnut17-s1" / "task.yaml")
    seeds = task.seed_rows()
    assert task.kind == "ner" and len(task.eval_rows()) == 60
    for etype in ("person", "location", "corporation", "product", "creative-work", "group"):
        assert any(e["label"] == etype for r in seeds for e in r["entities"]), etype
    assert all(len(r["text"].split()) >= 8 for r in seeds)
    pool = task.read_rows(work / "tasks" / "wnut17-s1" / "pool.jsonl", unique=False)
    assert len(pool) == 100 and any(r["entities"] for r in pool)
    assert not {r["text"] for r in pool} & {r["text"] for r in seeds + task.eval_rows()}
    taken = [json.loads(x) for x in (work / "cells" / "wnut17-s1" / "tagger" / "pool-random" / "dataset.jsonl")
             .read_text().splitlines() if json.loads(x)["source"] == "pool"]
    gold = {r["text"]: r["entities"] for r in pool}
    assert len(taken) == 6 and all(r["entities"] == gold[r["text"]] for r in taken)

    md = (results / "ner-small.md").read_text()
    assert "| strategy | seeds | added | entity F1 | Δ entity F1 |" in md and "macro-F1" not in md
    assert "1 seed sentence per entity type (6 types)" in md and "| ceiling: whole train split | – | 300 |" in md
    assert (results / "ner-small-wnut17.png").read_bytes().startswith(b"\x89PNG")


def test_ner_teacher_row_scores_the_teachers_spans(ner_bench, tmp_path):
    """NER: the teacher row annotates each eval sentence as the cells ask and scores entity F1. The scripted
    TEST DOUBLE knows the eval sentences' gold spans here, so the row must be 1.0; the real tagger and
    loop run the pool cell, whose pool sentences the same double annotates (no oracle)."""
    data = ner_bench[2]
    config = tmp_path / "ner-teacher.yaml"
    config.write_text(f"name: ner-teacher\ndatasets:\n  - task: {ROOT / 'datasets' / 'wnut17' / 'task.yaml'}\n"
                      f"    data: {data}\n    shots: 1\nseeds: [1]\nstrategies: [seed-only, pool-random]\n"
                      "students: [tagger]\nteacher: scripted\noracle: false\nrounds: 1\nper_round: 6\neval_n: 40\n"
                      "pool_size: 100\nceiling: false\nteacher_row: true\n")
    result = invoke(config, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "r" / "ner-teacher.json").read_text())
    [scored] = out["teacher_scores"]
    assert scored["eval_n"] == 40 and scored["entity_f1"] == 1.0 and "macro_f1" not in scored
    teacher = out["summary"]["wnut17"]["tagger"]["teacher"]
    assert teacher["entity_f1"] == 1.0 and teacher["gain_entity_f1_points"] > 0
    assert "| teacher: labels the eval rows itself | 1 | – | 1.0000 ± 0.0000 |" in (tmp_path / "r" / "ner-teacher.md").read_text()


def test_bench_refuses_a_student_that_does_not_fit_the_task_kind(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\ndatasets:\n  - task: {ROOT / 'datasets' / 'wnut17' / 'task.yaml'}\n"
                    f"    data: {DATA / 'wnut17'}\nseeds: [1]\nstrategies: [pool-random]\nstudents: [tfidf]\n")
    result = invoke(path, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    err = result.stderr.strip()
    assert result.exit_code == 2 and "\n" not in err and "Traceback" not in result.output, result.output
    assert str(path) in err and "field 'students'" in err and "'tfidf' cannot learn wnut17" in err, err
    assert not (tmp_path / "r").exists()


def test_bench_progress_prints_each_finished_cell_by_its_task_kind():
    """The bar's line per finished cell reads entity F1 from an NER cell (it has no accuracy) and
    accuracy / macro-F1 from a classification cell; it printed only under --quiet before this was fixed."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from evokd.progress import BenchProgress

    buf = io.StringIO()
    progress = BenchProgress()
    progress.console = Console(file=buf, width=200)
    ner = SimpleNamespace(key="conll2003-s1 tagger pool-evokd")
    cls = SimpleNamespace(key="sst2-s1 tfidf pool-random")
    with progress:
        progress("plan", total=2, done=0)
        progress("start", job=ner)
        progress("start", job=cls)
        progress("done", job=ner, result={"entity_f1": 0.2375, "tokens": 52989, "seconds": 718.6})
        progress("done", job=cls, result={"accuracy": 0.8, "macro_f1": 0.79, "tokens": 0, "seconds": 1.5})
    out = buf.getvalue()
    assert "conll2003-s1 tagger pool-evokd: entity F1 0.237, 52,989 teacher tokens, 718.6 s" in out
    assert "sst2-s1 tfidf pool-random: accuracy 0.800, macro-F1 0.790, 1.5 s" in out


def test_teacher_row_labels_every_eval_row_as_the_cells_ask(tmp_path):
    """teacher_row: one job per draw labels the draw's eval rows with the prompts its cells use, and the
    table gets a teacher row with its paired gain over seed-only. The teacher is the scripted TEST DOUBLE,
    which knows the eval rows' gold labels here, so the row must score 1.0 (and the real loop, tfidf and
    DuckDB run the cells); a changed label format is refused for the finished row."""
    text = (GOOD.replace("[pool-random]", "[seed-only, static]")
            + "students: [tfidf]\nrounds: 1\nper_round: 4\neval_n: 60\npool_size: 200\nceiling: false\nteacher_row: true\n")
    config = _config(tmp_path, text)
    result = invoke(config, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r" / "t.json").read_text())
    [scored] = data["teacher_scores"]
    assert scored["dataset"] == "trec" and scored["seed"] == 1 and scored["eval_n"] == 60 and scored["unanswered"] == 0
    assert scored["macro_f1"] == 1.0 and scored["settings"]["label_format"] == "plain"
    assert scored["settings"]["demonstrations_per_label"] == 2 and scored["per_label"]["DESC"]["support"] > 0
    block = data["summary"]["trec"]["tfidf"]
    seed_only = block["strategies"]["seed-only"]["macro_f1"]
    assert block["teacher"]["gain_macro_f1_points"] == pytest.approx(100 * (1.0 - seed_only))
    md = (tmp_path / "r" / "t.md").read_text()
    assert any(line.startswith("| teacher: labels the eval rows itself | 1 | – |") for line in md.splitlines())
    assert "The teacher row: the teacher labels every eval row" in md

    _config(tmp_path, text + "label_format: json\n")
    result = invoke(config, "--results-dir", tmp_path / "r", "--work-dir", tmp_path / "w", "--quiet")
    assert result.exit_code != 0 and "finished with label_format='plain'" in result.output and "teacher" in result.output


def test_gains_are_paired_over_the_seeds_both_rows_finished():
    """Δ over seed-only is the mean and sd of per-seed differences, over the seeds both finished: a row
    missing a seed is not compared with seed-only's other draws."""
    config = bench.BenchConfig(name="t", datasets=[{"task": "a", "data": "a"}], seeds=[1, 2, 3], teacher="local",
                               strategies=["seed-only", "evokd"], ceiling=False)

    def made_up(strategy, seed, f1):
        return {"dataset": "a", "seed": seed, "student": "tfidf", "strategy": strategy, "accuracy": f1,
                "macro_f1": f1, "tokens": 1, "seconds": 1.0, "wall_s": 1.0,
                "rounds": [{"added": 0, "eval_macro_f1": f1, "eval_accuracy": f1}]}

    cells = [made_up("seed-only", 1, 0.5), made_up("seed-only", 2, 0.7), made_up("seed-only", 3, 0.9),
             made_up("evokd", 1, 0.6), made_up("evokd", 2, 0.9)]  # seed 3 unfinished
    teacher = [{"dataset": "a", "seed": s, "accuracy": 0.95, "macro_f1": 0.95, "unanswered": 0,
                "seconds_per_text": 0.5} for s in (1, 2, 3)]
    block = bench.summarize(config, {"a": "classification"}, cells, [], teacher)["a"]["tfidf"]
    row = block["strategies"]["evokd"]
    assert row["gain_seeds"] == [1, 2]
    assert row["gain_macro_f1_points"] == pytest.approx(15.0) and row["gain_macro_f1_sd"] == pytest.approx(5.0)
    assert block["teacher"]["gain_macro_f1_points"] == pytest.approx(25.0)  # 45, 25, 5 points
    from evokd.bench.render import _student_table

    lines = _student_table("tfidf", block)
    assert any(line.startswith("| evokd | 2 |") and "| +15.00 ± 5.00 |" in line for line in lines)
    assert any(line.startswith("| teacher: labels the eval rows itself | 3 |") for line in lines)

    found = {t["id"]: t for t in bench.targets({"a": {"tfidf": block}}, ["tfidf"])}
    assert found["evokd_over_seed_only"]["value"] == pytest.approx(15.0) and found["evokd_over_seed_only"]["met"]
    near = found["student_near_teacher"]  # evokd minus the teacher on seeds 1 and 2: -35 and -5 points
    assert near["best"] == "evokd" and near["value"] == pytest.approx(-20.0) and near["seeds"] == [1, 2]
    assert near["target_points"] == -3.0 and not near["met"]


def test_dataset_option_runs_only_that_datasets_jobs(tmp_path):
    """`--dataset NAME` runs that dataset's jobs only; the results cover the whole config and list the rest as
    unfinished. An unknown name is a one-line error. (Oracle pool cells: no teacher is called.)"""
    sst2 = tmp_path / "sst2-data"  # the sst2 slice's dev rows as the test split a bench reads
    sst2.mkdir()
    write_jsonl(sst2 / "train.jsonl", data_rows("sst2", "train"))
    write_jsonl(sst2 / "test.jsonl", data_rows("sst2", "dev"))
    config = _config(tmp_path, (
        f"name: two\ndatasets:\n  - task: {ROOT / 'datasets' / 'trec' / 'task.yaml'}\n    data: {DATA / 'trec'}\n"
        f"  - task: {ROOT / 'datasets' / 'sst2' / 'task.yaml'}\n    data: {sst2}\n"
        "seeds: [1]\nstrategies: [pool-random]\nstudents: [tfidf]\nteacher: scripted\noracle: true\n"
        "rounds: 1\nper_round: 4\neval_n: 50\npool_size: 100\nceiling: false\n"))
    results, work = tmp_path / "r", tmp_path / "w"
    result = invoke(config, "--results-dir", results, "--work-dir", work, "--quiet", "--dataset", "sst2")
    assert result.exit_code == 0, result.output
    data = json.loads((results / "two.json").read_text())
    assert [(c["dataset"], c["strategy"]) for c in data["cells"]] == [("sst2", "pool-random")]
    assert data["unfinished"] == ["trec-s1 tfidf pool-random"]
    assert not (work / "cells" / "trec-s1").exists()

    result = invoke(config, "--results-dir", results, "--work-dir", work, "--quiet", "--dataset", "sst3")
    assert result.exit_code == 2 and "Traceback" not in result.output
    err = result.stderr.strip()
    assert err == "evokd: error: --dataset sst3: not a dataset of this config; expected one of: trec, sst2", err


def test_seed_option_runs_only_that_random_seeds_jobs(tmp_path):
    """`--seed N` runs the cells (and teacher rows) of that random seed only, the ceilings whatever the seed;
    the results cover the whole config and list the other seeds' cells as unfinished. A seed the config
    does not draw is a one-line error. (Oracle pool cells: no teacher is called.)"""
    config = _config(tmp_path, (
        f"name: draws\ndatasets:\n  - task: {ROOT / 'datasets' / 'trec' / 'task.yaml'}\n    data: {DATA / 'trec'}\n"
        "seeds: [1, 2, 3]\nstrategies: [pool-random]\nstudents: [tfidf]\nteacher: scripted\noracle: true\n"
        "rounds: 1\nper_round: 4\neval_n: 50\npool_size: 100\nceiling: true\n"))
    results, work = tmp_path / "r", tmp_path / "w"
    result = invoke(config, "--results-dir", results, "--work-dir", work, "--quiet", "--seed", "2", "--seed", "3")
    assert result.exit_code == 0, result.output
    data = json.loads((results / "draws.json").read_text())
    assert sorted((c["seed"], c["strategy"]) for c in data["cells"]) == [(2, "pool-random"), (3, "pool-random")]
    assert data["unfinished"] == ["trec-s1 tfidf pool-random"] and len(data["ceilings"]) == 1
    assert not (work / "cells" / "trec-s1").exists()
    assert json.loads((work / "bench-runs.jsonl").read_text().splitlines()[-1])["jobs"] == [
        "trec tfidf ceiling", "trec-s2 tfidf pool-random", "trec-s3 tfidf pool-random"]

    result = invoke(config, "--results-dir", results, "--work-dir", work, "--quiet", "--seed", "4")
    assert result.exit_code == 2 and "Traceback" not in result.output
    err = result.stderr.strip()
    assert err == "evokd: error: --seed 4: not a random seed of this config; expected one of: 1, 2, 3", err


def test_paired_rows_pairs_two_benches_rows_by_draw(tmp_path):
    """benchmarks/paired_rows.py on two hand-written results files (logic test: no cell is run): rows pair
    by dataset, student and seed; equal time compares final rounds, equal rounds the shorter cell's
    last round; a seed only one file finished is left out; a missing row is a one-line error naming it."""
    import subprocess
    import sys

    def cell(row, seed, curve):
        return {"dataset": "trec", "student": "minilm", "seed": seed, "row": row,
                "rounds": [{"round": i, "eval_macro_f1": f} for i, f in enumerate(curve)]}

    (tmp_path / "a.json").write_text(json.dumps({"cells": [cell("pool-errors", 1, [0.5, 0.6, 0.7]),
                                                           cell("pool-errors", 2, [0.5, 0.8]),
                                                           cell("pool-errors", 3, [0.5, 0.9])]}))
    (tmp_path / "b.json").write_text(json.dumps({"cells": [cell("pool-errors --noise x", 1, [0.5, 0.65]),
                                                           cell("pool-errors --noise x", 2, [0.5, 0.6, 0.7, 0.75]),
                                                           cell("seed-only", 1, [0.5])]}))
    script = [sys.executable, str(ROOT / "benchmarks" / "paired_rows.py"), "--results-dir", str(tmp_path)]
    done = subprocess.run(script + ["--out", str(tmp_path / "p.json"), "--row", "a.json:pool-errors=new",
                                    "--row", "b.json:pool-errors --noise x=old", "--row", "b.json:seed-only"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "p.json").read_text())
    versus_old, versus_seeds = (c["pairs"]["trec / minilm"] for c in result["comparisons"])
    assert versus_old["seeds"] == [1, 2] and versus_old["equal_time"] == [5.0, 5.0]
    assert versus_old["equal_rounds"] == [-5.0, 20.0] and versus_old["rounds"] == [[2, 1], [1, 3]]
    assert versus_seeds["seeds"] == [1] and versus_seeds["equal_time"] == [20.0] and versus_seeds["equal_rounds"] == []
    assert "| trec / minilm | 1, 2 | 0.750 | 0.700 | +5.0 ± 0.0 |" in (tmp_path / "p.md").read_text()
    missing = subprocess.run(script + ["--out", str(tmp_path / "q.json"), "--row", "a.json:static",
                                       "--row", "b.json:seed-only"], capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "no finished cell of row 'static'; expected one of pool-errors" in missing.stderr
    assert not (tmp_path / "q.json").exists()
