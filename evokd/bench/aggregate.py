"""Results of finished jobs: per dataset and student the mean and sd over seeds, paired gains over
seed-only, learning curves, ceilings and the teacher's own scores (summarize), the benchmark's targets,
one cell's scores in a line, and the machine."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

from evokd.bench.config import METRIC_NAMES, TARGET_DEFAULTS, BenchConfig, metrics_of


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def cell_scores(cell: dict) -> str:
    """A finished cell's scores in one line, in the order of the tables' columns."""
    kind = "ner" if "entity_f1" in cell else "classification"
    return ", ".join(f"{METRIC_NAMES[k]} {cell[k]:.3f}" for k in sorted(metrics_of(kind)))


def summarize(config: BenchConfig, datasets: dict[str, str], cells: list[dict], ceilings: list[dict],
              teacher_scores: list[dict] = ()) -> dict:
    """Per dataset (name -> task kind) and student: a row per strategy and noise mode (BenchConfig.row_names:
    mean and sd over seeds of each of the kind's scores), learning curves, the ceiling, and the teacher's own
    scores on the eval rows (`teacher_row`). Gains over seed-only are paired: the mean and sd over the random
    seeds both finished of the difference between the two. `metric` names the headline score: macro-F1, or
    entity F1 on NER."""
    out: dict = {}
    for name, kind in datasets.items():
        scores = metrics_of(kind)
        for student in config.students:
            rows: dict = {}
            for row_name in config.row_names():
                found = sorted((c for c in cells if (c["dataset"], c["student"], c.get("row", c["strategy"]))
                                == (name, student, row_name)), key=lambda c: c["seed"])
                if not found:
                    continue
                depth = max(len(c["rounds"]) for c in found)
                curve = []
                for i in range(depth):
                    at = [c["rounds"][i] for c in found if len(c["rounds"]) > i]
                    curve.append({"round": i, "n_seeds": len(at), "added": statistics.fmean(r["added"] for r in at),
                                  **{k: statistics.fmean(r[f"eval_{k}"] for r in at) for k in scores}})
                rows[row_name] = {
                    **_over_seeds(found, scores), "added": statistics.fmean(c["rounds"][-1]["added"] for c in found),
                    "tokens": statistics.fmean(c["tokens"] for c in found),
                    "seconds": statistics.fmean(c["seconds"] for c in found),
                    "wall_s": statistics.fmean(c["wall_s"] for c in found), "curve": curve,
                }
            found = sorted((t for t in teacher_scores if t["dataset"] == name), key=lambda t: t["seed"])
            teacher = {**_over_seeds(found, scores), "unanswered": statistics.fmean(t["unanswered"] for t in found),
                       "seconds_per_text": statistics.fmean(t["seconds_per_text"] for t in found)} if found else None
            if "seed-only" in rows:
                for row in [*rows.values(), *([teacher] if teacher else [])]:
                    _gain_over(row, rows["seed-only"], scores)
            ceiling = next((c for c in ceilings if (c["dataset"], c["student"]) == (name, student)), None)
            out.setdefault(name, {})[student] = {"metric": scores[0], "strategies": rows, "ceiling": ceiling,
                                                 "teacher": teacher}
    return out


def _over_seeds(found: list[dict], scores: tuple[str, ...]) -> dict:
    """The seeds of `found` (results of one row, one per random seed), each score's mean and sd over them,
    and the scores per seed (`per_seed`: the headline one; `by_seed`: all)."""
    row = {"seeds": [c["seed"] for c in found], "per_seed": {str(c["seed"]): c[scores[0]] for c in found},
           "by_seed": {str(c["seed"]): {k: c[k] for k in scores} for c in found}}
    for k in sorted(scores):
        row[k], row[f"{k}_sd"] = _mean_sd([c[k] for c in found])
    return row


def _gain_over(row: dict, base: dict, scores: tuple[str, ...]) -> None:
    """Add to `row` its paired gain over `base` in points of each score: mean and sd over the seeds both finished."""
    common = sorted(set(row["by_seed"]) & set(base["by_seed"]), key=int)
    row["gain_seeds"] = [int(s) for s in common]
    if not common:
        return
    for k in scores:
        row[f"gain_{k}_points"], row[f"gain_{k}_sd"] = _mean_sd(
            [100 * (row["by_seed"][s][k] - base["by_seed"][s][k]) for s in common])


def _paired(a: dict, b: dict, within: set[str] | None = None) -> tuple[float | None, list[int]]:
    """Mean of a - b in points of the headline score over the random seeds both finished (a partial bench compares
    like with like), and those seeds; `within` narrows them further."""
    common = set(a["per_seed"]) & set(b["per_seed"])
    common = sorted(common if within is None else common & within, key=int)
    if not common:
        return None, []
    return statistics.fmean(100 * (a["per_seed"][k] - b["per_seed"][k]) for k in common), [int(k) for k in common]


def _rows_against(rows: dict, base: dict) -> dict[str, tuple[float, list[int]]]:
    """Each row that trained on more than the seeds (all but seed-only) against `base`, paired: row -> (points,
    seeds); rows that share no finished seed with `base` are left out."""
    paired = {row: _paired(r, base) for row, r in rows.items() if row != "seed-only"}
    return {row: g for row, g in paired.items() if g[0] is not None}


def targets(summary: dict, students: list[str], config: BenchConfig | None = None) -> list[dict]:
    """The benchmark's targets in points of the headline score (macro-F1; entity F1 on NER), each over
    the seeds both of its rows finished (the pool target: on every dataset): pool selection over random,
    evokd over static, over evokd-paper and over seed-only, the worst row over seed-only, and (with a
    teacher row) the best student and the best pool student near the teacher. The points each asks for
    are the config's (BenchConfig.target_points; without a config TARGET_DEFAULTS); a target at None is
    not measured."""
    def points(target: str, dataset: str | None = None) -> float | None:
        return config.target_points(target, dataset) if config is not None else TARGET_DEFAULTS[target]

    def add(target: str, dataset: str | None, value: float, **fields) -> None:
        wanted = points(target, dataset)
        if wanted is not None:
            out.append({"id": target, "student": student, **({"dataset": dataset} if dataset else {}),
                        "target_points": wanted, "value": value, **fields, "met": value >= wanted})

    out: list[dict] = []
    for student in students:
        per_ds = {name: by[student]["strategies"] for name, by in summary.items() if student in by}
        metric = " / ".join(dict.fromkeys(METRIC_NAMES[by[student]["metric"]] for by in summary.values() if student in by))
        rand = {n: s for n, s in per_ds.items() if "pool-random" in s}
        gains, pool_seeds = {}, {}
        for strategy in ("pool-evokd", "pool-errors"):
            if not rand or not all(strategy in s for s in rand.values()):
                continue
            # like with like: the seeds the strategy and pool-random finished on every dataset
            common = set.intersection(*(set(s[strategy]["per_seed"]) & set(s["pool-random"]["per_seed"])
                                        for s in rand.values()))
            if common:
                gains[strategy] = statistics.fmean(_paired(s[strategy], s["pool-random"], common)[0]
                                                   for s in rand.values())
                pool_seeds[strategy] = sorted(map(int, common))
        if gains:
            best = max(gains, key=gains.get)
            add("pool_selection_over_random", None, gains[best], best=best, by_strategy=gains,
                seeds_by_strategy=pool_seeds, datasets=sorted(rand),
                what=f"best of pool-evokd / pool-errors minus pool-random, {metric} averaged over datasets")
        for name, s in per_ds.items():
            if "evokd" in s and "static" in s:
                value, seeds = _paired(s["evokd"], s["static"])
                if value is not None:
                    paper = _paired(s["evokd-paper"], s["static"])[0] if "evokd-paper" in s else None
                    add("evokd_over_static", name, value, seeds=seeds, evokd_paper_value=paper,
                        what=f"evokd minus static on {name}, {METRIC_NAMES[summary[name][student]['metric']]}")
        for name, s in per_ds.items():
            metric = METRIC_NAMES[summary[name][student]["metric"]]
            if "evokd" in s and "evokd-paper" in s:
                value, seeds = _paired(s["evokd"], s["evokd-paper"])
                if value is not None:
                    add("evokd_over_paper", name, value, seeds=seeds, what=f"evokd minus evokd-paper on {name}, {metric}")
            if "evokd" in s and "seed-only" in s:
                value, seeds = _paired(s["evokd"], s["seed-only"])
                if value is not None:
                    add("evokd_over_seed_only", name, value, seeds=seeds, what=f"evokd minus seed-only on {name}, {metric}")
            if "seed-only" in s:
                # every row that adds samples, against seed-only on the seeds both finished: the worst one counts
                over = _rows_against(s, s["seed-only"])
                if over:
                    worst = min(over, key=lambda row: over[row][0])
                    add("strategies_over_seed_only", name, over[worst][0], seeds=over[worst][1], worst=worst,
                        what=f"the worst strategy's student minus seed-only on {name}, {metric}")
            teacher = summary[name][student].get("teacher")
            if teacher and len(s) > 1:
                # the best row that trained on more than the seeds, against the teacher on the same draws
                gaps = _rows_against(s, teacher)
                if gaps:
                    best = max(gaps, key=lambda row: gaps[row][0])
                    add("student_near_teacher", name, gaps[best][0], seeds=gaps[best][1], best=best,
                        what=f"the best strategy's student minus the teacher on {name}, {metric}")
                pool = {row: g for row, g in gaps.items() if row.startswith("pool-")}
                if pool:
                    best = max(pool, key=lambda row: pool[row][0])
                    add("pool_near_teacher", name, pool[best][0], seeds=pool[best][1], best=best,
                        what=f"the best pool strategy's student minus the teacher on {name}, {metric}")
    return out


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor() or "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
