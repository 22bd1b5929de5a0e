"""Draw the example tasks' seed files from ../shared/data (run from the project root).

    python datasets/make_seeds.py

Seeds are drawn with a fixed random seed so the files are reproducible; the draw is recorded
in each task's README line and in this script.
"""

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data"
DRAWS = {"sst2": 4, "ag_news": 1, "trec": 1}  # seeds per label
NER_DRAWS = {"conll2003": 1, "wnut17": 1}  # seed sentences per entity type
RANDOM_SEED = 13


def ner_seeds(name: str, per_type: int) -> list[dict]:
    """Sentences of at least 8 tokens, one per entity type that it contains, as {"text", "entities"}."""
    import sys

    sys.path.insert(0, str(ROOT.parent))
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
    for name, per_label in DRAWS.items():
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
        seeds = ner_seeds(name, per_type)
        out = ROOT / name / "seeds.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in seeds), encoding="utf-8")
        print(f"{out.relative_to(ROOT.parent)}: {len(seeds)} seeds ({per_type} sentence per entity type, random seed {RANDOM_SEED})")


if __name__ == "__main__":
    main()
