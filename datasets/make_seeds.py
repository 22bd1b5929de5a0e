"""Draw the example tasks' seed files from the benchmark data folder (run from the project root).

    EVOKD_DATA=~/evokd-data python datasets/make_seeds.py              # every example task
    python datasets/make_seeds.py ag_news conll2003 --data-dir ~/evokd-data

Seeds are drawn with a fixed random seed so the files are reproducible; the draw is recorded
in each task file's header and in this script. The seeds of sst2, trec and wnut17 are shipped;
those of ag_news and conll2003 are not (their licences: datasets/NOTICE.md), so a user who has
those datasets draws them here.
"""

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
from evokd import datadir  # noqa: E402
from evokd.errors import InputError  # noqa: E402

DATA = Path()  # the benchmark data folder, set in main()
DRAWS = {"sst2": 4, "ag_news": 1, "trec": 1}  # seeds per label
NER_DRAWS = {"conll2003": 1, "wnut17": 1}  # seed sentences per entity type
RANDOM_SEED = 13


def ner_seeds(name: str, per_type: int) -> list[dict]:
    """Sentences of at least 8 tokens, one per entity type that it contains, as {"text", "entities"}."""
    from evokd.ner import tokens_to_example

    rows = [json.loads(line) for line in (DATA / name / "train.jsonl").open(encoding="utf-8")]
    tags = json.loads((DATA / name / "meta.json").read_text())["labels"]
    types = sorted({t[2:] for t in tags if t != "O"})
    rng = random.Random(RANDOM_SEED)
    seeds: list[dict] = []
    for etype in types:
        pool = [r for r in rows if len(r["tokens"]) >= 8 and f"B-{etype}" in r["tags"]]
        for r in rng.sample(pool, per_type):
            example = tokens_to_example(r["tokens"], r["tags"])
            if example["text"] not in {s["text"] for s in seeds}:
                seeds.append(example)
    return seeds


def main() -> None:
    global DATA
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"example tasks to draw seeds for [default: all of {', '.join([*DRAWS, *NER_DRAWS])}]")
    parser.add_argument("--data-dir", default=None, help=f"the benchmark data folder [default: ${datadir.ENV}]")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - {*DRAWS, *NER_DRAWS})
    if unknown:
        parser.error(f"unknown example task {unknown[0]!r}; expected some of: {', '.join([*DRAWS, *NER_DRAWS])}")
    datadir.set_from_option(args.data_dir)
    try:
        DATA = datadir.root(source="datasets/make_seeds.py")
    except InputError as exc:
        sys.exit(f"error: {exc}")
    wanted = set(args.names or [*DRAWS, *NER_DRAWS])
    for name, per_label in DRAWS.items():
        if name not in wanted:
            continue
        rows = [json.loads(line) for line in (DATA / name / "train.jsonl").open(encoding="utf-8")]
        labels = json.loads((DATA / name / "meta.json").read_text())["labels"]
        rng = random.Random(RANDOM_SEED)
        seeds = []
        for label in labels:
            # Skip the phrase-level fragments of SST-2 train: a seed should be a full sentence.
            pool = [r for r in rows if r["label"] == label and len(r["text"].split()) >= 6]
            seeds += [{"text": r["text"], "label": r["label"]} for r in rng.sample(pool, per_label)]
        out = ROOT / name / "seeds.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in seeds), encoding="utf-8")
        print(f"{out.relative_to(ROOT.parent)}: {len(seeds)} seeds ({per_label} per label, random seed {RANDOM_SEED})")
    for name, per_type in NER_DRAWS.items():
        if name not in wanted:
            continue
        seeds = ner_seeds(name, per_type)
        out = ROOT / name / "seeds.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in seeds), encoding="utf-8")
        print(f"{out.relative_to(ROOT.parent)}: {len(seeds)} seeds ({per_type} sentence per entity type, random seed {RANDOM_SEED})")


if __name__ == "__main__":
    main()
