"""A clone stands on its own (issue 24): nothing the project runs reads the development setup's
sibling data folder, in any spelling — a path string, a path join or a `parents[n].parent` walk.
Code, configs, tests, docs (the README included), the Makefile and CI are scanned."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "sha" + "red"  # spelled in two parts so this file does not match its own patterns
PATTERNS = [
    re.compile(rf"\.\.[/\\]+{NAME}\b"),                 # the relative path, either slash
    re.compile(rf"\b{NAME}[/\\]+data\b"),                # NAME/data
    re.compile(rf"""["']{NAME}["']\s*[,/)]"""),          # a path join: "NAME" / "data", join(.., "NAME", ..)
    re.compile(rf"""["']\.\.["']\s*[,/]\s*["']{NAME}"""),  # "..", "NAME"
]
SCANNED_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".sh", ".json", ".md", ".txt", ".jsonl"}


def tracked_files() -> list[str]:
    """The repository's files (tracked, and new ones git does not ignore) in a checkout, else every file outside .venv and caches."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".git", "__pycache__", ".pytest_cache", "runs"}
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


def scanned(path: str) -> bool:
    name = Path(path).name
    return Path(path).suffix in SCANNED_SUFFIXES or name in {"Makefile", "run"} or path.startswith(".ci/")


def test_the_patterns_catch_every_spelling():
    for spelling in (f"../{NAME}/data/sst2", f'ROOT.parent / "{NAME}" / "data"', f"os.path.join('..', '{NAME}')",
                     f'Path("..", "{NAME}", "data")', f"{NAME}/data/trec"):
        assert any(p.search(spelling) for p in PATTERNS), spelling
    for fine in ("the shared prompt prefix", "shared by every cell", "evokd.datadir", "$EVOKD_DATA/trec"):
        assert not any(p.search(fine) for p in PATTERNS), fine


def test_nothing_reads_the_development_data_folder():
    files = [f for f in tracked_files() if scanned(f)]
    assert {"Makefile", "README.md", "evokd/cli/__init__.py", "benchmarks/configs/smoke.yaml"} <= set(files)
    hits = []
    for rel in files:
        try:
            text = (ROOT / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            if any(p.search(line) for p in PATTERNS):
                hits.append(f"{rel}:{lineno}: {line.strip()}")
    assert not hits, "\n".join(hits)
