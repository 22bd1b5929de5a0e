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
RANDOM_SEED = 13


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


if __name__ == "__main__":
    main()
