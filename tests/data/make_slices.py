"""Rebuild the test data slices in tests/data/ from the full benchmark datasets.

    python tests/data/make_slices.py --data-dir "$EVOKD_DATA"

Each slice is a fixed, deterministic part of one split (see SLICES), written as gzipped JSONL
with the same rows and field order as the source, so a test reads the same rows every time.
Only datasets whose licences allow redistribution are sliced (datasets/NOTICE.md).
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (dataset, split) -> (first row, last row exclusive, step): rows[first:last:step] of the split.
SLICES = {
    ("sst2", "train"): (0, 3000, 1),      # tfidf/minilm training; the first 600 sentences of >= 8 words
    ("sst2", "dev"): (0, None, 1),        # the whole dev split (872)
    ("trec", "train"): (0, 3000, 1),
    ("trec", "test"): (0, None, 1),       # the whole test split (500)
    ("banking77", "train"): (0, None, 10),  # every 10th row: all 77 labels, 1,001 rows
    ("banking77", "test"): (0, None, 10),   # every 10th row: all 77 labels, 308 rows
    ("wnut17", "train"): (0, None, 1),    # the whole train split (3,394)
    ("wnut17", "dev"): (0, None, 1),      # the whole dev split (1,009)
    ("wnut17", "test"): (0, 300, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("EVOKD_DATA"),
                        help="the benchmark data folder (default: $EVOKD_DATA)")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("name the benchmark data folder with --data-dir or EVOKD_DATA")
    source = Path(args.data_dir)
    for (name, split), (first, last, step) in SLICES.items():
        lines = (source / name / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        kept = lines[first:last:step]
        out = HERE / name / f"{split}.jsonl.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0 and no file name in the header: the same rows always give the same bytes.
        with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
            fh.write("".join(kept).encode("utf-8"))
        print(f"{out.relative_to(HERE)}: {len(kept):,} of {len(lines):,} rows")


if __name__ == "__main__":
    main()
