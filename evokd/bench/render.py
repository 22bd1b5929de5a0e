"""Rendering a bench result: the learning-curve PNG of a dataset (plot_curves) and the Markdown report
(render_markdown)."""

from __future__ import annotations

import io as _io

from evokd.bench.config import (EVAL_SAMPLE_SEED, METRIC_NAMES, MIN_SEED_WORDS, NER_MIN_SEED_WORDS, TEST_DOUBLE_NOTE,
                                metrics_of)
from evokd.task_kinds import KINDS, kind_rules

# how a dataset's seeds are drawn, by task kind: (what one seed is, what k seeds are drawn per)
_SEEDS_PER = {"classification": ("seed", "per label ({} labels)"), "ner": ("seed sentence", "per entity type ({} types)")}


def _metrics_headed_by(key: str) -> tuple[str, ...]:
    """The scores of the task kind whose headline bench score is `key` (macro-F1: classification's)."""
    return next((r.bench_metrics for r in KINDS.values() if r.bench_metrics[0] == key), metrics_of("classification"))


def _rules_of(dataset: dict):
    return kind_rules(dataset.get("kind") or "classification")  # results written before kinds were recorded: classification


def plot_curves(result: dict, dataset: str) -> bytes:
    """PNG: the headline score (macro-F1; entity F1 on NER; mean over seeds) against added samples, a line
    per strategy, a panel per student."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, Agg canvas

    by_student = result["summary"][dataset]
    fig = Figure(figsize=(5.2 * len(by_student), 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(by_student), squeeze=False)[0]
    for ax, (student, block) in zip(axes, by_student.items()):
        key = block.get("metric", "macro_f1")
        for strategy, row in block["strategies"].items():
            if strategy == "seed-only":
                ax.axhline(row[key], color="#666666", ls=":", label=f"seed-only: {row[key]:.3f}")
                continue
            curve = row["curve"]
            n = len(row["seeds"])
            ax.plot([p["added"] for p in curve], [p[key] for p in curve], marker="o", ms=3,
                    label=f"{strategy} ({n} seed{'s' * (n > 1)})")
        if block["ceiling"]:
            c = block["ceiling"]
            ax.axhline(c[key], color="#222222", ls="--", label=f"ceiling ({c['n_train']:,} rows): {c[key]:.3f}")
        if block.get("teacher"):
            ax.axhline(block["teacher"][key], color="#b03030", ls="-.", label=f"teacher: {block['teacher'][key]:.3f}")
        ax.set_title(f"{dataset}: {student}", fontsize=11)
        ax.set_xlabel("added samples (train size minus seeds)")
        ax.set_ylabel(f"eval {METRIC_NAMES[key]} (mean over the finished seeds)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        else:  # a dataset with nothing finished yet (a partial bench)
            ax.text(0.5, 0.5, "no finished cells yet", ha="center", va="center", transform=ax.transAxes)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.4f} ± {sd:.4f}"


def _teacher_line(result: dict) -> str:
    cfg = result["config"]
    if result["test_double"]:
        return f"Teacher: **{TEST_DOUBLE_NOTE}.**"
    from evokd import strategies

    if not any(strategies.get(name).calls_teacher(cfg["oracle"]) for name in cfg["strategies"]):
        return "Teacher: none (no strategy in this config calls one)."
    return f"Teacher: `{cfg['teacher']}`."


def _time_and_noise(cfg: dict) -> str:
    """What the config's time budget and noise modes add to the sentence on rounds."""
    from evokd.noise import DEFAULT_NOISE

    out = ""
    if cfg.get("max_minutes"):
        out += (f", or as many as finish in {cfg['max_minutes']:g} minutes (`--max-minutes`: no round starts "
                "once the committed ones took that long) where a teacher is called")
    noise = cfg.get("noise", [DEFAULT_NOISE])
    out += f"; cells that train on teacher labels weigh them with `--noise {noise[0]}`"
    if len(noise) > 1:
        out += ", and rows suffixed `--noise MODE` with that mode"
    return out


