"""Rows of different `evokd bench` results files, paired draw by draw: how a row of one bench compares
with a row of another that ran the same draws (the same datasets, seeds per label and random seeds give
the same seeds, pool and eval rows), when their cells are not in one work dir to render together.

    .venv/bin/python benchmarks/paired_rows.py --out benchmarks/results/local-teacher-30min-fuse-paired.json \
        --row local-teacher-30min-fuse.json:pool-errors=fuse \
        --row "local-teacher-30min-calibrated.json:pool-errors=confidence" \
        --row "local-teacher-30min-calibrated.json:pool-errors --noise confidence+agree=confidence+agree" \
        --row local-teacher-30min-fuse.json:seed-only=seed-only

Each `--row FILE:ROW=LABEL` names a results json (relative to --results-dir) and one of its rows; the
first row is compared with every other, per dataset and student, over the seeds both finished: the
final round's macro-F1 (equal time: each cell ran until its --max-minutes), and the macro-F1 after as
many rounds as the shorter of the two cells ran (equal rounds, the same number of teacher-labeled
texts, which no machine speed changes). Reads only the results files: nothing is trained or run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from distill_students import result_header, write_result  # noqa: E402

METRIC = "eval_macro_f1"


def parse_row(spec: str) -> tuple[str, str, str]:
    """"FILE:ROW=LABEL" -> (file, row, label); the label defaults to the row."""
    if ":" not in spec:
        raise SystemExit(f"--row {spec!r}: expected FILE.json:ROW[=LABEL]")
    file, rest = spec.split(":", 1)
    row, _, label = rest.partition("=")
    return file, row, label or row


def cells_of(path: Path, row: str) -> dict[tuple[str, str, int], list[float]]:
    """(dataset, student, seed) -> the row's cell's macro-F1 per round, from a results json."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such results file")
    data = json.loads(path.read_text(encoding="utf-8"))
    out = {(c["dataset"], c["student"], c["seed"]): [r[METRIC] for r in sorted(c["rounds"], key=lambda r: r["round"])]
           for c in data["cells"] if c["row"] == row}
    if not out:
        rows = sorted({c["row"] for c in data["cells"]})
        raise SystemExit(f"{path}: field 'row': no finished cell of row {row!r}; expected one of {', '.join(rows)}")
    return out


def paired(a: dict, b: dict) -> dict:
    """Per (dataset, student): the seeds both finished, and the differences a - b in points."""
    out: dict = {}
    for (dataset, student, seed) in sorted(set(a) & set(b)):
        curve_a, curve_b = a[dataset, student, seed], b[dataset, student, seed]
        n = min(len(curve_a), len(curve_b))
        entry = out.setdefault(f"{dataset} / {student}", {"seeds": [], "a": [], "b": [], "equal_time": [],
                                                          "equal_rounds": [], "rounds": []})
        entry["seeds"].append(seed)
        entry["a"].append(round(curve_a[-1], 4))
        entry["b"].append(round(curve_b[-1], 4))
        entry["equal_time"].append(round(100 * (curve_a[-1] - curve_b[-1]), 2))
        if min(len(curve_a), len(curve_b)) > 1:  # a seed-only cell has round 0 alone: no equal-rounds pair
            entry["equal_rounds"].append(round(100 * (curve_a[n - 1] - curve_b[n - 1]), 2))
        entry["rounds"].append([len(curve_a) - 1, len(curve_b) - 1])
    for entry in out.values():
        for key in ("equal_time", "equal_rounds"):
            values = entry[key]
            entry[f"{key}_mean"] = round(statistics.mean(values), 2) if values else None
            entry[f"{key}_sd"] = round(statistics.stdev(values), 2) if len(values) > 1 else None
    return out


def render(result: dict) -> str:
    first = result["rows"][0]["label"]
    lines = [f"# {first} against other rows, paired by draw", "",
             f"Machine: {result['machine']}; {result['date']}; commit {result['commit']}.", "",
             f"Command (from the project root): `python {result['command']}`", "",
             "Rows: " + "; ".join(f"**{r['label']}** = row `{r['row']}` of `{r['file']}`" for r in result["rows"]) + ".",
             "", "Macro-F1 of each draw's final round (each cell ran until its time budget: equal time), and the "
             "difference in points paired by draw (mean ± sample sd, then per seed); equal rounds compares each "
             "pair after as many rounds as the shorter cell ran (the same number of teacher-labeled texts).", ""]
    for comparison in result["comparisons"]:
        lines += [f"## {first} − {comparison['against']}", "",
                  "| dataset / student | seeds | " + first + " | " + comparison["against"]
                  + " | Δ equal time | per seed | Δ equal rounds | per seed | rounds (a, b) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key, e in comparison["pairs"].items():
            def spread(k: str) -> str:
                mean, sd = e[f"{k}_mean"], e[f"{k}_sd"]
                return "–" if mean is None else f"{mean:+.1f}" + (f" ± {sd:.1f}" if sd is not None else "")

            lines.append(f"| {key} | {', '.join(map(str, e['seeds']))} | {statistics.mean(e['a']):.3f} | "
                         f"{statistics.mean(e['b']):.3f} | {spread('equal_time')} | "
                         + ", ".join(f"{x:+.1f}" for x in e["equal_time"]) + f" | {spread('equal_rounds')} | "
                         + (", ".join(f"{x:+.1f}" for x in e["equal_rounds"]) or "–") + " | "
                         + ", ".join(f"{x}/{y}" for x, y in e["rounds"]) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", action="append", required=True, metavar="FILE:ROW=LABEL",
                        help="a results json and one of its rows (repeatable; the first is compared with the others)")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, required=True, help="the .json to write (and its .md twin)")
    args = parser.parse_args()
    if len(args.row) < 2:
        raise SystemExit("--row: expected at least two rows, the first compared with the others")
    specs = [parse_row(s) for s in args.row]
    cells = [cells_of(args.results_dir / file, row) for file, row, _ in specs]
    result = {**result_header(args.out.stem, "paired_rows.py"), "command": "benchmarks/paired_rows.py " + shlex.join(sys.argv[1:]),
              "rows": [{"file": f, "row": r, "label": label} for f, r, label in specs],
              "comparisons": [{"against": label, "pairs": paired(cells[0], other)}
                              for (_, _, label), other in zip(specs[1:], cells[1:])]}
    write_result(args.out, result, render)


if __name__ == "__main__":
    main()
