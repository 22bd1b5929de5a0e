"""Results of finished jobs: per dataset and student the mean and sd over seeds, paired gains over
seed-only, learning curves, ceilings and the teacher's own scores (summarize), the benchmark's targets,
one cell's scores in a line, and the machine."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

from evokd.bench.config import METRIC_NAMES, TARGET_POINTS, TEACHER_GAP_POINTS, BenchConfig, metrics_of


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


def targets(summary: dict, students: list[str]) -> list[dict]:
    """The benchmark's targets in points of the headline score (macro-F1; entity F1 on NER), each over
    the seeds both of its rows finished (the pool target: on every dataset): pool selection over random,
    evokd over static and over seed-only, and (with a teacher row) the best student near the teacher."""
    out = []
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
            out.append({"id": "pool_selection_over_random", "student": student, "target_points": TARGET_POINTS,
                        "best": best, "value": gains[best], "by_strategy": gains, "seeds_by_strategy": pool_seeds,
                        "datasets": sorted(rand),
                        "met": gains[best] >= TARGET_POINTS,
                        "what": f"best of pool-evokd / pool-errors minus pool-random, {metric} averaged over datasets"})
        for name, s in per_ds.items():
            if "evokd" in s and "static" in s:
                value, seeds = _paired(s["evokd"], s["static"])
                if value is None:
                    continue
                paper = _paired(s["evokd-paper"], s["static"])[0] if "evokd-paper" in s else None
                out.append({"id": "evokd_over_static", "student": student, "dataset": name, "target_points": TARGET_POINTS,
                            "value": value, "seeds": seeds, "evokd_paper_value": paper, "met": value >= TARGET_POINTS,
                            "what": f"evokd minus static on {name}, {METRIC_NAMES[summary[name][student]['metric']]}"})
        for name, s in per_ds.items():
            metric = METRIC_NAMES[summary[name][student]["metric"]]
            if "evokd" in s and "seed-only" in s:
                value, seeds = _paired(s["evokd"], s["seed-only"])
                if value is not None:
                    out.append({"id": "evokd_over_seed_only", "student": student, "dataset": name,
                                "target_points": TARGET_POINTS, "value": value, "seeds": seeds,
                                "met": value >= TARGET_POINTS, "what": f"evokd minus seed-only on {name}, {metric}"})
            teacher = summary[name][student].get("teacher")
            if teacher and len(s) > 1:
                # the best row that trained on more than the seeds, against the teacher on the same draws
                gaps = {row: _paired(r, teacher) for row, r in s.items() if row != "seed-only"}
                gaps = {row: g for row, g in gaps.items() if g[0] is not None}
                if gaps:
                    best = max(gaps, key=lambda row: gaps[row][0])
                    value, seeds = gaps[best]
                    out.append({"id": "student_near_teacher", "student": student, "dataset": name,
                                "target_points": -TEACHER_GAP_POINTS, "value": value, "seeds": seeds, "best": best,
                                "met": value >= -TEACHER_GAP_POINTS,
                                "what": f"the best strategy's student minus the teacher on {name}, {metric}"})
    return out


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor() or "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