def _student_table(student: str, block: dict) -> list[str]:
    """A student's rows: each strategy's scores (accuracy and macro-F1, or entity F1 on NER), the gain
    in the headline score over seed-only, tokens and seconds; then the whole-train-split ceiling."""
    key = block.get("metric", "macro_f1")
    shown = sorted(_metrics_headed_by(key))
    bar = "|---" * (len(shown) + 7)
    lines = [f"### {student}", "",
             f"| strategy | seeds | added | {' | '.join(METRIC_NAMES[k] for k in shown)} | Δ {METRIC_NAMES[key]} | "
             "teacher tokens/cell | s/cell (rounds) | s/cell (wall) |", bar + "|"]
    for strategy, row in block["strategies"].items():
        lines.append(f"| {strategy} | {len(row['seeds'])} | {row['added']:.0f} | "
                     + "".join(f"{_pm(row[k], row[f'{k}_sd'])} | " for k in shown)
                     + f"{_gain(row, key)} | {row['tokens']:,.0f} | {row['seconds']:.1f} | {row['wall_s']:.1f} |")
    c = block["ceiling"]
    if c:
        base = block["strategies"].get("seed-only")
        gain = f"{100 * (c[key] - base[key]):+.2f}" if base else "–"
        lines.append(f"| ceiling: whole train split | – | {c['n_train']:,} | "
                     + "".join(f"{c[k]:.4f} | " for k in shown) + f"{gain} | 0 | – | {c['seconds']:.1f} (fit and score) |")
    t = block.get("teacher")
    if t:
        lines.append(f"| teacher: labels the eval rows itself | {len(t['seeds'])} | – | "
                     + "".join(f"{_pm(t[k], t[f'{k}_sd'])} | " for k in shown)
                     + f"{_gain(t, key)} | – | {t['seconds_per_text']:.2f} per text | – |")
    return lines + [""]


def _gain(row: dict, key: str) -> str:
    """A row's paired gain over seed-only in points of `key`: mean ± sd over the seeds both finished, or –."""
    if f"gain_{key}_points" not in row:
        return "–"
    sd = f" ± {row[f'gain_{key}_sd']:.2f}" if len(row.get("gain_seeds", [])) > 1 else ""
    return f"{row[f'gain_{key}_points']:+.2f}{sd}"


def _runs_lines(result: dict) -> list[str]:
    """Which `evokd bench` commands ran the finished jobs, when and where (the work dir's bench-runs.jsonl),
    and how many finished jobs ran before the bench kept that log."""
    runs = result.get("runs") or []
    if not runs:
        return []
    lines = ["The finished jobs were run by:", ""]
    for run in runs:
        lines.append(f"- {run['started']} – {run['ended']}, {run['machine']}, evokd {run['evokd']}: `{run['command']}` "
                     f"({len(run['jobs'])} job{'s' if len(run['jobs']) != 1 else ''}: "
                     + ", ".join(f"`{k}`" for k in run["jobs"]) + ")" + (f"; {run['note']}" if run.get("note") else ""))
    if result.get("unlogged"):
        lines.append(f"- {len(result['unlogged'])} more, before the bench logged its runs (the results README and the "
                     "config's comment say how)")
    return lines + [""]


def render_markdown(result: dict) -> str:
    cfg, m = result["config"], result["machine"]
    tagged = [not _rules_of(d).one_label_per_text for d in result["datasets"].values()]  # NER: spans, not one label
    some_tagged, all_tagged = any(tagged), all(tagged)
    lines = [f"# evokd bench: {cfg['name']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}; evokd "
             f"{result['evokd']}; {result['date']}.", "",
             f"Command (from the project root): `{result['command']}`", "",
             *_runs_lines(result),
             _teacher_line(result), "",
             f"Each random seed ({', '.join(map(str, cfg['seeds']))}) draws its own seeds ("
             + (f"k sentences of {NER_MIN_SEED_WORDS}+ words per entity type" if all_tagged else
                f"k per label, texts of {MIN_SEED_WORDS}+ words"
                + (f"; NER: k sentences of {NER_MIN_SEED_WORDS}+ words per entity type" if some_tagged else ""))
             + f") and its own pool of {cfg['pool_size']:,} train texts (minus the seeds and the "
             f"eval texts); every cell of a dataset is scored on the same {cfg['eval_n']:,} test rows (sampled with "
             f"seed {EVAL_SAMPLE_SEED}). Strategies that add samples run {cfg['rounds']} rounds of {cfg['per_round']}"
             + _time_and_noise(cfg) + "; seed-only is round 0. Pool strategies take "
             + ("the pool's gold labels (oracle)." if cfg["oracle"] else "the teacher's labels."), "",
             ("Entity F1 (exact span and type, micro-averaged) is the final round's, mean ± sd over seeds; Δ is "
              "against seed-only in entity-F1 points, paired (mean ± sd over the seeds both finished of the "
              "difference)" if all_tagged else
              "Accuracy and macro-F1 are the final round's, mean ± sd over seeds; Δ is against seed-only in macro-F1 "
              "points, paired (mean ± sd over the seeds both finished of the difference)"
              + ("; NER rows give entity F1 (exact span and type, micro-averaged) instead" if some_tagged else ""))
             + "; tokens are the teacher's prompt + completion tokens per cell. Seconds per cell: the committed "
             "rounds (training, teacher calls, eval), and wall clock of the process that finished the cell (with "
             "teacher loading and pool embedding; a resumed cell counts its last run only).", ""]
    if cfg.get("teacher_row"):
        lines += ["The teacher row: the teacher labels every eval row of each draw itself, asked as that draw's cells "
                  "ask (its seeds as demonstrations, the config's label temperature and format): what a student that "
                  "learned the teacher perfectly would score. Its seconds are per text.", ""]
    if result.get("unfinished"):
        lines += [f"**Partial results: {len(result['unfinished'])} of the config's jobs have not run yet** (rendered "
                  "with `--render-only` or `--only`; each row averages the seeds that finished, counted in its seeds "
                  "column):", "",
                  ", ".join(f"`{k}`" for k in result["unfinished"]), ""]
    lines += ["## Targets", ""]
    if result["test_double"]:
        lines += ["(Measured with the TEST DOUBLE teacher: they check the arithmetic, not EvoKD.)", ""]
    if result["targets"]:
        unit = "entity-F1 points" if all_tagged else "macro-F1 points" + (", entity F1 on NER" if some_tagged else "")
        lines += [f"| target | student | measured ({unit}) | met |", "|---|---|---|---|"]
        for t in result["targets"]:
            if t["id"] == "pool_selection_over_random":
                seeds = t.get("seeds_by_strategy", {})
                uneven = len({tuple(v) for v in seeds.values()}) > 1  # say the seeds when strategies differ
                others = ", ".join(f"{k} {v:+.2f}" + (f" on seed{'s' * (len(seeds[k]) > 1)} "
                                                       f"{', '.join(map(str, seeds[k]))}" if uneven else "")
                                   for k, v in t["by_strategy"].items())
                measured = f"{t['value']:+.2f} ({others}; over {', '.join(t['datasets'])})"
            else:
                extra = "" if t.get("evokd_paper_value") is None else f"; evokd-paper {t['evokd_paper_value']:+.2f}"
                extra += f"; {t['best']}" if t.get("best") else ""
                extra += f"; worst: {t['worst']}" if t.get("worst") else ""
                measured = f"{t['value']:+.2f} (seeds {', '.join(map(str, t['seeds']))}{extra})"
            lines.append(f"| {t['what']} ≥ {t['target_points']:g} | {t['student']} | {measured} | "
                         f"{'yes' if t['met'] else '**no**'} |")
    else:
        lines.append("None measured: the targets compare pool-evokd / pool-errors with pool-random, evokd with "
                     "static, evokd-paper and seed-only, every strategy with seed-only, and the best student with the "
                     "teacher row; this config runs none of these pairs (or no seed finished both, or its `targets` "
                     "turn them off).")
    lines.append("")
    for name, by_student in result["summary"].items():
        ds = result["datasets"][name]
        seed, what = _SEEDS_PER[_rules_of(ds).name]
        per = seed + "s" * (ds["shots"] > 1)
        lines += [f"## {name}", "",
                  f"{ds['shots']} {per} {what.format(ds['labels'])}, {ds['eval_n']:,} "
                  f"eval rows, pool of {ds['pool_n']:,} texts per seed.", "",
                  f"![{name} learning curves]({cfg['name']}-{name}.png)", ""]
        for block in by_student.items():
            lines += _student_table(*block)
    example = next((c for c in result["cells"] if c["rounds"][-1]["round"] > 0), next(iter(result["cells"]), None))
    if example:
        lines += ["## Reproducing a cell", "",
                  "Every cell is an `evokd generate` run on a task folder under the work dir; its cell.json holds the "
                  "per-round metrics and the command, e.g.:", "", f"    {example['command']}", ""]
        if "--teacher scripted" in example["command"]:
            lines += ["(`--teacher scripted` is the TEST DOUBLE, registered only inside `evokd bench` and the tests.)", ""]
    return "\n".join(lines)
